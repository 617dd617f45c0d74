"""MiniCPM-V 4.6 and MiniCPM-OCR: a SigLIP-style NaViT tower over each unit (the processor's thumbnail and slices,
each at its own patch grid), nearest-bucket learned positions, attention inside each unit; in "16x" mode a window
merger after layer ``insert_layer_id`` (attention inside 2x2 windows, then an MLP that merges each window into
one token), then a 2x2 merging MLP into the text model's width ("4x" mode, MiniCPM-OCR's default, skips the
window merger). The text model is Qwen3.5's (Gated DeltaNet states, retained in the language graph), with
plain 1-D positions.

Every grid-dependent index is made on the host (the processor's patches as rows, each patch's position
bucket, the window and merge orders), so one graph serves every image size; the attention masks come from
each token's unit number."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


def block_order(sizes: np.ndarray, block: int = 2) -> np.ndarray:
    """Row indices that list each unit's row-major [h, w] grid block by block (blocks row-major, then the
    block x block cells of each one row-major), units one after another: the order of HF's window index and
    of its merger's view/permute."""
    order, start = [], 0
    for h, w in sizes:
        grid = np.arange(h * w).reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3)
        order.append(grid.reshape(-1) + start)
        start += h * w
    return np.concatenate(order + [np.zeros(0, np.int64)]).astype(np.int64)


def unit_segments(sizes: np.ndarray, per_cell: int = 1) -> np.ndarray:
    """Each token's unit number, for units of h * w / per_cell tokens."""
    return np.repeat(np.arange(len(sizes)), sizes.prod(-1) // per_cell).astype(np.int64)


def masked_attention(attn: nn.Module, x: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
    """Bidirectional attention over x [..., N, E], where ``visible`` [N, N] (None: everything), with the q/k/v
    projections of ``attn`` and its output projection (``out_proj``, or RADIO's ``o_proj``)."""
    shape = x.shape[:-1]
    q, k, v = (proj(x).view(*shape, -1, attn.head_dim).transpose(-2, -3) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    scores = torch.matmul(q, k.transpose(-1, -2)) * attn.scaling
    if visible is not None:
        scores = torch.where(visible, scores, torch.finfo(scores.dtype).min)
    out = torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype), v)
    out_proj = attn.out_proj if hasattr(attn, "out_proj") else attn.o_proj
    return out_proj(out.transpose(-2, -3).reshape(*shape, -1))


def _encoder_layer(layer: nn.Module, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    x = x + masked_attention(layer.self_attn, layer.layer_norm1(x), visible)
    return x + layer.mlp(layer.layer_norm2(x))


def _window_merger(merger: nn.Module, x: torch.Tensor, window_index: torch.Tensor) -> torch.Tensor:
    """MiniCPMV4_6ViTWindowAttentionMerger: attention inside each 2x2 window, then each window's MLP token."""
    windows = x[window_index].reshape(-1, 4, x.shape[-1])
    windows = windows + masked_attention(merger.self_attn, merger.layer_norm1(windows), None)
    flat = merger.linear_2(merger.act(merger.linear_1(merger.pre_norm(windows.flatten(1)))))
    return flat + windows.mean(dim=1)


@dataclass(frozen=True)
class MiniCPMVAdapter(VisionLanguageAdapter):
    flat_embeddings = True
    vision_per_unit = True
    window_merger: bool = True  # "16x" mode; "4x" skips it

    def for_config(self, config) -> MiniCPMVAdapter:
        from QEfficient.transform.adapters import UnsupportedArchitectureError

        if config.merger_times != 1 or tuple(config.merge_kernel_size) != (2, 2):
            raise UnsupportedArchitectureError(f"'{self.model_type}': only one 2x2 merge round is supported (merger_times=1).")
        return dataclasses.replace(self, window_merger=config.downsample_mode != "4x")

    @property
    def tokens_per_patch_divisor(self) -> int:
        return 16 if self.window_merger else 4

    def default_img_size(self, config) -> int:
        return 0  # any size: the processor chooses each unit's grid

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        sizes = np.array([[4, 4], [4, 8]])
        patches = int(sizes.prod(-1).sum())
        units = {"_target_sizes": sizes, "patch_position_ids": np.zeros(patches, np.int64)}
        example = {"pixel_values": torch.zeros(patches, vc.num_channels, vc.patch_size, vc.patch_size)}
        return {**example, **{k: torch.from_numpy(v) for k, v in self.graph_inputs(units).items()}}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        axes = {name: {0: "num_patches"} for name in ("pixel_values", "patch_position_ids", "unit_segment", "window_index")}
        return {**axes, "merged_segment": {0: "num_merged"}, "merge_index": {0: "num_merged"}, "vision_embeds": {1: "num_image_tokens"}}

    def image_features(
        self, hf: nn.Module, pixel_values, patch_position_ids, unit_segment, merge_index, window_index=None, merged_segment=None
    ) -> torch.Tensor:
        tower = hf.model.vision_tower
        embeddings = tower.embeddings
        x = embeddings.patch_embedding(pixel_values.to(embeddings.patch_embedding.weight.dtype)).flatten(1)
        x = x + embeddings.position_embedding(patch_position_ids)
        visible = unit_segment[:, None] == unit_segment[None, :]
        insert = tower.config.insert_layer_id if self.window_merger else -1
        for i, layer in enumerate(tower.encoder.layers):
            x = _encoder_layer(layer, x, visible)
            if i == insert:
                x = _window_merger(tower.vit_merger, x, window_index)
                visible = merged_segment[:, None] == merged_segment[None, :]
        x = tower.post_layernorm(x)
        features = hf.model.merger.mlp[0](x[merge_index].reshape(-1, 4 * x.shape[-1]))
        return features.unsqueeze(0)

    # --- host side (keys starting with "_" stay on the host) ---------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        from transformers.vision_utils import get_vision_nearest_position_ids

        packed = np.asarray(inputs["pixel_values"], dtype=np.float32)[0]  # [C, P, patches * P]: the processor's NaViT row
        channels, patch = packed.shape[:2]
        sizes = np.asarray(inputs["target_sizes"]).astype(np.int64)
        per_side = config.vision_config.image_size // config.vision_config.patch_size
        positions = get_vision_nearest_position_ids(torch.as_tensor(sizes), per_side)
        return {
            "pixel_values": np.ascontiguousarray(packed.reshape(channels, patch, -1, patch).transpose(2, 0, 1, 3)),
            "patch_position_ids": positions.numpy().astype(np.int64),
            "_target_sizes": sizes,
            "_tokens": sizes.prod(-1) // self.tokens_per_patch_divisor,
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sizes = vision["_target_sizes"]
        merged = sizes // 2 if self.window_merger else sizes  # the grids the 2x2 merging MLP reads
        inputs = {
            **{k: v for k, v in vision.items() if not k.startswith("_")},
            "unit_segment": unit_segments(sizes),
            "merge_index": block_order(merged),
        }
        if self.window_merger:  # the inputs of the window merger and of the layers after it
            inputs |= {"window_index": block_order(sizes), "merged_segment": unit_segments(sizes, 4)}
        return inputs

    def select_units(self, vision: dict[str, np.ndarray], units: np.ndarray) -> dict[str, np.ndarray]:
        starts = np.r_[0, np.cumsum(vision["_target_sizes"].prod(-1))]
        rows = np.concatenate([np.arange(starts[u], starts[u + 1]) for u in units] + [np.zeros(0, np.int64)])
        return {k: v[units] if k.startswith("_") else v[rows] for k, v in vision.items()}
