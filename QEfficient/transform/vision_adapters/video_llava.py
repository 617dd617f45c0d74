"""Video-LLaVA (images): Llava's layout with the tower named ``image_tower`` and the processor's pixels under
``pixel_values_images``; HF's own ``get_image_features`` keeps the number of images dynamic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.llava import LlavaAdapter


@dataclass(frozen=True)
class VideoLlavaAdapter(LlavaAdapter):
    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        return VisionLanguageAdapter.image_features(self, hf, pixel_values)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        pixels = inputs["pixel_values_images"] if "pixel_values_images" in inputs else inputs["pixel_values"]
        return super().vision_inputs({"pixel_values": pixels}, img_size, config)
