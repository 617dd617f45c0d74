"""MiniMax-M3-VL: Qwen2-VL's host side (any image size, a patch grid per image, attention kept inside each image by
a mask) with a CLIP-like tower over Conv3d patches and partial 3-D (t, h, w) rotary, and a projector that maps each
patch, then fuses each 2x2 block (adjacent rows, the processor's order); 1-D positions in the text model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary, Qwen2VLAdapter
from QEfficient.transform.vision_adapters.video_llama_3 import _siglip_rotary_block


def _positions(grid: torch.Tensor, merge: int) -> torch.Tensor:
    from transformers.vision_utils import get_vision_position_ids

    return get_vision_position_ids(grid, merge, include_temporal=True)


@dataclass(frozen=True)
class MiniMaxM3VLAdapter(CachePositionsRotary, Qwen2VLAdapter):
    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        grid = torch.tensor([[1, 4, 4], [1, 2, 6]])  # two images of different grids
        return {
            "pixel_values": torch.zeros(int(grid.prod(-1).sum()), vc.num_channels * vc.temporal_patch_size * vc.patch_size**2),
            "vision_position_ids": _positions(grid, vc.spatial_merge_size),
            "image_segment": torch.repeat_interleave(torch.arange(2), grid.prod(-1)),
        }

    def image_placeholder(self, processor) -> str:
        return processor.image_token  # the processor adds the start/end tokens

    def image_features(self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None) -> torch.Tensor:
        from transformers.models.minimax_m3_vl.modeling_minimax_m3_vl import apply_rotary_pos_emb_vision

        tower = hf.model.vision_tower
        x = tower.embeddings(pixel_values.to(tower.embeddings.proj.weight.dtype)).to(tower.pre_layrnorm.weight.dtype)
        cos, sin = tower.rotary_emb(x, vision_position_ids)
        x = tower.pre_layrnorm(x)
        same_image = image_segment[:, None] == image_segment[None, :]
        for layer in tower.layers:
            x = _siglip_rotary_block(layer, x, cos, sin, same_image, apply_rotary_pos_emb_vision)
        return hf.model.multi_modal_projector(x).unsqueeze(0)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vision = super().vision_inputs(inputs, img_size, config)
        positions = _positions(torch.as_tensor(vision["_grid_thw"]), config.vision_config.spatial_merge_size)
        return {**vision, "vision_position_ids": positions.numpy().astype(np.int64)}
