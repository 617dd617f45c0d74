"""The table of supported vision-language architectures, keyed by ``config.model_type``.

Adding one: a ``VisionLanguageAdapter`` (how pixels become image embeddings, where the language
model lives, what the processor's outputs mean) registered here, and a parity test in
tests/test_image_text.py. The language model itself goes through the shared static-KV path, so
its text architecture must be in the decoder table (transform/adapters).
"""

from __future__ import annotations

from QEfficient.transform.adapters import UnsupportedArchitectureError
from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.gemma3 import Gemma3Adapter
from QEfficient.transform.vision_adapters.idefics3 import Idefics3Adapter
from QEfficient.transform.vision_adapters.llava import LlavaAdapter
from QEfficient.transform.vision_adapters.llava_next import LlavaNextAdapter
from QEfficient.transform.vision_adapters.llava_onevision import LlavaOnevisionAdapter
from QEfficient.transform.vision_adapters.mistral3 import Mistral3Adapter
from QEfficient.transform.vision_adapters.paligemma import PaliGemmaAdapter
from QEfficient.transform.vision_adapters.qwen2_5_vl import Qwen2_5_VLAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter

_ADAPTERS: list[VisionLanguageAdapter] = [
    LlavaAdapter("llava"),
    LlavaNextAdapter("llava_next"),
    LlavaOnevisionAdapter("llava_onevision"),
    Mistral3Adapter("mistral3"),
    PaliGemmaAdapter("paligemma"),
    Gemma3Adapter("gemma3"),
    Qwen2VLAdapter("qwen2_vl"),
    Qwen2_5_VLAdapter("qwen2_5_vl"),
    Idefics3Adapter("idefics3"),
    Idefics3Adapter("smolvlm"),  # SmolVLM2: the Idefics3 layout under its own name
]

VISION_ADAPTERS: dict[str, VisionLanguageAdapter] = {a.model_type: a for a in _ADAPTERS}


def get_vision_adapter(config) -> VisionLanguageAdapter:
    model_type = getattr(config, "model_type", None)
    if model_type not in VISION_ADAPTERS:
        raise UnsupportedArchitectureError(
            f"'{model_type}' is not supported by QEFFAutoModelForImageTextToText; supported model types: "
            f"{', '.join(sorted(VISION_ADAPTERS))}. To add one, register a VisionLanguageAdapter in "
            "QEfficient/transform/vision_adapters/__init__.py."
        )
    return VISION_ADAPTERS[model_type].for_config(config)


__all__ = ["VISION_ADAPTERS", "VisionLanguageAdapter", "get_vision_adapter"]
