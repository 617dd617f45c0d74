"""Graph specs of the one-graph image, video and audio models: image encoders and classifiers, video classifiers,
CTC and audio classifiers, speaker verification, audio features and spectrogram models.

As in graph_specs.py: names from graph_names.py, no torch at import time (only ``dummy_inputs`` needs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from QEfficient.export.graph_names import (
    ATTENTION_MASK,
    EMBEDDINGS,
    INPUT_FEATURES,
    INPUT_VALUES,
    LOGITS,
    LOGITS_MASK,
    OUTPUT,
    PIXEL_VALUES,
)


@dataclass(frozen=True)
class ImageEncoderGraphSpec:
    """Image encoders (ViT, DINOv2, ConvNeXt, ...) and their classifiers: the pixels at the compiled size in, one output
    (the last hidden state, pooled where asked, or the logits)."""

    output_name: str
    more_outputs: tuple[str, ...] = ()  # a detector's boxes after its logits

    input_names = (PIXEL_VALUES,)

    @property
    def output_names(self) -> list[str]:
        return [self.output_name, *self.more_outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {PIXEL_VALUES: {0: "batch_size"}, **{name: {0: "batch_size"} for name in self.output_names}}

    @staticmethod
    def dummy_inputs(channels: int, height: int, width: int) -> tuple:
        import torch

        return (torch.rand(2, channels, height, width, generator=torch.Generator().manual_seed(0)),)

    @staticmethod
    def specializations(batch_size: int, height: int, width: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "height": str(height), "width": str(width)}
        return {"specializations": [{"name": "ImageEncoder", "symbols": symbols}]}


@dataclass(frozen=True)
class VideoClassificationGraphSpec:
    """Video classifiers (VideoMAE, TimeSformer, ViViT, V-JEPA 2): the frames [batch, frames, channels, height, width]
    at the compiled size in (named as the model names them: pixel_values, or pixel_values_videos), the logits out."""

    input_name: str

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self.input_name,)

    output_names = [LOGITS]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {self.input_name: {0: "batch_size"}, LOGITS: {0: "batch_size"}}

    @staticmethod
    def dummy_inputs(frames: int, channels: int, height: int, width: int) -> tuple:
        import torch

        return (torch.rand(2, frames, channels, height, width, generator=torch.Generator().manual_seed(0)),)

    @staticmethod
    def specializations(batch_size: int, frames: int, height: int, width: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "num_frames": str(frames), "height": str(height), "width": str(width)}
        return {"specializations": [{"name": "VideoClassifier", "symbols": symbols}]}


@dataclass(frozen=True)
class CTCGraphSpec:
    """CTC speech models: raw 16 kHz samples in, per-frame logits out."""

    input_names = (INPUT_VALUES,)
    output_names = (LOGITS,)

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return {INPUT_VALUES: {0: "batch_size", 1: "seq_len"}, LOGITS: {0: "batch_size", 1: "frames"}}

    @staticmethod
    def dummy_inputs(config=None) -> tuple:
        import torch

        return (torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1,)

    @staticmethod
    def specializations(lengths: list[int], batch_size: int) -> dict[str, Any]:
        return {
            "specializations": [
                {"name": f"CTC_{i}" if len(lengths) > 1 else "CTC", "symbols": {"batch_size": str(batch_size), "seq_len": str(n)}}
                for i, n in enumerate(lengths)
            ]
        }


class AudioClassificationGraphSpec(CTCGraphSpec):
    """Audio classifiers over raw 16 kHz samples: the samples in, one row of logits per audio out (the model pools its
    frames)."""

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return {INPUT_VALUES: {0: "batch_size", 1: "seq_len"}, LOGITS: {0: "batch_size"}}


class AudioXVectorGraphSpec(CTCGraphSpec):
    """Speaker verification over raw 16 kHz samples (Wav2Vec2, WavLM, ... ``ForXVector``): the samples in, the speaker
    classifier's logits and the x-vector (its embedding) per audio out."""

    output_names = (LOGITS, EMBEDDINGS)

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return {INPUT_VALUES: {0: "batch_size", 1: "seq_len"}, LOGITS: {0: "batch_size"}, EMBEDDINGS: {0: "batch_size"}}


class AudioFeatureGraphSpec(CTCGraphSpec):
    """Audio encoders' hidden states over raw 16 kHz samples (Wav2Vec2Model, HubertModel, ...): the samples in, the last
    hidden state per frame out."""

    output_names = (OUTPUT,)

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return {INPUT_VALUES: {0: "batch_size", 1: "seq_len"}, OUTPUT: {0: "batch_size", 1: "frames"}}


@dataclass(frozen=True)
class SpectrogramClassificationGraphSpec:
    """Audio classifiers over a spectrogram of one fixed size (the Audio Spectrogram Transformer's 1024 x 128 frames,
    named input_values; Whisper's encoder's 80 x 3000, input_features): the features in, one row of logits out."""

    input_name: str
    shape: tuple[int, int]  # one audio's features

    output_names = (LOGITS,)

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self.input_name,)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {self.input_name: {0: "batch_size"}, LOGITS: {0: "batch_size"}}

    def dummy_inputs(self, config=None) -> tuple:
        import torch

        return (torch.randn(2, *self.shape, generator=torch.Generator().manual_seed(0)),)

    @staticmethod
    def specializations(lengths: list[int], batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "AudioClassification", "symbols": {"batch_size": str(batch_size)}}]}


