"""Video classifiers (VideoMAE, TimeSformer, ViViT, V-JEPA 2): forward(frames [B, T, C, H, W]) -> logits [B, labels],
with eager attention, the model's input by its own name (pixel_values, or V-JEPA 2's pixel_values_videos)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.encoder import eager_everywhere

# video classifiers not run here, with why
UNSUPPORTED_VIDEO_CLASSIFIERS: dict[str, str] = {}


def video_shape(config) -> tuple[int, int, int]:
    """(frames, height, width) the model was trained at, from its config (or its vision config)."""
    vision = getattr(config, "vision_config", None) or config
    frames = getattr(vision, "num_frames", None) or getattr(vision, "frames_per_clip", None)
    size = getattr(vision, "image_size", None) or getattr(vision, "crop_size", None)
    if frames is None or size is None:
        raise ValueError(f"{config.model_type}'s config names no num_frames and image_size: pass compile(num_frames=..., img_size=...).")
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return int(frames), height, width


class QEffVideoClassifier(nn.Module):
    """The classifier's logits for a batch of clips at the compiled frames and size."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        reason = UNSUPPORTED_VIDEO_CLASSIFIERS.get(hf_model.config.model_type)
        if reason is not None:
            raise NotImplementedError(f"{type(hf_model).__name__} is not supported: {reason}.")
        self.hf = hf_model
        self.input_name = hf_model.main_input_name
        vision = getattr(hf_model.config, "vision_config", None) or hf_model.config
        self.num_channels = getattr(vision, "num_channels", None) or getattr(vision, "in_chans", None) or 3

    @property
    def config(self):
        return self.hf.config

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        with eager_everywhere(self.config):
            return self.hf(**{self.input_name: frames}).logits
