"""MiniMax-Text-01 (``minimax``): lightning attention layers beside softmax attention layers.

A lightning attention layer is linear attention with a fixed decay per head: q, k, v = silu(qkv_proj(x)) split
per head, state S_t = exp(-slope) S_{t-1} + k_t^T v_t ([heads, head_dim, head_dim]), output o_t = q_t S_t, then an
RMSNorm over all heads, a sigmoid output gate and out_proj. Transformers computes it block-wise when it has no
state yet and token by token after; both are this recurrence, computed here in closed form over the chunk and
retained in the layer's one state tensor (the graph's ``conv_state.i`` slot, as a short convolution's state is:
a layer with a single state has no ``ssm_state.i``). The softmax attention layers use the static KV cache.

MiniMaxModel.forward refuses any cache but its own MiniMaxCache (a ValueError while tracing), so its forward is
wrapped: the original runs with ``use_cache=False``, which in MiniMaxModel only skips creating a MiniMaxCache
and that type check (``cache`` itself is still handed to every layer); the wrapper also gives the full-attention
layers the sliding-window mask when the config names a window, as MiniMaxModel's own mask choice does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from QEfficient.transform.adapters.recurrent import Mixer, RecurrentAdapter


def lightning_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slope: torch.Tensor, state: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear attention with a per-head decay over one chunk, from ``state`` [B, H, D, D].

    q, k, v [B, H, S, D] (0 at padding); slope [H] (decay exp(-slope) per step); valid [B, S] bool, real positions
    leading each row. o_t = q_t (exp(-slope (t+1)) S + sum_{s<=t} exp(-slope (t-s)) k_s^T v_s).
    Returns (o [B, H, S, D], the state after each row's last real position; padding decays nothing).
    """
    slope = slope.float()[None, :, None]  # [1, H, 1]
    steps = torch.arange(q.shape[2], device=q.device).to(slope.dtype)
    # decays as slope times a whole number of steps, as transformers' diagonal and query decays are built
    gaps = steps[:, None] - steps[None, :]  # [t, s]
    causal = gaps >= 0
    intra = torch.where(causal, torch.exp(-slope[..., None] * gaps.clamp(min=0)), torch.zeros((), dtype=slope.dtype))
    q, k, v, state = q.float(), k.float(), v.float(), state.float()
    out = torch.matmul(torch.matmul(q, k.transpose(-1, -2)) * intra, v)
    out = out + torch.matmul(q * torch.exp(-slope * (steps + 1))[..., None], state)
    n_real = valid.sum(dim=1).to(slope.dtype)[:, None, None]  # [B, 1, 1]
    to_end = torch.where(valid[:, None, :], -slope * (n_real - 1 - steps).clamp(min=0), torch.full((), -torch.inf))  # [B, H, S]
    final = state * torch.exp(-slope * n_real)[..., None] + torch.matmul((k * torch.exp(to_end)[..., None]).transpose(-1, -2), v)
    return out, final


def lightning_attention_forward(self, hidden_states: torch.Tensor, position_embeddings=None, attention_mask=None, cache=None, **kwargs):
    """MiniMaxLightningAttention.forward continuing from the layer's retained state (``cache`` is a RecurrentStateCache)."""
    bsz, seq, _ = hidden_states.shape
    valid = cache.valid
    qkv = self.act_fn(self.qkv_proj(hidden_states)) * cache.step_mask(hidden_states)[..., None]  # padding writes nothing
    qkv = qkv.reshape(bsz, seq, self.num_attention_heads, 3 * self.head_dim).transpose(1, 2)
    query, key, value = torch.split(qkv, self.head_dim, dim=-1)
    out, state = lightning_attention(query, key, value, self.slope_rate.reshape(-1), cache.conv[self.layer_idx], valid)
    cache.set_states(self.layer_idx, state)
    out = out.to(qkv.dtype).transpose(1, 2).reshape(bsz, seq, self.num_attention_heads * self.head_dim)
    out = F.sigmoid(self.output_gate(hidden_states)) * self.norm(out)
    return self.out_proj(out), None


def lightning_state_shapes(layer: nn.Module) -> tuple[tuple[int, ...], None]:
    return (layer.num_attention_heads, layer.head_dim, layer.head_dim), None


def minimax_model_forward(self, *args, attention_mask=None, use_cache=None, **kwargs):
    """MiniMaxModel.forward itself, past its MiniMaxCache-only check (see the module docstring)."""
    if self.config.sliding_window is not None and isinstance(attention_mask, dict):
        attention_mask = {**attention_mask, "full_attention": attention_mask["sliding_attention"]}
    return type(self).forward(self, *args, attention_mask=attention_mask, use_cache=False, **kwargs)


LIGHTNING_ATTENTION = Mixer(lightning_attention_forward, lightning_state_shapes)


@dataclass(frozen=True)
class MiniMaxAdapter(RecurrentAdapter):
    """Lightning attention layers are the recurrent layers; the model's forward is wrapped past its cache-type check."""

    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {**super().module_forwards, "MiniMaxModel": minimax_model_forward}
