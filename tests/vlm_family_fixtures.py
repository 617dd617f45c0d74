"""Tiny random-weight vision-language models of the families the image-text sweep added (LLaVA-NeXT,
LLaVA-OneVision, Mistral 3, PaliGemma, InternVL, ...), built as tests/vlm_fixtures.py builds the first six:
the tiny BPE tokenizer plus each architecture's special tokens, seeded weights widened by 4.0, the PIL
image processors, processors saved next to the model. ``PROMPTS`` gives each ``build_<model_type>``'s
prompt with its image placeholder; tests/image_text_sweep.py picks both up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch
from transformers import AutoProcessor, Gemma3Config, LlamaConfig, SiglipVisionConfig
from transformers.models.internvl.processing_internvl import InternVLProcessor
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor

from tests.tiny_models import build_tokenizer
from tests.vlm_fixtures import _TEXT, _tokenizer, _widen_and_save, build_gemma3

# Prompts of the families added for the sweep (tests/image_text_sweep.py picks up build_<model_type> listed here).
PROMPTS: dict[str, str] = {
    "llava_next": "Look: <image> Describe the picture in a few words",
}


def build_llava_next(folder, *, granite: bool = False) -> Path:
    """LLaVA-NeXT (Granite Vision's layout): CLIP tower at 28 px (patch 7, 16 tokens per tile + CLS dropped),
    any-resolution tiling over grid pinpoints [[28, 56], [56, 28], [56, 56]]: an image becomes a base tile plus
    1x2 / 2x1 / 2x2 tiles, unpadded to its aspect ratio, with an image_newline row per line of patches.
    ``granite=True``: Granite Vision's variant, a Granite text model and features from two vision layers."""
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    folder = Path(folder)
    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.padding_side = "left"
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7, projection_dim=32
    )
    pinpoints = [[28, 56], [56, 28], [56, 56]]
    if granite:
        from transformers import GraniteConfig

        text = GraniteConfig(**_TEXT, vocab_size=len(tok), embedding_multiplier=2.0, logits_scaling=2.0, residual_multiplier=0.5)
    else:
        text = LlamaConfig(**_TEXT, vocab_size=len(tok))
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=[-2, -1] if granite else -2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    _widen_and_save(LlavaNextForConditionalGeneration(config), folder)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}, image_grid_pinpoints=pinpoints
    )
    LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=7,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
    ).save_pretrained(folder)
    return folder


def pixtral_processor_class():
    """PixtralProcessor without torchvision: its module imports one helper, ``get_resize_output_image_size``,
    from the torchvision image processor's module; the PIL image processor's module defines the same function,
    so it stands in for that module when torchvision is missing. Importing this registers the real class."""
    if importlib.util.find_spec("torchvision") is None:
        from transformers.models.pixtral import image_processing_pil_pixtral

        sys.modules.setdefault("transformers.models.pixtral.image_processing_pixtral", image_processing_pil_pixtral)
    from transformers.models.pixtral.processing_pixtral import PixtralProcessor

    return PixtralProcessor


class TinyPixtralProcessor(pixtral_processor_class()):
    """PixtralProcessor under a name of its own: AutoProcessor resolves "PixtralProcessor" through transformers'
    torchvision guard, a registered name reaches this class (as TinyQwen2VLProcessor)."""


AutoProcessor.register("tiny_pixtral_processor", TinyPixtralProcessor, exist_ok=True)


