"""HY-V4-VL (images only: its video processor needs torchvision): HunYuanVL's ViT (any image size, attention inside
each image, a learned position table resampled to each grid, here with PyTorch's ``scale_factor`` of
``(size + 0.1) / edge``, which shifts the sampling grid), a patch merger (a 2x2 convolution, a 1x1 one straight to
the text width, a learned newline token after each row of merged tokens; no MLP, no begin/end rows) and HY-V4's
hyper-connected DSA text model (adapters/sparse_attention.py: its indexer runs in the graph) with 3-D interleaved
rotary positions.

Its rotary rule (HF's ``HYV4VLModel.get_rope_index``): text counts up by one on all three axes; an image of h x w
merged tokens is h rows of w + 1 tokens (the newline last), its (time, height, width) positions (0, row, column)
offset by where it starts, and the text after it resumes past the image's largest position. ``NewlineGridRope``
computes it on the host (numpy); the language graph takes it as ``rope_position_ids`` [3, B, S]."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.hunyuan_vl import HunYuanVLAdapter
from QEfficient.transform.vision_adapters.minicpmv import _encoder_layer, block_order
from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter


@dataclass(frozen=True)
class NewlineGridRope:
    """HF's rule for one unpadded prompt: each run of image tokens is one image's h x (w + 1) grid (t = 1)."""

    image_token_id: int
    merge: int

    def __call__(self, tokens: list[int], vision: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        grids = iter(np.asarray(vision.get("_grid_thw", np.zeros((0, 3), np.int64))).reshape(-1, 3).tolist())
        parts, current = [], 0
        for is_image, run in itertools.groupby(tokens, lambda t: t == self.image_token_id):
            span = len(list(run))
            if not is_image:
                parts.append(np.broadcast_to(np.arange(span) + current, (3, span)))
                current += span
                continue
            t, h, w = next(grids, (0, 0, 0))
            h, w = h // self.merge, w // self.merge + 1  # the newline column
            if span != t * h * w:
                raise ValueError(
                    f"an image span of {span} tokens does not match its next image ({t}x{h}x{w} tokens): one image per placeholder"
                )
            # every frame starts a new block of max(h, w) positions on all three axes (HF's get_vision_position_ids)
            frame, row, col = np.meshgrid(np.arange(t) * max(h, w), np.arange(h), np.arange(w), indexing="ij")
            block = np.stack([frame, row + frame, col + frame]).reshape(3, -1) + current
            parts.append(block)
            current = int(block.max()) + 1
        if next(grids, None) is not None:
            raise ValueError("the prompt has fewer image spans than images: give one image per placeholder")
        positions = np.concatenate(parts + [np.zeros((3, 0), np.int64)], axis=1).astype(np.int64)
        return positions, int(positions.max(initial=-1)) + 1 - len(tokens)


def _axis_taps(size: int, side: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Taps [size, k] into a ``side``-long axis and their weights, as HF's ``interpolate(scale_factor=(size + 0.1) /
    side, align_corners=False)`` samples it: PyTorch's own interpolation of one-hot rows, so the source coordinates
    are computed as HF's are (from the scale factor, not from the output size)."""
    eye = torch.eye(side)[None, :, :, None]  # [1, one-hot input index, side, 1]
    with torch.no_grad():
        dense = nn.functional.interpolate(eye, scale_factor=((size + 0.1) / side, 1.0), mode=mode, align_corners=False)
    dense = dense[0, :, :, 0].T  # [size, side]
    if dense.shape[0] != size:
        raise ValueError(f"the position table resampled to {dense.shape[0]} rows, not {size}")
    k = 2 if mode == "bilinear" else 4
    taps = dense.abs().topk(k, dim=-1).indices
    return taps.numpy().astype(np.int64), dense.gather(-1, taps).numpy().astype(np.float32)


