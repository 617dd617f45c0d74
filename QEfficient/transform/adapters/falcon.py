"""Falcon's first decoder layout is multi-query (one key/value head) whatever ``num_kv_heads`` says; two of its
configurations are not reproduced yet and are refused (ALiBi positions; grouped KV heads in the new layout)."""

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

    def context_limit(self, config) -> tuple[int, str] | None:
        if getattr(config, "alibi", False):  # Falcon-RW: its ALiBi tensor is built from a 2-D mask this graph does not pass
            return 0, "Falcon with alibi=True (Falcon-RW's ALiBi positions) is not reproduced by this library yet"
        kv_heads = getattr(config, "num_kv_heads", None) or config.num_attention_heads
        if config.new_decoder_architecture and 1 < kv_heads < config.num_attention_heads:
            # Falcon-40B/180B: transformers' eager attention expands the key/value heads, which its cache here does not
            return (
                0,
                f"Falcon's new layout with {kv_heads} key/value heads of {config.num_attention_heads} is not reproduced by this "
                "library yet",
            )
        return None
