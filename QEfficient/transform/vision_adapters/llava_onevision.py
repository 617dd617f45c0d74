"""LLaVA-OneVision: LLaVA-NeXT's any-resolution tiling (SigLIP tower, Qwen2 text model) with a cap on the
unpadded grid (``vision_aspect_ratio`` "anyres_max_N"): HF shrinks a larger grid by bilinear interpolation,
which is not a gather; such images get a clear error (resize them smaller). Several images in one prompt
are not tiled (HF's ``batch_num_images``). Videos: each frame's projected rows shrunk to half the grid (rounded up)
by bilinear interpolation, one image_newline row after the video's frames (llava_video.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from QEfficient.transform.vision_adapters.llava_next import LlavaNextAdapter
from QEfficient.transform.vision_adapters.llava_video import LlavaVideoMixin


@dataclass(frozen=True)
class LlavaOnevisionAdapter(LlavaVideoMixin, LlavaNextAdapter):
    video_newline = True

    def video_rows(self, hf: nn.Module, selected: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        return hf.model.apply_pooling(projected)

    def frame_tokens(self) -> int:
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        return math.ceil(side / 2) ** 2

    def tokens_per_unit(self, config) -> int:
        side = config.vision_config.image_size // config.vision_config.patch_size
        return side * side - (1 if config.vision_feature_select_strategy == "default" else 0)  # SigLIP: no CLS position

    def _pack(self, rows: torch.Tensor, image_size) -> torch.Tensor:
        from transformers.models.llava_next.modeling_llava_next import get_anyres_image_grid_shape, unpad_image
        from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionModel

        cfg = self.config
        side = cfg.vision_config.image_size // cfg.vision_config.patch_size
        if rows.shape[0] > 1:
            grid_h, grid_w = get_anyres_image_grid_shape(list(image_size), cfg.image_grid_pinpoints, cfg.vision_config.image_size)
            _, height, width = unpad_image(torch.empty(1, grid_h * side, grid_w * side), torch.as_tensor(list(image_size))).shape
            cap = int(cfg.vision_aspect_ratio.removeprefix("anyres_max_"))
            if math.sqrt(height * width / (cap * side**2)) > 1.1:
                raise ValueError(
                    f"An image of {tuple(image_size)} px fills more than {cfg.vision_aspect_ratio} tiles; HF shrinks its features "
                    "by bilinear interpolation, which is not supported here: resize the image smaller."
                )
        packed, _ = LlavaOnevisionModel.pack_image_features(
            SimpleNamespace(config=cfg),
            [rows],
            torch.as_tensor([list(image_size)]),
            image_newline=torch.tensor([-1.0], dtype=rows.dtype),
            vision_aspect_ratio=cfg.vision_aspect_ratio,
        )
        return packed[0]
