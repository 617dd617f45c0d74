"""What the shared static-KV path needs to know about one architecture."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ArchAdapter:
    """Per-architecture facts; the defaults fit any model that follows the Llama layout.

    Anything that the HF base model computes itself (embedding scaling, rotary tables, q/k
    norms, residual multipliers, post-norms) needs nothing here. Only what lives in the
    ``*ForCausalLM`` head, which the wrapper replaces, must be restated; the defaults cover the
    head transforms that transformers' models name in their configs.
    """

    model_type: str
    # What the model's own eager attention expects when it does not take transformers' attention
    # interface: "additive" 0 / -large floats (Falcon, XGLM), "hidden" True where a slot is hidden (MPT).
    mask_kind: str = "visible"

    def kv_geometry(self, config) -> tuple[int, int, int]:
        """(num_layers, num_kv_heads, head_dim) of the cache."""
        n_layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None) or config.num_layers
        if getattr(config, "kv_lora_rank", None) and getattr(config, "qk_rope_head_dim", None):
            # Multi-latent attention caches its compressed latents, one "head": the key slot holds the
            # kv_lora_rank latent, the value slot the rotary key; both are stored at the wider width.
            return n_layers, 1, max(config.kv_lora_rank, config.qk_rope_head_dim)
        try:
            head_dim = getattr(config, "head_dim", None)
            n_heads = config.num_attention_heads
        except RuntimeError:  # Gemma 4, Step-3.5: head sizes or counts vary by layer (AmbiguousGlobalPerLayerAttributeError)
            layers = config.per_layer_config  # cache at the widest
            return n_layers, max(c.num_key_value_heads for c in layers), max(c.head_dim for c in layers)
        n_kv = getattr(config, "num_key_value_heads", None) or getattr(config, "num_kv_heads", None) or n_heads
        if getattr(config, "multi_query", False):  # GPT-BigCode: one key/value head, whatever else the config says
            n_kv = 1
        return n_layers, n_kv, head_dim or config.hidden_size // n_heads

    def recurrent_layers(self, hf_model) -> list:
        """Layers carrying recurrent state (see adapters/recurrent.py); a transformer has none."""
        return []

    @property
    def module_forwards(self) -> dict[str, Callable]:
        """Module class name -> the forward that replaces its own while the graph is traced (none by default)."""
        return {}

    def context_limit(self, config) -> tuple[int, str] | None:
        """The longest ``ctx_len`` this graph reproduces the model at, and why, when there is such a limit."""
        return None

    def head_input(self, hf_model, hidden: torch.Tensor) -> torch.Tensor:
        """What the *ForCausalLM head computes from the last hidden state before the output embedding."""
        return hidden

    def head_output(self, hf_model, logits: torch.Tensor) -> torch.Tensor:
        """What the head computes after the output embedding from parameters of its own (Dory's per-token
        logit scale); transforms that the config names go in ``postprocess_logits``."""
        return logits

    def postprocess_logits(self, logits: torch.Tensor, config) -> torch.Tensor:
        """What *ForCausalLM heads do after ``lm_head``, by the config attribute that names it."""
        scale = getattr(config, "logit_scale", None)  # Cohere
        if isinstance(scale, (int, float)) and not isinstance(scale, bool):
            logits = logits * scale
        divisor = getattr(config, "logits_scaling", None)  # Granite
        if isinstance(divisor, (int, float)) and not isinstance(divisor, bool):
            logits = logits / divisor
        cap = getattr(config, "final_logit_softcapping", None)  # Gemma 2/3, nanochat, VaultGemma
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits


@dataclass(frozen=True)
class CacheGeometryAdapter(ArchAdapter):
    """Cache geometry only: for a language model inside a multimodal head that applies no logit transform."""

    def postprocess_logits(self, logits: torch.Tensor, config) -> torch.Tensor:
        return logits
