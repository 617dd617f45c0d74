"""Audio files for speech models: WAV read with the standard library (no audio codec dependency)."""

from __future__ import annotations

import io
import os
import struct
import wave
from pathlib import Path

import numpy as np

SAMPLING_RATE = 16000  # what Whisper's feature extractor expects
_PCM = {1: ("u1", 128.0, 128.0), 2: ("<i2", 0.0, 32768.0), 4: ("<i4", 0.0, 2147483648.0)}


def read_wav(path: str | os.PathLike, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """PCM WAV (8/16/32-bit, any channels: averaged to mono) -> float32 samples in [-1, 1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Audio file '{path}' does not exist.")
    return decode_wav(path.read_bytes(), sampling_rate, name=str(path))


def decode_wav(data: bytes, sampling_rate: int = SAMPLING_RATE, name: str = "the audio") -> np.ndarray:
    """``read_wav`` for the bytes of a WAV file (an upload)."""
    fix = f"ffmpeg -i in -ar {sampling_rate} -ac 1 out.wav"
    try:
        with wave.open(io.BytesIO(data)) as w:
            width, channels, rate, frames = w.getsampwidth(), w.getnchannels(), w.getframerate(), w.readframes(w.getnframes())
    except (wave.Error, EOFError, RuntimeError, OSError, ValueError, struct.error) as err:  # a damaged header's many kinds
        raise ValueError(f"'{name}' is not a PCM WAV file ({err}). Convert it first, e.g. {fix}") from err
    if width not in _PCM:
        raise ValueError(f"'{name}' has {8 * width}-bit samples; use 8, 16 or 32-bit PCM ({fix}).")
    if rate != sampling_rate:
        raise ValueError(f"'{name}' is sampled at {rate} Hz; the model needs {sampling_rate} Hz ({fix}).")
    dtype, offset, scale = _PCM[width]
    frames = frames[: len(frames) - len(frames) % (width * channels)]  # a file cut short mid-frame: its whole frames
    samples = (np.frombuffer(frames, dtype=dtype).astype(np.float32) - offset) / scale
    return samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples
