"""GLM-5.3-Flash's text model (glm5_next_text, the language model of glm5_next): Kimi delta attention layers
("linear_attention": Kimi-Linear's mixer, conv and SSM states retained) beside NoPE multi-latent attention
layers whose DSA indexer ("indexed_attention") scores pools of ``index_kpool`` keys and lets each query see its
``index_topk / index_kpool`` best complete pools plus the incomplete tail; every layer reads and writes
``hc_mult`` residual streams (DeepSeek-V4's hyper-connections, which export as HF writes them).

The attention forward is restated because HF's indexer keeps its per-token state on HF's cache object. Here a
layer with an indexer stores that state (the indexer's key and pool gate scores, ``2 * index_head_dim`` values) in
the static cache's value slot, which multi-latent attention without a rotary key leaves free, and recomputes the
pools of every step from it: the pool keys (a softmax over each pool's gate scores plus a per-slot bias weights its
keys), the pool scores, the top ``index_topk / index_kpool`` complete pools, and the tail. Pools start at slot 0:
a sequence here starts at position 0 (HF starts them at the first non-padding token, the same thing). A
``"shared"`` layer reuses the previous full layer's selection. No context limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from QEfficient.transform.adapters.recurrent import RecurrentAdapter
from QEfficient.transform.adapters.sparse_attention import fixed_width_topk


def _indexer_state(indexer, hidden_states: torch.Tensor) -> torch.Tensor:
    """[B, 1, S, 2D]: what one token keeps for the indexer (its key, its pool gate scores), as HF packs them."""
    batch, seq = hidden_states.shape[:2]
    keys = indexer.k_norm(indexer.wk(hidden_states))
    gates = F.linear(hidden_states, indexer.index_kpool_compress_gate)
    return torch.cat([keys, gates], dim=-1).view(batch, 1, seq, -1)


def _pooled_selection(indexer, state: torch.Tensor, hidden_states, q_resid, visible: torch.Tensor) -> torch.Tensor:
    """bool [B, S, T]: the keys Glm5NextTextIndexer lets each query see, from every slot's stored state [B, T, 2D]
    and the causal mask ``visible`` [B, 1, S, T]."""
    batch, seq = hidden_states.shape[:2]
    slots, dim, pool = state.shape[1], indexer.head_dim, indexer.index_kpool
    # Pools of `pool` slots from slot 0; one pool of zeros is appended first, so that a cache shorter than a pool
    # still has one (never selectable), and the partial pool at the end is dropped (never selectable either).
    state = F.pad(state, (0, 0, 0, pool))
    usable = (state.shape[1] // pool) * pool
    grouped = state[:, :usable].reshape(batch, -1, pool, 2 * dim)
    keys, gates = grouped[..., :dim], grouped[..., dim:]  # stored as the cache is (float16 with mxint8_kv_cache)
    probabilities = (gates.float() + indexer.index_kpool_compress_ape.float()).softmax(dim=2).to(keys.dtype)
    pool_keys = (probabilities * keys).sum(dim=2)  # [B, P, D]

    q = indexer.wq_b(q_resid).view(batch, seq, -1, dim)
    scores = F.relu(torch.matmul(q.float(), pool_keys.transpose(-1, -2).float().unsqueeze(1)) * indexer.softmax_scale)
    weights = indexer.weights_proj(hidden_states.to(indexer.weights_proj.weight.dtype)).float() * (indexer.n_heads**-0.5)
    pool_scores = torch.matmul(weights.unsqueeze(-2), scores).squeeze(-2)  # [B, S, P]

    # a pool is selectable once the query sees its last slot; the query sees `count` slots (0 .. p)
    count = visible[:, 0].sum(dim=-1, keepdim=True)  # [B, S, 1]
    ends = (torch.arange(pool_scores.shape[-1], device=count.device) + 1) * pool
    selectable = ends[None, None, :] <= count
    pool_scores = pool_scores.masked_fill(~selectable, float("-inf"))
    # the top k selectable pools (fewer when fewer are selectable)
    k = indexer.index_topk // pool
    values, top = fixed_width_topk(pool_scores, k)
    picked = torch.zeros((batch, seq, pool_scores.shape[-1] + k), dtype=torch.bool, device=top.device)
    picked = picked.scatter(-1, top, values > float("-inf"))[..., : pool_scores.shape[-1]]
    from_pools = picked[..., None].expand(-1, -1, -1, pool).reshape(batch, seq, -1)[..., :slots]
    # the incomplete tail: the slots after the query's last complete pool, up to its own
    slot = torch.arange(slots, device=count.device)[None, None, :]
    tail = (slot >= count - count.remainder(pool)) & (slot < count)
    return from_pools | tail


def attention_forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, cache=None, prev_topk_indices=None, **kwargs):
    """Glm5NextTextAttention.forward over the static cache (module docstring). The config requires NoPE
    (qk_rope_head_dim 0): the rotary key is empty, and a zero-width tensor does not survive ONNX (Reshape reads a 0
    as "copy this dimension"), so the latent alone is the key slot's, expanded into keys (k_nope) and values; the
    value slot holds the indexer's state (one column in a layer without an indexer: nothing reads it).
    ``prev_topk_indices`` carries the selection [B, S, T] (bool) from a full layer to the shared one after it."""
    bsz, seq = hidden_states.shape[:-1]
    q_resid = self.q_a_layernorm(self.q_a_proj(hidden_states))
    query_states = self.q_b_proj(q_resid).view(bsz, seq, -1, self.qk_head_dim).transpose(1, 2)
    kv_pass = self.kv_a_proj_with_mqa(hidden_states)[..., : self.kv_lora_rank]
    latent = self.kv_a_layernorm(kv_pass).view(bsz, 1, seq, self.kv_lora_rank)
    if self.indexer is not None:
        latent, state = cache.update(latent, _indexer_state(self.indexer, hidden_states), self.layer_idx)
        selected = _pooled_selection(self.indexer, state[:, 0], hidden_states, q_resid, attention_mask)
    else:  # the static cache wants a value: one column, which nothing reads back
        latent, _ = cache.update(latent, latent[..., :1], self.layer_idx)
        selected = prev_topk_indices
    kv = self.kv_b_proj(latent).view(bsz, latent.shape[2], -1, self.qk_nope_head_dim + self.v_head_dim).transpose(1, 2)
    key_states, value_states = torch.split(kv, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
    interface = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
    kwargs.pop("position_ids", None)
    mask = attention_mask & selected[:, None]
    out, weights = interface(self, query_states, key_states, value_states, mask, dropout=0.0, scaling=self.scaling, **kwargs)
    return self.o_proj(out.reshape(bsz, seq, -1)), weights, selected if self.next_skip_topk else None


@dataclass(frozen=True)
class Glm5NextAdapter(RecurrentAdapter):
    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {**super().module_forwards, "Glm5NextTextAttention": attention_forward}

    def kv_geometry(self, config) -> tuple[int, int, int]:
        # one latent "head" (the rotary key is empty: NoPE), as ArchAdapter's MLA branch, which needs a rotary width
        # to recognise multi-latent attention; the value slot holds the indexer's key and gate scores
        return len(self.attention_layers(config)), 1, max(config.kv_lora_rank, 2 * config.index_head_dim)

    def context_limit(self, config) -> tuple[int, str] | None:
        if not config.index_kpool_always_select_tail:
            # without the tail a query sees nothing until its first pool is complete, which HF's eager softmax turns
            # into a uniform average over every slot
            return 0, "index_kpool_always_select_tail=False (the indexer leaves out each query's incomplete pool)"
        return None
