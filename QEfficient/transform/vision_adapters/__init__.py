"""The table of supported vision-language architectures, keyed by ``config.model_type``.

Adding one: a ``VisionLanguageAdapter`` (how pixels become image embeddings, where the language
model lives, what the processor's outputs mean) registered here, and a parity test in
tests/test_image_text.py. The language model itself goes through the shared static-KV path, so
its text architecture must be in the decoder table (transform/adapters).
"""

from __future__ import annotations

import warnings

from QEfficient.transform.adapters import UnsupportedArchitectureError
from QEfficient.transform.adapters.sweep_status import PROVEN as PROVEN_DECODERS
from QEfficient.transform.vision_adapters.aya_vision import AyaVisionAdapter
from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.blip_2 import Blip2Adapter, InstructBlipAdapter
from QEfficient.transform.vision_adapters.deepseek_vl import DeepseekVLAdapter
from QEfficient.transform.vision_adapters.gemma3 import Gemma3Adapter
from QEfficient.transform.vision_adapters.gemma4 import Gemma4Adapter, Gemma4UnifiedAdapter
from QEfficient.transform.vision_adapters.glm4v import Glm4vAdapter
from QEfficient.transform.vision_adapters.got_ocr2 import GotOcr2Adapter
from QEfficient.transform.vision_adapters.hyperclovax_vision import HyperClovaXVisionAdapter
from QEfficient.transform.vision_adapters.idefics3 import Idefics2Adapter, Idefics3Adapter
from QEfficient.transform.vision_adapters.internvl import InternVLAdapter
from QEfficient.transform.vision_adapters.lfm2_vl import Lfm2VlAdapter
from QEfficient.transform.vision_adapters.lighton_ocr import LightOnOcrAdapter
from QEfficient.transform.vision_adapters.llama4 import Llama4Adapter
from QEfficient.transform.vision_adapters.llava import LlavaAdapter
from QEfficient.transform.vision_adapters.llava_next import LlavaNextAdapter
from QEfficient.transform.vision_adapters.llava_onevision import LlavaOnevisionAdapter
from QEfficient.transform.vision_adapters.mistral3 import Mistral3Adapter
from QEfficient.transform.vision_adapters.mllama import MllamaAdapter
from QEfficient.transform.vision_adapters.paligemma import PaliGemmaAdapter
from QEfficient.transform.vision_adapters.qwen2_5_vl import Qwen2_5_VLAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter
from QEfficient.transform.vision_adapters.qwen3_vl import Qwen3VLAdapter
from QEfficient.transform.vision_adapters.vipllava import VipLlavaAdapter

_ADAPTERS: list[VisionLanguageAdapter] = [
    LlavaAdapter("llava"),
    LlavaNextAdapter("llava_next"),
    LlavaNextAdapter("llava_next_video"),  # images (its video half needs torchvision here)
    LlavaOnevisionAdapter("llava_onevision"),
    InternVLAdapter("internvl"),
    InternVLAdapter("qianfan_ocr"),  # InternVL's layout, Qwen3 text model
    VipLlavaAdapter("vipllava"),
    DeepseekVLAdapter("deepseek_vl"),
    AyaVisionAdapter("aya_vision"),
    AyaVisionAdapter("cohere2_vision"),  # Aya Vision's tiles and pixel-shuffle projector (a SwiGLU one)
    Idefics2Adapter("idefics2"),
    DeepseekVLAdapter("janus"),  # the same understanding path: tower -> aligner
    Mistral3Adapter("mistral3"),
    LightOnOcrAdapter("lighton_ocr"),
    PaliGemmaAdapter("paligemma"),
    Gemma3Adapter("gemma3"),
    Gemma4Adapter("gemma4"),
    Gemma4UnifiedAdapter("gemma4_unified"),  # encoder-free: merged raw patches, embedded
    Qwen2VLAdapter("qwen2_vl"),
    Qwen2_5_VLAdapter("qwen2_5_vl"),
    HyperClovaXVisionAdapter("hyperclovax_vision_v2"),
    Qwen3VLAdapter("qwen3_vl"),
    Qwen3VLAdapter("qwen3_vl_moe"),
    Qwen3VLAdapter("cosmos3_omni"),  # Qwen3-VL's vision tower and text model
    Glm4vAdapter("glm4v"),
    Glm4vAdapter("glm46v"),
    Glm4vAdapter("glmga"),  # GLM-4.6V under another name
    Glm4vAdapter("glm4v_moe"),
    Glm4vAdapter("glm_ocr", position_table=False),
    Llama4Adapter("llama4"),
    MllamaAdapter("mllama"),  # cross-attention layers over keys/values computed once per image
    Blip2Adapter("blip-2"),
    InstructBlipAdapter("instructblip"),
    GotOcr2Adapter("got_ocr2"),
    GotOcr2Adapter("pp_chart2table"),  # GOT-OCR 2.0's layout
    Lfm2VlAdapter("lfm2_vl"),
    Idefics3Adapter("idefics3"),
    Idefics3Adapter("smolvlm"),  # SmolVLM2: the Idefics3 layout under its own name
]

