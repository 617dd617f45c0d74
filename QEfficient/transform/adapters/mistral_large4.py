"""Mistral Large 4's text model (mistral_large4_text): DeepSeek sparse attention (DSA) over MLA without a query latent,
log-position query scaling, rotary-free (NoPE) layers and optional KV sharing between layers. It has no causal-LM class
in transformers, so it is proven through its image-text model (mistral_large4) in the image-text sweep.

The indexer runs in the graph as for every DSA model (adapters/sparse_attention.py): its keys go to the value slot
past the rotary key; a NoPE layer stores one column there instead of the rotary key (nothing reads it), and a layer
that reuses another layer's KV cache but runs its own indexer keeps its keys in its own, otherwise unused, value slot.

A NoPE layer's attention forward is swapped while the graph is traced: HF's splits off a zero-width rotary part
(``qk_rope_head_dim`` is 0 there) and views it as [B, 1, S, 0]; ONNX's Reshape reads that 0 as "keep this axis", so
the exported graph fails. Here a NoPE layer runs the same computation without the zero-width tensors; a rotary layer
runs HF's own forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from QEfficient.transform.adapters.sparse_attention import SparseAttentionAdapter


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
            # the static cache wants a value: one column, which nothing reads back (the indexer's keys follow it)
            latent, _ = cache.update(latent, latent[..., :1], self.layer_idx)
    if self.store_full_length_kv:
        shared_kv_states["nope"] = (latent, None)  # only NoPE layers read the "nope" entry, and only its latent
    query = self.softmax_scaling(query, position_ids, head_dim_first=True)
    kv = self.kv_b_proj(latent).view(bsz, latent.shape[2], -1, self.qk_nope_head_dim + self.v_head_dim).transpose(1, 2)
    key, value = torch.split(kv, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
    topk = prev_topk_indices
    if self.indexer is not None:
        topk = self.indexer(hidden_states, position_embeddings, attention_mask[:, 0], position_ids, cache=cache)
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, None)
    out, weights = interface(self, query, key, value, attention_mask, dropout=0.0, scaling=self.scaling, indices=topk, **kwargs)
    return self.o_proj(out.reshape(bsz, seq, -1).contiguous()), weights, topk


@dataclass(frozen=True)
class MistralLarge4Adapter(SparseAttentionAdapter):
    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {**super().module_forwards, "MistralLarge4TextAttention": attention_forward}

    def kv_geometry(self, config) -> tuple[int, int, int]:
        layers, heads, width = super().kv_geometry(config)
        return layers, heads, max(width, 1 + config.index_head_dim)  # a NoPE layer's value column, then the keys
