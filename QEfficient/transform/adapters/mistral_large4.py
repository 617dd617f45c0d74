"""Mistral Large 4's text model (mistral_large4_text): DeepSeek sparse attention (DSA) over MLA without a query latent,
log-position query scaling, rotary-free (NoPE) layers and optional KV sharing between layers. It has no causal-LM class
in transformers, so it is proven through its image-text model (mistral_large4) in the image-text sweep.

Two forwards are swapped while the graph is traced:

* the indexer selects every key, which is transformers' selection while the context holds no more than
  ``index_topk`` keys (compile refuses a longer ``ctx_len``). The other DSA models run their indexer in the graph
  (adapters/sparse_attention.py); here the NoPE layers' value slot holds the whole latent, which leaves no room
  for the indexer's keys, and KV-shared layers keep no cache of their own;
* a NoPE layer's attention: HF's forward splits off a zero-width rotary part (``qk_rope_head_dim`` is 0 there) and
  views it as [B, 1, S, 0]; ONNX's Reshape reads that 0 as "keep this axis", so the exported graph fails. Here a NoPE
  layer runs the same computation without the zero-width tensors; a rotary layer runs HF's own forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from QEfficient.transform.adapters.base import ArchAdapter
from QEfficient.transform.adapters.sparse_attention import SparseAttentionAdapter


def every_key(self, hidden_states: torch.Tensor, position_embeddings, attention_mask: torch.Tensor, *args, **kwargs):
    """The indexer's top-k indices [B, S, T] (int32) while T <= index_topk: every key slot. Mistral Large 4's
    indexer is called as (hidden_states, position_embeddings, attention_mask, position_ids): no query latent."""
    bsz, seq, slots = attention_mask.shape
    return torch.arange(slots, dtype=torch.int32, device=attention_mask.device).expand(bsz, seq, slots)


def attention_forward(
    self,
    hidden_states: torch.Tensor,
    position_embeddings,
    attention_mask: torch.Tensor,
    shared_kv_states,
    position_ids: torch.Tensor,
    cache=None,
    prev_topk_indices: torch.Tensor | None = None,
    **kwargs,
):
    """MistralLarge4TextAttention.forward: HF's own in rotary layers; in NoPE layers the same attention written without
    zero-width rotary tensors (the query is all "nope", the key is kv_b_proj of the latent alone)."""
    if self.use_rope:
        return type(self).forward(
            self, hidden_states, position_embeddings, attention_mask, shared_kv_states, position_ids, cache, prev_topk_indices, **kwargs
        )
    bsz, seq = hidden_states.shape[:-1]
    query = self.q_proj(hidden_states).view(bsz, seq, -1, self.qk_head_dim).transpose(1, 2)
    if self.is_kv_shared_layer:
        latent = shared_kv_states["nope"][0]
    else:
        latent = self.kv_a_layernorm(self.kv_a_proj_with_mqa(hidden_states)).view(bsz, 1, seq, self.kv_lora_rank)
        if cache is not None:
            # the value slot holds the latent too: the static cache wants a tensor there, and nothing reads it back
            latent, _ = cache.update(latent, latent, self.layer_idx)
    if self.store_full_length_kv:
        shared_kv_states["nope"] = (latent, None)  # only NoPE layers read the "nope" entry, and only its latent
    query = self.softmax_scaling(query, position_ids, head_dim_first=True)
    kv = self.kv_b_proj(latent).view(bsz, latent.shape[2], -1, self.qk_nope_head_dim + self.v_head_dim).transpose(1, 2)
    key, value = torch.split(kv, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
    # the indexer selects every key (the limit is the adapter's context_limit), so its mask is the causal one
    topk = prev_topk_indices
    if self.indexer is not None:
        topk = self.indexer(hidden_states, position_embeddings, attention_mask[:, 0], position_ids)
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, None)
    out, weights = interface(self, query, key, value, attention_mask, dropout=0.0, scaling=self.scaling, **kwargs)
    return self.o_proj(out.reshape(bsz, seq, -1).contiguous()), weights, topk


@dataclass(frozen=True)
class MistralLarge4Adapter(SparseAttentionAdapter):
    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {self.indexer_class: every_key, "MistralLarge4TextAttention": attention_forward}

    def kv_geometry(self, config) -> tuple[int, int, int]:  # no indexer keys in the cache
        return ArchAdapter.kv_geometry(self, config)

    def context_limit(self, config) -> tuple[int, str]:
        return config.index_topk, (
            f"past index_topk ({config.index_topk}) keys this model's sparse attention (DSA) attends to the keys its "
            "indexer selects, which the graph does not compute yet for Mistral Large 4"
        )
