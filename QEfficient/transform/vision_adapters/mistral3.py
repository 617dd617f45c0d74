"""Mistral 3 (Pixtral vision tower): images of any size, each cut into patches at its own resolution, 2-D
axial rotary positions in the tower, attention within each image, and a learned 2x2 patch merger.

As for Qwen2-VL, the host does everything that depends on the image sizes: it flattens each image's
patches [N, C*P*P] (the tower's stride-P convolution is then a matmul), gives every patch its (row,
column) position and its image, and lists the four patches of every merged token (``merge`` [M, 4], in
the order of HF's ``unfold``). One graph serves every image size and any number of images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class Mistral3Adapter(VisionLanguageAdapter):
    flat_embeddings = True
    vision_per_unit = True
    config: Any = field(default=None, compare=False)

    def for_config(self, config) -> Mistral3Adapter:
        if not isinstance(getattr(config, "vision_feature_layer", -1), int):
            raise ValueError("Mistral 3 with several vision_feature_layer values is not supported (HF's projector norm expects one).")
        return dataclasses.replace(self, config=config)

    def default_img_size(self, config) -> int:
        return 0  # any size: the processor picks each image's size

    def _sizes(self) -> tuple[int, int]:
        return int(self.config.vision_config.patch_size), int(self.config.spatial_merge_size)

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        adapter = self.for_config(config)
        fake = {"pixel_values": np.zeros((2, 3, 4 * adapter._sizes()[0], 6 * adapter._sizes()[0]), np.float32), "image_sizes": None}
        fake["image_sizes"] = np.array([[4, 6], [4, 4]]) * adapter._sizes()[0]
        return {k: torch.as_tensor(v) for k, v in adapter.graph_inputs(adapter.vision_inputs(fake, 0, config)).items()}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {
            "pixel_values": {0: "num_patches"},
            "vision_position_ids": {0: "num_patches"},
            "image_segment": {0: "num_patches"},
            "merge": {0: "num_image_tokens"},
            "vision_embeds": {1: "num_image_tokens"},
        }

    def vision_modules(self, hf: nn.Module) -> tuple[nn.Module, nn.Module]:
        """(Pixtral tower, projector with norm / patch_merger / linear_1 / act / linear_2)."""
        return hf.model.vision_tower, hf.model.multi_modal_projector

    def image_features(self, hf: nn.Module, pixel_values, vision_position_ids, image_segment, merge) -> torch.Tensor:
        tower, projector = self.vision_modules(hf)
        weight = tower.patch_conv.weight
        x = tower.ln_pre((pixel_values.to(weight.dtype) @ weight.reshape(weight.shape[0], -1).T)[None])
        position_embeddings = tower.patch_positional_embedding(x, vision_position_ids)
        same = image_segment[:, None] == image_segment[None, :]
        mask = torch.where(same, 0.0, torch.finfo(x.dtype).min).to(x.dtype)[None, None]
        states = [x]
        for layer in tower.transformer.layers:
            x = layer(x, mask, position_embeddings=position_embeddings)
            x = x[0] if isinstance(x, tuple) else x
            states.append(x)
        features = projector.norm(states[getattr(hf.config, "vision_feature_layer", -1)][0])
        grouped = features[merge].permute(0, 2, 1).reshape(merge.shape[0], -1)  # [M, d * m*m], unfold's order
        merged = projector.patch_merger.merging_layer(grouped)
        return projector.linear_2(projector.act(projector.linear_1(merged)))[None]

    # --- host side ------------------------------------------------------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        patch, m = self._sizes()
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        sizes = np.asarray(inputs["image_sizes"]).reshape(-1, 2)
        rows, positions, merges, patches, tokens = [], [], [], [], []
        for image, (height, width) in zip(pixels.reshape(len(sizes), *pixels.shape[-3:]), sizes):
            h, w = int(height) // patch, int(width) // patch
            grid = image[:, : h * patch, : w * patch].reshape(-1, h, patch, w, patch).transpose(1, 3, 0, 2, 4)
            rows.append(grid.reshape(h * w, -1))
            hh, ww = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
            positions.append(np.stack([hh.ravel(), ww.ravel()], -1))
            i, j, ki, kj = np.meshgrid(np.arange(h // m), np.arange(w // m), np.arange(m), np.arange(m), indexing="ij")
            merges.append(((i * m + ki) * w + j * m + kj).reshape(-1, m * m))
            patches.append(h * w)
            tokens.append((h // m) * (w // m))
        return {
            "pixel_values": np.ascontiguousarray(np.concatenate(rows + [np.zeros((0, pixels.shape[-3] * patch * patch), np.float32)])),
            "vision_position_ids": np.concatenate(positions + [np.zeros((0, 2), np.int64)]).astype(np.int64),
            "_merge": np.concatenate(merges + [np.zeros((0, m * m), np.int64)]).astype(np.int64),
            "_patches": np.array(patches, np.int64),
            "_tokens": np.array(tokens, np.int64),
        }

    def select_units(self, vision: dict[str, np.ndarray], units: np.ndarray) -> dict[str, np.ndarray]:
        def rows(counts: np.ndarray) -> np.ndarray:
            starts = np.r_[0, np.cumsum(counts)]
            return np.concatenate([np.arange(starts[u], starts[u + 1]) for u in units] + [np.zeros(0, np.int64)])

        patch_rows = rows(vision["_patches"])
        return {
            "pixel_values": vision["pixel_values"][patch_rows],
            "vision_position_ids": vision["vision_position_ids"][patch_rows],
            "_merge": vision["_merge"][rows(vision["_tokens"])],
            "_patches": vision["_patches"][units],
            "_tokens": vision["_tokens"][units],
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        patches, tokens = vision["_patches"], vision["_tokens"]
        first_patch = np.cumsum(patches) - patches
        return {
            "pixel_values": vision["pixel_values"],
            "vision_position_ids": vision["vision_position_ids"],
            "image_segment": np.repeat(np.arange(len(patches)), patches).astype(np.int64),
            "merge": (vision["_merge"] + np.repeat(first_patch, tokens)[:, None]).astype(np.int64),
        }
