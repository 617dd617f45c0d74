"""Gated DeltaNet layers (Qwen3-Next, Qwen3.5, OLMo-Hybrid, Lara-Mini) and Kimi delta attention (Kimi-Linear,
Bailing-Hybrid) beside attention layers: a causal
convolution over q/k/v, then the gated delta rule, whose [heads, key_dim, value_dim] state is the layer's
SSM state. The families differ only in how they project the input and gate the output."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers.activations import ACT2FN

from QEfficient.transform.adapters.recurrent import Mixer
from QEfficient.transform.recurrent_state import DELTA_RULE_MAX_CHUNK, causal_conv, gated_delta_rule


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt((x * x).sum(dim=-1, keepdim=True) + 1e-6)  # as transformers' l2norm (FLA's)


def conv_delta_rule(self, mixed: torch.Tensor, beta: torch.Tensor, g: torch.Tensor, cache, splits: list[int], head_dims: tuple[int, int]):
    """The shared torch path from the concatenated q/k/v projections [B, S, sum(splits)] (before the convolution),
    beta [B, S, Hv] and the log decay g ([B, S, Hv] or [B, S, Hv, Dk]) to the delta rule's output
    [B, S, Hv, Dv], the layer's states carried in ``cache``."""
    bsz, seq, _ = mixed.shape
    head_k_dim, head_v_dim = head_dims
    conv_weight = self.conv1d.weight.squeeze(1)
    mixed, conv_state = causal_conv(mixed.transpose(1, 2), cache.conv[self.layer_idx], conv_weight, self.conv1d.bias, cache.n_real)
    query, key, value = torch.split(ACT2FN[self.activation](mixed).transpose(1, 2), splits, dim=-1)
    query, key = (t.reshape(bsz, seq, -1, head_k_dim) for t in (query, key))
    value = value.reshape(bsz, seq, -1, head_v_dim)
    valid = cache.step_mask(beta)
    beta = beta * valid[..., None]  # padding: beta = 0 writes nothing, g = 0 decays nothing
    g = g * valid.view(bsz, seq, *[1] * (g.dim() - 2)).to(g.dtype)
    per_k_head = value.shape[2] // query.shape[2]
    query, key = (_l2norm(t.float()).repeat_interleave(per_k_head, dim=2) for t in (query, key))
    out, ssm_state = gated_delta_rule(query * head_k_dim**-0.5, key, value, g, beta, cache.ssm[self.layer_idx])
    cache.set_states(self.layer_idx, conv_state, ssm_state)
    return out.to(value.dtype)


def delta_rule_core(self, mixed: torch.Tensor, b: torch.Tensor, a: torch.Tensor, cache, beta_scale: float = 1.0) -> torch.Tensor:
    """Gated DeltaNet: beta from b, one log decay per head from a."""
    g = -self.A_log.float().exp() * F.softplus(a.float() + self.dt_bias)
    splits = [self.key_dim, self.key_dim, self.value_dim]
    return conv_delta_rule(self, mixed, b.sigmoid() * beta_scale, g, cache, splits, (self.head_k_dim, self.head_v_dim))


def _gated_output(norm: nn.Module, out_proj: nn.Module, out: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    bsz, seq = out.shape[:2]
    return out_proj(norm(out.reshape(-1, out.shape[-1]), gate.reshape(-1, out.shape[-1])).reshape(bsz, seq, -1))


def qwen3_next_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    """Qwen3NextGatedDeltaNet: q/k/v/z and b/a come from two fused projections, interleaved per key head."""
    bsz, seq, _ = hidden_states.shape
    query, key, value, z, b, a = self.fix_query_key_value_ordering(self.in_proj_qkvz(hidden_states), self.in_proj_ba(hidden_states))
    mixed = torch.cat([t.reshape(bsz, seq, -1) for t in (query, key, value)], dim=-1)
    return _gated_output(self.norm, self.out_proj, delta_rule_core(self, mixed, b, a, cache), z)


def qwen3_5_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    """Qwen3_5GatedDeltaNet (and Qwen3.5-MoE's, Lara-Mini's): separate qkv, z, b and a projections."""
    b, a, z = self.in_proj_b(hidden_states), self.in_proj_a(hidden_states), self.in_proj_z(hidden_states)
    return _gated_output(self.norm, self.out_proj, delta_rule_core(self, self.in_proj_qkv(hidden_states), b, a, cache), z)


def olmo_hybrid_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    """OlmoHybridGatedDeltaNet: q/k/v/a/b/gate projections, beta doubled when negative eigenvalues are allowed."""
    mixed = torch.cat([self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states)], dim=-1)
    b, a = self.b_proj(hidden_states), self.a_proj(hidden_states)
    out = delta_rule_core(self, mixed, b, a, cache, beta_scale=2.0 if self.allow_neg_eigval else 1.0)
    return _gated_output(self.o_norm, self.o_proj, out, self.g_proj(hidden_states))


def kimi_delta_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    """Kimi delta attention (KimiLinearDeltaAttention, BailingHybridDeltaAttention): one log decay per key channel
    from the layer's forget gate."""
    mixed = torch.cat([self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states)], dim=-1)
    beta = torch.sigmoid(self.b_proj(hidden_states))
    splits = [self.qkv_dim] * 3
    out = conv_delta_rule(self, mixed, beta, self.forget_gate(hidden_states), cache, splits, (self.head_dim, self.head_dim))
    gate = self.g_proj(hidden_states) if hasattr(self, "g_proj") else self.g_b_proj(self.g_a_proj(hidden_states))
    return self.o_proj(self.o_norm(out, gate.view(out.shape)).reshape(*out.shape[:2], -1))


def kimi_state_shapes(mixer: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    channels, _, kernel = mixer.conv1d.weight.shape
    return (channels, kernel - 1), (mixer.num_heads, mixer.head_dim, mixer.head_dim)


def deltanet_state_shapes(mixer: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    channels, _, kernel = mixer.conv1d.weight.shape
    return (channels, kernel - 1), (mixer.num_v_heads, mixer.head_k_dim, mixer.head_v_dim)


QWEN3_NEXT_DELTANET = Mixer(qwen3_next_forward, deltanet_state_shapes, DELTA_RULE_MAX_CHUNK)
QWEN3_5_DELTANET = Mixer(qwen3_5_forward, deltanet_state_shapes, DELTA_RULE_MAX_CHUNK)
OLMO_HYBRID_DELTANET = Mixer(olmo_hybrid_forward, deltanet_state_shapes, DELTA_RULE_MAX_CHUNK)
KIMI_DELTA_ATTENTION = Mixer(kimi_delta_forward, kimi_state_shapes, DELTA_RULE_MAX_CHUNK)
