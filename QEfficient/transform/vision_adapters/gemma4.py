"""Gemma 4 (image-text): the processor cuts each image, aspect ratio kept, into at most ``max_soft_tokens x k^2``
patches padded to that count (padding at position (-1, -1)); the tower pools k x k patches and drops the padding,
so an image gives (real patches / k^2) soft tokens, one flat run of rows. The text model's per-layer inputs are
looked up from the ids with image tokens read as padding (HF's rule), not from the merged embeddings.

Gemma 4 unified has no tower: its processor merges k x k patches into one, and an embedder (norms, a dense
layer, a 2-D position table, a projection) turns each real merged patch into one soft token.

Where the config asks for it (``use_bidirectional_attention="vision"``), an image's tokens attend to each other
both ways, as Gemma 3's: the whole block, even where it is longer than a sliding layer's window (HF's rule:
causal and in the window, or in the same block)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class Gemma4Adapter(VisionLanguageAdapter):
    nested_images: bool = True
    flat_embeddings: bool = True  # the tower returns the real soft tokens of all its images as one run

    def default_img_size(self, config) -> int:
        return 0  # images arrive as padded patch lists: no fixed pixel size

    def for_config(self, config) -> Gemma4Adapter:
        # the larger models let each image's tokens attend to each other both ways (Gemma 3's blocks)
        return replace(self, bidirectional_images=getattr(config.text_config, "use_bidirectional_attention", None) == "vision")

    def pooled(self, config) -> int:
        """Patches per soft token: the tower's pooling kernel, squared."""
        return config.vision_config.pooling_kernel_size**2

    def patch_width(self, config) -> int:
        return 3 * config.vision_config.patch_size**2

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        k = int(self.pooled(config) ** 0.5)
        side = 3 * k  # a 3k x 3k grid of real patches, then k^2 padding patches
        grid = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="xy"), dim=-1).reshape(-1, 2)
        positions = torch.cat([grid, torch.full((k * k, 2), -1)])[None].repeat(2, 1, 1)
        return {"pixel_values": torch.zeros(2, positions.shape[1], self.patch_width(config)), "image_position_ids": positions}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {
            "pixel_values": {0: "num_images", 1: "num_patches"},
            "image_position_ids": {0: "num_images", 1: "num_patches"},
            "vision_embeds": {1: "image_tokens"},
        }

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor, image_position_ids: torch.Tensor) -> torch.Tensor:
        tokens = hf.model.vision_tower(pixel_values=pixel_values, pixel_position_ids=image_position_ids).last_hidden_state
        return hf.model.embed_vision(inputs_embeds=tokens)[None]

    def image_token_text_id(self, config) -> int | None:
        return config.text_config.pad_token_id  # HF embeds every multimodal token as padding

    def text_kwargs(
        self,
        base: nn.Module,
        input_ids: torch.Tensor,
        is_image: torch.Tensor,
        takes_row: torch.Tensor,
        prefill: torch.Tensor,
        with_images: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        if not getattr(base.config, "hidden_size_per_layer_input", None):
            return {}
        as_text = torch.where(is_image, torch.full_like(input_ids, base.config.pad_token_id), input_ids)
        return {"per_layer_inputs": base.get_per_layer_inputs(as_text)}

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        positions = np.asarray(inputs["image_position_ids"], dtype=np.int64)
        positions = positions.reshape(-1, *positions.shape[-2:])
        k2 = self.pooled(config)
        real = (positions != -1).all(axis=-1).sum(axis=1)
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        return {
            "pixel_values": np.ascontiguousarray(pixels.reshape(-1, *pixels.shape[-2:])),
            "image_position_ids": positions,
            "_tokens": (real // k2).astype(np.int64),
        }


@dataclass(frozen=True)
class Gemma4UnifiedAdapter(Gemma4Adapter):
    def pooled(self, config) -> int:
        return 1  # the processor merged the patches already: one soft token each

    def patch_width(self, config) -> int:
        return 3 * config.vision_config.model_patch_size**2

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor, image_position_ids: torch.Tensor) -> torch.Tensor:
        tokens = hf.model.embed_vision(pixel_values, image_position_ids).pooler_output
        return tokens[(image_position_ids != -1).all(dim=-1)][None]