def build_mistral3(folder) -> Path:
    """Mistral 3: Pixtral tower (patch 7, 2-D rotary, 2 layers), 2x2 patch merger, Mistral text model. The
    processor resizes the longest edge to 56 px in multiples of 14 (patch x merge): (40, 50) -> 42x56 ->
    3x4 = 12 image tokens, with an [IMG_BREAK] after each row and [IMG_END] last."""
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, MistralConfig, PixtralImageProcessorPil, PixtralVisionConfig

    folder = Path(folder)
    tok = _tokenizer(["[IMG]", "[IMG_BREAK]", "[IMG_END]"])
    vision = PixtralVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, head_dim=16, image_size=56, patch_size=7
    )
    config = Mistral3Config(
        vision_config=vision,
        text_config=MistralConfig(**_TEXT, vocab_size=len(tok), sliding_window=None),
        image_token_index=tok.convert_tokens_to_ids("[IMG]"),
        spatial_merge_size=2,
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    _widen_and_save(Mistral3ForConditionalGeneration(config), folder)
    image_processor = PixtralImageProcessorPil(size={"longest_edge": 56}, patch_size={"height": 7, "width": 7})
    TinyPixtralProcessor(image_processor=image_processor, tokenizer=tok, patch_size=7, spatial_merge_size=2).save_pretrained(folder)
    return folder


PROMPTS["mistral3"] = "Look: [IMG] Describe the picture in a few words"


def build_paligemma(folder) -> Path:
    """PaliGemma: SigLIP tower (28 px, patch 7 -> 16 image tokens), linear projector, Gemma text model. The
    processor puts the 16 "<image>" tokens and BOS before the prompt and returns token_type_ids: the whole
    prompt (image and text) attends both ways at prefill, the generated tokens causally."""
    from transformers import GemmaConfig, PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer(["<image>"], {"image_token": "<image>"})
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7, projection_dim=64
    )
    text = GemmaConfig(**_TEXT, vocab_size=len(tok), head_dim=16, tie_word_embeddings=False)
    config = PaliGemmaConfig(
        vision_config=vision, text_config=text, image_token_index=tok.image_token_id, projection_dim=64, tie_word_embeddings=False
    )
    config.vision_config.projection_dim = 64
    torch.manual_seed(0)
    _widen_and_save(PaliGemmaForConditionalGeneration(config), folder)
    image_processor = SiglipImageProcessorPil(size={"height": 28, "width": 28})
    image_processor.image_seq_length = 16
    PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["paligemma"] = "<image>Describe the picture in a few words"


class TinyLlavaOnevisionProcessor(LlavaOnevisionProcessor):
    """LlavaOnevisionProcessor without its video processor (torchvision is not installed)."""

    def __init__(
        self, image_processor=None, tokenizer=None, num_image_tokens=None, vision_feature_select_strategy=None, chat_template=None, **kwargs
    ):
        super().__init__(
            image_processor=image_processor,
            tokenizer=tokenizer,
            num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=chat_template,
            **kwargs,
        )


AutoProcessor.register("tiny_llava_onevision_processor", TinyLlavaOnevisionProcessor, exist_ok=True)


