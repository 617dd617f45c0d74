"""Tiny random-weight ERNIE-4.5-VL (ernie4_5_vl_moe): its MoE text model routes vision tokens (the image tokens and
their start/end tokens) to experts of their own. Built as tests/vlm_fixtures_b.py builds its models; ``PROMPTS`` gives
the builder's prompt with its image placeholder (tests/image_text_sweep.py picks both up)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoProcessor, Ernie4_5_VLMoeProcessor
from transformers.processing_utils import ProcessorMixin

from tests.vlm_fixtures import _TEXT, _tokenizer, _widen_and_save

PROMPTS: dict[str, str] = {}

_ERNIE_TOKENS = {
    "image_token": "<|IMAGE_PLACEHOLDER|>",
    "image_start_token": "<|IMAGE_START|>",
    "image_end_token": "<|IMAGE_END|>",
    "video_token": "<|VIDEO_PLACEHOLDER|>",
    "video_start_token": "<|VIDEO_START|>",
    "video_end_token": "<|VIDEO_END|>",
}


class TinyErnie4_5_VLMoeProcessor(Ernie4_5_VLMoeProcessor):
    """Ernie4_5_VLMoeProcessor with only the image processor and tokenizer: its video processor needs torchvision
    (not installed). It still adds ``moe_mm_token_type_ids`` (image tokens and their start/end tokens) as HF's does."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
        for name in _ERNIE_TOKENS:
            setattr(self, name, getattr(tokenizer, name))
            setattr(self, f"{name}_id", tokenizer.convert_tokens_to_ids(getattr(tokenizer, name)))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        if hasattr(ProcessorMixin, "_resolve_subprocessors"):  # transformers 5.25's loads a video processor unless given one
            kwargs.setdefault("video_processor", None)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        # HF's copies the video processor's font, and there is no video processor here
        return ProcessorMixin.save_pretrained(self, save_directory, push_to_hub, **kwargs)


AutoProcessor.register("tiny_ernie4_5_vl_moe_processor", TinyErnie4_5_VLMoeProcessor, exist_ok=True)


def build_ernie4_5_vl_moe(folder) -> Path:
    """ERNIE-4.5-VL: a 2-layer Qwen2-VL-like tower (patch 7, 2-D rotary, attention within each image), the resampler
    (2x2 spatial merge, an image's frame doubled for the temporal merge); a 3-layer MoE text model (one dense layer,
    then text and vision experts, 2 shared experts) with ERNIE's 3-D rotary. (40, 50) -> 42x56 px -> 6x8 patches -> 12
    tokens."""
    from transformers import Ernie4_5_VLMoeConfig, Ernie4_5_VLMoeForConditionalGeneration, Ernie4_5_VLMoeImageProcessorPil

    folder = Path(folder)
    tok = _tokenizer(list(_ERNIE_TOKENS.values()), _ERNIE_TOKENS)
    ids = {f"{name}_id": tok.convert_tokens_to_ids(token) for name, token in _ERNIE_TOKENS.items()}
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [3, 3, 2]}
    text = dict(_TEXT, num_hidden_layers=3, vocab_size=len(tok), head_dim=16, rope_parameters=rope, use_bias=False)
    text.update(moe_num_experts=4, moe_k=2, moe_intermediate_size=[32, 24], moe_num_shared_experts=2)
    vision_rope = {"rope_type": "axial", "rope_theta": 10000.0}
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=7, spatial_merge_size=2)
    vision["rope_parameters"] = vision_rope
    config = Ernie4_5_VLMoeConfig(vision_config=vision, text_config=text, tie_word_embeddings=False, **ids)
    torch.manual_seed(0)
    model = Ernie4_5_VLMoeForConditionalGeneration(config)
    with torch.no_grad():  # vision experts wider still, so the greedy tokens depend on which rows they get
        for layer in model.model.language_model.layers[1:]:
            layer.mlp.vision_moe.experts.down_proj.mul_(4.0)
    _widen_and_save(model, folder)
    size = {"shortest_edge": 14 * 14 * 4, "longest_edge": 14 * 14 * 16}
    image_processor = Ernie4_5_VLMoeImageProcessorPil(patch_size=7, merge_size=2, size=size)
    TinyErnie4_5_VLMoeProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


PROMPTS["ernie4_5_vl_moe"] = "Look: <|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|> Describe the picture in a few words"
