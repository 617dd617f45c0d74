"""Qwen2.5-VL: Qwen2-VL's layout plus windowed attention in most vision blocks.

HF reorders the patches so that each window's are contiguous, attends within windows (within whole
images in ``fullatt_block_indexes``), and restores the order after the merger. Here the host does the
reordering of the inputs (pixels and positions: the patch embedding works patch by patch, so
reordering before it is the same), and gives the graph the window and image of every patch and the
inverse order for the merged tokens, so one graph serves every image size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter, _vision_block


@dataclass(frozen=True)
class Qwen2_5_VLAdapter(Qwen2VLAdapter):
    per_patch_inputs = ("pixel_values", "vision_position_ids", "image_segment")  # reordered by window (graph_inputs)
    # from the vision config (for_config): the host computes the windows
    spatial_merge_size: int = 2
    window_size: int = 112
    patch_size: int = 14

    def for_config(self, config) -> Qwen2_5_VLAdapter:
        vc = config.vision_config
        return dataclasses.replace(self, spatial_merge_size=vc.spatial_merge_size, window_size=vc.window_size, patch_size=vc.patch_size)

    def vision_tower(self, hf: nn.Module) -> nn.Module:
        return hf.model.visual

    def video_time_intervals(self, inputs, config, videos: int) -> np.ndarray:
        """HF's rule: ``tokens_per_second`` x each video's ``second_per_grid_ts`` (1 when the processor gives none), in float32."""
        seconds = inputs.get("second_per_grid_ts")
        seconds = np.ones(videos, np.float32) if seconds is None else np.asarray(seconds, np.float32).reshape(-1)
        return np.float32(config.vision_config.tokens_per_second) * seconds

    def vision_geometry_inputs(self, grid: np.ndarray) -> dict[str, np.ndarray]:
        from transformers.vision_utils import get_vision_window_index

        if not len(grid):  # no image (HF's helper needs at least one)
            return {name: np.zeros(0, np.int64) for name in ("_order", "window_segment", "window_reverse")}
        order, cu_windows = get_vision_window_index(torch.as_tensor(grid), self.spatial_merge_size, self.window_size, self.patch_size)
        order = order.numpy().astype(np.int64)
        sizes = np.diff(cu_windows.numpy())
        return {
            "_order": order,  # merged-token order that makes windows contiguous
            "window_segment": np.repeat(np.arange(len(sizes)), sizes).astype(np.int64),
            "window_reverse": np.argsort(order).astype(np.int64),
        }

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        example = super().vision_example(config, img_size)
        grid = np.array([[1, 4, 4], [1, 2, 6]])
        adapter = self.for_config(config)
        geometry = adapter.vision_geometry_inputs(grid)
        return {
            **example,
            "window_segment": torch.as_tensor(geometry["window_segment"]),
            "window_reverse": torch.as_tensor(geometry["window_reverse"]),
        }

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {**super().vision_axes(), "window_segment": {0: "num_patches"}, "window_reverse": {0: "num_image_tokens"}}

    def image_features(
        self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None, window_segment=None, window_reverse=None
    ) -> torch.Tensor:
        visual = self.vision_tower(hf)
        x = visual.patch_embed(pixel_values.to(visual.patch_embed.proj.weight.dtype))
        cos, sin = visual.rotary_pos_emb(x, vision_position_ids)
        same_image = image_segment[:, None] == image_segment[None, :]
        same_window = window_segment[:, None] == window_segment[None, :]
        for i, block in enumerate(visual.blocks):
            x = _vision_block(block, x, cos, sin, same_image if i in visual.fullatt_block_indexes else same_window)
        return visual.merger(x)[window_reverse].unsqueeze(0)

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = super().graph_inputs(vision)
        geometry = self.vision_geometry_inputs(vision["_grid_thw"])
        unit = self.spatial_merge_size**2
        # reorder patches by window, in groups of the merge unit (a merged token's patches stay together)
        for name in self.per_patch_inputs:
            value = inputs[name]
            inputs[name] = np.ascontiguousarray(
                value.reshape(len(value) // unit, unit, *value.shape[1:])[geometry["_order"]].reshape(value.shape)
            )
        return {**inputs, "window_segment": geometry["window_segment"], "window_reverse": geometry["window_reverse"]}
