"""What the audio-text models (Voxtral, Qwen2-Audio, AudioFlamingo 3, GLM-ASR, FunASR-Nano, OmniASR, Granite Speech,
Qwen3-ASR, VibeVoice ASR) share on the image-text path: audio in the place of images (each 30 s window's log-mel
frames, 3000, as the "image" where the encoder reads windows), the config's audio token as the image token; and the
models whose audio tokens, as many as each audio's length gives, follow one another (masked audio, stacked frames, raw
samples)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter

AUDIO_FEATURES = "input_features"
WINDOW_FRAMES = 3000  # the log-mel frames of 30 s (hop 160 at 16 kHz), to which the processors pad each window


def float_features(values) -> np.ndarray:
    """A processor's audio features as float32; an empty array for a ragged list, which the callers' shape checks refuse."""
    try:
        return np.asarray(values, dtype=np.float32)
    except ValueError:
        return np.zeros(0, np.float32)


def pooled_tokens(frames: np.ndarray) -> np.ndarray:
    """A Whisper-style encoder's tokens for ``frames`` log-mel frames: its stride-2 convolution, then pooling by two
    (Qwen2-Audio's and AudioFlamingo 3's ``_get_feat_extract_output_lengths``)."""
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1


def merged_tokens(frames: np.ndarray) -> np.ndarray:
    """GLM-ASR's tokens for ``frames`` log-mel frames: its two padded convolutions (strides 1 and 2), then every four
    frames merged (its processor's ``_get_audio_token_length``)."""
    for padding, kernel, stride in ((1, 3, 1), (1, 3, 2)):
        frames = (frames + 2 * padding - (kernel - 1) - 1) // stride + 1
    return (frames - 4) // 4 + 1


@dataclass(frozen=True)
class AudioTextAdapter(VisionLanguageAdapter):
    takes_audio = True
    processor_tensors = "pt"  # AudioFlamingo 3's and GLM-ASR's processors make torch tensors only
    chat_clips: ClassVar[int | None] = None  # the audio clips one chat's prompt may hold, as its processor takes them

    def default_img_size(self, config) -> int:
        """The log-mel frames of one window, which the encoder requires; the "image size" of this path."""
        positions = getattr(config.audio_config, "max_source_positions", None)
        return 2 * int(positions) if positions else WINDOW_FRAMES

    def most_tokens_per_unit(self, config) -> int:
        """The audio tokens of a whole window (the default context's sizing)."""
        return self.tokens_per_unit(config)

    def image_token_id(self, config) -> int:
        return int(config.audio_token_id)

    def image_placeholder(self, processor) -> str:
        raise NotImplementedError(f"{self.model_type} reads audio, not images: pass generate(inputs=its processor's output).")

    @staticmethod
    def features(inputs, frames: int, config, units: str) -> np.ndarray:
        """The processor's ``input_features`` [units, mels, frames] (or a list of such per audio) as float32, checked."""
        features = inputs[AUDIO_FEATURES]
        if isinstance(features, (list, tuple)) and features and np.ndim(features[0]) == 3:
            features = np.concatenate([np.asarray(f, np.float32) for f in features])
        features = float_features(features)
        mels = config.audio_config.num_mel_bins
        if features.ndim != 3 or features.shape[1:] != (mels, frames):
            raise ValueError(
                f"input_features must be [{units}, {mels}, {frames}] (the processor's log-mel frames of 30 s windows, as it "
                f"pads them by default), got {list(features.shape)}."
            )
        return np.ascontiguousarray(features)


@dataclass(frozen=True)
class MaskedAudioAdapter(AudioTextAdapter):
    """Audio-text models whose ``get_audio_features(input_features, input_features_mask)`` gives each audio's tokens, as
    many as its length gives, one audio (window) after another (AudioFlamingo 3, GLM-ASR; Qwen3-ASR's and Granite Speech's
    adapters build on it)."""

    tokens_of: Callable[[np.ndarray], np.ndarray] = pooled_tokens  # each audio's tokens from its frames
    mask_input: str = "input_features_mask"  # the processor's name of the frames' mask
    flat_embeddings = True  # the audios' tokens one after another
    chat_clips: ClassVar[int | None] = 1  # their processors take one clip per text

    def most_tokens_per_unit(self, config) -> int:
        return int(self.tokens_of(np.int64(self.default_img_size(config))))

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        """Two audios, the second's last third padding (no axis specialised on one length)."""
        mask = torch.ones(2, img_size, dtype=torch.int64)
        mask[1, 2 * img_size // 3 :] = 0
        return {AUDIO_FEATURES: torch.zeros(2, config.audio_config.num_mel_bins, img_size), self.mask_input: mask}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {AUDIO_FEATURES: {0: "num_images"}, self.mask_input: {0: "num_images"}, "vision_embeds": {1: "num_image_tokens"}}

    def image_features(self, hf: nn.Module, input_features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[1, the audios' tokens, text hidden]: transformers' audio features, in order."""
        return hf.model.get_audio_features(input_features, mask, return_dict=True).pooler_output[None]

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        """Each audio's (window's) features [audios, mels, frames] and their mask, as the processor pads them."""
        features = self.features(inputs, img_size, config, "audios")
        if inputs.get(self.mask_input) is None:
            raise ValueError(f"inputs has input_features but no {self.mask_input}: pass the processor's output whole.")
        mask = np.asarray(inputs[self.mask_input], np.int64)
        if mask.shape != features.shape[::2]:
            raise ValueError(f"{self.mask_input} must be [audios, {img_size}], got {list(mask.shape)}.")
        return {AUDIO_FEATURES: features, self.mask_input: mask, "_tokens": self.tokens_of(mask.sum(-1)).astype(np.int64)}


@dataclass(frozen=True)
class StackedFramesAudioAdapter(MaskedAudioAdapter):
    """FunASR-Nano: features time-major, [audios, frames, stacked mel bins] (its processor stacks 7 frames of 80 bins),
    of any length (padded to the longest, masked); one audio token per frame."""

    def default_img_size(self, config) -> int:
        return 0  # any length: the processor pads a batch to its longest

    def most_tokens_per_unit(self, config) -> int:
        return 0  # as many as the audio's frames: the default context is the text's

    def feature_width(self, config) -> int:
        return int(config.audio_config.num_mel_bins * config.audio_config.num_stacked_frames)

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        """Two audios of 24 frames, the second's last third padding."""
        mask = torch.ones(2, 24, dtype=torch.int64)
        mask[1, 16:] = 0
        return {AUDIO_FEATURES: torch.zeros(2, 24, self.feature_width(config)), self.mask_input: mask}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        frames = {0: "num_images", 1: "num_frames"}
        return {AUDIO_FEATURES: frames, self.mask_input: frames, "vision_embeds": {1: "num_image_tokens"}}

    def time_major_features(self, inputs, width: int) -> np.ndarray:
        """The processor's ``input_features`` [audios, frames, width] as float32, checked, and its mask's presence."""
        features = float_features(inputs[AUDIO_FEATURES])
        if features.ndim != 3 or features.shape[2] != width:
            raise ValueError(
                f"input_features must be [audios, frames, {width}] (the processor's stacked frames), got {list(features.shape)}."
            )
        if inputs.get(self.mask_input) is None:
            raise ValueError(f"inputs has input_features but no {self.mask_input}: pass the processor's output whole.")
        return features

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        features = self.time_major_features(inputs, self.feature_width(config))
        longest = int(config.audio_config.max_position_embeddings) - 1  # its encoder's position table
        if features.shape[1] > longest:
            raise ValueError(f"The audio is too long: {features.shape[1]} frames, more than the encoder's {longest}: split it.")
        mask = np.asarray(inputs[self.mask_input], np.int64)
        if mask.shape != features.shape[:2]:
            raise ValueError(f"{self.mask_input} must be [audios, frames] {list(features.shape[:2])}, got {list(mask.shape)}.")
        features = np.ascontiguousarray(features)
        return {AUDIO_FEATURES: features, self.mask_input: mask, "_tokens": mask.sum(-1).astype(np.int64)}


@dataclass(frozen=True)
class RawAudioAdapter(AudioTextAdapter):
    """OmniASR: raw samples [audios, 1, samples] of any length (padded to the batch's longest) and their
    ``padding_mask``, through a Wav2Vec2-style convolution stack and encoder that reads the audio's frames only; its own
    ``get_audio_features`` keeps each audio's frames, one token each."""

    flat_embeddings = True
    audio_input: str = "input_values"
    mask_input: str = "padding_mask"

    def default_img_size(self, config) -> int:
        return 0  # any length

    def most_tokens_per_unit(self, config) -> int:
        return 0  # as many as the audio's frames: the default context is the text's

    def frames_of(self, config, samples: np.ndarray) -> np.ndarray:
        """The encoder's frames for ``samples``: its convolutions' arithmetic (``_get_subsampling_output_length``)."""
        frames = np.asarray(samples, np.int64)
        for kernel, stride in zip(config.audio_config.conv_kernel, config.audio_config.conv_stride):
            frames = (frames - kernel) // stride + 1
        return frames

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        """Two audios of 4000 samples, the second's last quarter padding."""
        mask = torch.ones(2, 4000, dtype=torch.int64)
        mask[1, 3000:] = 0
        return {self.audio_input: torch.zeros(2, 1, 4000), self.mask_input: mask}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {
            self.audio_input: {0: "num_images", 2: "num_samples"},
            self.mask_input: {0: "num_images", 1: "num_samples"},
            "vision_embeds": {1: "num_image_tokens"},
        }

    def image_features(self, hf: nn.Module, input_values: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """[1, the audios' tokens, text hidden]: transformers' audio features, in order."""
        return hf.model.get_audio_features(input_values, padding_mask, return_dict=True).pooler_output[None]

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        """The processor's ``input_values`` [audios, 1, samples] (or [audios, samples]) and ``padding_mask``."""
        if inputs.get(self.audio_input) is None:
            raise ValueError(f"inputs has no {self.audio_input}: pass inputs=processor(text=..., audio=...).")
        audio = np.asarray(inputs[self.audio_input], dtype=np.float32)
        audio = audio[:, None] if audio.ndim == 2 else audio
        if audio.ndim != 3 or audio.shape[1] != 1:
            raise ValueError(f"{self.audio_input} must be [audios, 1, samples] (the processor's raw audio), got {list(audio.shape)}.")
        if inputs.get(self.mask_input) is None:
            raise ValueError(f"inputs has {self.audio_input} but no {self.mask_input}: pass the processor's output whole.")
        mask = np.asarray(inputs[self.mask_input], np.int64)
        if mask.shape != (len(audio), audio.shape[2]):
            raise ValueError(f"{self.mask_input} must be [audios, samples] {[len(audio), audio.shape[2]]}, got {list(mask.shape)}.")
        tokens = self.frames_of(config, mask.sum(-1))
        return {self.audio_input: np.ascontiguousarray(audio), self.mask_input: mask, "_tokens": tokens}
