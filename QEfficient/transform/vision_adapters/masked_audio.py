"""Audio-text models whose ``get_audio_features(input_features, input_features_mask)`` gives each audio's tokens, as
many as its length gives, one audio after another (AudioFlamingo 3: a Whisper-style encoder that reads the audio's
frames only, pooled by two; GLM-ASR: a rotary encoder over the padded frames, every four frames' states merged), into
the text model's embeddings at the audio tokens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.audio import AUDIO_FEATURES, AudioTextAdapter

FEATURES_MASK = "input_features_mask"


def pooled_tokens(frames: np.ndarray) -> np.ndarray:
    """A Whisper-style encoder's tokens for ``frames`` log-mel frames: its stride-2 convolution, then pooling by two
    (AudioFlamingo 3's, Qwen2-Audio's ``_get_feat_extract_output_lengths``)."""
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1


def merged_tokens(frames: np.ndarray) -> np.ndarray:
    """GLM-ASR's tokens for ``frames`` log-mel frames: its two padded convolutions (strides 1 and 2), then every four
    frames merged (its processor's ``_get_audio_token_length``)."""
    for padding, kernel, stride in ((1, 3, 1), (1, 3, 2)):
        frames = (frames + 2 * padding - (kernel - 1) - 1) // stride + 1
    return (frames - 4) // 4 + 1


@dataclass(frozen=True)
class MaskedAudioAdapter(AudioTextAdapter):
    tokens_of: Callable[[np.ndarray], np.ndarray] = pooled_tokens  # each audio's tokens from its frames
    any_length: bool = False  # the encoder reads windows of any length (GLM-ASR's processor pads to the longest)
    flat_embeddings = True  # the audios' tokens one after another: each gives as many as its length

    def default_img_size(self, config) -> int:
        return 0 if self.any_length else super().default_img_size(config)

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        """Two audios, the second's last third padding (no axis specialised on one length)."""
        frames = img_size or 48
        mask = torch.ones(2, frames, dtype=torch.int64)
        mask[1, 2 * frames // 3 :] = 0
        return {AUDIO_FEATURES: torch.zeros(2, config.audio_config.num_mel_bins, frames), FEATURES_MASK: mask}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        frames = {1: "num_frames"} if self.any_length else {}
        return {
            AUDIO_FEATURES: {0: "num_images", **({2: "num_frames"} if self.any_length else {})},
            FEATURES_MASK: {0: "num_images", **frames},
            "vision_embeds": {1: "num_image_tokens"},
        }

    def image_features(self, hf: nn.Module, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> torch.Tensor:
        """[1, the audios' tokens, text hidden]: transformers' audio features, in order."""
        return hf.model.get_audio_features(input_features, input_features_mask, return_dict=True).pooler_output[None]

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        """Each audio's (window's) features [audios, mels, frames] and their mask, as the processor pads them."""
        frames = np.asarray(inputs[AUDIO_FEATURES]).shape[-1] if self.any_length else img_size
        features = self.features(inputs, frames, config, "audios")
        mask = inputs.get(FEATURES_MASK)
        mask = np.ones(features.shape[::2], np.int64) if mask is None else np.asarray(mask, np.int64)
        if mask.shape != features.shape[::2]:
            raise ValueError(f"input_features_mask must be [audios, {frames}], got {list(mask.shape)}.")
        return {AUDIO_FEATURES: features, FEATURES_MASK: mask, "_tokens": self.tokens_of(mask.sum(-1)).astype(np.int64)}
