"""What the audio-text models (Voxtral, Qwen2-Audio) share on the image-text path: audio in the place of images, log-mel
features of Whisper's 30 s windows as the "image", the config's audio token as the image token."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter

AUDIO_FEATURES = "input_features"


@dataclass(frozen=True)
class AudioTextAdapter(VisionLanguageAdapter):
    takes_audio = True

    def default_img_size(self, config) -> int:
        """The log-mel frames of one window (3000: 30 s), which the encoder requires; the "image size" of this path."""
        return 2 * int(config.audio_config.max_source_positions)

    def image_token_id(self, config) -> int:
        return int(config.audio_token_id)

    def image_placeholder(self, processor) -> str:
        raise NotImplementedError(f"{self.model_type} reads audio, not images: pass generate(inputs=its processor's output).")

    @staticmethod
    def features(inputs, frames: int, config, units: str) -> np.ndarray:
        """The processor's ``input_features`` [units, mels, frames] as float32, checked."""
        features = np.asarray(inputs[AUDIO_FEATURES], dtype=np.float32)
        mels = config.audio_config.num_mel_bins
        if features.ndim != 3 or features.shape[1:] != (mels, frames):
            raise ValueError(
                f"input_features must be [{units}, {mels}, {frames}] (the processor's log-mel frames of 30 s windows), "
                f"got {list(features.shape)}."
            )
        return np.ascontiguousarray(features)
