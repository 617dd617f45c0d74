"""DeepSeek Sparse Attention (DSA: DeepSeek-V3.2, GLM-MoE-DSA, A.X K2, HY-V4, Dots 3 Note, Mistral Large 4): an indexer scores
the keys and each query attends to its ``index_topk`` best only.

The indexer runs as transformers writes it, with two changes the static graph needs:

* its keys live in the cache: ``StaticKVCache.update_indexer`` stores them in the multi-latent value slot past the
  rotary key (the cache is widened where ``qk_rope_head_dim + index_head_dim`` exceeds the latent's width), so
  every slot's key is there for later steps, whatever the chunking;
* its top-k has a fixed width. transformers takes the top ``min(index_topk, T)`` of the scores over the ``T``
  slots, a ``k`` the tracer would bake in at the example's cache length. Here the scores get ``index_topk`` more
  columns that are never chosen for real (-inf), the top ``index_topk`` is taken, and a pick scored -inf becomes
  slot 0. That is transformers' selection: a query that sees at least ``index_topk`` keys has that many finite
  scores; one that sees fewer has them all picked, slot 0 among them, and the slots it does not see (past the
  sequence's end, like the padding columns) are hidden from its attention anyway.

The attention then sees, per query, the visible keys among the selected ones (``static_kv_attention``'s
``indices``). No context limit: past ``index_topk`` keys the indexer chooses, as in transformers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode

from QEfficient.transform.adapters.base import ArchAdapter


def fixed_width_topk(scores: torch.Tensor, width: int) -> torch.return_types.topk:
    """The top ``width`` of ``scores`` over the last axis, however many columns it has (a static ``k`` for the graph):
    ``width`` columns of -inf are appended first, so a pick scored -inf may lie past the real columns."""
    padding = torch.full_like(scores[..., :1], float("-inf")).expand(*scores.shape[:-1], width)
    return torch.topk(torch.cat([scores, padding], dim=-1), width, dim=-1)


class _TopkOfWidth(TorchFunctionMode):
    """``topk`` over the last axis at exactly ``width`` picks, all of them existing slots (module docstring); both
    ``torch.topk`` and ``Tensor.topk``, on this thread only, while the mode is entered."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in (torch.topk, torch.Tensor.topk):
            return func(*args, **kwargs)
        scores = args[0]
        dim = kwargs.get("dim", args[2] if len(args) > 2 else -1)
        if dim not in (-1, scores.dim() - 1):
            raise NotImplementedError(f"an indexer's top-k over axis {dim}: only the last axis (the keys) is supported")
        values, picks = fixed_width_topk(scores, self.width)
        # A pick scored -inf means the query sees fewer than `width` keys, all of them picked, slot 0 among them
        # (or none, a padding row): slot 0 stands in for it, an index that exists whatever the cache length.
        return torch.return_types.topk((values, torch.where(values > float("-inf"), picks, torch.zeros_like(picks))))


def indexer_forward(self, *args, **kwargs) -> torch.Tensor:
    """The indexer's own forward (its keys cached by ``cache.update_indexer``) with a fixed-width top-k."""
    with _TopkOfWidth(self.index_topk):
        return type(self).forward(self, *args, **kwargs)


@dataclass(frozen=True)
class SparseAttentionAdapter(ArchAdapter):
    indexer_class: str = ""

    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {self.indexer_class: indexer_forward}

    def kv_geometry(self, config) -> tuple[int, int, int]:
        layers, heads, width = super().kv_geometry(config)
        # the value slot holds the rotary key, then the indexer's key
        return layers, heads, max(width, config.qk_rope_head_dim + config.index_head_dim)


@dataclass(frozen=True)
class PerLayerMLASparseAttentionAdapter(SparseAttentionAdapter):
    """DSA layers beside sliding-window MLA layers with their own latent widths (Dots 3 Note: a 1024-wide latent
    in its sliding layers, 512 in its DSA layers): the cache is stored at the widest, narrower layers are padded."""

    def kv_geometry(self, config) -> tuple[int, int, int]:
        # the latent (key slot) and rotary key (value slot, then the indexer's key) share one "head", as in
        # ArchAdapter's MLA branch
        width = max(max(layer.kv_lora_rank, layer.qk_rope_head_dim + layer.index_head_dim) for layer in config.per_layer_config)
        return config.num_hidden_layers, 1, width
