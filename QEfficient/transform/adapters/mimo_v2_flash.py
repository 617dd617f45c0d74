"""MiMo-V2-Flash's sliding-window layers have twice the key/value heads of its full-attention layers:
the cache holds the wider count, and the narrower layers use its first heads (static_kv pads them)."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.adapters.base import ArchAdapter


@dataclass(frozen=True)
class SlidingLayersDoubleKVAdapter(ArchAdapter):
    def kv_geometry(self, config) -> tuple[int, int, int]:
        n_layers, n_kv, head_dim = super().kv_geometry(config)
        if "sliding_attention" in (getattr(config, "layer_types", None) or []):
            n_kv *= 2
        return n_layers, n_kv, max(head_dim, getattr(config, "v_head_dim", None) or head_dim)