def build_llava_onevision(folder) -> Path:
    """LLaVA-OneVision: SigLIP tower at 28 px (patch 7, 16 tokens per tile, "full" features), Qwen2 text model,
    tiling over [[28, 56], [56, 28], [56, 56]] as LLaVA-NeXT, anyres_max_9."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionImageProcessorPil, Qwen2Config

    folder = Path(folder)
    tok = _tokenizer(["<image>", "<video>"], {"image_token": "<image>", "video_token": "<video>"})
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7
    )
    pinpoints = [[28, 56], [56, 28], [56, 56]]
    config = LlavaOnevisionConfig(
        vision_config=vision,
        text_config=Qwen2Config(**_TEXT, vocab_size=len(tok)),
        image_token_id=tok.image_token_id,
        video_token_id=tok.video_token_id,
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
    )
    torch.manual_seed(0)
    _widen_and_save(LlavaOnevisionForConditionalGeneration(config), folder)
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": 28, "width": 28}, image_grid_pinpoints=pinpoints)
    TinyLlavaOnevisionProcessor(
        image_processor=image_processor, tokenizer=tok, num_image_tokens=16, vision_feature_select_strategy="full"
    ).save_pretrained(folder)
    return folder


PROMPTS["llava_onevision"] = "Look: <image> Describe the picture in a few words"


class TinyInternVLProcessor(InternVLProcessor):
    """InternVLProcessor without its video processor (torchvision is not installed)."""

    def __init__(self, image_processor=None, tokenizer=None, image_seq_length: int = 256, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, image_seq_length=image_seq_length, chat_template=chat_template, **kwargs)


AutoProcessor.register("tiny_internvl_processor", TinyInternVLProcessor, exist_ok=True)


def build_internvl(folder) -> Path:
    """InternVL: InternViT tower (28 px tiles, patch 7, CLS dropped), pixel shuffle 0.5 -> 4 tokens per tile,
    Qwen2 text model. The processor crops an image into up to 4 tiles plus a thumbnail; the prompt's
    "<IMG_CONTEXT>" becomes "<img>" + 4 x tiles "<IMG_CONTEXT>" + "</img>"."""
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, Qwen2Config

    folder = Path(folder)
    named = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
    tok = _tokenizer(list(named.values()), named)
    vision = InternVLVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=[28, 28], patch_size=[7, 7]
    )
    config = InternVLConfig(
        vision_config=vision,
        text_config=Qwen2Config(**_TEXT, vocab_size=len(tok)),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=4,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(InternVLForConditionalGeneration(config), folder)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 28, "width": 28}, crop_to_patches=True, min_patches=1, max_patches=4)
    TinyInternVLProcessor(image_processor=image_processor, tokenizer=tok, image_seq_length=4).save_pretrained(folder)
    return folder


PROMPTS["internvl"] = "Look: <IMG_CONTEXT> Describe the picture in a few words"


def build_vipllava(folder) -> Path:
    """VipLlava: Llava's layout with features from several CLIP layers (CLS dropped), layer-normed and
    projected together; Llava's processor (16 image tokens per 28 px image)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, LlavaProcessor, VipLlavaConfig, VipLlavaForConditionalGeneration

    folder = Path(folder)
    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.padding_side = "left"
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=28, patch_size=7, projection_dim=32
    )
    config = VipLlavaConfig(
        vision_config=vision,
        text_config=LlamaConfig(**_TEXT, vocab_size=len(tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layers=[-3, -2, -1],
    )
    torch.manual_seed(0)
    _widen_and_save(VipLlavaForConditionalGeneration(config), folder)
    LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tok,
        patch_size=7,
        vision_feature_select_strategy="default",
        image_token="<image>",
        num_additional_image_tokens=1,
    ).save_pretrained(folder)
    return folder


def build_shieldgemma2(folder) -> Path:
    """ShieldGemma 2 (model_type shieldgemma2, run by Gemma3ForConditionalGeneration): the Gemma 3 tiny model's shapes and
    processor under ShieldGemma2Config (its own processor wraps prompts in safety policies)."""
    from transformers import ShieldGemma2Config, ShieldGemma2ForImageClassification

    folder = build_gemma3(folder)
    source = Gemma3Config.from_pretrained(folder)
    config = ShieldGemma2Config(
        text_config=source.text_config.to_dict(),
        vision_config=source.vision_config.to_dict(),
        mm_tokens_per_image=source.mm_tokens_per_image,
        boi_token_index=source.boi_token_index,
        eoi_token_index=source.eoi_token_index,
        image_token_index=source.image_token_index,
    )
    torch.manual_seed(0)
    # saved in the real checkpoints' layout (the classifier's), which transformers maps onto Gemma3ForConditionalGeneration
    _widen_and_save(ShieldGemma2ForImageClassification(config), folder)
    return folder


PROMPTS["vipllava"] = "Look: <image> Describe the picture in a few words"
PROMPTS["shieldgemma2"] = "Look: <start_of_image> Describe the picture in a few words"


def build_lighton_ocr(folder) -> Path:
    """LightOnOCR: Mistral 3's tiny Pixtral tower and merger (patch 7, merge 2, longest edge 56 px), Qwen3 text model;
    its processor repeats "[IMG]" (h/14 x w/14 per image, no row breaks)."""
    from transformers import (
        LightOnOcrConfig,
        LightOnOcrForConditionalGeneration,
        LightOnOcrProcessor,
        PixtralImageProcessorPil,
        PixtralVisionConfig,
        Qwen3Config,
    )

    folder = Path(folder)
    named = {"image_token": "[IMG]", "image_break_token": "[IMG_BREAK]", "image_end_token": "[IMG_END]"}
    tok = _tokenizer(list(named.values()), named)
    vision = PixtralVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, head_dim=16, image_size=56, patch_size=7
    )
    config = LightOnOcrConfig(
        vision_config=vision,
        text_config=Qwen3Config(**_TEXT, vocab_size=len(tok), head_dim=16),
        image_token_id=tok.image_token_id,
        spatial_merge_size=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(LightOnOcrForConditionalGeneration(config), folder)
    image_processor = PixtralImageProcessorPil(size={"longest_edge": 56}, patch_size={"height": 7, "width": 7})
    LightOnOcrProcessor(image_processor=image_processor, tokenizer=tok, patch_size=7, spatial_merge_size=2).save_pretrained(folder)
    return folder


PROMPTS["lighton_ocr"] = "Look: [IMG] Describe the picture in a few words"


def build_qianfan_ocr(folder) -> Path:
    """Qianfan-OCR: InternVL's layout (InternViT tiles, pixel shuffle 0.5 -> 4 tokens per 28 px tile) with a Qwen3 text model."""
    from transformers import (
        GotOcr2ImageProcessorPil,
        QianfanOCRConfig,
        QianfanOCRForConditionalGeneration,
        QianfanOCRProcessor,
        QianfanOCRVisionConfig,
        Qwen3Config,
    )

    folder = Path(folder)
    named = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>"}
    tok = _tokenizer(list(named.values()), named)
    vision = QianfanOCRVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=[28, 28], patch_size=[7, 7]
    )
    config = QianfanOCRConfig(
        vision_config=vision,
        text_config=Qwen3Config(**_TEXT, vocab_size=len(tok), head_dim=16),
        image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=4,
        downsample_ratio=0.5,
    )
    torch.manual_seed(0)
    _widen_and_save(QianfanOCRForConditionalGeneration(config), folder)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 28, "width": 28}, crop_to_patches=True, min_patches=1, max_patches=4)
    QianfanOCRProcessor(image_processor=image_processor, tokenizer=tok, image_seq_length=4).save_pretrained(folder)
    return folder


