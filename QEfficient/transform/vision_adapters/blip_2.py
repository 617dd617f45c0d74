"""BLIP-2: a ViT, a Q-Former whose learned queries read the image (cross-attention), and a linear projection
into the text model (HF's ``get_image_features``); the processor puts one image token per query before
the prompt. OPT (or another causal) text model in ``language_model`` with its own head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class Blip2Adapter(VisionLanguageAdapter):
    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        return hf.get_image_features(pixel_values, return_dict=True).pooler_output

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return hf.language_model.model, hf.language_model.lm_head, hf.config.text_config

    def image_placeholder(self, processor) -> str:
        return ""  # the processor prepends the image tokens itself

    def tokens_per_unit(self, config) -> int:
        return int(config.num_query_tokens)


@dataclass(frozen=True)
class InstructBlipAdapter(Blip2Adapter):
    """InstructBLIP: BLIP-2's layout whose Q-Former also reads the prompt (its own tokens, per image)."""

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        return {
            **super().vision_example(config, img_size),
            "qformer_input_ids": torch.ones(2, 5, dtype=torch.int64),
            "qformer_attention_mask": torch.ones(2, 5, dtype=torch.int64),
        }

    def vision_axes(self) -> dict[str, dict[int, str]]:
        text_axes = {0: "num_images", 1: "qformer_len"}
        return {**super().vision_axes(), "qformer_input_ids": text_axes, "qformer_attention_mask": text_axes}

    def image_features(self, hf: nn.Module, pixel_values, qformer_input_ids=None, qformer_attention_mask=None) -> torch.Tensor:
        return hf.get_image_features(pixel_values, qformer_input_ids, qformer_attention_mask, return_dict=True).pooler_output

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vision = super().vision_inputs(inputs, img_size, config)
        ids = np.asarray(inputs["qformer_input_ids"]).astype(np.int64)
        mask = np.asarray(inputs.get("qformer_attention_mask", np.ones_like(ids))).astype(np.int64)
        if len(ids) != len(vision["pixel_values"]):
            raise ValueError("InstructBLIP's Q-Former reads each image's prompt: give one image per prompt.")
        return {**vision, "qformer_input_ids": ids, "qformer_attention_mask": mask}
