"""Tiny random-weight vision-language models whose text model carries recurrent state (Qwen3.5's Gated
DeltaNet, ...), built as tests/vlm_family_fixtures_more.py builds its own: the tiny BPE tokenizer plus each
architecture's special tokens, seeded weights widened by 4.0, PIL image processors saved next to the model.
Each hybrid text model has one recurrent layer, then one attention layer. ``PROMPTS`` gives each
``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py picks both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, Qwen2VLConfig

from tests.tiny_models import SWEEP_OVERRIDES
from tests.vlm_family_fixtures_more import QWEN_PROMPT
from tests.vlm_fixtures import _TEXT, _widen_and_save, build_qwen2_vl

PROMPTS: dict[str, str] = {}


def build_qwen3_5(folder, *, model_type: str = "qwen3_5") -> Path:
    """Qwen3.5: Qwen2-VL's tiny tokenizer and processor; Qwen3-VL's tiny vision tower without DeepStack (3 blocks,
    patch 7, merge 2, a 4x4 learned position table); a Gated DeltaNet layer then an attention layer, interleaved
    3-D rotary on half of each head. ``model_type="qwen3_5_moe"``: MoE layers (4 experts, top 2)."""
    folder = Path(folder)
    source = Qwen2VLConfig.from_pretrained(build_qwen2_vl(folder))
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1], "partial_rotary_factor": 0.5}
    text = dict(
        **_TEXT,
        **SWEEP_OVERRIDES["qwen3_5_text"],
        vocab_size=source.text_config.vocab_size,
        head_dim=16,
        rope_parameters=rope,
        layer_types=["linear_attention", "full_attention"],
    )
    if model_type == "qwen3_5_moe":
        text.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32)
    vision = dict(
        depth=3,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        patch_size=7,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=_TEXT["hidden_size"],
        num_position_embeddings=16,
    )
    ids = {k: getattr(source, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")}
    config = AutoConfig.for_model(model_type, text_config=text, vision_config=vision, **ids)
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)
    return folder


def build_qwen3_5_moe(folder) -> Path:
    return build_qwen3_5(folder, model_type="qwen3_5_moe")


PROMPTS["qwen3_5"] = PROMPTS["qwen3_5_moe"] = QWEN_PROMPT
