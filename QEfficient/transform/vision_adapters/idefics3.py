"""Idefics3 (SmolVLM v1 checkpoints use it too): each image is cut into tiles plus a global view by
the processor; every tile goes through the SigLIP tower and the pixel-shuffle connector on its own
and gives the same number of image tokens. The language model is Llama.

Units are tiles: the processor pads each prompt's tiles to the batch's longest with all-zero tiles,
which the host drops (HF's rule: a tile whose every value is 0 is padding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class Idefics3Adapter(VisionLanguageAdapter):
    nested_images: bool = True

    shuffle_factor = "scale_factor"  # the config's name for the connector's pixel-shuffle factor

    def tokens_per_unit(self, config) -> int:
        side = config.vision_config.image_size // config.vision_config.patch_size
        return side * side // getattr(config, self.shuffle_factor) ** 2

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        # Real tiles are full (never padded inside): no patch mask, and each patch's position is its
        # index, which is what the tower's bucketing of fractional coordinates gives for a full tile
        # (that bucketing does not export).
        tower = hf.model.vision_model
        embeds = tower.embeddings
        x = embeds.patch_embedding(pixel_values.to(tower.dtype)).flatten(2).transpose(1, 2)
        x = x + embeds.position_embedding(torch.arange(x.shape[1], device=x.device))
        hidden = tower.post_layernorm(tower.encoder(inputs_embeds=x, attention_mask=None).last_hidden_state)
        return self.connect(hf, hidden)

    def connect(self, hf: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """The connector on full tiles' features (Idefics3: pixel shuffle and a projection)."""
        return hf.model.connector(hidden)

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return hf.model.text_model, hf.lm_head, hf.config.text_config

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        tiles = pixels.reshape(-1, *pixels.shape[-3:])
        tiles = tiles[(tiles != 0).any(axis=(1, 2, 3))]
        if "pixel_attention_mask" in inputs:
            mask = np.asarray(inputs["pixel_attention_mask"]).reshape(-1, *pixels.shape[-2:])
            real = mask[mask.any(axis=(1, 2))]
            if not real.all():
                raise ValueError("Tiles with padding inside (pixel_attention_mask) are not supported: let the processor resize images.")
        return super().vision_inputs({"pixel_values": tiles}, img_size, config)


@dataclass(frozen=True)
class ModernVBertAdapter(Idefics3Adapter):
    """ModernVBERT (under ColModernVBert retrievers): Idefics3's tiles through SigLIP and the pixel-shuffle connector, its
    factor named otherwise; pages come as [pages, tiles, ...]. Not an image-text model: only retrievers use it."""

    shuffle_factor = "pixel_shuffle_factor"
    tiled_pages = True


@dataclass(frozen=True)
class Idefics2Adapter(Idefics3Adapter):
    """Idefics2: the same tower on full images, then a perceiver resampler to a fixed number of latents."""

    def tokens_per_unit(self, config) -> int:
        return int(config.perceiver_config.resampler_n_latents)

    def connect(self, hf: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        every_patch = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return hf.model.connector(hidden, attention_mask=every_patch)
