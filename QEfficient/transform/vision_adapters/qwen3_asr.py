"""Qwen3-ASR: audio, not images, through the image-text path. Each audio's log-mel frames ([audios, mels, frames], any
multiple of the encoder's chunk of ``2 * n_window`` frames, padded to the batch's longest) and their mask run through
convolutions per chunk and an encoder that reads the audio's own frames only, attending within windows of them; as many
audio tokens as the audio's frames give, one audio after another, into a Qwen3 text model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from QEfficient.transform.vision_adapters.audio import AUDIO_FEATURES, MaskedAudioAdapter, float_features

FULL_CHUNK_TOKENS = 13  # the tokens of a whole chunk (100 frames), which transformers' count fixes


def qwen3_asr_tokens(frames: np.ndarray, n_window: int = 50) -> np.ndarray:
    """The audio tokens of ``frames`` log-mel frames (the processor's ``_get_audio_token_length``): 13 per whole chunk of
    ``2 * n_window`` frames, and the three stride-2 convolutions' count of the rest."""
    chunk = 2 * n_window
    rest = np.asarray(frames, np.int64) % chunk
    for _ in range(2):
        rest = (rest - 1) // 2 + 1
    return (rest - 1) // 2 + 1 + (np.asarray(frames, np.int64) // chunk) * FULL_CHUNK_TOKENS


@dataclass(frozen=True)
class Qwen3ASRAdapter(MaskedAudioAdapter):
    def chunk(self, config) -> int:
        return 2 * int(config.audio_config.n_window)

    def default_img_size(self, config) -> int:
        return 0  # any whole number of chunks: the processor pads a batch to its longest

    def most_tokens_per_unit(self, config) -> int:
        return 0  # as many as the audio's frames give: the default context is the text's

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        """Two audios of three chunks, the second's last chunk and a half padding."""
        frames = 3 * self.chunk(config)
        mask = torch.ones(2, frames, dtype=torch.int64)
        mask[1, frames // 2 :] = 0
        return {AUDIO_FEATURES: torch.zeros(2, config.audio_config.num_mel_bins, frames), self.mask_input: mask}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        frames = {0: "num_images", 1: "num_frames"}
        return {AUDIO_FEATURES: {0: "num_images", 2: "num_frames"}, self.mask_input: frames, "vision_embeds": {1: "num_image_tokens"}}

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        """The processor's ``input_features`` [audios, mels, frames] and their ``input_features_mask``."""
        features = float_features(inputs[AUDIO_FEATURES])
        mels, chunk = config.audio_config.num_mel_bins, self.chunk(config)
        if features.ndim != 3 or features.shape[1] != mels or features.shape[2] % chunk or not features.shape[2]:
            raise ValueError(
                f"input_features must be [audios, {mels}, frames], frames a multiple of {chunk} (the processor's log-mel "
                f"frames, padded to whole chunks), got {list(features.shape)}."
            )
        if inputs.get(self.mask_input) is None:
            raise ValueError(f"inputs has input_features but no {self.mask_input}: pass the processor's output whole.")
        mask = np.asarray(inputs[self.mask_input]).astype(np.int64)
        if mask.shape != features.shape[::2]:
            raise ValueError(f"{self.mask_input} must be [audios, frames] {list(features.shape[::2])}, got {list(mask.shape)}.")
        if not np.isin(mask, (0, 1)).all() or (np.diff(mask, axis=-1) > 0).any():
            raise ValueError(f"{self.mask_input} must be the processor's: 1 for each audio's frames, then 0 for its padding.")
        tokens = qwen3_asr_tokens(mask.sum(-1), config.audio_config.n_window)
        return {AUDIO_FEATURES: np.ascontiguousarray(features), self.mask_input: mask, "_tokens": tokens}
