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
from QEfficient.transform.vision_adapters.aria import AriaAdapter
from QEfficient.transform.vision_adapters.audio import MaskedAudioAdapter, RawAudioAdapter, StackedFramesAudioAdapter, merged_tokens
from QEfficient.transform.vision_adapters.aya_vision import AyaVisionAdapter
from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.blip_2 import Blip2Adapter, InstructBlipAdapter
from QEfficient.transform.vision_adapters.chameleon import ChameleonAdapter
from QEfficient.transform.vision_adapters.cosmos3_edge import Cosmos3EdgeAdapter
from QEfficient.transform.vision_adapters.deepseek_ocr2 import DeepseekOcr2Adapter
from QEfficient.transform.vision_adapters.deepseek_vl import DeepseekVLAdapter, DeepseekVLHybridAdapter
from QEfficient.transform.vision_adapters.dots3_note import Dots3NoteAdapter
from QEfficient.transform.vision_adapters.emu3 import Apertus1p5Adapter, Emu3Adapter
from QEfficient.transform.vision_adapters.ernie4_5_vl_moe import Ernie4_5_VLMoeAdapter
from QEfficient.transform.vision_adapters.exaone4_5 import Exaone4_5Adapter
from QEfficient.transform.vision_adapters.fuyu import FuyuAdapter
from QEfficient.transform.vision_adapters.gemma3 import Gemma3Adapter
from QEfficient.transform.vision_adapters.gemma4 import Gemma4Adapter, Gemma4UnifiedAdapter
from QEfficient.transform.vision_adapters.git import GitAdapter
from QEfficient.transform.vision_adapters.glm4v import Glm4vAdapter
from QEfficient.transform.vision_adapters.glm5_next import Glm5NextAdapter
from QEfficient.transform.vision_adapters.got_ocr2 import GotOcr2Adapter
from QEfficient.transform.vision_adapters.granite4_vision import Granite4VisionAdapter
from QEfficient.transform.vision_adapters.granite_docling import GraniteDoclingAdapter
from QEfficient.transform.vision_adapters.granite_speech import GraniteSpeechAdapter
from QEfficient.transform.vision_adapters.hunyuan_vl import HunYuanVLAdapter
from QEfficient.transform.vision_adapters.hy_v4_vl import HYV4VLAdapter
from QEfficient.transform.vision_adapters.hyperclovax_vision import HyperClovaXVisionAdapter
from QEfficient.transform.vision_adapters.idefics import IdeficsAdapter
from QEfficient.transform.vision_adapters.idefics3 import Idefics2Adapter, Idefics3Adapter
from QEfficient.transform.vision_adapters.inkling import Inkling2VLAdapter, InklingVLAdapter
from QEfficient.transform.vision_adapters.internvl import InternVLAdapter
from QEfficient.transform.vision_adapters.kimi_k25 import KimiK25Adapter
from QEfficient.transform.vision_adapters.kosmos2 import Kosmos2Adapter
from QEfficient.transform.vision_adapters.kosmos2_5 import Kosmos2_5Adapter
from QEfficient.transform.vision_adapters.lfm2_vl import Lfm2VlAdapter
from QEfficient.transform.vision_adapters.lfm3_vl import Lfm3VlAdapter
from QEfficient.transform.vision_adapters.lighton_ocr import LightOnOcrAdapter
from QEfficient.transform.vision_adapters.llama4 import Llama4Adapter
from QEfficient.transform.vision_adapters.llava import LlavaAdapter
from QEfficient.transform.vision_adapters.llava_next import LlavaNextAdapter
from QEfficient.transform.vision_adapters.llava_next_video import LlavaNextVideoAdapter
from QEfficient.transform.vision_adapters.llava_onevision import LlavaOnevisionAdapter
from QEfficient.transform.vision_adapters.llava_onevision1_5 import LlavaOnevision1_5Adapter
from QEfficient.transform.vision_adapters.minicpmv import MiniCPMVAdapter
from QEfficient.transform.vision_adapters.minicpmv4_7 import MiniCPMV4_7Adapter
from QEfficient.transform.vision_adapters.minimax_m3_vl import MiniMaxM3VLAdapter
from QEfficient.transform.vision_adapters.mistral3 import Mistral3Adapter
from QEfficient.transform.vision_adapters.mllama import MllamaAdapter
from QEfficient.transform.vision_adapters.molmo2 import Molmo2Adapter
from QEfficient.transform.vision_adapters.muse_glimmer import MuseGlimmerAdapter
from QEfficient.transform.vision_adapters.nemotron_h_omni import NemotronHOmniAdapter
from QEfficient.transform.vision_adapters.omni_thinker import Qwen2_5OmniThinkerAdapter, Qwen3OmniMoeThinkerAdapter
from QEfficient.transform.vision_adapters.ovis2 import Ovis2Adapter
from QEfficient.transform.vision_adapters.ovis2_5 import Ovis2_5Adapter
from QEfficient.transform.vision_adapters.paddleocr_vl import PaddleOCRVLAdapter
from QEfficient.transform.vision_adapters.paligemma import PaliGemmaAdapter
from QEfficient.transform.vision_adapters.perception_lm import PerceptionLMAdapter
from QEfficient.transform.vision_adapters.qwen2_5_vl import Qwen2_5_VLAdapter
from QEfficient.transform.vision_adapters.qwen2_audio import Qwen2AudioAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter
from QEfficient.transform.vision_adapters.qwen3_5 import Qwen3_5Adapter
from QEfficient.transform.vision_adapters.qwen3_asr import Qwen3ASRAdapter
from QEfficient.transform.vision_adapters.qwen3_vl import Qwen3VLAdapter
from QEfficient.transform.vision_adapters.step3p7 import Step3p7Adapter
from QEfficient.transform.vision_adapters.unlimited_ocr import UnlimitedOcrAdapter
from QEfficient.transform.vision_adapters.vibevoice_asr import VibeVoiceASRAdapter
from QEfficient.transform.vision_adapters.video_llama_3 import VideoLlama3Adapter
from QEfficient.transform.vision_adapters.video_llava import VideoLlavaAdapter
from QEfficient.transform.vision_adapters.vipllava import VipLlavaAdapter
from QEfficient.transform.vision_adapters.voxtral import VoxtralAdapter

