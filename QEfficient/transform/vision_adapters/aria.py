"""Aria: each image padded into a square (``pixel_mask`` marks the image part), an Idefics3 tower that attends only
to the patches of the image part and places them by bucketing fractional coordinates, and a projector whose learned
queries cross-attend to those patches.

The bucketing (``torch.bucketize`` under a patch mask) does not export, so the host computes what depends on the
mask with HF's own embedding rule: each patch's position-table row and whether it is in the image part."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


def _patch_mask_and_positions(hf_like_config, pixel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([N, P] bool, [N, P] int64): HF's patch mask (a patch with any image pixel) and its position ids (the
    steps of ``Idefics3VisionEmbeddings.forward``)."""
    patch, side = hf_like_config.patch_size, hf_like_config.image_size // hf_like_config.patch_size
    grid = pixel_mask.unfold(1, patch, patch).unfold(2, patch, patch)
    mask = grid.sum(dim=(-1, -2)) > 0  # [N, h, w]
    boundaries = torch.arange(1 / side, 1.0, 1 / side)
    steps_h, steps_w = 1.0 / mask[:, :, 0].sum(dim=1), 1.0 / mask[:, 0, :].sum(dim=1)
    coords_h = torch.clamp(torch.arange(mask.shape[1], dtype=torch.float32)[None] * steps_h[:, None], max=1.0 - 1e-6)
    coords_w = torch.clamp(torch.arange(mask.shape[2], dtype=torch.float32)[None] * steps_w[:, None], max=1.0 - 1e-6)
    buckets_h = torch.bucketize(coords_h, boundaries, right=True)
    buckets_w = torch.bucketize(coords_w, boundaries, right=True)
    positions = (buckets_h[:, :, None] * side + buckets_w[:, None, :]).reshape(len(mask), -1)
    flat = mask.reshape(len(mask), -1)
    return flat, torch.where(flat, positions, torch.zeros_like(positions))


@dataclass(frozen=True)
class AriaAdapter(VisionLanguageAdapter):
    def tokens_per_unit(self, config) -> int:
        patches = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
        return int(config.projector_patch_to_query_dict[patches])

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        pixel_mask = torch.ones(2, img_size, img_size, dtype=torch.int64)
        pixel_mask[1, :, img_size // 2 :] = 0  # one image of half the width: the mask matters
        mask, positions = _patch_mask_and_positions(config.vision_config, pixel_mask)
        return {"pixel_values": torch.zeros(2, 3, img_size, img_size), "patch_mask": mask, "patch_positions": positions}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {**super().vision_axes(), "patch_mask": {0: "num_images"}, "patch_positions": {0: "num_images"}}

    def image_features(self, hf: nn.Module, pixel_values, patch_mask=None, patch_positions=None) -> torch.Tensor:
        tower = hf.model.vision_tower
        embeds = tower.embeddings
        x = embeds.patch_embedding(pixel_values.to(embeds.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        x = x + embeds.position_embedding(patch_positions)
        # keys outside the image part are masked (HF's bidirectional mask over the patch mask)
        keys = torch.where(patch_mask, 0.0, torch.finfo(x.dtype).min).to(x.dtype)[:, None, None, :]
        hidden = [x]
        for layer in tower.encoder.layers:
            hidden.append(layer(hidden[-1], attention_mask=keys))
        return hf.model.multi_modal_projector(hidden[hf.config.vision_feature_layer], attn_mask=torch.logical_not(patch_mask))

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vision = super().vision_inputs(inputs, img_size, config)
        mask, positions = _patch_mask_and_positions(config.vision_config, torch.as_tensor(np.asarray(inputs["pixel_mask"])))
        return {**vision, "patch_mask": mask.numpy(), "patch_positions": positions.numpy().astype(np.int64)}
