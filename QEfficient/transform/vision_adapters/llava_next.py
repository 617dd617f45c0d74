"""LLaVA-NeXT (and Granite Vision, the same layout): any-resolution tiling. The processor cuts each image
into a base tile plus a grid of tiles chosen from ``image_grid_pinpoints``; HF projects every tile like
Llava, then lays the grid's features out spatially, crops the padding back to the image's aspect ratio
and ends each row of patches with the learned ``image_newline``.

That layout is a gather: the vision graph projects the tiles, appends ``image_newline`` as one more row,
and picks rows by ``gather`` [num_image_tokens]. The host computes ``gather`` with HF's own
``pack_image_features`` run on row numbers instead of features, so any image size and grid works with
one graph.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.llava import LlavaAdapter


@dataclass(frozen=True)
class LlavaNextAdapter(LlavaAdapter):
    flat_embeddings = True
    vision_per_unit = True  # a unit is an image with all its tiles
    config: Any = field(default=None, compare=False)  # the model config (for_config): grid pinpoints, tile size

    def for_config(self, config) -> LlavaNextAdapter:
        return dataclasses.replace(self, config=config)

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.zeros(3, 3, img_size, img_size), "gather": torch.arange(20)}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "num_tiles"}, "gather": {0: "num_image_tokens"}, "vision_embeds": {1: "num_image_tokens"}}

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor, gather: torch.Tensor) -> torch.Tensor:
        features = super().image_features(hf, pixel_values)  # [tiles, tokens, hidden]
        rows = torch.cat([features.reshape(-1, features.shape[-1]), hf.model.image_newline[None].to(features.dtype)])
        return rows[gather].unsqueeze(0)

    # --- host side ------------------------------------------------------------------------------
    def _tile_tokens(self) -> int:
        """Feature rows of one tile (the CLS row is kept with the "full" strategy)."""
        return self.tokens_per_unit(self.config)

    def _num_tiles(self, image_size, tiled: bool = True) -> int:
        from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

        if not tiled:
            return 1
        return image_size_to_num_patches(list(image_size), self.config.image_grid_pinpoints, self.config.vision_config.image_size)

    def _pack(self, rows: torch.Tensor, image_size) -> torch.Tensor:
        """HF's packing of one image's tile features [tiles, tokens, 1] (here: row numbers)."""
        from transformers.models.llava_next.modeling_llava_next import LlavaNextModel

        newline = torch.tensor([-1.0], dtype=rows.dtype)
        sizes = torch.as_tensor([list(image_size)])
        packed, _ = LlavaNextModel.pack_image_features(
            SimpleNamespace(config=self.config), [rows], sizes, self.config.vision_feature_select_strategy, image_newline=newline
        )
        return packed[0]

    def _layout(self, image_size, tiles: int) -> np.ndarray:
        """Rows of the image's tile features in HF's packed order (-1: image_newline)."""
        rows = torch.arange(tiles * self._tile_tokens(), dtype=torch.float64).reshape(tiles, -1, 1)
        return self._pack(rows, image_size)[:, 0].numpy().astype(np.int64)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        sizes = np.asarray(inputs["image_sizes"]).reshape(-1, 2)
        if pixels.shape[-1] != img_size or pixels.shape[-2] != img_size:
            raise ValueError(f"Tiles are {pixels.shape[-2]}x{pixels.shape[-1]} but the vision graph was compiled for img_size={img_size}.")
        pixels = pixels.reshape(len(sizes), -1, *pixels.shape[-3:]) if pixels.ndim == 5 else pixels[:, None]
        # several images in one prompt are not tiled (LLaVA-OneVision's batch_num_images)
        per_prompt = np.asarray(inputs["batch_num_images"]).reshape(-1) if "batch_num_images" in inputs else np.ones(len(sizes), np.int64)
        tiled = [n == 1 for n in per_prompt for _ in range(int(n))]
        tiles = [self._num_tiles(s, t) for s, t in zip(sizes, tiled)]
        layouts = [self._layout(s, n) for s, n in zip(sizes, tiles)]
        return {
            "pixel_values": np.ascontiguousarray(np.concatenate([p[:n] for p, n in zip(pixels, tiles)] + [pixels[:0, 0]])),
            "_tiles": np.array(tiles, np.int64),
            "_tokens": np.array([len(x) for x in layouts], np.int64),
            "_gather": np.concatenate(layouts + [np.zeros(0, np.int64)]),
        }

    def select_units(self, vision: dict[str, np.ndarray], units: np.ndarray) -> dict[str, np.ndarray]:
        def rows(counts: np.ndarray) -> np.ndarray:
            starts = np.r_[0, np.cumsum(counts)]
            return np.concatenate([np.arange(starts[u], starts[u + 1]) for u in units] + [np.zeros(0, np.int64)])

        return {
            "pixel_values": vision["pixel_values"][rows(vision["_tiles"])],
            "_gather": vision["_gather"][rows(vision["_tokens"])],
            "_tiles": vision["_tiles"][units],
            "_tokens": vision["_tokens"][units],
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # each image's rows are numbered within its own tiles: offset them, and point image_newline at the last row
        per_tile = self._tile_tokens()
        first_tile = np.cumsum(vision["_tiles"]) - vision["_tiles"]
        offsets = np.repeat(first_tile * per_tile, vision["_tokens"])
        local = vision["_gather"]
        newline = int(vision["_tiles"].sum()) * per_tile
        gather = np.where(local < 0, newline, local + offsets).astype(np.int64)
        return {"pixel_values": vision["pixel_values"], "gather": gather}