PROMPTS["qianfan_ocr"] = "Look: <image> Describe the picture in a few words"


def build_deepseek_vl(folder) -> Path:
    """DeepSeek-VL: SigLIP tower (28 px, patch 7 -> 16 tokens) and an MLP aligner, Llama text model; the processor
    repeats "<image_placeholder>" 16 times."""
    from transformers import DeepseekVLConfig, DeepseekVLForConditionalGeneration, DeepseekVLImageProcessorPil, DeepseekVLProcessor

    folder = Path(folder)
    tok = _tokenizer(["<image_placeholder>"], {"image_token": "<image_placeholder>"})
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7
    )
    config = DeepseekVLConfig(
        vision_config=vision.to_dict(),
        text_config=LlamaConfig(**_TEXT, vocab_size=len(tok)).to_dict(),
        image_token_id=tok.image_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(DeepseekVLForConditionalGeneration(config), folder)
    image_processor = DeepseekVLImageProcessorPil(size={"height": 28, "width": 28})
    DeepseekVLProcessor(image_processor=image_processor, tokenizer=tok, num_image_tokens=16).save_pretrained(folder)
    return folder


PROMPTS["deepseek_vl"] = "Look: <image_placeholder> Describe the picture in a few words"


def build_janus(folder) -> Path:
    """Janus (understanding side): SigLIP-like tower (28 px, patch 7 -> 16 tokens) and an MLP aligner, Llama text model;
    the image-generation VQ-VAE is shrunk and unused. The processor writes "<begin_of_image>" + 16 x "<image_placeholder>"
    + "<end_of_image>" per "<image_placeholder>" in the prompt."""
    from transformers import JanusConfig, JanusForConditionalGeneration, JanusImageProcessorPil, JanusProcessor

    folder = Path(folder)
    named = {"image_token": "<image_placeholder>", "boi_token": "<begin_of_image>", "eoi_token": "<end_of_image>"}
    tok = _tokenizer(list(named.values()), named)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7, projection_dim=64, depth=2)
    vision["num_image_tokens"] = 16
    vq = dict(
        embed_dim=8,
        num_embeddings=32,
        latent_channels=32,
        base_channels=32,
        channel_multiplier=[1, 1],
        num_res_blocks=1,
        num_patches=4,
        projection_dim=64,
        image_token_embed_dim=64,
    )
    config = JanusConfig(
        text_config=LlamaConfig(**_TEXT, vocab_size=len(tok)).to_dict(),
        vision_config=vision,
        vq_config=vq,
        image_token_id=tok.image_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(JanusForConditionalGeneration(config), folder)
    image_processor = JanusImageProcessorPil(size={"height": 28, "width": 28})
    JanusProcessor(image_processor=image_processor, tokenizer=tok, num_image_tokens=16).save_pretrained(folder)
    return folder


PROMPTS["janus"] = "Look: <image_placeholder> Describe the picture in a few words"


def build_aya_vision(folder) -> Path:
    """Aya Vision: SigLIP tower (28 px tiles, patch 7), pixel-shuffle projector (downsample 2 -> 4 tokens per tile),
    Cohere2 text model. The processor crops up to 4 tiles plus a thumbnail; "<image>" becomes
    "<|START_OF_IMG|>" + per tile "TILE_i" + 4 x "<|IMG_PATCH|>" ... + "<|END_OF_IMG|>"."""
    from transformers import AyaVisionConfig, AyaVisionForConditionalGeneration, AyaVisionProcessor, Cohere2Config, GotOcr2ImageProcessorPil

    folder = Path(folder)
    specials = ["<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>"]
    tok = _tokenizer(specials, {"image_token": "<image>"})
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7
    )
    text = Cohere2Config(**_TEXT, vocab_size=len(tok), sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    config = AyaVisionConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        downsample_factor=2,
        image_token_index=tok.convert_tokens_to_ids("<|IMG_PATCH|>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(AyaVisionForConditionalGeneration(config), folder)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 28, "width": 28}, crop_to_patches=True, min_patches=1, max_patches=4)
    AyaVisionProcessor(image_processor=image_processor, tokenizer=tok, patch_size=7, img_size=28, downsample_factor=2).save_pretrained(
        folder
    )
    return folder


PROMPTS["aya_vision"] = "Look: <image> Describe the picture in a few words"


def build_idefics2(folder) -> Path:
    """Idefics2: SigLIP-like tower (28 px, patch 7), a perceiver resampler to 8 latents per image, Mistral text model.
    The processor resizes every image to 28x28 (shortest = longest edge) without splitting: full tiles, no padding;
    "<image>" becomes "<fake_token_around_image>" + 8 x "<image>" + "<fake_token_around_image>"."""
    from transformers import Idefics2Config, Idefics2ForConditionalGeneration, Idefics2ImageProcessorPil, Idefics2Processor, MistralConfig

    folder = Path(folder)
    tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>"])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    perceiver = dict(
        hidden_size=64, resampler_n_latents=8, resampler_depth=2, resampler_n_heads=2, resampler_head_dim=16, num_key_value_heads=1
    )
    config = Idefics2Config(
        vision_config=vision,
        perceiver_config=perceiver,
        text_config=MistralConfig(**_TEXT, vocab_size=len(tok), sliding_window=None).to_dict(),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    _widen_and_save(Idefics2ForConditionalGeneration(config), folder)
    image_processor = Idefics2ImageProcessorPil(size={"shortest_edge": 28, "longest_edge": 28}, do_image_splitting=False)
    Idefics2Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=8).save_pretrained(folder)
    return folder


PROMPTS["idefics2"] = "Look: <image> Describe the picture in a few words"
