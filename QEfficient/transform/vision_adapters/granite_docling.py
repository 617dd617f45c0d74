"""Granite Docling: Idefics3's tiles (each tile a unit, a fixed number of image tokens) through a SigLIP-style tower
and a coarse connector (pixel shuffle, projection, fixed 2-D positions), plus DeepStack: chosen vision layers, each
through its own merger, added to the image tokens' hidden states after the first text layers (as Qwen3-VL's, whose
row layout and text-model wrapper this reuses). The processor's fine route (four times the tokens per tile, chosen
by a density router) is refused with that reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.idefics3 import Idefics3Adapter
from QEfficient.transform.vision_adapters.qwen3_vl import OneMaskTextModel, Qwen3VLAdapter


@dataclass(frozen=True)
class GraniteDoclingAdapter(Idefics3Adapter):
    nested_images: bool = True
    embedding_width = Qwen3VLAdapter.embedding_width
    image_token_rows = Qwen3VLAdapter.image_token_rows

    def tokens_per_unit(self, config) -> int:
        vc = config.vision_config
        return (vc.image_size // vc.patch_size) ** 2 // vc.scale_factor**2

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """[tiles, tokens, hidden * (1 + DeepStack layers)]: each tile's image tokens and its DeepStack features."""
        vision = hf.model.vision_model
        out = vision(pixel_values=pixel_values.to(vision.dtype), fine=False, return_dict=True)
        tiles = pixel_values.shape[0]
        parts = [out.pooler_output, *out.deepstack_features]
        return torch.cat([p.reshape(tiles, -1, p.shape[-1]) for p in parts], dim=-1)

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return OneMaskTextModel(hf.model.text_model), hf.lm_head, hf.config.text_config

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        if "tile_fine_mask" in inputs:
            raise ValueError(
                "Granite Docling's fine route (processor(..., fine_route=True)) is not supported: call the processor without it."
            )
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        real = np.asarray(inputs["pixel_attention_mask"]).reshape(-1).astype(bool)  # one flag per tile here
        tiles = pixels.reshape(-1, *pixels.shape[-3:])[real]
        return super(Idefics3Adapter, self).vision_inputs({"pixel_values": tiles}, img_size, config)
