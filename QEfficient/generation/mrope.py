"""Multimodal rotary positions (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) computed on the host from the prompt alone.

The rule of transformers' ``get_rope_index`` for text, images and videos: text tokens count up by one on
all three axes; a run of image (or video) tokens takes the grid of the next unit, (t, h, w) positions
offset by where the run starts, and the text after it resumes at that start plus the grid's larger
side. A video's temporal positions step by its ``_time_interval`` (Qwen2.5-VL: tokens_per_second x
seconds per frame group, truncated); a video whose frame groups are separate runs (``_runs``, Qwen3-VL's
timestamps) gives each run one frame group's grid. Decode positions are the cache position plus
``delta`` (the prompt's last position + 1 minus its length). Numpy only, so generation needs no PyTorch model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MultimodalRope:
    image_token_id: int
    spatial_merge_size: int

    def __call__(self, tokens: list[int], vision: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """[3, len(tokens)] positions of one prompt whose vision units (images, videos) are ``vision``, and its decode offset."""
        is_image = np.equal(tokens, self.image_token_id)
        edges = np.flatnonzero(np.diff(np.r_[-1, is_image.astype(np.int8), -1]) != 0)  # starts of runs, then the end
        grids = np.asarray(vision.get("_grid_thw", np.zeros((0, 3), np.int64))).reshape(-1, 3)
        runs = np.asarray(vision.get("_runs", np.ones(len(grids), np.int64)))
        intervals = np.asarray(vision.get("_time_interval", np.ones(len(grids), np.float32)), np.float32)
        # one (t, h, w, temporal step) per run of vision tokens
        run_grids = iter([(t // r, h, w, step) for (t, h, w), r, step in zip(grids.tolist(), runs.tolist(), intervals) for _ in range(r)])
        parts, current = [], 0
        for start, end in zip(edges[:-1], edges[1:]):
            if not is_image[start]:
                parts.append(np.broadcast_to(np.arange(end - start) + current, (3, end - start)))
                current += end - start
                continue
            t, h, w, step = next(run_grids)
            h, w = h // self.spatial_merge_size, w // self.spatial_merge_size
            temporal = (np.arange(t, dtype=np.float32) * step).astype(np.int64)  # HF: (arange * interval).long()
            grid_t, grid_h, grid_w = np.meshgrid(temporal, np.arange(h) + current, np.arange(w) + current, indexing="ij")
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