def _token_order(grids: np.ndarray, merge: int) -> np.ndarray:
    """Rows of [merged tokens of every image; newline] in the order of the image tokens: per image, each row of
    merged tokens followed by a newline."""
    merged = (grids[:, 1] // merge) * (grids[:, 2] // merge)
    newline, order, start = int(merged.sum()), [], 0
    for (_, h, w), n in zip(grids, merged):
        h, w = h // merge, w // merge
        rows = np.arange(start, start + n).reshape(h, w)
        order.append(np.concatenate([rows, np.full((h, 1), newline)], 1).reshape(-1))
        start += n
    return np.concatenate(order + [np.zeros(0, np.int64)]).astype(np.int64)


def _merger(merger: nn.Module, x: torch.Tensor, block_index: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
    """HYV4VLVisionPatchMerger over every image at once: its convolutions as linears over merge x merge blocks of rows."""
    x = merger.before_rms(x)
    conv = merger.proj_conv
    blocks = x[block_index].reshape(-1, conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])
    x = nn.functional.linear(blocks, conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1), conv.bias)
    x = merger.proj_act(x)
    x = nn.functional.linear(x, merger.proj_out.weight.flatten(1), merger.proj_out.bias)
    x = torch.cat([x, merger.image_newline[None].to(x.dtype)])
    return x[token_index]


@dataclass(frozen=True)
class HYV4VLAdapter(HunYuanVLAdapter):
    def image_placeholder(self, processor) -> str:
        return processor.image_token

    def _interpolation(self, grid: np.ndarray, vc) -> tuple[np.ndarray, np.ndarray]:
        side = vc.max_image_size // vc.patch_size
        indices, weights = [], []
        for t, h, w in np.asarray(grid).reshape(-1, 3).tolist():
            (row_taps, row_w), (col_taps, col_w) = (_axis_taps(n, side, vc.interpolate_mode) for n in (h, w))
            # [h, w, k_row, k_col] taps of the 2-D table (row 0: the class token's), raster order, each frame alike
            idx = row_taps[:, None, :, None] * side + col_taps[None, :, None, :] + 1
            wt = row_w[:, None, :, None] * col_w[None, :, None, :]
            indices.append(np.tile(idx.reshape(h * w, -1), (t, 1)))
            weights.append(np.tile(wt.reshape(h * w, -1), (t, 1)))
        k = 4 if vc.interpolate_mode == "bilinear" else 16
        return (
            np.concatenate(indices + [np.zeros((0, k), np.int64)]).astype(np.int64),
            np.concatenate(weights + [np.zeros((0, k), np.float32)]).astype(np.float32),
        )

    def image_features(
        self, hf: nn.Module, pixel_values, interp_indices, interp_weights, image_segment, block_index, token_index
    ) -> torch.Tensor:
        tower = hf.model.vision_tower
        embed = tower.embeddings
        conv = embed.patch_embedding
        x = conv(pixel_values.reshape(-1, conv.in_channels, *conv.kernel_size).to(conv.weight.dtype)).flatten(1)
        x = x + (embed.position_embedding(interp_indices) * interp_weights[:, :, None]).sum(1).to(x.dtype)
        visible = image_segment[:, None] == image_segment[None, :]
        for layer in tower.layers:
            x = _encoder_layer(layer, x, visible)
        return _merger(tower.patch_merger, x, block_index, token_index).unsqueeze(0)

    # --- host side (keys starting with "_" stay on the host) ---------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vision = super().vision_inputs(inputs, img_size, config)
        grids = vision["_grid_thw"]
        return vision | {"_tokens": grids[:, 0] * (grids[:, 1] // self.merge) * (grids[:, 2] // self.merge + 1)}

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        grids = vision["_grid_thw"]
        if (grids[:, 0] != 1).any():
            raise NotImplementedError(f"{self.model_type}: images only (one frame each)")
        inputs = Qwen2VLAdapter.graph_inputs(self, vision)
        return inputs | {"block_index": block_order(grids[:, 1:], self.merge), "token_index": _token_order(grids, self.merge)}

    def host_rope(self, config) -> NewlineGridRope:
        return NewlineGridRope(int(config.image_token_id), self.merge)
