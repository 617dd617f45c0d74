"""Tiny random-weight Inkling image-text models, built as tests/vlm_fixtures.py builds its own: the tiny BPE
tokenizer plus each architecture's special tokens, seeded weights widened by 4.0, the PIL stand-in processors of
tests/vlm_tiny_processors_inkling.py saved next to the model. The text models are the decoder sweep's tiny ones
(tests/tiny_models.py: the sliding window, the relative-bias extent and the log scaling all act within the prompt).
``PROMPTS`` gives each ``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py picks
both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForImageTextToText
from transformers.models.inkling.feature_extraction_inkling import InklingFeatureExtractor

from tests.vlm_fixtures import _tokenizer, _widen_and_save
from tests.vlm_fixtures_b import _sweep_text
from tests.vlm_tiny_processors_inkling import (
    TinyInkling2ImageProcessor,
    TinyInkling2Processor,
    TinyInklingImageProcessor,
    TinyInklingProcessor,
)

PROMPTS: dict[str, str] = {}

IMAGE_TOKEN = "<|unused_200054|>"
_INKLING_TOKENS = [IMAGE_TOKEN, "<|unused_200053|>", "<|content_image|>", "<|content_audio_input|>"]


def _save(model_type: str, folder: Path, tok, vision: dict, **extra) -> None:
    text = _sweep_text(f"{model_type.removesuffix('_mm_model')}_text", len(tok))
    ids = tok.convert_tokens_to_ids
    vision = {**vision, "text_hidden_size": text["hidden_size"]}  # the projection's width (Inkling 2 checks it)
    config = AutoConfig.for_model(model_type, text_config=text, vision_config=vision, image_token_id=ids(IMAGE_TOKEN), **extra)
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)


def build_inkling_mm_model(folder) -> Path:
    """Inkling: 10x10 patches (a 40x50 image: 4 rows, 6 columns, the last all padding, as HF's cut makes it), four
    fold/projection layers (1 -> 5x5 -> 10x10 -> 2 temporal copies: the scales HF plans without scipy); a tiny
    audio tower (not used by image prompts)."""
    folder = Path(folder)
    tok = _tokenizer(_INKLING_TOKENS)
    ids = tok.convert_tokens_to_ids
    vision = dict(patch_size=10, temporal_patch_size=2, num_hidden_layers=4)
    audio = dict(n_mel_bins=4, mel_vocab_size=8)
    _save(
        "inkling_mm_model",
        folder,
        tok,
        vision,
        audio_config=audio,
        audio_token_id=ids("<|unused_200053|>"),
        image_bos_token_id=ids("<|content_image|>"),
        audio_bos_token_id=ids("<|content_audio_input|>"),
    )
    image_processor = TinyInklingImageProcessor(size={"height": 10, "width": 10})
    TinyInklingProcessor(feature_extractor=InklingFeatureExtractor(), image_processor=image_processor, tokenizer=tok).save_pretrained(
        folder
    )
    return folder


PROMPTS["inkling_mm_model"] = f"Look: <|content_image|>{IMAGE_TOKEN} Describe the picture in a few words"


def build_inkling2(folder, *, model_type: str = "inkling2") -> Path:
    """Inkling 2: a 2-layer ViT (patch 5, merge 2: 10x10 pixels per image token, a 40x50 image -> 4x5 tokens), a
    4x4 position table resampled to each grid, a class token per image. ``model_type="inkling2_loop"``: the
    decoder sweep's Loop text model (two middle layers run twice)."""
    folder = Path(folder)
    tok = _tokenizer([IMAGE_TOKEN])
    vision = dict(
        model_type="inkling2_vision",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        patch_size=5,
        spatial_merge_size=2,
        posemb_grid_size=4,
        projection_hidden_dim=64,
    )
    _save(model_type, folder, tok, vision)
    image_processor = TinyInkling2ImageProcessor(size={"height": 10, "width": 10})
    TinyInkling2Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def build_inkling2_loop(folder) -> Path:
    return build_inkling2(folder, model_type="inkling2_loop")


PROMPTS["inkling2"] = PROMPTS["inkling2_loop"] = f"Look: {IMAGE_TOKEN} Describe the picture in a few words"
