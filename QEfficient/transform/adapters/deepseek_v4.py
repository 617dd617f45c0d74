"""DeepSeek-V4: every layer attends over a sliding window of its shared key=value vectors plus, on
compressed layers, a second set of keys made from whole windows of past tokens.

* Heavily compressed attention (HCA) folds each non-overlapping window of ``m'`` tokens into one key:
  a softmax over the window of the per-token gate (plus a learned per-slot bias) weights the per-token
  compressor values; RMS norm; RoPE at the window's first position.
* Compressed sparse attention (CSA) does the same every ``m`` tokens over two overlapping series (key
  ``w`` mixes window ``w-1``'s first half-width with window ``w``'s second), and a lightning indexer,
  a second such compressor at ``index_head_dim``, scores the compressed keys per query and keeps the
  ``index_topk`` best.

A query at position ``p`` sees compressed key ``w`` once its window is closed, ``(w+1)*m <= p+1``.
transformers keeps the sliding window, the compressed keys, the tokens of the unfinished window and the
previous window's overlap half in its own cache layers, which a static graph cannot hold. A compressed
key depends only on the compressor projections of the tokens of its window(s), so here each token's
projections are stored beside its key=value vector in the static cache at its position, and every step
recomputes the closed windows from them: the same values for any chunking, padding or batch, and a
sequence restarting at position 0 overwrites every window it can see. The indexer runs whole (scores,
causal mask, top-k), so there is no context limit; the price is a wider cache (per token, CSA layers
keep 5 head_dim + 4 index_head_dim values, the widest layer sets every layer's width), and a cache stored
narrower than the compute dtype (mxint8) rounds the compressor's inputs as well as the keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from QEfficient.transform.adapters.base import ArchAdapter
from QEfficient.transform.adapters.sparse_attention import fixed_width_topk

HCA, CSA = "heavily_compressed_attention", "compressed_sparse_attention"


def _token_parts(config, layer_type: str) -> list[int]:
    """Widths of what one token of a ``layer_type`` layer stores: its key=value vector, then the
    compressor's values and gates, then (CSA) the indexer's values and gates."""
    d = config.head_dim
    if layer_type == HCA:
        return [d, d, d]
    if layer_type == CSA:
        return [d, 2 * d, 2 * d, 2 * config.index_head_dim, 2 * config.index_head_dim]
    return [d]


def _compress(kv: torch.Tensor, gate: torch.Tensor, module: nn.Module, rate: int, overlap: bool) -> torch.Tensor:
    """The compressed keys [B, W, head_dim] of every closed window of the stored projections kv, gate
    [B, T, width], as DeepseekV4{HCA,CSA}Compressor / DeepseekV4Indexer compute them."""
    from transformers.models.deepseek_v4.modeling_deepseek_v4 import apply_rotary_pos_emb

    batch, width = kv.shape[0], kv.shape[-1]
    # A window past the cache's end is not closed for any query: drop the partial one. One window of zeros is
    # appended first so that a cache shorter than a window still yields one (never closed): ONNX Runtime cannot
    # reshape the empty tensors of zero windows.
    kv, gate = (nn.functional.pad(t, (0, 0, 0, rate)) for t in (kv, gate))
    usable = (kv.shape[1] // rate) * rate
    kv = kv[:, :usable].reshape(batch, -1, rate, width)
    gate = gate[:, :usable].reshape(batch, -1, rate, width) + module.position_bias
    if overlap:  # slots [first half of window w-1 | second half of window w]; no window -1 (-inf gate)
        half = width // 2
        kv_prev = torch.cat([torch.zeros_like(kv[:, :1, :, :half]), kv[:, :-1, :, :half]], dim=1)
        gate_prev = torch.cat([torch.full_like(gate[:, :1, :, :half], float("-inf")), gate[:, :-1, :, :half]], dim=1)
        kv = torch.cat([kv_prev, kv[..., half:]], dim=2)
        gate = torch.cat([gate_prev, gate[..., half:]], dim=2)
    compressed = module.kv_norm((kv * gate.softmax(dim=2, dtype=torch.float32).to(kv.dtype)).sum(dim=2))
    # each key's RoPE sits at its window's first position
    starts = torch.arange(compressed.shape[1], device=kv.device) * rate
    cos, sin = module.rotary_emb(compressed, position_ids=starts.unsqueeze(0).expand(batch, -1), layer_type="compress")
    return apply_rotary_pos_emb(compressed.unsqueeze(1), cos, sin).squeeze(1)


def _indexer_selection(indexer, stored_kv, stored_gate, hidden_states, q_residual, position_ids, closed) -> torch.Tensor:
    """bool [B, S, W]: the compressed keys DeepseekV4Indexer picks per query (top index_topk of the closed ones)."""
    from transformers.models.deepseek_v4.modeling_deepseek_v4 import apply_rotary_pos_emb

    batch, seq = position_ids.shape
    keys = _compress(stored_kv, stored_gate, indexer, indexer.compress_rate, True)
    cos, sin = indexer.rotary_emb(hidden_states, position_ids=position_ids, layer_type="compress")
    q = indexer.q_b_proj(q_residual).view(batch, seq, -1, indexer.head_dim).transpose(1, 2)
    q = apply_rotary_pos_emb(q, cos, sin).transpose(1, 2)
    scores = indexer.scorer(q, keys, hidden_states).masked_fill(~closed, float("-inf"))  # [B, S, W]
    # transformers takes the top min(index_topk, W) and drops picks that are not closed: the same as the
    # top index_topk of the closed keys padded with index_topk never-picked-for-real columns (static k)
    k = indexer.index_topk
    top = fixed_width_topk(scores, k).indices
    picked = torch.zeros((*scores.shape[:-1], scores.shape[-1] + k), dtype=torch.bool, device=scores.device)
    picked = picked.scatter(-1, top, torch.ones_like(top, dtype=torch.bool))
    return picked[..., : closed.shape[-1]] & closed


def attention_forward(self, hidden_states, position_embeddings, position_ids, attention_mask, cache=None, **kwargs):
    """DeepseekV4Attention.forward over the static cache (see the module docstring).

    ``attention_mask`` is the causal bool mask [B, 1, S, T] (DeepseekV4Model passes the first mask of the dict);
    every V4 layer narrows it to the sliding window."""
    from transformers.models.deepseek_v4.modeling_deepseek_v4 import apply_rotary_pos_emb

    from QEfficient.transform.static_kv import static_kv_attention

    batch, seq = hidden_states.shape[:2]
    d = self.head_dim
    cos, sin = position_embeddings[self.rope_layer_type]
    q_residual = self.q_a_norm(self.q_a_proj(hidden_states))
    q = self.q_b_norm(self.q_b_proj(q_residual).view(batch, seq, -1, d).transpose(1, 2))
    q = apply_rotary_pos_emb(q, cos, sin)
    kv = apply_rotary_pos_emb(self.kv_norm(self.kv_proj(hidden_states)).view(batch, seq, 1, d).transpose(1, 2), cos, sin)

    # One token's stored row: key=value, then the compressor's (and indexer's) raw projections.
    parts = [kv.transpose(1, 2).reshape(batch, seq, d)]
    compressor = self.compressor
    if compressor is not None:
        parts += [compressor.kv_proj(hidden_states), compressor.gate_proj(hidden_states)]
        if self.layer_type == CSA:
            parts += [compressor.indexer.kv_proj(hidden_states), compressor.indexer.gate_proj(hidden_states)]
    n_kv = cache.keys[self.layer_idx].shape[1]
    row = torch.cat(parts, dim=-1)
    row = nn.functional.pad(row, (0, 2 * n_kv * d - row.shape[-1])).view(batch, seq, 2 * n_kv, d).transpose(1, 2)
    keys, values = cache.update(row[:, :n_kv], row[:, n_kv:], self.layer_idx)
    slots = keys.shape[2]
    stored = torch.cat([keys, values], dim=1).transpose(1, 2).reshape(batch, slots, 2 * n_kv * d)

    window = torch.arange(slots, device=position_ids.device)
    mask = attention_mask & (window > position_ids[:, :, None] - self.sliding_window)[:, None]
    key = stored[..., :d].unsqueeze(1)
    if compressor is not None:
        rate = compressor.compress_rate
        widths = _token_parts(self.config, self.layer_type)
        split = stored[..., : sum(widths)].split(widths, dim=-1)
        compressed = _compress(split[1], split[2], compressor, rate, self.layer_type == CSA)
        # window w is closed for the query at p iff (w+1)*rate <= p+1
        entries = torch.arange(compressed.shape[1], device=position_ids.device)
        closed = entries[None, None, :] < torch.div(position_ids + 1, rate, rounding_mode="floor")[:, :, None]
        if self.layer_type == CSA:
            closed = _indexer_selection(compressor.indexer, split[3], split[4], hidden_states, q_residual, position_ids, closed)
        key = torch.cat([key, compressed.unsqueeze(1).to(key.dtype)], dim=2)
        mask = torch.cat([mask, closed[:, None]], dim=-1)

    out, _ = static_kv_attention(self, q, key, key, mask, scaling=self.scaling, s_aux=self.sinks)  # [B, S, H, D]
    # K=V carried RoPE into the output's rope slice: rotate it back at the query position (as HF does)
    out = apply_rotary_pos_emb(out.transpose(1, 2), cos, -sin).transpose(1, 2)
    grouped = self.o_a_proj(out.reshape(batch, seq, self.config.o_groups, -1)).flatten(2)
    return self.o_b_proj(grouped), None


@dataclass(frozen=True)
class DeepseekV4Adapter(ArchAdapter):
    def kv_geometry(self, config) -> tuple[int, int, int]:
        """Key and value slots of ``n`` heads of head_dim each hold one token's row of the widest layer."""
        width = max(sum(_token_parts(config, t)) for t in config.layer_types)
        return config.num_hidden_layers, math.ceil(width / (2 * config.head_dim)), config.head_dim

    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {"DeepseekV4Attention": attention_forward}
