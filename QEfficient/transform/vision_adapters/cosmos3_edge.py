"""Cosmos3 Edge: Qwen2-VL's layout (any image size, 3-D rotary positions made on the host by the same rule)
with a SigLIP2 tower on packed patches and a learned square position table that HF resizes to each image's
grid (bilinear, antialiased), then a 2x2 patch merger; Llama-style text model.

The resize is linear in the table: the host gives each patch its row and column weights over the table
(``pos_rows`` / ``pos_cols`` [N, side], the antialiased bilinear filter's taps), the graph forms the
position embedding as their outer product against the table, so one graph serves every image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter, within_images


def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size]: antialiased bilinear resize (align_corners=False) as a matrix, the triangle
    filter widened by the scale when shrinking, as torch's ``interpolate(..., antialias=True)`` computes it."""
    scale = in_size / out_size
    support, invscale = (scale, 1 / scale) if scale >= 1 else (1.0, 1.0)
    weights = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        taps = np.arange(max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size))
        w = np.clip(1 - np.abs((taps - center + 0.5) * invscale), 0, None)
        weights[i, taps] = w / w.sum()
    return weights


@dataclass(frozen=True)
class Cosmos3EdgeAdapter(Qwen2VLAdapter):
    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        from transformers.vision_utils import get_vision_position_ids

        vc = config.vision_config
        grid = np.array([[1, 4, 4], [1, 2, 6]])  # two images of different grids
        n = int(grid.prod(-1).sum())
        positions = get_vision_position_ids(torch.as_tensor(grid), vc.spatial_merge_size).numpy()
        rows, cols = self._table_weights(grid, positions, config)
        return {
            "pixel_values": torch.zeros(n, vc.num_channels * vc.patch_size**2),
            "image_segment": torch.repeat_interleave(torch.arange(2), torch.as_tensor(grid.prod(-1))),
            "pos_rows": torch.as_tensor(rows),
            "pos_cols": torch.as_tensor(cols),
        }

    def vision_axes(self) -> dict[str, dict[int, str]]:
        patches = {0: "num_patches"}
        return {
            "pixel_values": patches,
            "image_segment": patches,
            "pos_rows": patches,
            "pos_cols": patches,
            "vision_embeds": {1: "num_image_tokens"},
        }

    def image_features(self, hf: nn.Module, pixel_values, image_segment=None, pos_rows=None, pos_cols=None) -> torch.Tensor:
        visual = hf.model.visual
        embeddings = visual.embeddings
        x = embeddings.patch_embedding(pixel_values.to(embeddings.patch_embedding.weight.dtype))
        table = embeddings.position_embedding.weight
        taps = (pos_rows[:, :, None] * pos_cols[:, None, :]).reshape(pos_rows.shape[0], -1)
        x = x + torch.matmul(taps.to(table.dtype), table)
        same_image = image_segment[:, None] == image_segment[None, :]
        n = x.shape[0]
        for layer in visual.encoder.layers:
            attn = layer.self_attn
            h = layer.layer_norm1(x)
            q, k, v = (proj(h).reshape(n, attn.num_heads, attn.head_dim) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
            x = x + attn.out_proj(within_images(q, k, v, attn.scale, same_image))
            x = x + layer.mlp(layer.layer_norm2(x))
        return hf.model.projector(visual.post_layernorm(x)).unsqueeze(0)

    @staticmethod
    def _table_weights(grid: np.ndarray, positions: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
        """Each patch's row and column weights over the position table, [N, side] each (float32)."""
        side = int(config.vision_config.num_patches**0.5)
        rows, cols, start = [], [], 0
        for t, h, w in grid:
            count = int(t * h * w)
            r, c = positions[start : start + count, 0], positions[start : start + count, 1]
            rows.append(resize_weights(side, int(h))[r])
            cols.append(resize_weights(side, int(w))[c])
            start += count
        empty = np.zeros((0, side))
        return (np.concatenate(rows or [empty]).astype(np.float32), np.concatenate(cols or [empty]).astype(np.float32))

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vision = super().vision_inputs(inputs, img_size, config)
        rows, cols = self._table_weights(vision["_grid_thw"], vision.pop("vision_position_ids"), config)
        return {**vision, "pos_rows": rows, "pos_cols": cols}
