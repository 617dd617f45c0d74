"""Mamba-2's mixer (mamba2, bamba, granitemoehybrid): multi-head SSM with a scalar A per head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from QEfficient.transform.adapters.recurrent import Mixer
from QEfficient.transform.recurrent_state import causal_conv, ssd_scan


def mamba2_scan(self, projected: torch.Tensor, cache) -> tuple[torch.Tensor, torch.Tensor]:
    """conv -> SSD scan (+ D skip) of Mamba2Mixer's torch path, from the in_proj output: the gated-norm input
    [B, S, d_inner] and the gate, with the layer's states carried in ``cache``."""
    bsz, seq, _ = projected.shape
    gate, xbc, dt = projected.split([self.intermediate_size, self.conv_dim, self.num_heads], dim=-1)
    conv_weight = self.conv1d.weight.squeeze(1)
    xbc, conv_state = causal_conv(xbc.transpose(1, 2), cache.conv[self.layer_idx], conv_weight, self.conv1d.bias, cache.n_real)
    groups = self.n_groups * self.ssm_state_size
    x, B, C = torch.split(self.act(xbc).transpose(1, 2), [self.intermediate_size, groups, groups], dim=-1)
    dt = torch.clamp(F.softplus(dt + self.dt_bias), self.time_step_limit[0], self.time_step_limit[1])
    dt = dt * cache.step_mask(dt)[..., None]
    per_group = self.num_heads // self.n_groups
    B, C = (t.reshape(bsz, seq, self.n_groups, self.ssm_state_size).repeat_interleave(per_group, dim=2) for t in (B, C))
    x = x.reshape(bsz, seq, self.num_heads, self.head_dim)
    y, ssm_state = ssd_scan(x, dt, -torch.exp(self.A_log.float()), B, C, cache.ssm[self.layer_idx])
    y = y + self.D[:, None] * x.float()
    cache.set_states(self.layer_idx, conv_state, ssm_state)
    return y.reshape(bsz, seq, -1), gate


def mamba2_mixer_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    y, gate = mamba2_scan(self, self.in_proj(hidden_states), cache)
    return self.out_proj(self.norm(y, gate).to(hidden_states.dtype))


def mamba2_state_shapes(mixer: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    channels, _, kernel = mixer.conv1d.weight.shape
    return (channels, kernel - 1), (mixer.num_heads, mixer.head_dim, mixer.ssm_state_size)


MAMBA2_MIXER = Mixer(mamba2_mixer_forward, mamba2_state_shapes)
