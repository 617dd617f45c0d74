"""Nemotron-H Omni (images): a RADIO ViT over each image's patch grid (the processor's patches, normalised), its
learned position table resampled bilinearly to the grid, class and register tokens before each image's patches,
attention inside each image; a 2x2 pixel shuffle and an MLP projector; a Nemotron-H text model (Mamba-2 layers whose
conv and SSM states the language graph retains, beside attention and MoE layers), with plain 1-D positions.

HF resamples the table with ``F.interpolate`` per image size and splits the packed sequence per image (host
sizes a traced graph would fix). Here the host gives each patch its 4 bilinear taps into the table, where each
token sits in the packed sequence and which rows are patches, and the 2x2 shuffle order (MiniCPM-V's block
order), so one graph serves every image size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.minicpmv import block_order, masked_attention, unit_segments


def _linear_taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``F.interpolate(mode="bilinear", align_corners=False)`` along one axis: each output's two input indices and weights."""
    src = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    frac = src - low
    return np.stack([low, high], -1), np.stack([1.0 - frac, frac], -1)


def position_taps(sizes: np.ndarray, table_side: int) -> tuple[np.ndarray, np.ndarray]:
    """[N, 4] indices into the square position table and [N, 4] weights: RadioPatchEmbeddings's resampling to
    (max(h, w), max(h, w)) cropped to (h, w), for each image's row-major patches."""
    indices, weights = [], []
    for h, w in sizes:
        side_index, side_weight = _linear_taps(max(h, w), table_side)
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        rows, cols = rows.reshape(-1), cols.reshape(-1)
        indices.append((side_index[rows][:, :, None] * table_side + side_index[cols][:, None, :]).reshape(-1, 4))
        weights.append((side_weight[rows][:, :, None] * side_weight[cols][:, None, :]).reshape(-1, 4))
    return (np.concatenate(indices + [np.zeros((0, 4), np.int64)]), np.concatenate(weights + [np.zeros((0, 4))]).astype(np.float32))


@dataclass(frozen=True)
class NemotronHOmniAdapter(VisionLanguageAdapter):
    flat_embeddings = True
    vision_per_unit = True
    prefix_tokens: int = 10  # RADIO's class + register tokens before each image's patches

    def for_config(self, config) -> NemotronHOmniAdapter:
        from QEfficient.transform.adapters import UnsupportedArchitectureError

        if config.downsample_ratio != 0.5:
            raise UnsupportedArchitectureError(f"'{self.model_type}': only a 2x2 pixel shuffle (downsample_ratio 0.5) is supported.")
        vc = config.vision_config
        return type(self)(self.model_type, prefix_tokens=vc.num_cls_tokens + vc.num_registers)

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return hf.language_model.model, hf.language_model.lm_head, hf.config.text_config

    def default_img_size(self, config) -> int:
        return 0  # any size: the processor chooses each image's grid

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        sizes = np.array([[4, 4], [2, 6]])
        units = {"_grid_hw": sizes, "_table_side": np.array([vc.max_img_size // vc.patch_size])}
        patches = int(sizes.prod(-1).sum())
        example = {"pixel_values": torch.zeros(patches, vc.num_channels * vc.patch_size**2)}
        return {**example, **{k: torch.from_numpy(v) for k, v in self.graph_inputs(units).items()}}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        axes = {name: {0: "num_patches"} for name in ("pixel_values", "position_indices", "position_weights", "feature_index")}
        return {
            **axes,
            "sequence_index": {0: "sequence"},
            "sequence_segment": {0: "sequence"},
            "shuffle_index": {0: "num_patches"},
            "vision_embeds": {1: "num_image_tokens"},
        }

    def image_features(
        self,
        hf: nn.Module,
        pixel_values,
        position_indices,
        position_weights,
        sequence_index,
        sequence_segment,
        feature_index,
        shuffle_index,
    ) -> torch.Tensor:
        tower = hf.vision_model
        embeddings = tower.embeddings
        table = embeddings.position_embedding[0]
        patches = embeddings.patch_projection(tower.input_conditioner(pixel_values))
        patches = patches + (table[position_indices] * position_weights[..., None].to(table.dtype)).sum(1)
        x = torch.cat([embeddings.cls_register_token, patches])[sequence_index]
        visible = sequence_segment[:, None] == sequence_segment[None, :]
        for layer in tower.encoder.layer:
            x = x + layer.layer_scale1(masked_attention(layer.attention, layer.norm1(x), visible))
            x = x + layer.layer_scale2(layer.mlp(layer.norm2(x)))
        features = x[feature_index]
        if hf.vision_final_layernorm is not None:
            features = hf.vision_final_layernorm(features)
        shuffled = features[shuffle_index].reshape(-1, 4 * features.shape[-1])
        return hf.multi_modal_projector(shuffled).unsqueeze(0)

    # --- host side (keys starting with "_" stay on the host) ---------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vc = config.vision_config
        sizes = np.asarray(inputs["image_grid_hw"]).astype(np.int64)
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(inputs["pixel_values"], dtype=np.float32)),
            "_grid_hw": sizes,
            "_table_side": np.full(len(sizes), vc.max_img_size // vc.patch_size, np.int64),
            "_tokens": sizes.prod(-1) // 4,
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sizes = vision["_grid_hw"]
        counts = sizes.prod(-1)
        indices, weights = position_taps(sizes, int(vision["_table_side"][0]) if len(sizes) else 1)
        # the packed sequence: each image's prefix tokens (rows 0..prefix-1 of the joined table), then its patches
        patch_rows = self.prefix_tokens + np.arange(int(counts.sum()))
        starts = np.r_[0, np.cumsum(counts)]
        sequence = [np.r_[np.arange(self.prefix_tokens), patch_rows[starts[u] : starts[u + 1]]] for u in range(len(sizes))]
        offsets = np.r_[0, np.cumsum(counts + self.prefix_tokens)]
        features = [offsets[u] + self.prefix_tokens + np.arange(counts[u]) for u in range(len(sizes))]
        return {
            **{k: v for k, v in vision.items() if not k.startswith("_")},
            "position_indices": indices,
            "position_weights": weights,
            "sequence_index": np.concatenate(sequence + [np.zeros(0, np.int64)]).astype(np.int64),
            "sequence_segment": unit_segments(np.c_[counts + self.prefix_tokens, np.ones_like(counts)]),
            "feature_index": np.concatenate(features + [np.zeros(0, np.int64)]).astype(np.int64),
            "shuffle_index": block_order(sizes),
        }

    def select_units(self, vision: dict[str, np.ndarray], units: np.ndarray) -> dict[str, np.ndarray]:
        starts = np.r_[0, np.cumsum(vision["_grid_hw"].prod(-1))]
        rows = np.concatenate([np.arange(starts[u], starts[u + 1]) for u in units] + [np.zeros(0, np.int64)])
        return {k: v[units] if k.startswith("_") else v[rows] for k, v in vision.items()}