EXAMPLE_FRAMES = 100  # the export example's feature frames


_ROWS = {0: "batch_size"}  # an output with one row per audio
_FRAMES = {0: "batch_size", 1: "frames"}  # an output with a row per output frame


@dataclass(frozen=True)
class FeatureCTCGraphSpec(CTCGraphSpec):
    """CTC models that read their feature extractor's spectrogram (Parakeet, Wav2Vec2-BERT, Granite Speech 5): the
    features and their frames' mask in, per-frame logits and which output frames hold audio out (transformers' Parakeet
    decodes the others as blanks). The other heads over such a spectrogram differ in their outputs only."""

    input_names = (INPUT_FEATURES, ATTENTION_MASK)
    output_axes = {LOGITS: _FRAMES, LOGITS_MASK: _FRAMES}
    output_names = tuple(output_axes)

    @classmethod
    def dynamic_axes(cls) -> dict[str, dict[int, str]]:
        frames = {0: "batch_size", 1: "seq_len"}
        return {INPUT_FEATURES: frames, ATTENTION_MASK: frames, **cls.output_axes}

    @staticmethod
    def dummy_inputs(config=None) -> tuple:
        """Two inputs of EXAMPLE_FRAMES frames of the model's feature width, the second's last fifth padding."""
        import torch

        bins = feature_width(config)
        features = torch.randn(2, EXAMPLE_FRAMES, bins, generator=torch.Generator().manual_seed(0))
        mask = torch.ones(2, EXAMPLE_FRAMES, dtype=torch.int64)
        mask[1, EXAMPLE_FRAMES * 4 // 5 :] = 0
        return features, mask


class FeatureAudioClassificationGraphSpec(FeatureCTCGraphSpec):
    """Audio classifiers over a spectrogram of any length (Wav2Vec2-BERT): one row of logits per audio (the model pools
    the frames its mask keeps)."""

    output_axes = {LOGITS: _ROWS}
    output_names = tuple(output_axes)


class FeatureAudioFrameGraphSpec(FeatureCTCGraphSpec):
    """Per-frame classes over a spectrogram of any length (Wav2Vec2-BERT's diarization head)."""

    output_axes = {LOGITS: _FRAMES}
    output_names = tuple(output_axes)


class FeatureAudioStatesGraphSpec(FeatureCTCGraphSpec):
    """An audio encoder's last hidden state per frame over a spectrogram of any length (Wav2Vec2BertModel)."""

    output_axes = {OUTPUT: _FRAMES}
    output_names = tuple(output_axes)


class FeatureAudioXVectorGraphSpec(FeatureCTCGraphSpec):
    """Speaker verification over a spectrogram of any length (Wav2Vec2-BERT ``ForXVector``): the speaker classifier's
    logits and the x-vector per audio."""

    output_axes = {LOGITS: _ROWS, EMBEDDINGS: _ROWS}
    output_names = tuple(output_axes)


# encoders whose feature frame holds several mel frames (Granite Speech 5's: each with its delta, stacked in pairs)
FRAMES_PER_FEATURE = {"granite_speech5_encoder": 4}
# encoders that pad each layer's frames to whole attention blocks only where they do not fill them (Granite Speech 5's):
# the config field of the block's size
BLOCK_PADDED_ENCODERS = {"granite_speech5_encoder": "context_size"}


def check_example_padding(config) -> None:
    """A block-padded encoder's branch on the padding is exported as the example takes it: the example's frames (halved
    by each subsampling layer) must need the padding at every layer, or lengths that do would fail in the graph."""
    encoder = getattr(config, "encoder_config", None)
    field = BLOCK_PADDED_ENCODERS.get(getattr(encoder, "model_type", None))
    if field is None:
        return
    frames, block = EXAMPLE_FRAMES, getattr(encoder, field)
    for layer in range(encoder.num_hidden_layers):
        if frames % block == 0:
            raise NotImplementedError(
                f"{type(config).__name__} with {field}={block}: its layer {layer} would see the export example's {frames} "
                "frames as whole blocks and keep no padding for other lengths; not supported."
            )
        frames = frames // 2 if layer in encoder.subsample_layers else frames


def feature_width(config) -> int:
    """The width of a frame of a spectrogram CTC model's input features: its encoder config's mel bins (Parakeet; Granite
    Speech 5's times FRAMES_PER_FEATURE), or its feature projection's input (Wav2Vec2-BERT: stacked mel bins)."""
    encoder = getattr(config, "encoder_config", None) or config
    bins = getattr(encoder, "num_mel_bins", None) or getattr(encoder, "feature_projection_input_dim", None)
    if bins is None:
        raise ValueError(f"{type(config).__name__} names no feature width (num_mel_bins or feature_projection_input_dim).")
    return int(bins) * FRAMES_PER_FEATURE.get(encoder.model_type, 1)
