"""Zamba's mixer: Mamba (a diagonal A per channel) split into ``n_mamba_heads`` heads, each with its own
x_proj/dt_proj weights and its own B, C. The hybrid layers share one tied transformer block, which needs
nothing here: its KV cache is addressed by the hybrid layer's index like any attention layer's.

Why an adapter: transformers' torch path scans each head from zeros (its kernel-free scan takes no initial
state), so a prefill chunk after the first would lose the state; here every head's scan continues from the
retained state (transform/recurrent_state.py), which is what HF's one-shot prefill plus decode computes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from QEfficient.transform.adapters.recurrent import Mixer
from QEfficient.transform.recurrent_state import causal_conv, selective_scan


def zamba_mixer_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    """ZambaMambaMixer.forward's torch path, continuing from and returning the layer's retained states."""
    bsz, seq, _ = hidden_states.shape
    heads, head_dim = self.n_mamba_heads, self.mamba_head_dim
    projected = self.in_proj(hidden_states).transpose(1, 2)
    # in_proj's channels interleave the scan input and the gate (HF's view(B, -1, 2, S))
    # (indexing, not chunk + squeeze, which exports as an If over the squeezed size)
    pairs = projected.view(bsz, -1, 2, seq)
    x, gate = pairs[:, :, 0], pairs[:, :, 1].reshape(bsz, heads, head_dim, seq)
    x, conv_state = causal_conv(x, cache.conv[self.layer_idx], self.conv1d.weight.squeeze(1), self.conv1d.bias, cache.n_real)
    x = self.act(x).reshape(bsz, heads, head_dim, seq).transpose(0, 1)  # [H, B, P, S]
    # each head's own projections, as batched matmuls over heads (HF's order of operations)
    time_step, B, C = torch.split(
        (self.x_proj_weight[:, None] @ x).transpose(-1, -2), [self.time_step_rank, self.ssm_state_size, self.ssm_state_size], dim=-1
    )
    time_step = self.dt_proj_weight[:, None] @ time_step.transpose(-1, -2)  # [H, B, P, S]
    dt = F.softplus(time_step + self.dt_proj_bias.float()[:, None, :, None])
    dt = dt * cache.step_mask(dt)[None, :, None, :]  # padding leaves the state unchanged
    A = -torch.exp(self.A_log.float())  # [H, P, N]
    outputs, states = [], []
    for h in range(heads):  # a handful of heads: one scan each, as HF runs them
        y, state = selective_scan(x[h], dt[h], A[h], B[h], C[h], cache.ssm[self.layer_idx][:, h])
        outputs.append((y + x[h] * self.D[h].float()[None, :, None]) * F.silu(gate[:, h]))
        states.append(state)
    cache.set_states(self.layer_idx, conv_state, torch.stack(states, dim=1))
    return self.out_proj(torch.cat(outputs, dim=1).transpose(1, 2).to(hidden_states.dtype))


def zamba_state_shapes(mixer: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    channels, _, kernel = mixer.conv1d.weight.shape
    return (channels, kernel - 1), tuple(mixer.A_log.shape)  # SSM state [heads, head_dim, d_state]


ZAMBA_MIXER = Mixer(zamba_mixer_forward, zamba_state_shapes)
