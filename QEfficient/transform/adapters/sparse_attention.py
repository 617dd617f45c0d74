"""DeepSeek Sparse Attention (DSA: DeepSeek-V3.2, GLM-MoE-DSA, A.X K2, HY-V4): a small indexer scores the keys
and each query attends to its ``index_topk`` best only. transformers takes the top min(index_topk, keys), so
while a context holds no more than ``index_topk`` keys the indexer selects all of them and attention is the
causal attention the mask already gives. The graph runs the indexer as that selection (its projections and
scores leave the graph), and compile refuses a ``ctx_len`` past ``index_topk``, where it would start to choose."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from QEfficient.transform.adapters.base import ArchAdapter


def every_key(self, hidden_states: torch.Tensor, q_resid, position_embeddings, attention_mask: torch.Tensor, *args, **kwargs):
    """The indexer's top-k indices [B, S, T] (int32) while T <= index_topk: every key slot."""
    bsz, seq, slots = attention_mask.shape
    return torch.arange(slots, dtype=torch.int32, device=attention_mask.device).expand(bsz, seq, slots)


@dataclass(frozen=True)
class SparseAttentionAdapter(ArchAdapter):
    indexer_class: str = ""

    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {self.indexer_class: every_key}

    def context_limit(self, config) -> tuple[int, str]:
        return config.index_topk, (
            f"past index_topk ({config.index_topk}) keys this model's sparse attention (DSA) attends to the keys its "
            "indexer selects, which the graph does not compute yet"
        )


@dataclass(frozen=True)
class PerLayerMLASparseAttentionAdapter(SparseAttentionAdapter):
    """DSA layers beside sliding-window MLA layers with their own latent widths (Dots 3 Note: a 1024-wide latent
    in its sliding layers, 512 in its DSA layers): the cache is stored at the widest, narrower layers are padded."""

    def kv_geometry(self, config) -> tuple[int, int, int]:
        # the latent (key slot) and rotary key (value slot) share one "head", as in ArchAdapter's MLA branch
        width = max(max(layer.kv_lora_rank, layer.qk_rope_head_dim) for layer in config.per_layer_config)
        return config.num_hidden_layers, 1, width
