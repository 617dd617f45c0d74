"""DeepSeek-OCR 2: a SAM-style tower (neck and two stride-2 convolutions), then a Qwen2-style encoder over its
features followed by learned queries (bidirectional over the image, causal over the queries; HF's query table is
chosen by the number of features), the queries' outputs projected into the DeepSeek-V2-style text model, and a
learned view separator after each image: a fixed number of image tokens per image (the global view).

The processor's local crops (``num_local_patches`` > 0) are refused with that reason."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


def _num_features(config) -> int:
    sam = config.vision_config.sam_config
    return (sam.image_size // sam.patch_size // 4) ** 2  # two stride-2 convolutions after the neck


@dataclass(frozen=True)
class DeepseekOcr2Adapter(VisionLanguageAdapter):
    local_crops_refusal = "DeepSeek-OCR 2's local crops are not supported: call the processor with crop_to_patches=False."

    def default_img_size(self, config) -> int:
        return int(config.vision_config.sam_config.image_size)

    def tokens_per_unit(self, config) -> int:
        return (144 if _num_features(config) <= 144 else 256) + 1  # the queries HF picks, and the view separator

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        tower = hf.model.vision_tower
        sam = tower.sam_encoder
        # SamVisionEncoder.forward resizes its position table to the patch grid when traced (an antialiased bicubic
        # resize, not exportable); images here are always the tower's size, where that resize is the identity
        hidden = sam.patch_embed(pixel_values.to(sam.patch_embed.projection.weight.dtype))
        if sam.pos_embed is not None:
            hidden = hidden + sam.pos_embed
        for layer in sam.layers:
            hidden = layer(hidden)
        hidden = sam.proj(sam.neck(hidden)).flatten(2).transpose(1, 2)
        patches = hidden.shape[1]
        queries = tower.query_768_resolution.weight if patches <= 144 else tower.query_1024_resolution.weight
        combined = torch.cat([hidden, queries.unsqueeze(0).expand(hidden.shape[0], -1, -1)], dim=1)
        encoded = tower.vision_encoder(inputs_embeds=combined, num_patches=patches).last_hidden_state[:, patches:]
        features = hf.model.multi_modal_projector(encoded)
        separator = hf.model.view_separator.to(features.dtype)[None, None].expand(features.shape[0], 1, -1)
        return torch.cat([features, separator], dim=1)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        if "pixel_values_local" in inputs or np.asarray(inputs.get("num_local_patches", [0])).any():
            raise ValueError(self.local_crops_refusal)
        return super().vision_inputs(inputs, img_size, config)
