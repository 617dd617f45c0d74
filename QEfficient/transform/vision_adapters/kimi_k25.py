"""Kimi K2.5: a MoonViT tower on patches of any image size (Qwen2-VL's packing: 2-D rotary positions, attention
within each image) with a learned position table resampled bicubically to each image's grid; 2x2 neighbouring
patches merged by a LayerNorm + MLP projector; DeepSeek-V3 text model with plain 1-D positions.

The host gives the graph, besides Qwen2-VL's inputs, each patch's taps into the position table (transformers'
own helper) and the order that groups each 2x2 block's patches (the processor gives them in raster order;
HF scatters them into blocks), so one graph serves every image size."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary, Qwen2VLAdapter, _vision_block


def _block_order(grid: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """[N]: patch indices (raster order within each image) that list each kh x kw block's patches together."""
    kh, kw = kernel
    order, start = [], 0
    for _, h, w in grid:
        index = np.arange(h * w).reshape(h // kh, kh, w // kw, kw).transpose(0, 2, 1, 3).reshape(-1)
        order.append(index + start)
        start += h * w
    return np.concatenate(order + [np.zeros(0, np.int64)]).astype(np.int64)


@dataclass(frozen=True)
class KimiK25Adapter(CachePositionsRotary, Qwen2VLAdapter):
    merge_kernel: tuple[int, int] = (2, 2)  # from the vision config (for_config): the host orders the blocks

    def for_config(self, config) -> KimiK25Adapter:
        return dataclasses.replace(self, merge_kernel=tuple(config.vision_config.merge_kernel_size))

    def image_token_text_id(self, config) -> int | None:
        return 0  # HF embeds every multimodal token as id 0

    def _vision(self, grid: torch.Tensor, config) -> dict[str, np.ndarray]:
        from transformers.vision_utils import get_vision_interpolation_indices_and_weights, get_vision_position_ids

        vc = config.vision_config
        indices, weights = get_vision_interpolation_indices_and_weights(grid, vc.pos_emb_height, mode="bicubic", align_corners=False)
        return {
            "vision_position_ids": get_vision_position_ids(grid, spatial_merge_size=1).numpy().astype(np.int64),
            "interp_indices": indices.numpy().astype(np.int64),
            "interp_weights": weights.numpy().astype(np.float32),
        }

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        p = config.vision_config.patch_size
        grid = np.array([[1, 4, 4], [1, 2, 6]])  # two images of different grids
        n = int(grid.prod(-1).sum())
        example = {
            "pixel_values": torch.zeros(n, 3, p, p),
            **{k: torch.as_tensor(v) for k, v in self._vision(torch.as_tensor(grid), config).items()},
            "image_segment": torch.repeat_interleave(torch.arange(2), torch.as_tensor(grid.prod(-1))),
        }
        return {**example, "block_order": torch.as_tensor(_block_order(grid, config.vision_config.merge_kernel_size))}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        patches = {0: "num_patches"}
        names = ("pixel_values", "vision_position_ids", "interp_indices", "interp_weights", "image_segment", "block_order")
        return {**dict.fromkeys(names, patches), "vision_embeds": {1: "num_image_tokens"}}

    def image_features(
        self,
        hf: nn.Module,
        pixel_values,
        vision_position_ids=None,
        interp_indices=None,
        interp_weights=None,
        image_segment=None,
        block_order=None,
    ) -> torch.Tensor:
        tower = hf.model.vision_tower
        embed = tower.patch_embed
        x = embed.proj(pixel_values.to(embed.proj.weight.dtype)).view(pixel_values.shape[0], -1)
        table = embed.pos_emb.position_embeddings.flatten(0, 1)
        x = x + (table[interp_indices] * interp_weights[:, :, None].to(table.dtype)).sum(1).to(x.dtype)  # images: no time term
        cos, sin = tower.rotary_emb(x, vision_position_ids)
        same_image = image_segment[:, None] == image_segment[None, :]
        for block in tower.layers:
            x = _vision_block(block, x, cos, sin, same_image)
        kh, kw = tower.merge_kernel_size
        pooled = tower.final_layernorm(x)[block_order].view(-1, kh * kw, x.shape[-1])
        return hf.model.mm_projector(pooled).reshape(1, -1, hf.config.text_config.hidden_size)

    # --- host side -----------------------------------------------------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        grid = torch.as_tensor(np.asarray(inputs["image_grid_thw"]))
        if (grid[:, 0] != 1).any():
            raise ValueError("Kimi K2.5 here takes images (one frame each), not video.")
        kh, kw = config.vision_config.merge_kernel_size
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(inputs["pixel_values"], dtype=np.float32)),
            **self._vision(grid, config),
            "_grid_thw": grid.numpy().astype(np.int64),
            "_tokens": (grid[:, 1:].prod(-1) // (kh * kw)).numpy().astype(np.int64),
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = super().graph_inputs(vision)
        return {**inputs, "block_order": _block_order(vision["_grid_thw"], self.merge_kernel)}
