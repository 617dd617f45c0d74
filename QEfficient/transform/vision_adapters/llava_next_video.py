"""LLaVA-NeXT-Video: LLaVA-NeXT's tiled images, and videos whose frames are pooled by ``vision_resampler``
(average, max or a strided convolution over each frame's patch grid) before the projector (llava_video.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from QEfficient.transform.vision_adapters.llava_next import LlavaNextAdapter
from QEfficient.transform.vision_adapters.llava_video import LlavaVideoMixin


@dataclass(frozen=True)
class LlavaNextVideoAdapter(LlavaVideoMixin, LlavaNextAdapter):
    def video_rows(self, hf: nn.Module, selected: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        return hf.model.multi_modal_projector(hf.model.vision_resampler(selected))

    def frame_tokens(self) -> int:
        # HF's pooler reads each frame as a square grid of patches (the "default" strategy: no CLS row)
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        return (side // self.config.spatial_pool_stride) ** 2
