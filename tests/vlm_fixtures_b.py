"""Tiny random-weight vision-language models of the second half of the image-text mapping (Video-LLaVA, Ovis2,
VideoLLaMA3, PaddleOCR-VL, ...), built as tests/vlm_family_fixtures.py builds its own: the tiny BPE tokenizer
plus each architecture's special tokens, seeded weights widened by 4.0, PIL image processors, processors saved
next to the model (classes defined here where HF's need torchvision, registered on import). ``PROMPTS`` gives
each ``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py picks both up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoProcessor,
    Kosmos2_5Processor,
    LlamaConfig,
    MiniMaxM3VLProcessor,
    PerceptionLMProcessor,
    Pix2StructProcessor,
    Qwen2_5OmniProcessor,
    SiglipImageProcessorPil,
    TrOCRProcessor,
    VideoLlama3Processor,
    VideoLlavaProcessor,
)
from transformers.processing_utils import ProcessorMixin

from tests.vlm_fixtures import _TEXT, QWEN2_5_VL_VISION, _tokenizer, _widen_and_save
from tests.vlm_tiny_processors import SubprocessorsFromArguments

PROMPTS: dict[str, str] = {}
_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)  # the towers' tiny shape


class TinyVideoLlavaProcessor(VideoLlavaProcessor):
    """VideoLlavaProcessor without the video processor, which needs torchvision (not installed); tests that pass videos
    give it a stand-in (tests/test_vlm_video_llava.py)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, patch_size=14, num_additional_image_tokens=1, **kwargs):
        self.patch_size, self.num_additional_image_tokens = patch_size, num_additional_image_tokens
        self.vision_feature_select_strategy = kwargs.get("vision_feature_select_strategy", "default")
        self.image_token, self.video_token = "<image>", "<video>"
        self.image_token_id, self.video_token_id = tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


AutoProcessor.register("tiny_video_llava_processor", TinyVideoLlavaProcessor, exist_ok=True)


def build_video_llava(folder) -> Path:
    """Video-LLaVA: a CLIP image tower (28 px, patch 7, CLS dropped: 16 tokens), Llava's projector, Llama text model;
    images come as ``pixel_values_images``, video frames (a second CLIP tower, 17 tokens each) as ``pixel_values_videos``.
    Its processor without the video half (torchvision)."""
    from transformers import CLIPVisionConfig, VideoLlavaConfig, VideoLlavaForConditionalGeneration, VideoLlavaImageProcessor

    folder = Path(folder)
    tok = _tokenizer(["<image>", "<video>"], {"image_token": "<image>", "video_token": "<video>"})
    vision = CLIPVisionConfig(**_VISION, image_size=28, patch_size=7, projection_dim=32)
    config = VideoLlavaConfig(
        vision_config=vision.to_dict(),
        text_config=LlamaConfig(**_TEXT, vocab_size=len(tok)).to_dict(),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-2,
    )
    torch.manual_seed(0)
    _widen_and_save(VideoLlavaForConditionalGeneration(config), folder)
    image_processor = VideoLlavaImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    TinyVideoLlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=7).save_pretrained(folder)
    return folder


PROMPTS["video_llava"] = "Look: <image> Describe the picture in a few words"


