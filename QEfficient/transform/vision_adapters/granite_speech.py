"""Granite Speech (and Granite Speech Plus): audio, not images, through the image-text path. Each audio's stacked
log-mel frames ([audios, frames, 2 x mels], any length, padded to the batch's longest) run through a conformer that
attends within blocks of frames, then a Q-Former that reads windows of frames, a few queries each; the processor's
``input_features_mask`` marks which of those query tokens are the audio's own (its length's windows), and they take the
audio tokens' places in a Granite text model, as transformers' ``get_merged_audio_embeddings`` puts them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.audio import AUDIO_FEATURES, StackedFramesAudioAdapter

EXAMPLE_FRAMES = 40  # the export's example: no block or window count of a real audio is specialised on it


def windows_tokens(config, frames: int) -> int:
    """The projector's query tokens for ``frames`` encoder frames: whole windows of ``window_size``, each
    ``window_size // downsample_rate`` queries (the processor's ``_get_num_audio_features``)."""
    return -(-int(frames) // config.window_size) * (config.window_size // config.downsample_rate)


@dataclass(frozen=True)
class GraniteSpeechAdapter(StackedFramesAudioAdapter):
    chat_clips: ClassVar[int | None] = None  # its processor takes a text's clips in order
    audio_only_lora = True  # its checkpoints' adapter: transformers' generate turns it off for text alone

    def feature_width(self, config) -> int:
        return int(config.encoder_config.input_dim)

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        """Two audios of 40 frames, the second's tokens one window fewer."""
        tokens = windows_tokens(config, EXAMPLE_FRAMES)
        mask = torch.ones(2, tokens, dtype=torch.int64)
        mask[1, tokens - config.window_size // config.downsample_rate :] = 0
        return {AUDIO_FEATURES: torch.zeros(2, EXAMPLE_FRAMES, self.feature_width(config)), self.mask_input: mask}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {
            AUDIO_FEATURES: {0: "num_images", 1: "num_frames"},
            self.mask_input: {0: "num_images", 1: "num_audio_queries"},
            "vision_embeds": {1: "num_image_tokens"},
        }

    def image_features(self, hf: nn.Module, input_features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[1, the audios' tokens, text hidden]: transformers' projected audio features, each audio's marked ones."""
        features = hf.model.get_audio_features(input_features, return_dict=True).pooler_output
        return features[mask.bool()][None]

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        """The processor's ``input_features`` [audios, frames, width] and ``input_features_mask`` [audios, query tokens]."""
        features = self.time_major_features(inputs, self.feature_width(config))
        mask = np.asarray(inputs[self.mask_input]).astype(np.int64)
        tokens = windows_tokens(config, features.shape[1])
        if mask.shape != (len(features), tokens):
            raise ValueError(
                f"{self.mask_input} must be [audios, {tokens}] (the projector's query tokens of {features.shape[1]} frames), "
                f"got {list(mask.shape)}."
            )
        tokens = (mask != 0).sum(-1)  # the graph keeps the tokens its mask marks, as transformers does
        return {AUDIO_FEATURES: np.ascontiguousarray(features), self.mask_input: mask, "_tokens": tokens}
