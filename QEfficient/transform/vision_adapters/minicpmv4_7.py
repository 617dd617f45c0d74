"""MiniCPM-V 4.7: MiniCPM-V 4.6's vision path (minicpmv.py) and Qwen3.5 text model, with "canvas" 3-D rotary
positions (t, h, w). Each image is a frame laid out on a canvas: its thumbnail stretched over the whole canvas,
its slices tiled on it row by row, the ``<image>``, ``</image>``, ``<slice>``, ``</slice>`` markers and the
newline between slice rows pinned to the canvas' corners and edges (HF's ``MiniCPMV4_7Model.get_rope_index``).

The positions are made on the host from the prompt's tokens and its units' patch grids (``CanvasRope``, numpy
only); the language graph takes them as ``rope_position_ids`` [3, B, S], as Qwen2-VL's does."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from QEfficient.transform.vision_adapters.minicpmv import MiniCPMVAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter


def torch_linspace_rounded(end: int, steps: int) -> np.ndarray:
    """``torch.linspace(0, end, steps).round().long()`` in float32 as torch computes it on the CPU (the first
    half counted up from 0, the second half down from ``end``), so halves round the same way."""
    if steps == 1:
        return np.zeros(1, np.int64)
    step = np.float32(end) / np.float32(steps - 1)
    i = np.arange(steps)
    values = np.where(i < steps // 2, np.float32(i) * step, np.float32(end) - np.float32(steps - 1 - i) * step)
    return np.round(values.astype(np.float32)).astype(np.int64)


def _grid_positions(origin: int, h: int, w: int, canvas_h: int = 0, canvas_w: int = 0, h_off: int = 0, w_off: int = 0) -> np.ndarray:
    """[3, h * w] (t, h, w) positions of an h x w token grid resampled over a canvas (its own size by default)."""
    rows = torch_linspace_rounded((canvas_h or h) - 1, h) + h_off
    cols = torch_linspace_rounded((canvas_w or w) - 1, w) + w_off
    grid_h, grid_w = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([np.zeros_like(grid_h), grid_h, grid_w]).reshape(3, -1) + origin


@dataclass(frozen=True)
class CanvasRope:
    """HF's canvas rule for one unpadded prompt of text and images (no video): the tokens' runs of image tokens
    are crops (a crop after ``<slice>`` is a slice of the frame before it, else a new frame's thumbnail), frames
    separated by markers only share a group, and text counts up by one between groups."""

    image_token_id: int
    markers: tuple[int, int, int, int, int]  # <slice>, </slice>, <image>, </image>, newline
    merge: int  # patches per token side: 4 in "16x" mode, 2 in "4x"

    def _groups(self, tokens: list[int]) -> list[tuple[int, int, list]]:
        """HF's ``_group_visual_frames``: (group start, group end, [(thumb start, thumb end, frame end, slices)])."""
        groups, open_slices, previous_end = [], None, 0
        runs = itertools.groupby(enumerate(t == self.image_token_id for t in tokens), lambda item: item[1])
        for is_image, run in runs:
            if not is_image:
                continue
            run = list(run)
            crop = (run[0][0], run[-1][0] + 1)
            if open_slices is not None and tokens[crop[0] - 1] == self.markers[0]:
                open_slices.append(crop)
            else:
                open_slices = []
                frame = (crop[0], crop[1], open_slices)
                if groups and all(t in self.markers for t in tokens[previous_end : crop[0] - 1]):
                    groups[-1][1].append(frame)
                else:
                    groups.append((crop[0] - 1, [frame]))
            previous_end = crop[1]
        out = []
        for start, frames in groups:
            closed = []
            for thumb_start, thumb_end, slices in frames:
                end = slices[-1][1] if slices else thumb_end
                while end < len(tokens) and tokens[end] in self.markers:
                    end += 1
                closed.append((thumb_start, thumb_end, end, slices))
            out.append((start, closed[-1][2], closed))
        return out

    def __call__(self, tokens: list[int], vision: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        """[3, len(tokens)] positions of one prompt whose units have patch grids ``vision["_target_sizes"]``
        (thumbnail then slices, image by image), and its decode offset."""
        pos = np.broadcast_to(np.arange(len(tokens)), (3, len(tokens))).copy()
        grids = iter(np.asarray(vision.get("_target_sizes", np.zeros((0, 2), np.int64))).reshape(-1, 2).tolist())
        current, index = 0, 0
        for group_start, group_end, frames in self._groups(tokens):
            pos[:, index:group_start] = np.arange(group_start - index) + current  # text before the group
            current += max(group_start - index, 0)
            cursor = group_start
            for thumb_start, thumb_end, frame_end, slices in frames:
                thumb = [g // self.merge for g in next(grids)]
                frame_start = thumb_start - 1
                if frame_start > cursor:  # text between two frames, then one step more
                    pos[:, cursor:frame_start] = np.arange(frame_start - cursor) + current
                    current += frame_start - cursor + 1
                frame_end = min(frame_end, group_end)
                origin = current
                canvas_h, canvas_w = thumb
                cols = rows = slice_h = slice_w = 0
                slice_grids: list[list[int]] = []
                if slices:
                    # a gap wider than "</slice><slice>" is the newline ending a row: it fixes the column count
                    cols = next((k + 1 for k in range(len(slices) - 1) if slices[k + 1][0] - slices[k][1] > 2), len(slices))
                    rows = len(slices) // cols
                    if rows * cols != len(slices):
                        rows, cols = 1, len(slices)
                    slice_grids = [[g // self.merge for g in next(grids)] for _ in slices]
                    slice_h, slice_w = slice_grids[0]
                    canvas_h, canvas_w = rows * slice_h, cols * slice_w
                pos[:, frame_start:frame_end] = origin
                pos[1:, frame_start] = max(origin - 1, 0)  # <image>: the halo outside the top-left corner
                if thumb_end < frame_end:  # </image>: the far corner
                    pos[1:, thumb_end] = origin + np.array([canvas_h, canvas_w])
                pos[:, thumb_start:thumb_end] = _grid_positions(origin, *thumb, canvas_h, canvas_w)
                for k, ((start, end), (h, w)) in enumerate(zip(slices, slice_grids)):
                    h_off, w_off = (k // cols) * slice_h, (k % cols) * slice_w
                    if start - 1 >= frame_start:  # <slice>: the slice's top-left corner
                        pos[1:, start - 1] = origin + np.array([h_off, w_off])
                    if end < frame_end:  # </slice>: its bottom-right corner
                        pos[1:, end] = origin + np.array([h_off + h - 1, w_off + w - 1])
                    pos[:, start:end] = _grid_positions(origin, h, w, h_off=h_off, w_off=w_off)
                for k in range(len(slices) - 1):  # a row's newline: just past its right edge
                    gap_start, gap_end = slices[k][1], slices[k + 1][0]
                    if gap_end - gap_start > 2:
                        pos[1, gap_start + 1 : gap_end - 1] = origin + (k // cols + 1) * slice_h - 1
                        pos[2, gap_start + 1 : gap_end - 1] = origin + cols * slice_w
                current = origin + max(canvas_h, canvas_w) + 1
                cursor = frame_end
            if cursor < group_end:
                pos[:, cursor:group_end] = np.arange(group_end - cursor) + current
                current += group_end - cursor
            index = group_end
        pos[:, index:] = np.arange(len(tokens) - index) + current
        return pos, int(pos.max(initial=-1)) + 1 - len(tokens)


@dataclass(frozen=True)
class MiniCPMV4_7Adapter(MiniCPMVAdapter):
    decoder_example = Qwen2VLAdapter.decoder_example
    decoder_axes = Qwen2VLAdapter.decoder_axes
    language_kwargs = Qwen2VLAdapter.language_kwargs

    def host_rope(self, config) -> CanvasRope:
        names = ("slice_start_id", "slice_end_id", "image_start_id", "image_end_id", "newline_id")
        missing = [name for name in names if getattr(config, name, None) is None]
        if missing:
            from QEfficient.transform.adapters import UnsupportedArchitectureError

            raise UnsupportedArchitectureError(
                f"'{self.model_type}': the config has no {', '.join(missing)}: the canvas rotary positions are anchored "
                "on those marker tokens; set them from the tokenizer (as HF's conversion script does)."
            )
        markers = tuple(int(getattr(config, name)) for name in names)
        return CanvasRope(int(config.image_token_id), markers, 2 if config.downsample_mode == "4x" else 4)
