"""Tiny random-weight vision-language models whose text model mixes recurrent layers with indexed sparse attention
(Qwen4-Exp's Gated DeltaNet + QSA, GLM-5.3-Flash's Kimi delta attention + pooled DSA), built as
tests/vlm_fixtures_rec.py builds its own: the tiny BPE tokenizer plus each architecture's special tokens, seeded
weights widened by 4.0, PIL image processors saved next to the model. ``PROMPTS`` gives each
``build_<model_type>``'s prompt with its image placeholder; tests/image_text_sweep.py picks both up."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, Qwen2VLConfig
from transformers.models.glm5_next.image_processing_pil_glm5_next import Glm5NextImageProcessorPil
from transformers.models.glm5_next.processing_glm5_next import Glm5NextProcessor

from tests.tiny_models import SWEEP_OVERRIDES
from tests.vlm_family_fixtures_more import QWEN3_VL_VISION, QWEN_PROMPT
from tests.vlm_fixtures import _TEXT, _tokenizer, _widen_and_save, build_qwen2_vl

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


class TinyGlm5NextProcessor(Glm5NextProcessor):
    """Glm5NextProcessor without its video processor (torchvision, not installed here): its image half as is;
    registered by name, as TinyGlm4vProcessor."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


AutoProcessor.register("tiny_glm5_next_processor", TinyGlm5NextProcessor, exist_ok=True)


def build_glm5_next(folder) -> Path:
    """GLM-5.3-Flash: GLM-OCR's tiny tower (2 blocks, patch 7, merge 2, no position table) with clamped SwiGLU MLPs
    and merger; a Kimi delta attention layer then two NoPE multi-latent attention layers, the first with the pooled
    DSA indexer (pools of 4, the top 8 keys: 2 pools and the tail; 16 indexer heads, as tests/tiny_models.py's
    _DSA), the second reusing its selection; 4 hyper-connection streams, a dense then MoE feed-forwards (4 experts,
    top 2). GLM-5.3-Flash's PIL image processor, sized for 4 to 16 image tokens."""
    folder = Path(folder)
    names = ["<|begin_of_image|>", "<|end_of_image|>", "<|image|>", "<|begin_of_video|>", "<|end_of_video|>", "<|video|>"]
    tok = _tokenizer(names, {"image_token": "<|image|>", "video_token": "<|video|>"})
    ids = tok.convert_tokens_to_ids
    text = dict(
        **{**_TEXT, "num_key_value_heads": 4, "num_hidden_layers": 3},  # MLA: as many key/value heads as query heads
        vocab_size=len(tok),
        layer_types=["linear_attention", "indexed_attention", "indexed_attention"],
        mlp_layer_types=["dense", "sparse", "sparse"],
        indexer_types=["full", "full", "shared"],  # the last layer reuses the one before's selection
        q_lora_rank=24,
        kv_lora_rank=16,
        qk_nope_head_dim=16,
        qk_rope_head_dim=0,
        v_head_dim=16,
        n_routed_experts=4,
        n_shared_experts=1,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        index_topk=8,
        index_kpool=4,
        index_head_dim=16,
        index_n_heads=16,
        linear_num_heads=2,
        linear_head_dim=16,
    )
    vision = dict(
        depth=2,
        hidden_size=32,
        out_hidden_size=64,
        intermediate_size=64,
        projection_intermediate_size=64,
        num_heads=2,
        patch_size=7,
        image_size=28,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    config = AutoConfig.for_model(
        "glm5_next",
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image|>"),
        video_token_id=ids("<|video|>"),
        image_start_token_id=ids("<|begin_of_image|>"),
        image_end_token_id=ids("<|end_of_image|>"),
        video_start_token_id=ids("<|begin_of_video|>"),
        video_end_token_id=ids("<|end_of_video|>"),
    )
    torch.manual_seed(0)
    _widen_and_save(AutoModelForImageTextToText.from_config(config), folder)
    image_processor = Glm5NextImageProcessorPil(patch_size=7, temporal_patch_size=2, merge_size=2, min_image_tokens=4, max_image_tokens=16)
    TinyGlm5NextProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["glm5_next"] = "Look: <|begin_of_image|><|image|><|end_of_image|> Describe the picture in a few words"