_ADAPTERS: list[VisionLanguageAdapter] = [
    LlavaAdapter("llava"),
    LlavaNextAdapter("llava_next"),
    LlavaNextVideoAdapter("llava_next_video"),
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
    Mistral3Adapter("mistral_large4"),  # Mistral 3's layout, DeepSeek-V3.2-style text model
    LightOnOcrAdapter("lighton_ocr"),
    PaliGemmaAdapter("paligemma"),
    Gemma3Adapter("gemma3"),
    Gemma4Adapter("gemma4"),
    Gemma4UnifiedAdapter("gemma4_unified"),  # encoder-free: merged raw patches, embedded
    Qwen2VLAdapter("qwen2_vl", takes_videos=True),
    Qwen2_5_VLAdapter("qwen2_5_vl", takes_videos=True),
    HyperClovaXVisionAdapter("hyperclovax_vision_v2"),
    Qwen3VLAdapter("qwen3_vl", takes_videos=True),
    Qwen3VLAdapter("qwen3_vl_moe", takes_videos=True),
    Qwen3VLAdapter("cosmos3_omni"),  # Qwen3-VL's vision tower and text model
    Qwen3_5Adapter("qwen3_5"),  # hybrid text models: Gated DeltaNet states in the language graph
    Qwen3_5Adapter("qwen3_5_moe"),
    Qwen3_5Adapter("qwen4_exp"),  # Qwen3.5's layout; a Gated DeltaNet + QSA-indexed text model (hyper-connections)
    Glm4vAdapter("glm4v"),
    Glm4vAdapter("glm46v"),
    Glm4vAdapter("glmga"),  # GLM-4.6V under another name
    Glm4vAdapter("glm4v_moe"),
    Glm4vAdapter("glm_ocr", position_table=False),
    Glm5NextAdapter("glm5_next"),  # GLM-OCR's tower; a Kimi delta attention + pooled DSA text model
    Llama4Adapter("llama4"),
    MllamaAdapter("mllama"),  # cross-attention layers over keys/values computed once per image
    Blip2Adapter("blip-2"),
    InstructBlipAdapter("instructblip"),
    GotOcr2Adapter("got_ocr2"),
    GotOcr2Adapter("pp_chart2table"),  # GOT-OCR 2.0's layout
    Lfm2VlAdapter("lfm2_vl"),
    Lfm3VlAdapter("lfm3_vl"),
    MiniCPMVAdapter("minicpmv4_6"),  # a Qwen3.5 (hybrid) text model
    MiniCPMVAdapter("minicpm_ocr"),  # MiniCPM-V 4.6's layout, "4x" tokens by default
    MiniCPMV4_7Adapter("minicpmv4_7"),  # MiniCPM-V 4.6's layout, canvas 3-D rotary positions
    HunYuanVLAdapter("hunyuan_vl"),  # rotary axes (width, height, image index) over each image's grid
    HYV4VLAdapter("hy_v4_vl"),  # images only; HunYuanVL's tower, HY-V4's DSA text model with 3-D rotary
    Kosmos2Adapter("kosmos-2"),  # image positions given by a mask; fairseq-style sinusoidal positions
    NemotronHOmniAdapter("nemotron_h_omni"),  # images; a Nemotron-H (hybrid Mamba-2) text model
    Idefics3Adapter("idefics3"),
    Idefics3Adapter("smolvlm"),  # SmolVLM2: the Idefics3 layout under its own name
    VideoLlavaAdapter("video_llava"),
    Ovis2Adapter("ovis2"),
    VideoLlama3Adapter("video_llama_3"),  # images only (its video half needs torchvision here)
    PaddleOCRVLAdapter("paddleocr_vl"),
    Ernie4_5_VLMoeAdapter("ernie4_5_vl_moe"),  # Qwen2-VL's host side; text and vision experts picked per token
    Qwen2_5OmniThinkerAdapter("qwen2_5_omni_thinker"),  # images only (no audio, no video)
    Qwen3OmniMoeThinkerAdapter("qwen3_omni_moe_thinker"),  # images only (no audio, no video)
    MiniMaxM3VLAdapter("minimax_m3_vl"),
    Dots3NoteAdapter("dots3_note"),  # images only; Qwen2-VL's layout, a sparse-attention (DSA) text model
    AriaAdapter("aria"),
    PerceptionLMAdapter("perception_lm"),
    Exaone4_5Adapter("exaone4_5"),
    LlavaOnevision1_5Adapter("llava_onevision1_5"),  # transformers 5.25: a RICE tower with class tokens, Qwen3 text
    Ovis2_5Adapter("ovis2_5"),  # transformers 5.25: windows of merged tokens, a visual vocabulary, Qwen3 text
    DeepseekVLHybridAdapter("deepseek_vl_hybrid"),
    Cosmos3EdgeAdapter("cosmos3_edge"),
    Qwen3VLAdapter("cohere_compass"),  # Qwen3-VL's tower and DeepStack, a Cohere2-style text model
    KimiK25Adapter("kimi_k25"),
    FuyuAdapter("fuyu"),
    ChameleonAdapter("chameleon"),
    Emu3Adapter("emu3"),
    Apertus1p5Adapter("apertus1p5"),
    Granite4VisionAdapter("granite4_vision"),
    GraniteDoclingAdapter("granite_docling"),
    DeepseekOcr2Adapter("deepseek_ocr2"),
    Step3p7Adapter("step3p7"),  # the global view, as DeepSeek-OCR 2's
    UnlimitedOcrAdapter("unlimited_ocr"),  # DeepSeek-OCR's tower; reference sliding-window attention
    MuseGlimmerAdapter("muse_glimmer"),  # Kimi K2.5's host side, Qwen2.5-VL's windows
    MuseGlimmerAdapter("muse_spark"),  # images only: Muse Glimmer's tower; a MoE text model
    Molmo2Adapter("molmo2"),  # pooled crops added to the patch tokens; image blocks attend both ways
    InklingVLAdapter("inkling_mm_model"),  # images only: each patch alone becomes one token
    Inkling2VLAdapter("inkling2"),  # a ViT with a class token per image; its text model's conv states retained
    Inkling2VLAdapter("inkling2_loop"),  # Inkling 2's tower; its loop passes have cache layers of their own
    IdeficsAdapter("idefics"),  # gated cross-attention blocks over keys/values computed once per image (as Mllama's)
    GitAdapter("git"),  # the image's states before the text in one BERT-style sequence; text positions count text only
    Kosmos2_5Adapter("kosmos-2.5"),  # flattened patches; a segment embedding over the image's span of the prompt
]

