"""Longformer attention (Longformer's encoder, LED's encoder: each token sees a window of ``w`` tokens either side, and
the tokens marked for global attention see, and are seen by, every token) as a graph of any length. transformers'
version gathers the global tokens with ``nonzero`` and Python counts, which tracing would freeze at the example's sizes
(and LED's pads the input in Python); here the host pads the input to a multiple of the window (as transformers does,
the padding masked), and:

* local attention runs by blocks of ``w`` queries, each over its own block and the two beside it (``3w`` keys, those
  outside the window masked), so memory follows ``length x 3w``, not ``length^2``;
* global tokens are compacted into ``G`` slots (``G``: the most any row has, at least one), found by a one-hot over
  positions, not by ``nonzero``; every query scores them beside its window, in one softmax, and they are left out of
  the windows (transformers' rule: a key counts once);
* a global token's own output is its attention over every key with the global projections, taken back to its
  position by its rank among the row's global tokens.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _beside(blocks: torch.Tensor) -> torch.Tensor:
    """[..., n, w, X] -> [..., n, 3w, X]: each block with the one before it and the one after it (zeros beyond)."""
    edge = torch.zeros_like(blocks[..., :1, :, :])
    before = torch.cat([edge, blocks[..., :-1, :, :]], dim=-3)
    after = torch.cat([blocks[..., 1:, :, :], edge], dim=-3)
    return torch.cat([before, blocks, after], dim=-2)


def global_slots(is_global: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(each slot's position [B, G], whether the slot holds a global token [B, G], each position's slot [B, L]) for
    ``is_global`` [B, L]; G is the most global tokens a row has, at least one."""
    rank = torch.cumsum(is_global.to(torch.int64), dim=1) - 1
    count = is_global.to(torch.int64).sum(dim=1)
    slots = torch.arange(torch.clamp(count.max(), min=1))  # a length from the data: Range in the graph
    one_hot = (rank[:, None, :] == slots[None, :, None]) & is_global[:, None, :]  # [B, G, L]
    return one_hot.to(torch.int64).argmax(dim=-1), slots[None, :] < count[:, None], rank.clamp(min=0)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)  # [B, H, L, d]


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, H, L, d] at positions ``index`` [B, K] -> [B, H, K, d]."""
    return torch.gather(x, 2, index[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[-1]))


def longformer_attention(attn: nn.Module, hidden: torch.Tensor, is_real: torch.Tensor, is_global: torch.Tensor) -> torch.Tensor:
    """Longformer's (or LED's encoder's) self-attention output [B, L, D], before its output projection, for ``hidden``
    [B, L, D], L a multiple of its one-sided window; ``is_real``: not padding, ``is_global``: marked for global
    attention (and real)."""
    heads, w = attn.num_heads, attn.one_sided_attn_window_size
    batch, length, _ = hidden.shape
    scale = attn.head_dim**0.5
    q, k, v = _heads(attn.query(hidden) / scale, heads), _heads(attn.key(hidden), heads), _heads(attn.value(hidden), heads)
    low = torch.finfo(hidden.dtype).min

    def blocks(x: torch.Tensor) -> torch.Tensor:  # [B, H, L, d] -> [B, H, n, w, d]
        return x.reshape(batch, heads, -1, w, x.shape[-1])

    # local: each block of queries over the blocks beside it; keys outside the window, padding or global are masked
    offset = torch.arange(3 * w)[None, :] - w - torch.arange(w)[:, None]  # key - query, [w, 3w]
    in_window = offset.abs() <= w
    key_local = _beside((is_real & ~is_global).reshape(batch, -1, w, 1))[..., 0]  # [B, n, 3w]
    local_scores = torch.matmul(blocks(q), _beside(blocks(k)).transpose(-1, -2))  # [B, H, n, w, 3w]
    local_scores = torch.where(in_window & key_local[:, None, :, None, :], local_scores, low)

    # every query also scores the global keys (the local projections), in the same softmax
    position, held, rank = global_slots(is_global)
    global_keys, global_values = _gather_rows(k, position), _gather_rows(v, position)
    global_scores = torch.matmul(q, global_keys.transpose(-1, -2))  # [B, H, L, G]
    global_scores = torch.where(held[:, None, None, :], global_scores, low).reshape(batch, heads, -1, w, global_keys.shape[2])
    probs = torch.softmax(torch.cat([global_scores, local_scores], dim=-1).float(), dim=-1).to(hidden.dtype)
    slots = global_keys.shape[2]
    out = torch.matmul(probs[..., :slots], global_values[:, :, None])  # [B, H, n, w, d]
    out = (out + torch.matmul(probs[..., slots:], _beside(blocks(v)))).reshape(batch, heads, length, -1)

    # a global token's output: its global query over every real key, with the global projections
    global_queries = _gather_rows(_heads(attn.query_global(hidden) / scale, heads), position)  # [B, H, G, d]
    scores = torch.matmul(global_queries, _heads(attn.key_global(hidden), heads).transpose(-1, -2))  # [B, H, G, L]
    scores = torch.where(is_real[:, None, None, :], scores, low)
    global_out = torch.matmul(torch.softmax(scores.float(), dim=-1).to(hidden.dtype), _heads(attn.value_global(hidden), heads))
    out = torch.where(is_global[:, None, :, None], _gather_rows(global_out, rank), out)
    out = torch.where(is_real[:, None, :, None], out, 0.0)  # transformers zeroes a padding query's probabilities
    return out.transpose(1, 2).reshape(batch, length, -1)


def self_attention_forward(self, hidden_states, attention_mask=None, is_index_masked=None, is_index_global_attn=None, **_):
    """LongformerSelfAttention.forward (set on the instance): ``longformer_attention`` from the masks the encoder made
    (``is_global_attn``, a Python bool transformers takes with ``.item()``, is not read)."""
    return (longformer_attention(self, hidden_states, ~is_index_masked, is_index_global_attn),)


def padding_mask(config=None, inputs_embeds=None, attention_mask=None, **_) -> torch.Tensor:
    """transformers' ``create_bidirectional_mask`` as LongformerModel reads it (its ``[:, 0, 0, :]``): the 2-D mask's
    additive form [B, 1, 1, L] (0 kept, the dtype's minimum masked), without the [B, 1, L, L] it would build."""
    dtype = inputs_embeds.dtype
    keep = attention_mask[:, None, None, :].bool()
    return torch.where(keep, torch.zeros((), dtype=dtype), torch.tensor(torch.finfo(dtype).min, dtype=dtype))


def encoder_states(
    encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, global_attention_mask: torch.Tensor
) -> torch.Tensor:
    """LEDEncoder's last hidden state [B, L, D] for inputs padded to a multiple of every layer's window."""
    is_real = attention_mask.bool()
    is_global = is_real & global_attention_mask.bool()
    positions = torch.arange(input_ids.shape[1])
    hidden = encoder.layernorm_embedding(encoder.embed_tokens(input_ids) + encoder.embed_positions.weight[positions])
    for layer in encoder.layers:
        attention = layer.self_attn
        out = attention.output(longformer_attention(attention.longformer_self_attn, hidden, is_real, is_global))
        hidden = layer.self_attn_layer_norm(hidden + out)
        feed_forward = layer.fc2(layer.activation_fn(layer.fc1(hidden)))
        hidden = layer.final_layer_norm(hidden + feed_forward)
    return hidden


def window_multiple(config) -> int:
    """What LED's encoder inputs are padded to a multiple of: every layer's window (transformers pads to the widest,
    which its own chunking needs to be a multiple of the others; real tokens' states do not depend on it)."""
    windows = config.attention_window if isinstance(config.attention_window, (list, tuple)) else [config.attention_window]
    return math.lcm(*windows)


def padded_length(config, length: int) -> int:
    """The length LED's encoder inputs are padded to."""
    return -(-length // window_multiple(config)) * window_multiple(config)
