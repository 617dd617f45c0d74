"""Voxtral: audio, not images, through the image-text path. Each 30 s chunk of the audio is a unit: its log-mel
features (Whisper's, [chunks, mels, 3000]) through a Whisper-style encoder, the states of every four frames concatenated
and projected by an MLP into a fixed number of audio tokens per chunk (375 at 30 s), which take the audio placeholder
tokens' places in a Llama (Mistral) text model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.audio import AUDIO_FEATURES, AudioTextAdapter


@dataclass(frozen=True)
class VoxtralAdapter(AudioTextAdapter):
    chat_clips: ClassVar[int | None] = 0  # its processor takes audio only through its own request format (mistral-common)

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        return {AUDIO_FEATURES: torch.zeros(2, config.audio_config.num_mel_bins, img_size)}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {AUDIO_FEATURES: {0: "num_images"}, "vision_embeds": {0: "num_images"}}

    def image_features(self, hf: nn.Module, input_features: torch.Tensor) -> torch.Tensor:
        """[chunks, tokens per chunk, text hidden]: transformers' audio features, a row of tokens per chunk."""
        embeds = hf.model.get_audio_features(input_features, return_dict=True).pooler_output
        return embeds.reshape(input_features.shape[0], -1, embeds.shape[-1])

    def tokens_per_unit(self, config) -> int:
        audio = config.audio_config
        return int(audio.max_source_positions) * int(audio.hidden_size) // int(audio.intermediate_size)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        """The encoder's chunks from the processor's ``input_features`` [chunks, mels, frames]."""
        features = self.features(inputs, img_size, config, "chunks")
        return {AUDIO_FEATURES: features, "_tokens": np.full(len(features), self.tokens_per_unit(config), np.int64)}
