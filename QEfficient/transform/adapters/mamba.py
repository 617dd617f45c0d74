"""Mamba's mixer (mamba, falcon_mamba, jamba's Mamba layers): per-channel SSM with a diagonal A [d_inner, d_state]."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from QEfficient.transform.adapters.recurrent import Mixer
from QEfficient.transform.recurrent_state import causal_conv, selective_scan


def mamba_mixer_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    """MambaMixer.forward's torch path (FalconMamba/Jamba add RMS norms on dt, B, C), continuing from and
    returning the layer's retained states (``cache`` is a RecurrentStateCache)."""
    dtype = hidden_states.dtype
    x, gate = self.in_proj(hidden_states).transpose(1, 2).chunk(2, dim=1)  # [B, D, S] each
    x, conv_state = causal_conv(x, cache.conv[self.layer_idx], self.conv1d.weight.squeeze(1), self.conv1d.bias, cache.n_real)
    x = self.act(x)
    time_step, B, C = torch.split(self.x_proj(x.transpose(1, 2)), [self.time_step_rank, self.ssm_state_size, self.ssm_state_size], dim=-1)
    if hasattr(self, "dt_layernorm"):  # FalconMamba, Jamba
        time_step, B, C = self.dt_layernorm(time_step), self.b_layernorm(B), self.c_layernorm(C)
    # weight @ x + bias in two steps, as transformers computes it (a fused linear rounds differently)
    dt = F.softplus(self.dt_proj.weight @ time_step.transpose(1, 2) + self.dt_proj.bias.float()[:, None])
    dt = dt * cache.step_mask(time_step)[:, None, :]
    A = -torch.exp(self.A_log.float())
    y, ssm_state = selective_scan(x, dt, A, B, C, cache.ssm[self.layer_idx])
    y = (y + x * self.D.float()[None, :, None]) * F.silu(gate)
    cache.set_states(self.layer_idx, conv_state, ssm_state)
    return self.out_proj(y.transpose(1, 2).to(dtype))


def mamba_state_shapes(mixer: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    channels, _, kernel = mixer.conv1d.weight.shape
    return (channels, kernel - 1), tuple(mixer.A_log.shape)


MAMBA_MIXER = Mixer(mamba_mixer_forward, mamba_state_shapes)
