"""Inkling (inkling_mm_model), Inkling 2 (inkling2) and Inkling 2 Loop (inkling2_loop): images only (Inkling's
audio tower is left out). The text models are the decoder path's (transform/adapters/inkling.py): every layer has
a KV cache and four retained conv states, which the language graph carries after the KV cache as the decoder
graph does; positions are the cache positions (the text models have no rotary, only a relative position bias).

* Inkling: each 40x40 patch of an image (two temporal copies) goes alone through a stack of space/time-to-depth
  folds and projections to one image token; nothing mixes patches. A unit is a patch (one token).
* Inkling 2 (and Loop, whose vision tower is Inkling 2's): a ViT over each image's patches with one class token in
  front of each image, a learned position table resampled to the image's grid (bilinear taps computed on the host
  by transformers' helper, as Qwen3-VL's), interleaved axial 2-D rotary (the class token at (0, 0), patches from
  (1, 1)), attention within each image (a mask from the image index, where HF splits the sequence per image), and
  a merger of 2x2 neighbouring patches per image token. The graph takes the patches flattened as HF's embedding
  flattens them, ordered as Qwen2-VL's (2x2 blocks adjacent), so Qwen2-VL's unit bookkeeping applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary, Qwen2VLAdapter, within_images


@dataclass(frozen=True)
class InklingVLAdapter(VisionLanguageAdapter):
    """Units are patches [2, P, P, 3] (HF's processor layout), one image token each."""

    def default_img_size(self, config) -> int:
        return int(config.vision_config.patch_size)

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        return {"pixel_values": torch.zeros(2, vc.temporal_patch_size, img_size, img_size, vc.num_channels)}

    def tokens_per_unit(self, config) -> int:
        return 1

    def image_placeholder(self, processor) -> str:
        return processor.image_bos_token + processor.image_token  # the image span's marker, then its tokens

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)  # [patches, T, P, P, C]
        if pixels.shape[2] != img_size or pixels.shape[3] != img_size:
            raise ValueError(f"patches are {pixels.shape[2]}x{pixels.shape[3]} but the vision graph was compiled for img_size={img_size}")
        return {"pixel_values": np.ascontiguousarray(pixels), "_tokens": np.ones(len(pixels), np.int64)}


def _grid_taps(grid: torch.Tensor, vc) -> dict[str, torch.Tensor]:
    """Per patch of images of patch grids ``grid`` [n, 3]: rotary positions (class tokens take (0, 0), so patches
    count from 1) and the bilinear taps into the position table (transformers' helpers)."""
    from transformers.vision_utils import get_vision_interpolation_indices_and_weights, get_vision_position_ids

    merge = vc.spatial_merge_size
    indices, weights = get_vision_interpolation_indices_and_weights(
        grid, num_grid_per_side=vc.posemb_grid_size, mode="bilinear", align_corners=False, spatial_merge_size=merge
    )
    return {"vision_position_ids": get_vision_position_ids(grid, merge) + 1, "interp_indices": indices, "interp_weights": weights}


@dataclass(frozen=True)
class Inkling2VLAdapter(CachePositionsRotary, Qwen2VLAdapter):
    """Graph inputs per patch: pixels [N, P*P*C], rotary positions, position-table taps, image index; and one
    image index per image (``image_ids``: how many class tokens)."""

    def image_placeholder(self, processor) -> str:
        return processor.image_token

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        grid = torch.tensor([[1, 4, 4], [1, 2, 6]])  # two images of different patch grids
        n = int(grid.prod(-1).sum())
        return {
            "pixel_values": torch.zeros(n, vc.num_channels * vc.patch_size**2),
            **_grid_taps(grid, vc),
            "image_segment": torch.repeat_interleave(torch.arange(2), grid.prod(-1)),
            "image_ids": torch.arange(2),
        }

    def vision_axes(self) -> dict[str, dict[int, str]]:
        patches = {0: "num_patches"}
        return {
            **super().vision_axes(),
            "interp_indices": patches,
            "interp_weights": patches,
            "image_ids": {0: "num_images"},
        }

    def image_features(
        self, hf: nn.Module, pixel_values, vision_position_ids, interp_indices, interp_weights, image_segment, image_ids
    ) -> torch.Tensor:
        from transformers.models.inkling2.modeling_inkling2 import apply_rotary_pos_emb_vision

        tower = hf.model.vision_tower
        emb = tower.embeddings
        x = emb.patch_embedding(pixel_values.to(emb.patch_embedding.weight.dtype))
        x = x + (emb.position_embedding(interp_indices) * interp_weights[:, :, None]).sum(1).to(x.dtype)
        # the class tokens first, then the patches: attention is masked per image and every other step is per token,
        # so this order gives what HF's (each image's class token in front of its patches) gives
        n_images = image_ids.shape[0]
        cls = (emb.class_embedding + emb.cls_position_embedding).to(x.dtype)[None].expand(n_images, -1)
        x = tower.pre_layernorm(torch.cat([cls, x]))
        positions = torch.cat([torch.zeros_like(vision_position_ids[:1]).expand(n_images, -1), vision_position_ids])
        cos, sin = tower.rotary_emb(x, positions)
        segment = torch.cat([image_ids, image_segment])
        same_image = segment[:, None] == segment[None, :]
        n = x.shape[0]
        for layer in tower.layers:
            attn = layer.self_attn
            h = layer.layernorm_before(x)
            q, k, v = (proj(h).view(n, attn.num_heads, attn.head_dim) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
            q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
            x = x + layer.lambda_1 * attn.out_proj(within_images(q, k, v, attn.scaling, same_image))
            x = x + layer.lambda_2 * layer.mlp(layer.layernorm_after(x))
        merge = tower.config.spatial_merge_size
        return tower.merger(x[n_images:].reshape(-1, merge**2 * x.shape[-1])).unsqueeze(0)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vc = config.vision_config
        merge, patch = vc.spatial_merge_size, vc.patch_size
        pixels = np.asarray(inputs["pixel_values"], np.float32)  # [tokens, P*merge, P*merge, C]
        channels = pixels.shape[-1]
        # HF's embedding: each token's 2x2 patches, row-major, each flattened (row, column, channel)
        pixels = pixels.reshape(-1, merge, patch, merge, patch, channels).transpose(0, 1, 3, 2, 4, 5)
        tokens_grid = np.asarray(inputs["image_grid_thw"], np.int64).reshape(-1, 3)
        grid = tokens_grid * np.array([1, merge, merge])  # the patch grid, as Qwen2-VL's ``_grid_thw``
        taps = {k: v.numpy() for k, v in _grid_taps(torch.as_tensor(grid), vc).items()}
        return {
            "pixel_values": np.ascontiguousarray(pixels.reshape(-1, patch * patch * channels)),
            "vision_position_ids": taps["vision_position_ids"].astype(np.int64),
            "interp_indices": taps["interp_indices"].astype(np.int64),
            "interp_weights": taps["interp_weights"].astype(np.float32),
            "_grid_thw": grid,
            "_tokens": tokens_grid.prod(-1),
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**super().graph_inputs(vision), "image_ids": np.arange(len(vision["_grid_thw"]), dtype=np.int64)}


__all__ = ["Inkling2VLAdapter", "InklingVLAdapter"]
