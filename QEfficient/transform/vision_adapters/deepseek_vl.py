"""DeepSeek-VL: SigLIP tower and an MLP aligner (HF's ``get_image_features``), Llama text model; a fixed
number of image tokens per image. The hybrid adds a high-resolution SAM-style tower whose features the
aligner joins to SigLIP's (its own pixels, ``high_res_pixel_values``, one image each)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class DeepseekVLAdapter(VisionLanguageAdapter):
    def tokens_per_unit(self, config) -> int:
        return (config.vision_config.image_size // config.vision_config.patch_size) ** 2


@dataclass(frozen=True)
class DeepseekVLHybridAdapter(DeepseekVLAdapter):
    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        side = config.high_res_vision_config.image_size
        return {**super().vision_example(config, img_size), "high_res_pixel_values": torch.zeros(2, 3, side, side)}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {**super().vision_axes(), "high_res_pixel_values": {0: "num_images"}}

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor, high_res_pixel_values: torch.Tensor = None) -> torch.Tensor:
        return hf.model.get_image_features(pixel_values, high_res_pixel_values, return_dict=True).pooler_output

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        high_res = np.ascontiguousarray(np.asarray(inputs["high_res_pixel_values"], dtype=np.float32))
        return {**super().vision_inputs(inputs, img_size, config), "high_res_pixel_values": high_res}
