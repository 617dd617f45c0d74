"""Gated DeltaNet layers (Qwen3-Next) beside attention layers: a causal convolution over q/k/v, then the
gated delta rule, whose [heads, key_dim, value_dim] state is the layer's SSM state."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from QEfficient.transform.adapters.recurrent import Mixer
from QEfficient.transform.recurrent_state import causal_conv, gated_delta_rule


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True) + 1e-6)  # as transformers' l2norm (FLA's)


def qwen3_next_deltanet_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    """Qwen3NextGatedDeltaNet.forward's torch path, continuing from the layer's retained states."""
    bsz, seq, _ = hidden_states.shape
    query, key, value, z, b, a = self.fix_query_key_value_ordering(self.in_proj_qkvz(hidden_states), self.in_proj_ba(hidden_states))
    mixed = torch.cat([t.reshape(bsz, seq, -1) for t in (query, key, value)], dim=-1).transpose(1, 2)
    mixed, conv_state = causal_conv(mixed, cache.conv[self.layer_idx], self.conv1d.weight.squeeze(1), self.conv1d.bias, cache.n_real)
    query, key, value = torch.split(F.silu(mixed).transpose(1, 2), [self.key_dim, self.key_dim, self.value_dim], dim=-1)
    query, key = (t.reshape(bsz, seq, -1, self.head_k_dim) for t in (query, key))
    value = value.reshape(bsz, seq, -1, self.head_v_dim)
    valid = cache.step_mask(a)[..., None]
    beta = b.sigmoid() * valid
    g = -self.A_log.float().exp() * F.softplus(a.float() + self.dt_bias) * valid
    per_k_head = self.num_v_heads // self.num_k_heads
    query, key = (_l2norm(t.float()).repeat_interleave(per_k_head, dim=2) for t in (query, key))
    out, ssm_state = gated_delta_rule(query * self.head_k_dim**-0.5, key, value, g, beta, cache.ssm[self.layer_idx])
    cache.set_states(self.layer_idx, conv_state, ssm_state)
    out = self.norm(out.to(value.dtype).reshape(-1, self.head_v_dim), z.reshape(-1, self.head_v_dim))
    return self.out_proj(out.reshape(bsz, seq, -1))


def deltanet_state_shapes(mixer: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    channels, _, kernel = mixer.conv1d.weight.shape
    return (channels, kernel - 1), (mixer.num_v_heads, mixer.head_k_dim, mixer.head_v_dim)


QWEN3_NEXT_DELTANET = Mixer(qwen3_next_deltanet_forward, deltanet_state_shapes)