VISION_ADAPTERS: dict[str, VisionLanguageAdapter] = {a.model_type: a for a in _ADAPTERS}
# audio-text models that run the same path, audio chunks in the place of images (tests/test_audio_text.py): not in
# transformers' image-text mapping, so not in the image-text sweep
AUDIO_ADAPTERS: dict[str, VisionLanguageAdapter] = {
    a.model_type: a
    for a in (
        VoxtralAdapter("voxtral"),  # each 30 s chunk of log-mel frames a unit of a fixed number of audio tokens
        Qwen2AudioAdapter("qwen2_audio"),  # each audio a unit of as many tokens as its length gives
        MaskedAudioAdapter("audioflamingo3"),  # Qwen2-Audio's encoder and token count, masked by the model itself
        MaskedAudioAdapter("glmasr", tokens_of=merged_tokens),  # a rotary encoder, every four frames merged
        StackedFramesAudioAdapter("fun_asr_nano"),  # stacked frames of any length, a token per frame
        RawAudioAdapter("omniasr"),  # raw samples of any length through Wav2Vec2-style convolutions, a token per frame
        GraniteSpeechAdapter("granite_speech"),  # a block-attention conformer, a Q-Former's queries per window of frames
        GraniteSpeechAdapter("granite_speech_plus"),  # the same, some layers' states joined to the last's
        Qwen3ASRAdapter("qwen3_asr"),  # chunks of frames, the audio's own packed and attending within windows
        VibeVoiceASRAdapter("vibevoice_asr"),  # raw 24 kHz samples through two causal convolutional tokenizers, a token a hop
    )
}


