"""BLIP-2: a ViT, a Q-Former whose learned queries read the image (cross-attention), and a linear projection
into the text model (HF's ``get_image_features``); the processor puts one image token per query before
the prompt. OPT (or another causal) text model in ``language_model`` with its own head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
