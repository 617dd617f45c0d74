"""An audio graph's inputs from its feature extractor's output, without torch or the PyTorch model: what the CTC
family's models (models/ctc.py) and an audio classifier's artifact served alone (serving/classify_media_app.py) feed
their graphs. ``reads`` says what the graph reads, recorded at compile time (``audio_reads``):

- ``{"kind": "samples"}``: raw 16 kHz samples [batch, samples] (Wav2Vec2, HuBERT, WavLM, ...), with ``"min_samples"``
  where the config says how many make one frame;
- ``{"kind": "features"}``: a spectrogram of any length and its frames' mask (Wav2Vec2-BERT);
- ``{"kind": "spectrogram", "input_name": ..., "shape": [frames, bins]}``: a spectrogram of one size (the Audio
  Spectrogram Transformer's, Whisper's encoder classifier's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_FEATURES, INPUT_VALUES
from QEfficient.utils.audio import SAMPLING_RATE

SAMPLES, FEATURES, SPECTROGRAM = "samples", "features", "spectrogram"


def as_array(value: Any, dtype) -> np.ndarray:
    """``value`` (a numpy array, a list, or a torch tensor) as a contiguous array of ``dtype``."""
    value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    return np.ascontiguousarray(value, dtype=dtype)


def _is_array(inputs: Any) -> bool:
    return isinstance(inputs, (np.ndarray, list)) or hasattr(inputs, "detach")


def audio_graph_inputs(reads: dict, inputs: Any) -> dict[str, np.ndarray]:
    """The graph's inputs by name from a processor's output (raw samples: also input_values or an array)."""
    kind = reads["kind"]
    if kind == SPECTROGRAM:
        name, shape = reads["input_name"], tuple(reads["shape"])
        if _is_array(inputs) or name not in inputs:
            raise ValueError(f"This model reads its processor's {name}: pass the processor's output (or audio to generate()).")
        features = as_array(inputs[name], np.float32)
        features = features[None] if features.ndim == 2 else features
        if features.shape[1:] != shape:
            raise ValueError(
                f"{name} must be [audios, {shape[0]}, {shape[1]}] as this model's feature extractor writes them, got "
                f"{list(features.shape)}."
            )
        return {name: features}
    if kind == FEATURES:
        if _is_array(inputs) or INPUT_FEATURES not in inputs:
            raise ValueError("This model reads its processor's input_features: pass the processor's output (or audio to generate()).")
        features = as_array(inputs[INPUT_FEATURES], np.float32)
        features = features[None] if features.ndim == 2 else features
        mask = inputs.get(ATTENTION_MASK)
        mask = np.ones(features.shape[:2], np.int64) if mask is None else as_array(mask, np.int64).reshape(features.shape[:2])
        return {INPUT_FEATURES: features, ATTENTION_MASK: mask}
    values = as_array(inputs if _is_array(inputs) else inputs[INPUT_VALUES], np.float32)
    values = values[None] if values.ndim == 1 else values
    if values.ndim == 3 and values.shape[1] == 1:  # a channel axis (Omnilingual ASR's feature extractor writes one)
        values = values[:, 0]
    if values.ndim != 2:
        raise ValueError(f"input_values must be [batch, samples] of 16 kHz audio, got shape {list(values.shape)}.")
    shortest = reads.get("min_samples")
    if shortest and values.shape[1] < shortest:
        channels = (
            " (a [samples, channels] recording? pass each audio as one channel, or the channels' mean)" if values.shape[1] <= 2 else ""
        )
        raise ValueError(
            f"The audio has {values.shape[1]} samples; this model reads at least {shortest} ({shortest * 1000 / SAMPLING_RATE:g} ms "
            f"at 16 kHz), the span of one output frame: pass longer audio{channels}."
        )
    return {INPUT_VALUES: values}


def first_frame_samples(config: Any) -> int | None:
    """The samples a raw-audio model's convolutional feature encoder turns into one frame (400 for Wav2Vec2's kernels and
    strides), from its config's ``conv_kernel`` and ``conv_stride``; None where the config names neither."""
    kernels, strides = getattr(config, "conv_kernel", None), getattr(config, "conv_stride", None)
    if not kernels or not strides or len(kernels) != len(strides):
        return None
    samples = 1
    for kernel, stride in zip(reversed(kernels), reversed(strides)):
        samples = (samples - 1) * int(stride) + int(kernel)
    return samples


def processed_audio(processor, audio: list[np.ndarray], reads: dict, return_tensors: str = "np") -> list:
    """The processor's outputs for raw 16 kHz ``audio`` (a list of arrays): audios of different lengths one by one (the
    graph reads no padding mask), all together where they are alike; a spectrogram of one size padded (or cut) by the
    processor itself (Whisper's to 30 s)."""
    batches = [[a] for a in audio] if len({len(a) for a in audio}) > 1 else [audio]
    padding = {} if reads["kind"] == SPECTROGRAM else {"padding": True}
    return [processor(batch, sampling_rate=SAMPLING_RATE, return_tensors=return_tensors, **padding) for batch in batches]
