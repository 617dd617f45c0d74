"""GLM-4.1V / GLM-4.5V / GLM-4.6V / GLM-OCR: Qwen2-VL's layout (any image size, 3-D rotary positions made on the host by the
same rule) with RMS norms, a learned position table resampled bicubically to each image's grid, and a 2x2
convolution plus a gated MLP as the merger.

The host gives each patch its sampling point in the position table (``pos_grid``, the normalised
(w, h) coordinates HF computes); the graph samples the table there (``grid_sample``), so one graph serves
every image size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter, _vision_block
from QEfficient.transform.vision_adapters.qwen3_vl import OneMaskTextModel


def _sampling_points(grid: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """[N, 2] (w, h) in [-1, 1]: where each patch (at grid ``positions`` [N, 2] = (h, w)) samples the table."""
    patches = grid.prod(-1)
    size = np.repeat(grid[:, 1:], patches, axis=0).astype(np.float32)  # (h, w) of each patch's image
    norm = (positions.astype(np.float32) + 0.5) / size * 2 - 1
    return np.ascontiguousarray(norm[:, ::-1])


@dataclass(frozen=True)
class Glm4vAdapter(Qwen2VLAdapter):
    position_table: bool = True  # a learned position table sampled per patch (not GLM-OCR's)

    def image_placeholder(self, processor) -> str:
        return f"<|begin_of_image|>{processor.image_token}<|end_of_image|>"

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        base, head, text_config = super().language(hf)
        return OneMaskTextModel(base), head, text_config

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        example = super().vision_example(config, img_size)
        if not self.position_table:
            return example
        grid = np.array([[1, 4, 4], [1, 2, 6]])
        points = _sampling_points(grid, example["vision_position_ids"].numpy())
        return {**example, "pos_grid": torch.as_tensor(points)}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {**super().vision_axes(), **({"pos_grid": {0: "num_patches"}} if self.position_table else {})}

    def image_features(self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None, pos_grid=None) -> torch.Tensor:
        visual = hf.model.visual
        x = visual.patch_embed(pixel_values.to(visual.patch_embed.proj.weight.dtype))
        cos, sin = visual.rotary_pos_emb(x, vision_position_ids)
        if self.position_table:  # GLM-OCR has neither the norm nor the table
            x = visual.post_conv_layernorm(x)
            table = visual.embeddings.position_embedding.weight
            side = int(table.shape[0] ** 0.5)
            table_2d = table.view(side, side, -1).permute(2, 0, 1).unsqueeze(0).float()
            sampled = F.grid_sample(table_2d, pos_grid[None, :, None, :], mode="bicubic", align_corners=False, padding_mode="border")
            x = x + sampled[0, :, :, 0].permute(1, 0).to(x.dtype)
        same_image = image_segment[:, None] == image_segment[None, :]
        for block in visual.blocks:
            x = _vision_block(block, x, cos, sin, same_image)
        x = visual.post_layernorm(x)
        merge = visual.spatial_merge_size
        x = visual.downsample(x.view(-1, merge, merge, x.shape[-1]).permute(0, 3, 1, 2)).view(-1, visual.config.out_hidden_size)
        return visual.merger(x).unsqueeze(0)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vision = super().vision_inputs(inputs, img_size, config)
        if not self.position_table:
            return vision
        return {**vision, "pos_grid": _sampling_points(vision["_grid_thw"], vision["vision_position_ids"])}
