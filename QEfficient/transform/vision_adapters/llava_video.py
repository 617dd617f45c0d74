"""Video for the LLaVA-NeXT layouts (LLaVA-NeXT-Video, LLaVA-OneVision): a video's frames go through the same tower
and feature selection as image tiles, then a spatial pooling gives fewer rows per frame (``video_rows``); its video
tokens (``video_token_id``) take those rows in order, as HF's ``get_video_features`` + ``masked_scatter`` do.

One vision graph serves images and videos: the host stacks image tiles and video frames into ``pixel_values`` in
prompt order (a video is one unit, its frames its tiles), the graph computes both the image rows and the pooled
rows of every tile/frame, and ``gather`` picks each image or video token's row. The language graph reads video
tokens as image tokens (``prompt_ids``): their embedding is replaced by their row either way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.llava import selected_features


class LlavaVideoMixin:
    """Video on a ``LlavaNextAdapter``: mixed in before it."""

    takes_videos = True
    video_newline = False  # LLaVA-OneVision ends each video with one image_newline row

    def video_rows(self, hf: nn.Module, selected: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        """[frames, rows_per_frame, hidden] from the selected features and their projection [frames, tokens, ...]."""
        raise NotImplementedError

    def frame_tokens(self) -> int:
        """Pooled rows of one frame."""
        raise NotImplementedError

    # --- the vision graph -----------------------------------------------------------------------
    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor, gather: torch.Tensor) -> torch.Tensor:
        selected = selected_features(hf.model.vision_tower, hf.config, pixel_values)
        projected = hf.model.multi_modal_projector(selected)  # [tiles and frames, tokens, hidden]
        hidden = projected.shape[-1]
        pooled = self.video_rows(hf, selected, projected)  # every tile's too: no split on a count known at run time
        newline = hf.model.image_newline[None].to(projected.dtype)
        rows = torch.cat([projected.reshape(-1, hidden), newline, pooled.reshape(-1, hidden)])
        return rows[gather].unsqueeze(0)

    # --- the host side --------------------------------------------------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        images = super().vision_inputs(inputs, img_size, config) if "pixel_values" in inputs else self._no_units(img_size)
        images["_video"] = np.zeros(len(images["_tokens"]), bool)
        videos = processor_videos(inputs, img_size)
        if not videos:
            return images
        layouts = [self._video_layout(len(v)) for v in videos]
        units = {
            "pixel_values": np.concatenate([images["pixel_values"], *videos]).astype(np.float32),
            "_tiles": np.r_[images["_tiles"], [len(v) for v in videos]].astype(np.int64),
            "_tokens": np.r_[images["_tokens"], [len(x) for x in layouts]].astype(np.int64),
            "_gather": np.concatenate([images["_gather"], *layouts]).astype(np.int64),
            "_video": np.r_[images["_video"], np.ones(len(videos), bool)],
        }
        order = prompt_order(inputs, self.config, images["_tokens"], units["_tokens"][len(images["_tokens"]) :])
        return self.select_units(units, order)

    def _no_units(self, img_size: int) -> dict[str, np.ndarray]:
        none = np.zeros(0, np.int64)
        return {"pixel_values": np.zeros((0, 3, img_size, img_size), np.float32), "_tiles": none, "_tokens": none, "_gather": none}

    def _video_layout(self, frames: int) -> np.ndarray:
        """Rows of one video's pooled frames in order (-1: image_newline)."""
        return np.r_[np.arange(frames * self.frame_tokens()), [-1] * self.video_newline].astype(np.int64)

    def select_units(self, vision: dict[str, np.ndarray], units: np.ndarray) -> dict[str, np.ndarray]:
        return {**super().select_units(vision, units), "_video": vision["_video"][units]}

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # an image's rows are numbered within its own tiles' projections, a video's within its own frames' pooled
        # rows: offset them into the graph's [projected rows, image_newline, pooled rows]
        per_tile = self._tile_tokens()
        tiles = vision["_tiles"]
        first = np.cumsum(tiles) - tiles
        newline = int(tiles.sum()) * per_tile
        base = np.where(vision["_video"], newline + 1 + first * self.frame_tokens(), first * per_tile)
        local = vision["_gather"]
        gather = np.where(local < 0, newline, local + np.repeat(base, vision["_tokens"])).astype(np.int64)
        return {"pixel_values": vision["pixel_values"], "gather": gather}


def processor_videos(inputs, img_size: int) -> list[np.ndarray]:
    """The processor's ``pixel_values_videos`` as one [frames, 3, H, W] array per video; checks the frame size."""
    videos = inputs["pixel_values_videos"] if "pixel_values_videos" in inputs else None
    if videos is None:
        return []
    if isinstance(videos, (list, tuple)):
        videos = [np.asarray(v, dtype=np.float32) for v in videos]
    else:
        videos = np.asarray(videos, dtype=np.float32)
        videos = list(videos) if videos.ndim == 5 else [videos]
    for v in videos:
        if v.shape[-1] != img_size or v.shape[-2] != img_size:
            raise ValueError(
                f"Video frames are {v.shape[-2]}x{v.shape[-1]} but the vision graph was compiled for img_size={img_size}: "
                f"let the video processor resize and crop them to {img_size}."
            )
    return videos


def prompt_order(inputs, config, image_tokens: np.ndarray, video_tokens: np.ndarray) -> np.ndarray:
    """Units listed images first, then videos (``*_tokens``: each one's token count), reordered by where each
    one's tokens start in the prompts (``inputs["input_ids"]``, read row after row)."""
    ids = np.asarray(inputs["input_ids"]).reshape(-1)
    starts = []
    for token_id, counts, what in ((config.image_token_id, image_tokens, "image"), (config.video_token_id, video_tokens, "video")):
        positions = np.flatnonzero(ids == int(token_id))
        if len(positions) != counts.sum():
            raise ValueError(
                f"The prompts hold {len(positions)} {what} tokens but the {what}s give {counts.tolist()}: "
                f"let the processor expand each {what} placeholder."
            )
        starts.append(positions[np.cumsum(counts) - counts])
    return np.argsort(np.concatenate(starts), kind="stable")