def build_ovis2(folder) -> Path:
    """Ovis2: a 2-layer tower (28 px, patch 7, hidden_stride 2 -> 4 tokens per image) over a 64-entry visual vocabulary
    (5 of them the wrapper tokens' embeddings), Qwen2 text model. "<image>" becomes "<IMG_START>" + 4 x "<IMG_ATOM>"
    + "<IMG_GRID><IMG_END>" (one tile: the image processor's default, no cropping)."""
    from transformers import Ovis2Config, Ovis2ForConditionalGeneration, Ovis2ImageProcessorPil, Ovis2Processor, Qwen2Config

    folder = Path(folder)
    indicators = ["<IMG_START>", "<IMG_GRID>", "<IMG_COL>", "<IMG_ROW>", "<IMG_END>"]
    tok = _tokenizer(["<image>", "<IMG_ATOM>", *indicators], {"image_token": "<image>"})
    vision = dict(**_VISION, image_size=28, patch_size=7, hidden_stride=2, vocab_size=64)
    config = Ovis2Config(
        vision_config=vision,
        text_config=Qwen2Config(**_TEXT, vocab_size=len(tok)).to_dict(),
        image_token_id=tok.convert_tokens_to_ids("<IMG_ATOM>"),
        visual_indicator_token_ids=tok.convert_tokens_to_ids(indicators),
        vocab_size=len(tok),
        hidden_size=_TEXT["hidden_size"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(Ovis2ForConditionalGeneration(config), folder)
    image_processor = Ovis2ImageProcessorPil(size={"height": 28, "width": 28})
    Ovis2Processor(image_processor=image_processor, tokenizer=tok, image_seq_length=4).save_pretrained(folder)
    return folder


PROMPTS["ovis2"] = "Look: <image> Describe the picture in a few words"


class TinyVideoLlama3Processor(VideoLlama3Processor):
    """VideoLlama3Processor without the video processor, which needs torchvision (not installed): images only."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = tokenizer.image_token, tokenizer.video_token
        self.image_token_id, self.video_token_id = tokenizer.convert_tokens_to_ids([self.image_token, self.video_token])
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


AutoProcessor.register("tiny_video_llama_3_processor", TinyVideoLlama3Processor, exist_ok=True)


def build_video_llama_3(folder) -> Path:
    """VideoLLaMA3: a 2-layer SigLIP-like tower over a Qwen2-VL-style patch grid (patch 7, 2-D rotary, attention within
    each image, images unmerged: merge size 1), an MLP projector, Qwen2 text model with 1-D positions. Images of
    any size: (40, 50) -> 42x49 px -> 6x7 = 42 tokens."""
    from transformers import Qwen2Config, VideoLlama3Config, VideoLlama3ForConditionalGeneration, VideoLlama3ImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer(["<|image_pad|>", "<|video_pad|>"], {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    config = VideoLlama3Config(
        vision_config=dict(**_VISION, patch_size=7),
        text_config=Qwen2Config(**_TEXT, vocab_size=len(tok)).to_dict(),
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
    )
    torch.manual_seed(0)
    _widen_and_save(VideoLlama3ForConditionalGeneration(config), folder)
    image_processor = VideoLlama3ImageProcessorPil(patch_size=7, size={"shortest_edge": 7 * 7 * 4, "longest_edge": 7 * 7 * 64})
    TinyVideoLlama3Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["video_llama_3"] = "Look: <|image_pad|> Describe the picture in a few words"


def build_paddleocr_vl(folder) -> Path:
    """PaddleOCR-VL: a 2-layer SigLIP-like tower (patch 7, a 4x4 learned position table resampled bilinearly to each
    image's grid, 2-D rotary, attention within each image), a projector merging 2x2 patches; ERNIE-4.5 text model with
    Qwen2-VL's 3-D rotary. Images of any size: (40, 50) -> 42x56 px -> 6x8 patches -> 12 tokens."""
    from transformers import PaddleOCRVLConfig, PaddleOCRVLForConditionalGeneration, PaddleOCRVLImageProcessorPil, PaddleOCRVLProcessor

    folder = Path(folder)
    tok = _tokenizer(["<|IMAGE_PLACEHOLDER|>", "<|IMAGE_START|>", "<|IMAGE_END|>"], {"image_token": "<|IMAGE_PLACEHOLDER|>"})
    ids = tok.convert_tokens_to_ids
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    config = PaddleOCRVLConfig(
        vision_config=dict(**_VISION, image_size=28, patch_size=7, spatial_merge_size=2),
        text_config=dict(**_TEXT, vocab_size=len(tok), head_dim=16, rope_parameters=rope),
        image_token_id=ids("<|IMAGE_PLACEHOLDER|>"),
        video_token_id=ids("<|IMAGE_PLACEHOLDER|>"),
        vision_start_token_id=ids("<|IMAGE_START|>"),
        vision_end_token_id=ids("<|IMAGE_END|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(PaddleOCRVLForConditionalGeneration(config), folder)
    image_processor = PaddleOCRVLImageProcessorPil(
        patch_size=7, merge_size=2, size={"shortest_edge": 14 * 14 * 4, "longest_edge": 14 * 14 * 16}
    )
    PaddleOCRVLProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["paddleocr_vl"] = "Look: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|> Describe the picture in a few words"


class TinyQwen2_5OmniProcessor(Qwen2_5OmniProcessor):
    """Qwen2_5OmniProcessor with only the image processor and tokenizer: its video processor needs torchvision (not
    installed), and no audio goes into the image-text sweep."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        for name in ("image", "audio", "video"):
            setattr(self, f"{name}_token", getattr(tokenizer, f"{name}_token"))
            setattr(self, f"{name}_token_id", tokenizer.convert_tokens_to_ids(getattr(tokenizer, f"{name}_token")))
        for name in ("vision_bos", "vision_eos", "audio_bos", "audio_eos"):
            setattr(self, f"{name}_token", getattr(tokenizer, f"{name}_token"))


AutoProcessor.register("tiny_qwen2_5_omni_processor", TinyQwen2_5OmniProcessor, exist_ok=True)

_OMNI_TOKENS = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}
_OMNI_AUDIO = dict(num_mel_bins=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, d_model=16, output_dim=64)


def _omni_token_ids(tok) -> dict[str, int]:
    """The omni thinkers' special token ids in their configs (image, video, audio and the vision/audio brackets)."""
    ids = tok.convert_tokens_to_ids
    names = {"image": "<|IMAGE|>", "video": "<|VIDEO|>", "audio": "<|AUDIO|>"}
    brackets = {
        "audio_start": "<|audio_bos|>",
        "audio_end": "<|audio_eos|>",
        "vision_start": "<|vision_bos|>",
        "vision_end": "<|vision_eos|>",
    }
    return {f"{name}_token_id": ids(token) for name, token in {**names, **brackets}.items()}


def _qwen2_vl_image_processor():
    """Qwen2-VL's PIL image processor at the tiny models' sizes (patch 7, merge 2: 4 to 16 tokens an image)."""
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=14 * 14 * 4, max_pixels=14 * 14 * 16, patch_size=7, temporal_patch_size=2, merge_size=2)


def build_qwen2_5_omni_thinker(folder) -> Path:
    """Qwen2.5-Omni's thinker (text out; no talker): Qwen2.5-VL's windowed vision tower (2 blocks, patch 7, merge 2,
    windows of 14 px, block 1 full attention; separate q/k/v projections), a 1-layer audio tower (unused by images),
    text model with Qwen2-VL's 3-D rotary. Qwen2-VL's image processor sizes: (40, 50) -> 12 tokens."""
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    folder = Path(folder)
    tok = _tokenizer(list(_OMNI_TOKENS.values()), _OMNI_TOKENS)
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    vision = dict(QWEN2_5_VL_VISION, out_hidden_size=_TEXT["hidden_size"])
    audio = _OMNI_AUDIO
    config = Qwen2_5OmniThinkerConfig(
        text_config=dict(**_TEXT, vocab_size=len(tok), rope_parameters=rope),
        vision_config=vision,
        audio_config=audio,
        **_omni_token_ids(tok),
    )
    torch.manual_seed(0)
    _widen_and_save(Qwen2_5OmniThinkerForConditionalGeneration(config), folder)
    image_processor = _qwen2_vl_image_processor()
    TinyQwen2_5OmniProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["qwen2_5_omni_thinker"] = "Look: <|vision_bos|><|IMAGE|><|vision_eos|> Describe the picture in a few words"


def build_qwen3_omni_moe_thinker(folder) -> Path:
    """Qwen3-Omni-MoE's thinker (text out; no talker): the tiny Qwen3-VL-MoE's vision tower (DeepStack) and MoE text
    model with interleaved 3-D rotary (tests/vlm_family_fixtures_more.py), a 1-layer audio tower (unused by images);
    Qwen2.5-Omni's tiny processor (the same image processor and tokens)."""
    from transformers import AutoConfig, Qwen3OmniMoeThinkerConfig, Qwen3OmniMoeThinkerForConditionalGeneration

    from tests.vlm_family_fixtures_more import build_qwen3_vl_moe

    folder = Path(folder)
    source = AutoConfig.from_pretrained(build_qwen3_vl_moe(folder))
    build_qwen2_5_omni_thinker(folder)  # the processor
    tok = AutoProcessor.from_pretrained(folder).tokenizer
    unnamed = ("model_type", "architectures", "transformers_version")
    text = {k: v for k, v in source.text_config.to_dict().items() if k not in unnamed}
    text.update(vocab_size=len(tok))
    config = Qwen3OmniMoeThinkerConfig(
        text_config=text,
        vision_config={k: v for k, v in source.vision_config.to_dict().items() if k not in unnamed},
        audio_config=dict(_OMNI_AUDIO, downsample_hidden_size=8),
        **_omni_token_ids(tok),
    )
    torch.manual_seed(0)
    _widen_and_save(Qwen3OmniMoeThinkerForConditionalGeneration(config), folder)
    return folder


PROMPTS["qwen3_omni_moe_thinker"] = PROMPTS["qwen2_5_omni_thinker"]


def _sweep_text(text_type: str, vocab_size: int) -> dict:
    """The text model as the decoder sweep shrinks it (tests/tiny_models.py), at the tokenizer's vocabulary."""
    from tests.tiny_models import sweep_config

    text = sweep_config(text_type).to_dict()
    text.update(vocab_size=vocab_size)
    return {k: v for k, v in text.items() if k not in ("model_type", "architectures", "transformers_version")}


class TinyMiniMaxM3VLProcessor(MiniMaxM3VLProcessor):
    """MiniMaxM3VLProcessor without the video processor (torchvision, not installed): images only."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        self.image_token, self.video_token = self.IMAGE_TOKEN, self.VIDEO_TOKEN
        self.image_token_id, self.video_token_id = tokenizer.convert_tokens_to_ids([self.IMAGE_TOKEN, self.VIDEO_TOKEN])
        self.vision_start_token_id = tokenizer.convert_tokens_to_ids(self.VISION_START_TOKEN)
        self.vision_end_token_id = tokenizer.convert_tokens_to_ids(self.VISION_END_TOKEN)


AutoProcessor.register("tiny_minimax_m3_vl_processor", TinyMiniMaxM3VLProcessor, exist_ok=True)


def build_minimax_m3_vl(folder) -> Path:
    """MiniMax-M3-VL: a 2-layer CLIP-like tower (Conv3d patch 7, temporal 2, partial 3-D rotary, attention within each
    image), a projector that maps each patch and then fuses 2x2 of them; the MiniMax-M3 text model as the decoder sweep
    shrinks it (its block-sparse indexer keeps every block of a short prompt). Its image processor is Qwen2-VL's with
    other default sizes (a torchvision backend here): Qwen2-VL's PIL one with explicit sizes is the same algorithm."""
    from transformers import MiniMaxM3SparseForConditionalGeneration, MiniMaxM3VLConfig

    folder = Path(folder)
    P = MiniMaxM3VLProcessor
    tok = _tokenizer([P.IMAGE_TOKEN, P.VIDEO_TOKEN, P.VISION_START_TOKEN, P.VISION_END_TOKEN])
    ids = tok.convert_tokens_to_ids
    vision = dict(**_VISION, patch_size=7, temporal_patch_size=2, spatial_merge_size=2, image_size=56)
    config = MiniMaxM3VLConfig(
        vision_config=vision,
        text_config=_sweep_text("minimax_m3_vl_text", len(tok)),
        image_token_index=ids(P.IMAGE_TOKEN),
        video_token_index=ids(P.VIDEO_TOKEN),
        projector_hidden_size=48,
    )
    torch.manual_seed(0)
    _widen_and_save(MiniMaxM3SparseForConditionalGeneration(config), folder)
    image_processor = _qwen2_vl_image_processor()
    TinyMiniMaxM3VLProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["minimax_m3_vl"] = f"Look: {MiniMaxM3VLProcessor.IMAGE_TOKEN} Describe the picture in a few words"


def build_mistral_large4(folder) -> Path:
    """Mistral Large 4: Mistral 3's layout (the tiny Pixtral tower and processor of tests/vlm_family_fixtures.py) with
    the Mistral Large 4 text model (DeepSeek-V3.2-style sparse attention: MLA plus a top-k token indexer) as the decoder
    sweep shrinks it."""
    from transformers import Mistral3Config, MistralLarge4Config, MistralLarge4ForConditionalGeneration

    from tests.vlm_family_fixtures import build_mistral3

    folder = build_mistral3(folder)
    source = Mistral3Config.from_pretrained(folder)
    text = _sweep_text("mistral_large4_text", source.text_config.vocab_size)
    # four layers: rotary, NoPE, rotary, NoPE (dense MLP, then sparse); the last two reuse the first two's latent KV
    # (KV sharing, an option of the real config) and the second and fourth reuse the previous layer's top-k ("shared"
    # indexer layers); MLA: as many kv heads as heads
    text.update(
        num_hidden_layers=4,
        num_key_value_heads=text["num_attention_heads"],
        layer_types=["indexed_attention"] * 4,
        mlp_layer_types=["dense", "sparse", "sparse", "sparse"],
        indexer_types=["full", "shared", "full", "shared"],
        no_rope_layers=[1, 0, 1, 0],
        kv_source_layers=[0, 1, 0, 1],
    )
    config = MistralLarge4Config(
        vision_config=source.vision_config.to_dict(),
        text_config=text,
        image_token_index=source.image_token_index,
        spatial_merge_size=source.spatial_merge_size,
        vision_feature_layer=source.vision_feature_layer,
    )
    torch.manual_seed(0)
    _widen_and_save(MistralLarge4ForConditionalGeneration(config), folder)
    return folder


def build_mistral4(folder) -> Path:
    """Mistral 4 (model_type mistral4): transformers maps it to Mistral4ForCausalLM, a text-only model, in its image-text
    table; the decoder sweep's tiny Mistral 4 with Mistral 3's tiny processor, so the sweep records what HF does with
    an image."""
    from transformers import Mistral4ForCausalLM

    from tests.tiny_models import sweep_config
    from tests.vlm_family_fixtures import build_mistral3

    folder = build_mistral3(folder)  # the processor
    vocab = AutoProcessor.from_pretrained(folder).tokenizer.__len__()
    config = sweep_config("mistral4")
    config.vocab_size = vocab
    torch.manual_seed(0)
    _widen_and_save(Mistral4ForCausalLM(config), folder)
    return folder


PROMPTS["mistral_large4"] = PROMPTS["mistral4"] = "Look: [IMG] Describe the picture in a few words"


class TinyPerceptionLMImageProcessor(SiglipImageProcessorPil):
    """PerceptionLM's image processor has only a torchvision backend (not installed): this one resizes every image to
    one tile and gives pixel_values [images, tiles = 1, 3, H, W], as PerceptionLM's does without tiling."""

    def _preprocess(self, images, **kwargs):
        out = super()._preprocess(images, **kwargs)
        out["pixel_values"] = [np.asarray(tile)[None] for tile in out["pixel_values"]]
        return out


class TinyPerceptionLMProcessor(SubprocessorsFromArguments, PerceptionLMProcessor):
    """PerceptionLMProcessor with TinyPerceptionLMImageProcessor and no video processor (torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, patch_size=None, pooling_ratio=2, **kwargs):
        self.patch_size, self.pooling_ratio = patch_size, pooling_ratio
        self.image_token, self.video_token = tokenizer.image_token, tokenizer.video_token
        self.image_token_id, self.video_token_id = tokenizer.convert_tokens_to_ids([self.image_token, self.video_token])
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        from transformers import AutoTokenizer

        path = pretrained_model_name_or_path
        return [TinyPerceptionLMImageProcessor.from_pretrained(path), AutoTokenizer.from_pretrained(path)]


AutoProcessor.register("tiny_perception_lm_processor", TinyPerceptionLMProcessor, exist_ok=True)


def build_perception_lm(folder) -> Path:
    """PerceptionLM: its Perception Encoder tower is a timm model (timm is not installed): a 2-layer CLIP tower (28 px,
    patch 7, CLS dropped) stands in, stating its width as timm's ``model_args["embed_dim"]`` for the projector; the
    projector (MLP, then 2x2 average pooling: 4 tokens per tile) and the Llama text model are PerceptionLM's own."""
    from transformers import CLIPVisionConfig, PerceptionLMConfig, PerceptionLMForConditionalGeneration

    folder = Path(folder)
    tok = _tokenizer(["<|image|>", "<|video|>"], {"image_token": "<|image|>", "video_token": "<|video|>"})
    vision = CLIPVisionConfig(**_VISION, image_size=28, patch_size=7).to_dict()
    vision["model_args"] = {"embed_dim": vision["hidden_size"]}
    config = PerceptionLMConfig(
        vision_config=vision,
        text_config=LlamaConfig(**_TEXT, vocab_size=len(tok)).to_dict(),
        image_token_id=tok.convert_tokens_to_ids("<|image|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video|>"),
        projector_pooling_ratio=2,
    )
    torch.manual_seed(0)
    _widen_and_save(PerceptionLMForConditionalGeneration(config), folder)
    image_processor = TinyPerceptionLMImageProcessor(size={"height": 28, "width": 28})
    TinyPerceptionLMProcessor(image_processor=image_processor, tokenizer=tok, patch_size=7).save_pretrained(folder)
    return folder


PROMPTS["perception_lm"] = "Look: <|image|> Describe the picture in a few words"


# Encoder-decoder image-text models: QEFFAutoModelForImageTextToText refuses them (a decoder-only language model with
# image tokens is what it runs); the builders let the sweep record whether HF runs them.


def build_t5gemma2(folder) -> Path:
    """T5Gemma 2: Gemma 3's tiny tower, projector and processor (tests/vlm_fixtures.py) in front of an encoder, and a
    decoder, both Gemma-3-shaped (2 layers, sliding then full attention)."""
    from transformers import Gemma3Config, T5Gemma2Config, T5Gemma2ForConditionalGeneration

    from tests.vlm_fixtures import build_gemma3

    folder = build_gemma3(folder)
    source = Gemma3Config.from_pretrained(folder)
    text = {k: v for k, v in source.text_config.to_dict().items() if k not in ("model_type", "architectures", "transformers_version")}
    encoder = dict(
        text_config=text,
        vision_config=source.vision_config.to_dict(),
        mm_tokens_per_image=source.mm_tokens_per_image,
        boi_token_index=source.boi_token_index,
        eoi_token_index=source.eoi_token_index,
        image_token_index=source.image_token_index,
    )
    config = T5Gemma2Config(
        encoder=encoder, decoder=dict(text), image_token_index=source.image_token_index, eoi_token_index=source.eoi_token_index
    )
    torch.manual_seed(0)
    _widen_and_save(T5Gemma2ForConditionalGeneration(config), folder)
    return folder


class TinyPix2StructProcessor(Pix2StructProcessor):
    """Pix2StructProcessor at the tiny model's 16 patches (HF's sets 2048 as a class default, not saved)."""

    images_kwargs = {**Pix2StructProcessor.images_kwargs, "max_patches": 16}


AutoProcessor.register("tiny_pix2struct_processor", TinyPix2StructProcessor, exist_ok=True)


def build_pix2struct(folder) -> Path:
    """Pix2Struct: a 2-layer patch-sequence encoder (up to 16 patches of 7 px, flattened by the PIL image processor;
    row and column tables of 32) and a 2-layer text decoder that continues the prompt (its decoder_input_ids)."""
    from transformers import Pix2StructConfig, Pix2StructForConditionalGeneration, Pix2StructImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer([])
    shape = dict(hidden_size=64, d_ff=96, d_kv=16, num_heads=4, num_layers=2)
    config = Pix2StructConfig(
        vision_config=dict(**shape, patch_embed_hidden_size=7 * 7 * 3, seq_len=32),
        text_config=dict(**shape, vocab_size=len(tok), decoder_start_token_id=0, pad_token_id=0, eos_token_id=2),
    )
    torch.manual_seed(0)
    _widen_and_save(Pix2StructForConditionalGeneration(config), folder)
    image_processor = Pix2StructImageProcessorPil(patch_size={"height": 7, "width": 7}, max_patches=16, is_vqa=False)
    TinyPix2StructProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["t5gemma2"] = "Look: <start_of_image> Describe the picture in a few words"
PROMPTS["pix2struct"] = "Describe the picture in a few words"


def build_florence2(folder) -> Path:
    """Florence-2: a 4-stage DaViT tower (64 px -> a 2x2 grid), its projector (the grid plus a pooled token, position
    and temporal embeddings), a 2+2-layer BART encoder-decoder. The CLIP PIL image processor at 64 px."""
    from transformers import CLIPImageProcessorPil, Florence2Config, Florence2ForConditionalGeneration, Florence2Processor

    folder = Path(folder)
    tok = _tokenizer(["<image>"], {"image_token": "<image>"})
    vision = dict(depths=[1, 1, 1, 1], embed_dim=[16, 32, 32, 64], num_heads=[1, 2, 2, 4], num_groups=[1, 2, 2, 4], window_size=2)
    vision.update(projection_dim=_TEXT["hidden_size"], drop_path_rate=0.0)
    bart = dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4)
    bart.update(encoder_ffn_dim=96, decoder_ffn_dim=96, vocab_size=len(tok), max_position_embeddings=512)
    bart.update(pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None)
    config = Florence2Config(vision_config=vision, text_config=bart, image_token_id=tok.convert_tokens_to_ids("<image>"))
    torch.manual_seed(0)
    model = Florence2ForConditionalGeneration(config)
    with torch.no_grad():
        tokens = model.model.get_image_features(torch.zeros(1, 3, 64, 64)).pooler_output.shape[1]
    _widen_and_save(model, folder)
    image_processor = CLIPImageProcessorPil(size={"height": 64, "width": 64}, crop_size={"height": 64, "width": 64})
    image_processor.image_seq_length = tokens
    Florence2Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["florence2"] = "Describe the picture in a few words"


class TinyKosmos2_5Processor(Kosmos2_5Processor):
    """Kosmos2_5Processor at the tiny model's 16 patches (HF's sets 4096 as a class default, not saved)."""

    images_kwargs = {**Kosmos2_5Processor.images_kwargs, "max_patches": 16}


AutoProcessor.register("tiny_kosmos2_5_processor", TinyKosmos2_5Processor, exist_ok=True)


def build_kosmos_2_5(folder) -> Path:
    """Kosmos-2.5: a 2-layer Pix2Struct-style patch encoder (up to 16 patches of 7 px), 4 latent queries resampling it,
    a 2-layer text decoder that takes them at the positions of "<image>" + 4 x "<s>" + "</image>" (marked by the
    processor's image_embeds_position_mask)."""
    from transformers import Kosmos2_5Config, Kosmos2_5ForConditionalGeneration, Kosmos2_5ImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer(["<image>", "</image>"], {"boi_token": "<image>", "eoi_token": "</image>", "image_token": "<s>"})
    text = dict(embed_dim=64, layers=2, ffn_dim=96, attention_heads=4, vocab_size=len(tok), max_position_embeddings=512)
    text.update(pad_token_id=0, bos_token_id=1, eos_token_id=2, dropout=0.0)
    vision = dict(hidden_size=32, patch_embed_hidden_size=7 * 7 * 3, intermediate_size=64, head_dim=16, num_hidden_layers=2)
    vision.update(num_attention_heads=2, max_num_patches=32)
    config = Kosmos2_5Config(text_config=text, vision_config=vision, latent_query_num=4)
    torch.manual_seed(0)
    _widen_and_save(Kosmos2_5ForConditionalGeneration(config), folder)
    image_processor = Kosmos2_5ImageProcessorPil(patch_size={"height": 7, "width": 7}, max_patches=16)
    TinyKosmos2_5Processor(image_processor=image_processor, tokenizer=tok, num_image_tokens=4).save_pretrained(folder)
    return folder


PROMPTS["kosmos-2.5"] = "Describe the picture in a few words"


class TinyVisionEncoderDecoderProcessor(TrOCRProcessor):
    """TrOCRProcessor that gives the text as the decoder's prompt (``decoder_input_ids``, as Donut's task prompts are
    given) rather than as training labels."""

    def __call__(self, images=None, text=None, **kwargs):
        inputs = super().__call__(images=images, text=text, **kwargs)
        if images is not None and text is not None:
            inputs["decoder_input_ids"] = inputs.pop("labels")
        return inputs


AutoProcessor.register("tiny_vision_encoder_decoder_processor", TinyVisionEncoderDecoderProcessor, exist_ok=True)


def build_vision_encoder_decoder(folder) -> Path:
    """VisionEncoderDecoderModel: a 2-layer ViT encoder (28 px, patch 7) and a 2-layer GPT-2 decoder cross-attending
    to it (TrOCR's / Donut's layout); ViT's PIL image processor."""
    from transformers import GPT2Config, VisionEncoderDecoderConfig, VisionEncoderDecoderModel, ViTConfig, ViTImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer([])
    encoder = ViTConfig(**_VISION, image_size=28, patch_size=7)
    decoder = GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=512, vocab_size=len(tok), add_cross_attention=True)
    decoder.update(dict(bos_token_id=1, eos_token_id=2, pad_token_id=0, is_decoder=True))
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.update(dict(decoder_start_token_id=1, pad_token_id=0, eos_token_id=2))
    torch.manual_seed(0)
    _widen_and_save(VisionEncoderDecoderModel(config), folder)
    image_processor = ViTImageProcessorPil(size={"height": 28, "width": 28})
    TinyVisionEncoderDecoderProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["vision-encoder-decoder"] = "Describe the picture in a few words"


def build_blip(folder) -> Path:
    """BLIP captioning: a 2-layer ViT (32 px, patches of 8) read by a 2-layer BERT-style text decoder's cross-attention;
    its text config's bos (the decoder's start), sep (its end) and pad are the tiny tokenizer's."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    folder = Path(folder)
    tok = _tokenizer([])
    shape = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    text = dict(**shape, vocab_size=len(tok), max_position_embeddings=64, bos_token_id=tok.bos_token_id)
    text.update(sep_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    # the vision config's own initializer_range (1e-10) would leave the tiny tower's output constant
    config = BlipConfig(text_config=text, vision_config=dict(**shape, image_size=32, patch_size=8, initializer_range=0.02))
    torch.manual_seed(0)
    _widen_and_save(BlipForConditionalGeneration(config), folder)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["blip"] = "a picture of"
