"""Video-LLaVA: Llava's layout with two CLIP towers, ``image_tower`` for images (``pixel_values_images``) and
``video_tower`` for video frames (``pixel_values_videos``; every position kept, CLS included), one projector.

The vision graph takes both pixel inputs and a ``gather`` [image and video tokens] that lays their projected rows
out in prompt order (see llava_video.py for the prompt side). A tower cannot run on zero frames in ONNX Runtime, so
an absent kind gets one zero frame whose rows nothing gathers; with ``gather`` first, the one-graph layout's
vision branch runs only when a chunk brings images or videos.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.llava import LlavaAdapter
from QEfficient.transform.vision_adapters.llava_video import processor_videos, prompt_order

_PIXELS = {False: "pixel_values", True: "pixel_values_videos"}  # graph input of an image unit / a video unit


@dataclass(frozen=True)
class VideoLlavaAdapter(LlavaAdapter):
    flat_embeddings = True
    takes_videos = True
    config: Any = field(default=None, compare=False)  # the model config (for_config): token ids, tower shape

    def for_config(self, config) -> VideoLlavaAdapter:
        return dataclasses.replace(self, config=config)

    # --- the vision graph -----------------------------------------------------------------------
    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        frame = (3, img_size, img_size)
        return {"gather": torch.arange(20), "pixel_values": torch.zeros(2, *frame), "pixel_values_videos": torch.zeros(3, *frame)}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {
            "gather": {0: "num_image_tokens"},
            "pixel_values": {0: "num_images"},
            "pixel_values_videos": {0: "num_frames"},
            "vision_embeds": {1: "num_image_tokens"},
        }

    def image_features(self, hf: nn.Module, gather: torch.Tensor, pixel_values: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        images = hf.model.get_image_features(pixel_values, return_dict=True).pooler_output
        video = hf.model.get_video_features(frames.unsqueeze(0), return_dict=True).pooler_output
        hidden = images.shape[-1]
        return torch.cat([images.reshape(-1, hidden), video.reshape(-1, hidden)])[gather].unsqueeze(0)

    # --- the host side --------------------------------------------------------------------------
    def _frame_tokens(self) -> int:
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        return side * side + 1  # get_video_features keeps the CLS position

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        pixels = inputs["pixel_values_images"] if "pixel_values_images" in inputs else inputs.get("pixel_values")
        frame = (3, img_size, img_size)
        images = super().vision_inputs({"pixel_values": np.zeros((0, *frame)) if pixels is None else pixels}, img_size, config)
        videos = processor_videos(inputs, img_size)
        units = {
            "pixel_values": images["pixel_values"],
            "pixel_values_videos": np.concatenate([np.zeros((0, *frame), np.float32), *videos]),
            "_rows": np.r_[np.ones(len(images["_tokens"])), [len(v) for v in videos]].astype(np.int64),
            "_tokens": np.r_[images["_tokens"], [len(v) * self._frame_tokens() for v in videos]].astype(np.int64),
            "_video": np.r_[np.zeros(len(images["_tokens"]), bool), np.ones(len(videos), bool)],
        }
        video_tokens = units["_tokens"][len(images["_tokens"]) :]
        order = prompt_order(inputs, self.config, images["_tokens"], video_tokens) if videos else np.arange(len(images["_tokens"]))
        return self.select_units(units, order)

    def select_units(self, vision: dict[str, np.ndarray], units: np.ndarray) -> dict[str, np.ndarray]:
        starts = {kind: np.cumsum(np.where(vision["_video"] == kind, vision["_rows"], 0)) for kind in _PIXELS}
        picked = {}
        for kind, name in _PIXELS.items():
            mine = [u for u in units if vision["_video"][u] == kind]
            rows = [np.arange(starts[kind][u] - vision["_rows"][u], starts[kind][u]) for u in mine]
            picked[name] = vision[name][np.concatenate([*rows, np.zeros(0, np.int64)])]
        return {**picked, **{key: vision[key][units] for key in ("_rows", "_tokens", "_video")}}

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # each kind padded to one frame at least; a video's rows follow every image row, then the videos before it
        pixels = {name: vision[name] for name in _PIXELS.values()}
        pixels = {name: value if len(value) else np.zeros((1, *value.shape[1:]), np.float32) for name, value in pixels.items()}
        image_rows = len(pixels["pixel_values"]) * self.tokens_per_unit(self.config)
        is_video = vision["_video"]
        frames_before = np.cumsum(np.where(is_video, vision["_rows"], 0)) - np.where(is_video, vision["_rows"], 0)
        images_before = np.cumsum(~is_video) - ~is_video
        base = np.where(is_video, image_rows + frames_before * self._frame_tokens(), images_before * self.tokens_per_unit(self.config))
        starts = np.repeat(base - (np.cumsum(vision["_tokens"]) - vision["_tokens"]), vision["_tokens"])
        gather = (np.arange(int(vision["_tokens"].sum())) + starts).astype(np.int64)
        return {"gather": gather, **pixels}
