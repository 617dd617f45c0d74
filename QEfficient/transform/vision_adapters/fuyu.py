"""Fuyu: no vision tower. The processor cuts each image into patches (as many as its size needs, one image token
each, rows ended by a newline token that is text) and one linear layer maps each patch into the Persimmon text
model. The vision graph takes every image's patches as rows, as Qwen2-VL's does; text positions are 1-D."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary, Qwen2VLAdapter


@dataclass(frozen=True)
class FuyuAdapter(CachePositionsRotary, Qwen2VLAdapter):
    graph_inputs = VisionLanguageAdapter.graph_inputs

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.zeros(7, config.num_channels * config.patch_size**2)}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "num_patches"}, "vision_embeds": {1: "num_image_tokens"}}

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        return hf.model.vision_embed_tokens(pixel_values.to(hf.model.vision_embed_tokens.weight.dtype)).unsqueeze(0)

    def image_placeholder(self, processor) -> str:
        return ""  # the processor puts each image's tokens before its prompt

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        patches = inputs["image_patches"] if "image_patches" in inputs else inputs["pixel_values"]  # the legacy name first
        per_image = list(patches) if isinstance(patches, list) or np.ndim(patches) == 3 else [patches]
        per_image = [np.asarray(p, dtype=np.float32).reshape(-1, np.shape(p)[-1]) for p in per_image]
        counts = np.array([len(p) for p in per_image], np.int64)
        return {
            "pixel_values": np.ascontiguousarray(np.concatenate(per_image)),
            "_grid_thw": np.stack([np.ones_like(counts), np.ones_like(counts), counts], axis=1),  # rows per image, for select_units
            "_tokens": counts,
        }
