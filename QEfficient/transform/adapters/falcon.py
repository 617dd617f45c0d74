"""Falcon's first decoder layout is multi-query (one key/value head) whatever ``num_kv_heads`` says."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.adapters.base import ArchAdapter


@dataclass(frozen=True)
class FalconAdapter(ArchAdapter):
    def kv_geometry(self, config) -> tuple[int, int, int]:
        n_layers, _, head_dim = super().kv_geometry(config)
        if config.new_decoder_architecture:
            return n_layers, config.num_kv_heads, head_dim
        return n_layers, 1 if config.multi_query else config.num_attention_heads, head_dim
