"""Multimodal rotary positions (Qwen2-VL, Qwen2.5-VL) computed on the host from the prompt alone.

The rule of transformers' ``get_rope_index`` for text and images: text tokens count up by one on
all three axes; a run of image tokens takes the grid of the next image, (t, h, w) positions offset
by where the run starts, and the text after it resumes at that start plus the grid's larger side.
Decode positions are the cache position plus ``delta`` (the prompt's last position + 1 minus its
length). Numpy only, so generation needs no PyTorch model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MultimodalRope:
    image_token_id: int
    spatial_merge_size: int

    def __call__(self, tokens: list[int], vision: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """[3, len(tokens)] positions of one prompt whose images have grids ``vision["_grid_thw"]``, and its decode offset."""
        is_image = np.equal(tokens, self.image_token_id)
        edges = np.flatnonzero(np.diff(np.r_[-1, is_image.astype(np.int8), -1]) != 0)  # starts of runs, then the end
        grids = iter(np.asarray(vision.get("_grid_thw", np.zeros((0, 3), np.int64))).reshape(-1, 3))
        parts, current = [], 0
        for start, end in zip(edges[:-1], edges[1:]):
            if not is_image[start]:
                parts.append(np.broadcast_to(np.arange(end - start) + current, (3, end - start)))
                current += end - start
                continue
            t, h, w = (int(v) for v in next(grids))
            h, w = h // self.spatial_merge_size, w // self.spatial_merge_size
            grid_t, grid_h, grid_w = np.meshgrid(np.arange(t), np.arange(h) + current, np.arange(w) + current, indexing="ij")
            parts.append(np.stack([grid_t + current, grid_h, grid_w]).reshape(3, -1))
            current += max(h, w)
        positions = np.concatenate(parts, axis=1).astype(np.int64)
        return positions, int(positions.max()) + 1 - len(tokens)


@dataclass(frozen=True)
class PromptLengthRope:
    """Not a rotary rule: the channel carries each position minus its prompt's length, at prefill (the table) and at
    decode (the offset) alike, so the language graph knows every row's prompt length (position - value). Reference
    sliding-window attention (Unlimited OCR) keeps the whole prompt visible past the window; the text model's own
    rotary reads the cache positions."""

    def __call__(self, tokens: list[int], vision: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        n = len(tokens)
        return np.broadcast_to(np.arange(n, dtype=np.int64) - n, (3, n)).copy(), -n
