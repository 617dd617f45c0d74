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
    """PCM (8/16/24/32-bit) or float (32/64-bit) WAV, any channels (averaged to mono) -> float32 samples (PCM's in [-1, 1),
    float's as written)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Audio file '{path}' does not exist.")
    return decode_wav(path.read_bytes(), sampling_rate, name=str(path))


def decode_wav(data: bytes, sampling_rate: int = SAMPLING_RATE, name: str = "the audio") -> np.ndarray:
    """``read_wav`` for the bytes of a WAV file (an upload): PCM of 8, 16, 24 or 32 bits or IEEE float, in the plain or the
    WAVE_FORMAT_EXTENSIBLE layout (ffmpeg's for 24 and 32 bits and for more than two channels)."""
    fix = f"ffmpeg -i in -ar {sampling_rate} -ac 1 out.wav"
    data, is_float = _as_plain_pcm(data)
    try:
        with wave.open(io.BytesIO(data)) as w:
            width, channels, rate, frames = w.getsampwidth(), w.getnchannels(), w.getframerate(), w.readframes(w.getnframes())
    except (wave.Error, EOFError, RuntimeError, OSError, ValueError, struct.error) as err:  # a damaged header's many kinds
        raise ValueError(f"'{name}' is not a PCM WAV file ({err}). Convert it first, e.g. {fix}") from err
    if width not in ((4, 8) if is_float else (*_PCM, 3)):
        kind = "floating-point" if is_float else "PCM"
        raise ValueError(f"'{name}' has {8 * width}-bit {kind} samples; use 8, 16, 24 or 32-bit PCM or 32-bit float ({fix}).")
    if rate != sampling_rate:
        raise ValueError(f"'{name}' is sampled at {rate} Hz; the model needs {sampling_rate} Hz ({fix}).")
    frames = frames[: len(frames) - len(frames) % (width * channels)]  # a file cut short mid-frame: its whole frames
    if is_float:
        samples = np.frombuffer(frames, dtype="<f4" if width == 4 else "<f8").astype(np.float32)
        if not np.isfinite(samples).all():
            raise ValueError(f"'{name}' holds samples that are not finite numbers (NaN or infinity): it is damaged.")
    elif width == 3:  # little-endian 24-bit: widened to 32 bits (the low byte zero), then scaled as 32-bit
        padded = np.zeros((len(frames) // 3, 4), np.uint8)
        padded[:, 1:] = np.frombuffer(frames, np.uint8).reshape(-1, 3)
        samples = padded.view("<i4").ravel().astype(np.float32) / 2147483648.0
    else:
        dtype, offset, scale = _PCM[width]
        samples = (np.frombuffer(frames, dtype=dtype).astype(np.float32) - offset) / scale
    return samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples


_EXTENSIBLE, _IEEE_FLOAT = 0xFFFE, 3


def _as_plain_pcm(data: bytes) -> tuple[bytes, bool]:
    """(the file with its format tag set to plain PCM, whether its samples are floats) for an IEEE-float or a
    WAVE_FORMAT_EXTENSIBLE (PCM or float) file, which the standard library's reader refuses; other bytes unchanged."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data, False
    at = 12
    while at + 8 <= len(data):
        chunk, size = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if chunk == b"fmt ":
            if size < 16 or at + 8 + size > len(data):
                return data, False
            tag = int.from_bytes(data[at + 8 : at + 10], "little")
            if tag == _EXTENSIBLE and size >= 40:  # the sub-format GUID's first two bytes: its format tag
                tag = int.from_bytes(data[at + 32 : at + 34], "little")
            if tag in (1, _IEEE_FLOAT) and data[at + 8 : at + 10] != b"\x01\x00":
                return data[: at + 8] + b"\x01\x00" + data[at + 10 :], tag == _IEEE_FLOAT
            return data, False
        at += 8 + size + size % 2  # chunks are padded to an even length
    return data, False
