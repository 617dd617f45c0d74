"""LFM2-VL: a SigLIP2 NaFlex tower (each image, or tile, at its own patch grid, padded to a fixed number of
patches with a mask; the position table is resized to each grid inside the graph), pixel unshuffle by
``downsample_factor`` and an MLP projector; an LFM2 text model. Units are the processor's images/tiles
(a large image: its grid of tiles, row-major, then its thumbnail at another grid), each giving
(rows / factor) x (cols / factor) image tokens; the vision graph returns every unit's tokens in one row
(their counts differ).

LFM2's short-convolution layers (``layer_types`` "conv") keep a convolution state, which the language graph
retains after the KV cache (transform/image_text.py), as for LFM3-VL's LFM3 text model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class Lfm2VlAdapter(VisionLanguageAdapter):
    flat_embeddings = True
    nested_images: bool = True  # the processor takes a batch's images per prompt

    def default_img_size(self, config) -> int:
        return 0  # any size: the processor chooses each image's grid

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        patches = 16  # two images of 4x4 and 2x4 patches, padded to 16
        mask = torch.ones(2, patches, dtype=torch.int64)
        mask[1, 8:] = 0
        return {
            "pixel_values": torch.zeros(2, patches, vc.num_channels * vc.patch_size**2),
            "pixel_attention_mask": mask,
            "spatial_shapes": torch.tensor([[4, 4], [2, 4]]),
        }

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {
            "pixel_values": {0: "num_images", 1: "num_patches"},
            "pixel_attention_mask": {0: "num_images", 1: "num_patches"},
            "spatial_shapes": {0: "num_images"},
            "vision_embeds": {1: "num_image_tokens"},
        }

    def image_features(self, hf: nn.Module, pixel_values, pixel_attention_mask=None, spatial_shapes=None) -> torch.Tensor:
        # HF's get_image_features up to its split into images (whose sizes the traced graph would fix)
        model = hf.model
        hidden = model.vision_tower(
            pixel_values=pixel_values, spatial_shapes=spatial_shapes, pixel_attention_mask=pixel_attention_mask, return_dict=True
        ).last_hidden_state
        num_images, num_patches, _ = hidden.shape
        factor = hf.config.downsample_factor
        widths = spatial_shapes[:, 1, None]
        blocks_per_row = widths // factor
        num_tokens = (spatial_shapes[:, 0, None] // factor) * blocks_per_row
        token = torch.arange(num_patches // factor**2)[None]
        block_offset = torch.arange(factor)
        rows = (token // blocks_per_row * factor)[..., None, None] + block_offset[:, None]
        columns = (token % blocks_per_row * factor)[..., None, None] + block_offset
        image_offset = torch.arange(num_images)[:, None, None, None] * num_patches
        patch_index = image_offset + rows * widths[..., None, None] + columns
        is_token = token < num_tokens
        patch_index = patch_index.masked_fill(~is_token[..., None, None], 0)
        patch_index = patch_index.flatten(0, 1).permute(1, 0, 2).reshape(factor, -1)
        features = model.multi_modal_projector(hidden.reshape(-1, hidden.shape[-1])[patch_index].unsqueeze(0))
        return features.reshape(-1, features.shape[-1])[is_token.flatten()].unsqueeze(0)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        shapes = np.asarray(inputs["spatial_shapes"]).astype(np.int64)
        factor = config.downsample_factor
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(inputs["pixel_values"], dtype=np.float32)),
            "pixel_attention_mask": np.asarray(inputs["pixel_attention_mask"]).astype(np.int64),
            "spatial_shapes": shapes,
            "_tokens": (shapes[:, 0] // factor) * (shapes[:, 1] // factor),
        }
