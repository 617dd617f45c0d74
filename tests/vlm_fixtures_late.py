"""Tiny random-weight image-text models for the sweep (step3p7, unlimited_ocr, muse_glimmer, idefics, ...), built as
tests/vlm_fixtures.py builds its own: the tiny BPE tokenizer plus each architecture's special tokens, seeded weights
widened by 4.0, image processors saved next to the model (tests/vlm_tiny_processors_late.py where HF's needs
torchvision). ``PROMPTS`` gives each ``build_<model_type>``'s prompt with its image placeholder;
tests/image_text_sweep.py picks both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForImageTextToText

from tests.vlm_family_fixtures_more import TINY_SAM
from tests.vlm_fixtures import _TEXT, _tokenizer, _widen_and_save
from tests.vlm_fixtures_a import _save
from tests.vlm_tiny_processors_late import (
    TinyMolmo2ImageProcessor,
    TinyMolmo2Processor,
    TinyMuseGlimmerImageProcessor,
    TinyMuseGlimmerProcessor,
    TinyMuseSparkProcessor,
    TinyStep3p7ImageProcessor,
    TinyStep3p7Processor,
    TinyUnlimitedOcrImageProcessor,
    TinyUnlimitedOcrProcessor,
)

PROMPTS: dict[str, str] = {}


def build_step3p7(folder) -> Path:
    """Step-3.7: a 2-layer ViT (64 px, patch 4: a 16x16 grid, 2-D axial rotary, layer scale), two stride-2
    convolutions (4x4 = 16 image tokens), a linear projector; Step-3.5 text model: a sliding-window layer with 2
    heads (window 8) and a full one with 4, per-head output gates, partial rotary on the sliding layer, a dense MLP
    then a MoE one (4 experts, top 2, a shared expert)."""
    folder = Path(folder)
    specials = ["<im_patch>", "<im_start>", "<im_end>", "<patch_start>", "<patch_end>", "<patch_newline>"]
    tok = _tokenizer(specials, {"image_token": "<im_patch>"})
    text = dict(
        **_TEXT,
        vocab_size=len(tok),
        head_dim=16,
        layer_types=["sliding_attention", "full_attention"],
        mlp_layer_types=["dense", "sparse"],
        sliding_window=8,
        num_sliding_attention_heads=2,
        partial_rotary_factors=[0.5, 1.0],
        rope_theta=[10000.0, 5000.0],
        n_routed_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        share_expert_dim=32,
    )
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=4, mlp_ratio=2.0)
    config = AutoConfig.for_model(
        "step3p7", text_config=text, vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<im_patch>"), tie_word_embeddings=False
    )
    _save(config, folder)
    TinyStep3p7Processor(image_processor=TinyStep3p7ImageProcessor(), tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["step3p7"] = "Look: <im_patch> Describe the picture in a few words"


_MUSE_TOKENS = ["<|patch|>", "<|image_start|>", "<|image_end|>", "<|video|>", "<|vid_frame_separator|>", "<|vid_start|>", "<|vid_end|>"]
_MUSE_VISION = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=7, pos_emb_height=4, pos_emb_width=4
)


def _save_muse(model_type: str, folder: Path, text: dict, processor_class, **extra) -> Path:
    tok = _tokenizer(_MUSE_TOKENS, {"image_token": "<|patch|>"})
    ids = tok.convert_tokens_to_ids
    config = AutoConfig.for_model(
        model_type,
        text_config=dict(**_TEXT, vocab_size=len(tok), head_dim=16, sliding_window=8, **text),
        vision_config=_MUSE_VISION,
        out_hidden_size=4 * 32,
        projector_hidden_size=64,
        image_token_id=ids("<|patch|>"),
        video_token_id=ids("<|video|>"),
        tie_word_embeddings=False,
        **extra,
    )
    _save(config, folder)
    processor_class(image_processor=TinyMuseGlimmerImageProcessor(), tokenizer=tok).save_pretrained(folder)
    return folder


def build_muse_glimmer(folder) -> Path:
    """Muse Glimmer: a 2-layer ViT (patch 7, two temporal slots, 2-D axial rotary, a 4x4 position table resampled
    bilinearly to each image's grid; layer 0 attends within windows of 4x4 patches, layer 1 within the image), 2x2
    patches folded into channels, an MLP adapter, a projection and a scaleless norm. Text model: a sliding-window
    layer (window 8) and a NoPE full one, gated attention, logits scaled and soft-capped. At most 16 image tokens."""
    return _save_muse("muse_glimmer", Path(folder), {}, TinyMuseGlimmerProcessor)


PROMPTS["muse_glimmer"] = "Look: <|patch|> Describe the picture in a few words"


def build_muse_spark(folder) -> Path:
    """Muse Spark, images only: Muse Glimmer's tower, adapter and processor (its audio tower is built, a tiny one, and
    left out of image prompts); text model as Muse Glimmer's with MoE layers (4 experts, top 2, a projection into
    and out of the experts, a norm after each expert) and residual gates."""
    text = dict(moe_intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, moe_hidden_size=32)
    audio = dict(patch_sizes=[4, 2], hidden_sizes=[16, 32], depths=[1, 1], num_hidden_layers=2, out_hidden_size=64)
    return _save_muse("muse_spark", Path(folder), text, TinyMuseSparkProcessor, audio_config=audio)


PROMPTS["muse_spark"] = "Look: <|patch|> Describe the picture in a few words"


def build_idefics(folder) -> Path:
    """IDEFICS: a 2-layer CLIP-style tower (28 px, patch 7), a 1-layer Perceiver resampler to 4 latents, a gated
    cross-attention block (query/key norms, vector gates) before each of the 2 decoder layers; "<image>" and
    "<fake_token_around_image>" are the decoupled embedding's and head's additional tokens, as in IDEFICS' tokenizer."""
    from transformers import IdeficsConfig, IdeficsImageProcessorPil, IdeficsProcessor

    folder = Path(folder)
    tok = _tokenizer(["<fake_token_around_image>", "<image>"], {"image_token": "<image>"})
    text = {k: v for k, v in _TEXT.items() if k != "num_key_value_heads"}
    vision = dict(embed_dim=32, image_size=28, patch_size=7, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    perceiver = dict(use_resampler=True, resampler_n_latents=4, resampler_depth=1, resampler_n_heads=2, resampler_head_dim=16)
    config = IdeficsConfig(
        **text,
        vocab_size=len(tok) - 2,
        additional_vocab_size=2,
        use_resampler=True,
        perceiver_config=perceiver,
        vision_config=vision,
        qk_layer_norms=True,
        alpha_type="vector",
        alpha_initializer="normal",
        alphas_initializer_range=0.5,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    _save(config, folder)
    IdeficsProcessor(image_processor=IdeficsImageProcessorPil(image_size=28), tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["idefics"] = "Describe the picture in a few words"  # the processor puts the image before the text


def build_unlimited_ocr(folder) -> Path:
    """Unlimited OCR: a 2-layer SAM-style tower (64 px, patch 4) whose neck and two stride-2 convolutions give a 4x4
    map, the patch grid of a 2-layer CLIP-style encoder (its 4x4 position table); both concatenated, projected, a
    newline after each row and a view separator: 21 image tokens. DeepSeek-V2-style MoE text model (multi-head
    attention): a reference sliding-window layer (window 2: the whole prompt, then the last 2 tokens) and a full one."""
    folder = Path(folder)
    tok = _tokenizer(["<image>"], {"image_token": "<image>"})
    # SAM's weights start at std 1e-10 (its initializer_range): at 0.02 its features depend on the image
    sam = {**TINY_SAM, "image_size": 64, "downsample_channels": [32, 48], "initializer_range": 0.02}
    encoder = dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    text = dict(
        **_TEXT,
        vocab_size=len(tok),
        n_routed_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        n_shared_experts=1,
        mlp_layer_types=["dense", "sparse"],
        layer_types=["reference_sliding_attention", "full_attention"],
        sliding_window=2,
    )
    text["num_key_value_heads"] = text["num_attention_heads"]
    config = AutoConfig.for_model(
        "unlimited_ocr",
        vision_config={"sam_config": sam, "encoder_config": encoder},
        text_config=text,
        image_token_id=tok.image_token_id,
        tie_word_embeddings=False,
    )
    _save(config, folder)
    TinyUnlimitedOcrProcessor(
        image_processor=TinyUnlimitedOcrImageProcessor(), tokenizer=tok, patch_size=4, downsample_ratio=4
    ).save_pretrained(folder)
    return folder


PROMPTS["unlimited_ocr"] = "Look: <image> Describe the picture in a few words"


_MOLMO2_TOKENS = [
    "<|image|>",
    "<im_patch>",
    "<im_col>",
    "<im_start>",
    "<low_res_im_start>",
    "<frame_start>",
    "<im_end>",
    "<frame_end>",
    "<im_low>",
    "<|video|>",
]


def build_molmo2(folder) -> Path:
    """Molmo 2: a 3-layer ViT on 28 px crops (patch 7: 16 patches, a position table each), a low-resolution view and
    up to 2 overlapping crops; features of its first and last layers pooled 2x2 by an attention layer, a SwiGLU
    projector, added to the "<im_patch>" embeddings; the image's tokens attend both ways at prefill. Text model
    with query/key norms; its special tokens are the embedding's additional rows, as in Molmo 2's tokenizer."""
    from transformers import Molmo2Config

    folder = Path(folder)
    tok = _tokenizer(_MOLMO2_TOKENS, {"image_token": "<|image|>", "video_token": "<|video|>"})
    ids = tok.convert_tokens_to_ids
    text = dict(**_TEXT, head_dim=16, vocab_size=len(tok) - len(_MOLMO2_TOKENS), additional_vocab_size=len(_MOLMO2_TOKENS))
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        image_size=[28, 28],
        patch_size=7,
    )
    adapter = dict(
        vision_feature_layer=[-1, 0],
        hidden_size=32,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=64,
        text_hidden_size=64,
    )
    config = Molmo2Config(
        text_config=text,
        vision_config=vision,
        adapter_config=adapter,
        image_start_token_id=ids("<im_start>"),
        low_res_image_start_token_id=ids("<low_res_im_start>"),
        image_end_token_id=ids("<im_end>"),
        image_patch_id=ids("<im_patch>"),
        frame_start_token_id=ids("<frame_start>"),
        frame_end_token_id=ids("<frame_end>"),
        image_col_id=ids("<im_col>"),
    )
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config)
    with torch.no_grad():  # the SwiGLU projector squares small random activations: widen it so images matter
        for weight in model.model.multi_modal_projector.parameters():
            weight.mul_(2.0)
    _widen_and_save(model, folder)
    image_processor = TinyMolmo2ImageProcessor(size={"height": 28, "width": 28}, patch_size=7, max_crops=2, overlap_margins=[1, 1])
    TinyMolmo2Processor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["molmo2"] = "Look: <|image|> Describe the picture in a few words"
