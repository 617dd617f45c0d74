"""PerceptionLM: Llava's layout with tiles as units ([images, tiles, 3, H, W] from the processor), the tower's CLS
dropped, and a projector that pools its MLP's output 2x2 (``projector_pooling_ratio``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class PerceptionLMAdapter(VisionLanguageAdapter):
    def tokens_per_unit(self, config) -> int:
        side = config.vision_config.image_size // config.vision_config.patch_size // config.projector_pooling_ratio
        return side * side

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        # HF's projector pools adaptively, which does not export with a dynamic number of tiles; on a grid the
        # ratio divides (checked) it is the mean of each ratio x ratio block
        features = hf.model.vision_tower(pixel_values, return_dict=True).last_hidden_state
        if hf.config.vision_use_cls_token:
            features = features[:, 1:]
        projector = hf.model.multi_modal_projector
        x = projector.linear_2(projector.gelu(projector.linear_1(features)))
        vc, ratio = hf.config.vision_config, hf.config.projector_pooling_ratio
        side = vc.image_size // vc.patch_size
        if side % ratio:
            raise ValueError(f"a {side}x{side} patch grid does not divide into {ratio}x{ratio} pooling blocks")
        blocks = x.reshape(-1, side // ratio, ratio, side // ratio, ratio, x.shape[-1])
        return blocks.mean(dim=(2, 4)).reshape(-1, (side // ratio) ** 2, x.shape[-1])

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        return super().vision_inputs({"pixel_values": pixels.reshape(-1, *pixels.shape[-3:])}, img_size, config)
