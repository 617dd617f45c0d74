"""Tiny image-text models whose text model is sparse attention (DSA): Dots 3 Note, HY-V4-VL. Built as tests/vlm_fixtures_b.py
builds its own (the tiny BPE tokenizer plus the special tokens, seeded weights widened by 4.0, PIL processors saved
next to the model); ``PROMPTS`` gives each ``build_<model_type>``'s prompt, tests/image_text_sweep.py picks both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoProcessor, Qwen2VLImageProcessorPil
from transformers.models.dots3_note.processing_dots3_note import Dots3NoteProcessor
from transformers.models.hy_v4_vl.processing_hy_v4_vl import HYV4VLProcessor
from transformers.processing_utils import ProcessorMixin

from tests.vlm_fixtures import _tokenizer, _widen_and_save
from tests.vlm_fixtures_b import _sweep_text

PROMPTS: dict[str, str] = {}

_DOTS3_TOKENS = ["<|imgpad|>", "<|video_pad|>", "<|audio_comp_pad|>", "<|img|>", "<|endofimg|>"]


class TinyDots3NoteProcessor(Dots3NoteProcessor):
    """Dots3NoteProcessor with its image processor and tokenizer only (its video processor needs torchvision, not
    installed; no audio): images and text."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token, self.audio_token = _DOTS3_TOKENS[:3]
        self.image_token_id, self.video_token_id, self.audio_token_id = tokenizer.convert_tokens_to_ids(_DOTS3_TOKENS[:3])
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


AutoProcessor.register("tiny_dots3_note_processor", TinyDots3NoteProcessor, exist_ok=True)


def build_dots3_note(folder) -> Path:
    """Dots 3 Note: a Qwen2-VL-style tower (patch 7, no temporal patches, q/k-normed heads, 2-D rotary, a dense then a
    routed-expert MLP block, RMS norm, 2x2 merger) and the Dots 3 Note text model as the decoder sweep shrinks it (DSA
    layers beside sliding-window MLA layers of a wider latent); its audio tower, tiny, is not used by images."""
    from transformers import Dots3NoteConfig, Dots3NoteForConditionalGeneration

    folder = Path(folder)
    tok = _tokenizer(_DOTS3_TOKENS)
    ids = tok.convert_tokens_to_ids
    text = _sweep_text("dots3_note_text", len(tok))
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        moe_intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        patch_size=7,
        spatial_merge_size=2,
        adapter_in_dim=32,
        adapter_out_dim=text["hidden_size"],
        adapter_merge_size=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        mlp_layer_types=["dense", "sparse"],  # the released tower: dense blocks, then routed-expert ones
    )
    audio = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, adapter_input_size=32)
    audio["adapter_out_dim"] = text["hidden_size"]
    config = Dots3NoteConfig(
        text_config=text,
        vision_config=vision,
        audio_config=audio,
        image_token_id=ids("<|imgpad|>"),
        video_token_id=ids("<|video_pad|>"),
        audio_token_id=ids("<|audio_comp_pad|>"),
    )
    torch.manual_seed(0)
    _widen_and_save(Dots3NoteForConditionalGeneration(config), folder)
    # Qwen2-VL's PIL processor with one frame a patch (the tower's patches have no temporal depth): 4 to 16 tokens
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=14 * 14 * 4, max_pixels=14 * 14 * 16, patch_size=7, temporal_patch_size=1, merge_size=2
    )
    TinyDots3NoteProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["dots3_note"] = "Look: <|img|><|imgpad|><|endofimg|> Describe the picture in a few words"


class TinyHYV4VLProcessor(HYV4VLProcessor):
    """HYV4VLProcessor with its image processor and tokenizer only (its video processor needs torchvision, not
    installed): images and text."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id, self.video_token_id = tokenizer.convert_tokens_to_ids([self.image_token, self.video_token])
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


AutoProcessor.register("tiny_hy_v4_vl_processor", TinyHYV4VLProcessor, exist_ok=True)


def build_hy_v4_vl(folder) -> Path:
    """HY-V4-VL: a 2-layer HunYuanVL-style ViT (patch 7, a 4x4 learned position table resampled with HF's shifted
    scale factor), its merger (2x2 convolution, 1x1 to the text width, a newline column) and the HY-V4-VL text model
    as the decoder sweep shrinks it (hyper-connected DSA layers, a dense then a MoE MLP) with 3-D rotary sections
    (2, 1, 1) over its 4 rotary pairs; the PIL processor gives the sweep's 40x50 image a 3x4 merged grid (+ a newline per row)."""
    from transformers import HYV4VLConfig, HYV4VLForConditionalGeneration, HYV4VLImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer(["<|image_pad|>", "<|video_pad|>"])
    ids = tok.convert_tokens_to_ids
    text = _sweep_text("hy_v4_vl_text", len(tok))
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        patch_size=7,
        max_image_size=28,
        out_hidden_size=text["hidden_size"],
    )
    config = HYV4VLConfig(text_config=text, vision_config=vision, image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"))
    torch.manual_seed(0)
    model = HYV4VLForConditionalGeneration(config)
    # sharper attention (the latents are normalised before the up-projections): else the greedy tokens ignore the image
    with torch.no_grad():
        for name, weight in model.model.language_model.named_parameters():
            if name.endswith(("q_a_layernorm.weight", "kv_a_layernorm.weight")):
                weight.mul_(3.0)
    _widen_and_save(model, folder)
    image_processor = HYV4VLImageProcessorPil(patch_size=7, merge_size=2, min_pixels=28 * 28, max_pixels=56 * 70)
    TinyHYV4VLProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["hy_v4_vl"] = "Look: <|image_pad|> Describe the picture in a few words"
