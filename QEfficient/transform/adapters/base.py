"""What the shared static-KV path needs to know about one architecture."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ArchAdapter:
    """Per-architecture facts; the defaults fit any model that follows the Llama layout.

    Anything that the HF base model computes itself (embedding scaling, rotary tables, q/k
    norms, residual multipliers, post-norms) needs nothing here. Only what lives in the
    ``*ForCausalLM`` head, which the wrapper replaces, must be restated.
    """

    model_type: str

    def kv_geometry(self, config) -> tuple[int, int, int]:
        """(num_layers, num_kv_heads, head_dim) of the cache."""
        n_heads = config.num_attention_heads
        n_kv = getattr(config, "num_key_value_heads", None) or n_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_heads
        return config.num_hidden_layers, n_kv, head_dim

    def postprocess_logits(self, logits: torch.Tensor, config) -> torch.Tensor:
        return logits
