"""Tiny random-weight vision-language models whose text model mixes recurrent layers with indexed sparse attention
(Qwen4-Exp's Gated DeltaNet + QSA), built as tests/vlm_fixtures_rec.py builds its own: the tiny BPE tokenizer plus
each architecture's special tokens, seeded weights widened by 4.0, PIL image processors saved next to the model.
``PROMPTS`` gives each ``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py picks
both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, Qwen2VLConfig

from tests.tiny_models import SWEEP_OVERRIDES
from tests.vlm_family_fixtures_more import QWEN3_VL_VISION, QWEN_PROMPT
from tests.vlm_fixtures import _TEXT, _widen_and_save, build_qwen2_vl

PROMPTS: dict[str, str] = {}


def build_qwen4_exp(folder) -> Path:
    """Qwen4-Exp: Qwen3.5's tiny model (Qwen2-VL's tokenizer and processor, Qwen3-VL's tower without DeepStack,
    interleaved 3-D rotary on half of each head) with the decoder sweep's tiny Qwen4-Exp text model: a Gated
    DeltaNet layer then a QSA-indexed attention layer, 4 hyper-connection streams, MoE layers (4 experts, top 2).
    The indexer budget is widened from the decoder sweep's 64 to 128 keys so the image-text sweep's ctx_len
    (at least 96) stays inside the graph's context limit (indexer_budget + indexer_compress_ratio - 1 = 131)."""
    folder = Path(folder)
    source = Qwen2VLConfig.from_pretrained(build_qwen2_vl(folder))
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1], "partial_rotary_factor": 0.5}
    text = dict(
        **_TEXT,
        **{**SWEEP_OVERRIDES["qwen4_exp_text"], "indexer_budget": 128},
        vocab_size=source.text_config.vocab_size,
        head_dim=16,
        rope_parameters=rope,
        layer_types=["linear_attention", "indexed_attention"],
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=32,
    )
    ids = {k: getattr(source, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")}
    config = AutoConfig.for_model("qwen4_exp", text_config=text, vision_config=QWEN3_VL_VISION, **ids)
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)
    return folder


PROMPTS["qwen4_exp"] = QWEN_PROMPT
