"""PaddleOCR-VL: Qwen2-VL's host side (any image size, 3-D rotary positions in the ERNIE-4.5 text model) with a
SigLIP-like tower: a learned position table resampled bilinearly to each image's grid, 2-D rotary over raster
patch positions, and a projector that merges 2x2 patches after the tower.

The host gives what depends on the grids: each patch's 4 table rows and weights (HF's own helper), and the order
that makes each 2x2 block's patches adjacent (the processor gives patches in raster order)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter
from QEfficient.transform.vision_adapters.video_llama_3 import _siglip_rotary_block


def _merge_order(grid: np.ndarray, merge: int) -> np.ndarray:
    """Patch rows in the projector's order: raster -> (t, h/m, w/m, m, m), HF's reshape, image after image."""
    orders, start = [np.zeros(0, np.int64)], 0
    for t, h, w in grid:
        raster = np.arange(t * h * w).reshape(t, h // merge, merge, w // merge, merge)
        orders.append(start + raster.transpose(0, 1, 3, 2, 4).reshape(-1))
        start += t * h * w
    return np.concatenate(orders).astype(np.int64)


def _patch_inputs(grid: np.ndarray, table_side: int) -> dict[str, np.ndarray]:
    """Each patch's raster position (2-D rotary) and its 4 position-table rows and weights (HF's own helper)."""
    from transformers.vision_utils import get_vision_interpolation_indices_and_weights, get_vision_position_ids

    g = torch.as_tensor(grid)
    index, weight = get_vision_interpolation_indices_and_weights(g, num_grid_per_side=table_side, mode="bilinear", align_corners=False)
    return {
        "vision_position_ids": get_vision_position_ids(g, 1).numpy().astype(np.int64),
        "pos_index": index.numpy().astype(np.int64),
        "pos_weight": weight.numpy().astype(np.float32),
    }


@dataclass(frozen=True)
class PaddleOCRVLAdapter(Qwen2VLAdapter):
    spatial_merge_size: int = 2  # from the vision config (for_config): the host orders the patches

    def for_config(self, config) -> PaddleOCRVLAdapter:
        return dataclasses.replace(self, spatial_merge_size=config.vision_config.spatial_merge_size)

    def _table_side(self, config) -> int:
        return config.vision_config.image_size // config.vision_config.patch_size

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        grid = np.array([[1, 4, 4], [1, 2, 6]])  # two images of different grids
        n = int(grid.prod(-1).sum())
        inputs = {
            **_patch_inputs(grid, self._table_side(config)),
            "image_segment": np.repeat(np.arange(2), grid.prod(-1)),
            "merge_order": _merge_order(grid, vc.spatial_merge_size),
        }
        pixels = torch.zeros(n, vc.num_channels, vc.patch_size, vc.patch_size)
        return {"pixel_values": pixels, **{k: torch.as_tensor(v) for k, v in inputs.items()}}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        patches = {0: "num_patches"}
        names = ("pixel_values", "image_segment", "vision_position_ids", "pos_index", "pos_weight", "merge_order")
        return {**{name: patches for name in names}, "vision_embeds": {1: "num_image_tokens"}}

    def image_placeholder(self, processor) -> str:
        return f"<|IMAGE_START|>{processor.image_token}<|IMAGE_END|>"

    def image_features(
        self, hf: nn.Module, pixel_values, vision_position_ids=None, pos_index=None, pos_weight=None, image_segment=None, merge_order=None
    ) -> torch.Tensor:
        tower = hf.model.visual.vision_model
        embeddings = tower.embeddings
        x = embeddings.patch_embedding(pixel_values.to(embeddings.patch_embedding.weight.dtype)).flatten(1)
        x = x + (embeddings.position_embedding(pos_index) * pos_weight[:, :, None]).sum(1).to(x.dtype)
        cos, sin = tower.encoder.rotary_pos_emb(x, vision_position_ids)
        same_image = image_segment[:, None] == image_segment[None, :]
        for layer in tower.encoder.layers:
            x = _siglip_rotary_block(layer, x, cos, sin, same_image)
        projector = hf.model.projector
        x = projector.pre_norm(tower.post_layernorm(x))[merge_order]
        m1, m2 = projector.merge_kernel_size
        x = x.reshape(-1, m1 * m2 * x.shape[-1])
        return projector.linear_2(projector.act(projector.linear_1(x))).unsqueeze(0)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        grid = np.asarray(inputs["image_grid_thw"]).astype(np.int64)
        merge = config.vision_config.spatial_merge_size
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(inputs["pixel_values"], dtype=np.float32)),
            **_patch_inputs(grid, self._table_side(config)),
            "_grid_thw": grid,
            "_tokens": grid.prod(-1) // merge**2,
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # the projector's order numbers the patches of the images at hand
        return {**super().graph_inputs(vision), "merge_order": _merge_order(vision["_grid_thw"], self.spatial_merge_size)}