# Why some image-text types cannot run here, beyond "its text model is not in the decoder table".
KNOWN_FAILURES: dict[str, str] = {
    "gemma3n": "its vision tower is a timm model (MobileNetV5 through TimmWrapperModel) and timm is not installed here, "
    "so transformers itself cannot build it; no adapter yet",
    "shieldgemma2": "transformers loads its checkpoints into Gemma3ForConditionalGeneration with the language model's "
    "weights missing (randomly initialised), so there is nothing to match",
    "fast_vlm": "its FastViT tower is a timm model (a convolutional feature map, not Llava's tokens); no adapter yet",
    "mistral4": "transformers maps it to Mistral4ForCausalLM, a text-only model that takes no image (Mistral 4 with images is "
    "a mistral3 checkpoint with a Mistral 4 text model)",
    "blip": "an image encoder whose patches a BERT-style text decoder reads by cross-attention in every layer: "
    "QEFFBlipForConditionalGeneration runs it (QEFFAutoModelForImageTextToText.from_pretrained returns one), not this path",
    "vision-encoder-decoder": "an image encoder with a cross-attending text decoder (TrOCR, Donut, ViT-GPT2): "
    "QEFFAutoModelForVisionEncoderDecoder runs it (QEFFAutoModelForImageTextToText.from_pretrained returns one), not this path",
    "pix2struct": "an image encoder with a cross-attending text decoder: QEFFPix2StructForConditionalGeneration runs it "
    "(QEFFAutoModelForImageTextToText.from_pretrained returns one), not this path",
    "udop": "an encoder-decoder model, not a decoder-only language model with image tokens",
    "florence2": "an image tower feeding a text encoder-decoder: QEFFFlorence2ForConditionalGeneration runs it "
    "(QEFFAutoModelForImageTextToText.from_pretrained returns one), not this path",
    "t5gemma2": "an image tower feeding a text encoder-decoder: QEFFT5Gemma2ForConditionalGeneration runs it "
    "(QEFFAutoModelForImageTextToText.from_pretrained returns one), not this path",
    "pp_formulanet": "a SAM-style tower feeding an MBart-style decoder by cross-attention: "
    "QEFFPPFormulaNetForConditionalGeneration runs it (QEFFAutoModelForImageTextToText.from_pretrained returns one), not this path",
}

# Vision adapters that are ready but whose text model the decoder path cannot export yet: they run once
# that text type joins the decoder table (QEfficient/transform/adapters).
WAITING_ON_DECODER: dict[str, str] = {"aya_vision": "cohere2"}

# Adapters of types that a transformers release newer than CI's adds (constraints.txt), proven token-exact by the
# sweep with that release installed: model_type -> the release. The table in docs/ is written under CI's release.
NEWER_TRANSFORMERS: dict[str, str] = {"llava_onevision1_5": "5.25.0", "ovis2_5": "5.25.0"}

SWEEP_HINT = "python scripts/image_text_sweep.py --types {t} (add a tiny build_{t} to tests/vlm_fixtures.py first)"


def _llava_shaped(config) -> bool:
    """A config that looks like Llava's (a vision tower's features picked by layer, an image token)."""
    return all(hasattr(config, name) for name in ("vision_config", "text_config", "vision_feature_layer", "image_token_id"))


def get_vision_adapter(config) -> VisionLanguageAdapter:
    """The adapter of ``config.model_type``. A Llava-shaped type outside the table runs as Llava with a
    warning (unproven); known failures and unsupported text models raise with the reason."""
    model_type = getattr(config, "model_type", None)
    if model_type in AUDIO_ADAPTERS:
        return AUDIO_ADAPTERS[model_type].for_config(config)
    waiting = WAITING_ON_DECODER.get(model_type)
    if model_type in VISION_ADAPTERS and (waiting is None or waiting in PROVEN_DECODERS):
        return VISION_ADAPTERS[model_type].for_config(config)
    supported = ", ".join(sorted([*VISION_ADAPTERS, *AUDIO_ADAPTERS]))
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


__all__ = [
    "AUDIO_ADAPTERS",
    "KNOWN_FAILURES",
    "NEWER_TRANSFORMERS",
    "VISION_ADAPTERS",
    "WAITING_ON_DECODER",
    "VisionLanguageAdapter",
    "get_vision_adapter",
]