VISION_ADAPTERS: dict[str, VisionLanguageAdapter] = {a.model_type: a for a in _ADAPTERS}


# Why some image-text types cannot run here, beyond "its text model is not in the decoder table".
KNOWN_FAILURES: dict[str, str] = {
    "gemma3n": "its vision tower is a timm model (MobileNetV5 through TimmWrapperModel) and timm is not installed here, "
    "so transformers itself cannot build it; no adapter yet",
    "aria": "it pads each image into a square and its Idefics3 tower places the patches of the image part by bucketing "
    "fractional coordinates (torch.bucketize under a patch mask), which does not export; no adapter yet",
    "shieldgemma2": "transformers loads its checkpoints into Gemma3ForConditionalGeneration with the language model's "
    "weights missing (randomly initialised), so there is nothing to match",
    "video_llava": "its images come as pixel_values_images (and its processor needs torchvision); no adapter yet",
    "fast_vlm": "its FastViT tower is a timm model (a convolutional feature map, not Llava's tokens); no adapter yet",
    "vision-encoder-decoder": "an encoder-decoder model, not a decoder-only language model with image tokens",
    "pix2struct": "an encoder-decoder model, not a decoder-only language model with image tokens",
    "udop": "an encoder-decoder model, not a decoder-only language model with image tokens",
    "florence2": "an encoder-decoder model, not a decoder-only language model with image tokens",
    "t5gemma2": "an encoder-decoder model, not a decoder-only language model with image tokens",
}

# Vision adapters that are ready but whose text model the decoder path cannot export yet: they run once
# that text type joins the decoder table (QEfficient/transform/adapters).
WAITING_ON_DECODER: dict[str, str] = {"aya_vision": "cohere2"}

SWEEP_HINT = "python scripts/image_text_sweep.py --types {t} (add a tiny build_{t} to tests/vlm_fixtures.py first)"


def _llava_shaped(config) -> bool:
    """A config that looks like Llava's (a vision tower's features picked by layer, an image token)."""
    return all(hasattr(config, name) for name in ("vision_config", "text_config", "vision_feature_layer", "image_token_id"))


def get_vision_adapter(config) -> VisionLanguageAdapter:
    """The adapter of ``config.model_type``. A Llava-shaped type outside the table runs as Llava with a
    warning (unproven); known failures and unsupported text models raise with the reason."""
    model_type = getattr(config, "model_type", None)
    waiting = WAITING_ON_DECODER.get(model_type)
    if model_type in VISION_ADAPTERS and (waiting is None or waiting in PROVEN_DECODERS):
        return VISION_ADAPTERS[model_type].for_config(config)
    supported = ", ".join(sorted(VISION_ADAPTERS))
    text_type = getattr(getattr(config, "text_config", None), "model_type", None)
    if model_type in KNOWN_FAILURES:
        reason = KNOWN_FAILURES[model_type]
    elif waiting is not None:
        reason = f"its vision adapter is ready, but its text model '{waiting}' is not in the decoder table yet"
    elif text_type is not None and text_type not in PROVEN_DECODERS:
        reason = f"its text model '{text_type}' is not in the decoder table (QEfficient/transform/adapters)"
    elif _llava_shaped(config):
        warnings.warn(
            f"'{model_type}' is not proven token-exact by the image-text sweep; it runs as a Llava-shaped model "
            f"(vision_tower -> multi_modal_projector -> language_model). Check it against transformers with "
            f"{SWEEP_HINT.format(t=model_type)}, or compare generate() with transformers' generate on your model.",
            stacklevel=3,
        )
        return LlavaAdapter(model_type).for_config(config)
    else:
        reason = "it has no vision adapter"
    raise UnsupportedArchitectureError(
        f"'{model_type}' is not supported by QEFFAutoModelForImageTextToText: {reason}. Supported model types: {supported}. "
        "To add one, register a VisionLanguageAdapter in QEfficient/transform/vision_adapters/__init__.py and prove it with "
        f"{SWEEP_HINT.format(t=model_type)}."
    )


__all__ = ["KNOWN_FAILURES", "VISION_ADAPTERS", "WAITING_ON_DECODER", "VisionLanguageAdapter", "get_vision_adapter"]
