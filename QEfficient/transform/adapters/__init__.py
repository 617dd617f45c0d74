"""The table of supported decoder architectures, keyed by ``config.model_type``.

Adding an architecture: one entry here (plus a small adapter module if its LM head does
something beyond ``lm_head(hidden)``) and a parity test in tests/test_parity.py.
"""

from __future__ import annotations

from QEfficient.transform.adapters.base import ArchAdapter
from QEfficient.transform.adapters.gemma2 import FinalSoftcapAdapter
from QEfficient.transform.adapters.granite import GraniteAdapter

_ADAPTERS = [
    ArchAdapter("llama", "LlamaForCausalLM"),
    ArchAdapter("mistral", "MistralForCausalLM"),
    ArchAdapter("qwen2", "Qwen2ForCausalLM"),
    ArchAdapter("qwen3", "Qwen3ForCausalLM"),
    ArchAdapter("phi3", "Phi3ForCausalLM"),
    ArchAdapter("gemma", "GemmaForCausalLM"),
    FinalSoftcapAdapter("gemma2", "Gemma2ForCausalLM"),
    FinalSoftcapAdapter("gemma3_text", "Gemma3ForCausalLM"),
    GraniteAdapter("granite", "GraniteForCausalLM"),
    ArchAdapter("olmo2", "Olmo2ForCausalLM"),
    ArchAdapter("starcoder2", "Starcoder2ForCausalLM"),
    ArchAdapter("gpt2", "GPT2LMHeadModel"),
]

ADAPTERS: dict[str, ArchAdapter] = {a.model_type: a for a in _ADAPTERS}


class UnsupportedArchitectureError(ValueError):
    pass


def supported_model_types() -> list[str]:
    return sorted(ADAPTERS)


def get_adapter(config) -> ArchAdapter:
    model_type = getattr(config, "model_type", None)
    if model_type not in ADAPTERS:
        raise UnsupportedArchitectureError(
            f"Architecture '{model_type}' ({', '.join(getattr(config, 'architectures', None) or [])}) is not "
            f"supported by QEFFAutoModelForCausalLM yet. Supported model types: {', '.join(supported_model_types())}. "
            "To add one, register an ArchAdapter in QEfficient/transform/adapters/__init__.py and add a parity test."
        )
    return ADAPTERS[model_type]


__all__ = ["ADAPTERS", "ArchAdapter", "UnsupportedArchitectureError", "get_adapter", "supported_model_types"]
