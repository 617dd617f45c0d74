"""OpenAI's speech API over a VITS model (MMS-TTS; QEFFAutoModelForTextToWaveform).

Routes: GET /health, GET /v1/models, GET /version, POST /v1/audio/speech (JSON: ``input`` the text, at most 4096
characters as OpenAI takes; optional ``model``; ``response_format`` wav, the default here (at the model's sampling
rate, which its header names), or pcm: 16-bit little-endian mono at 24 kHz, as OpenAI's (resampled); ``speed`` 0.25 to
4, the model's speaking rate times it; ``voice`` a multi-speaker model's speaker number, ignored by one speaker as
OpenAI's names are). OpenAI's compressed formats (mp3, opus, aac, flac), streamed events and ``instructions`` (VITS
reads no style prompt) are refused, saying so. Long texts are spoken sentence by sentence (pieces of at most
MAX_PIECE_CHARS characters), the pieces' audio joined: VITS' attention grows with the square of the text. Requests run
one at a time on a worker thread, so /health keeps answering.
"""

from __future__ import annotations

import asyncio
import io
import re
import wave

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

from QEfficient.serving.app import openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.protocol import APIError, artifact_model_names, parse_json, served_model, served_model_names
from QEfficient.serving.runner import NoRunner

MAX_INPUT_CHARS = 4096  # OpenAI's limit on ``input``
MAX_PIECE_CHARS = 400  # the text spoken in one pass: its sentences, split at spaces where one is longer
PCM_RATE = 24000  # OpenAI's pcm format
DEFAULT_MAX_TTS_BYTES = 1024 * 1024  # a JSON body of 4096 characters is far below


_FULL_STOPS = "。！？；"  # CJK sentence ends: no space follows them
_SENTENCES = re.compile(rf"(?<=[.!?;])\s+|(?<=[{_FULL_STOPS}])\s*")


def text_pieces(text: str, limit: int = MAX_PIECE_CHARS) -> list[str]:
    """The text's sentences (ended by . ! ? ; or their full-width forms), joined while they fit in ``limit``
    characters; a longer sentence split at spaces, and a run of more than ``limit`` characters without one (a script
    written without spaces) in pieces of ``limit``: all of the text is spoken."""
    pieces: list[str] = []
    for sentence in _SENTENCES.split(text.strip()):
        words = [word[start : start + limit] for word in sentence.split() for start in range(0, len(word), limit)]
        while words:
            piece = words.pop(0)
            while words and len(piece) + 1 + len(words[0]) <= limit:
                piece += " " + words.pop(0)
            space = "" if pieces and pieces[-1][-1:] in _FULL_STOPS else " "
            if pieces and len(pieces[-1]) + len(space) + len(piece) <= limit and pieces[-1][-1:] in ".!?;" + _FULL_STOPS:
                pieces[-1] += space + piece
            else:
                pieces.append(piece)
    return pieces


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``target`` Hz by their spectrum (band-limited, as scipy.signal.resample), for a whole clip."""
    if rate == target or not len(samples):
        return samples
    count = max(1, round(len(samples) * target / rate))
    spectrum = np.fft.rfft(samples)
    bins = count // 2 + 1
    spectrum = spectrum[:bins] if len(spectrum) >= bins else np.pad(spectrum, (0, bins - len(spectrum)))
    return np.fft.irfft(spectrum, count) * (count / len(samples))


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit PCM mono WAV of float samples in [-1, 1] (clipped)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm16(samples))
    return out.getvalue()


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()


def _speech_options(body: dict, speakers: int) -> dict:
    """generate()'s options from OpenAI's fields: ``speed`` scales the model's speaking rate; ``voice`` is a speaker's
    number for a multi-speaker model."""
    speed = body.get("speed", 1.0)
    if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not 0.25 <= speed <= 4.0:
        raise APIError(400, f"'speed' must be a number from 0.25 to 4.0, got {speed!r}.", "speed")
    options = {"speed": float(speed)}
    voice = body.get("voice")
    if speakers > 1:
        try:
            speaker = int(str(voice))
        except ValueError:
            message = f"This model has {speakers} speakers: 'voice' must be a number from 0 to {speakers - 1}."
            raise APIError(400, message, "voice") from None
        if not 0 <= speaker < speakers:
            raise APIError(400, f"'voice' must be a number from 0 to {speakers - 1}, got {voice!r}.", "voice")
        options["speaker_id"] = speaker
    return options


def create_tts_app(model, tokenizer, model_id: str, *, served_names=None, api_key=None, max_body_bytes=DEFAULT_MAX_TTS_BYTES):
    """The app over a compiled QEFFAutoModelForTextToWaveform and its tokenizer."""
    app = FastAPI(title="QEfficient speech synthesis", version="1")
    names = served_model_names(model_id, served_names)
    rate, speakers = int(model.sampling_rate), int(model.config.num_speakers)
    base_rate = float(model.hf_model.speaking_rate)
    lock = asyncio.Lock()  # one request at a time: the cores are shared anyway
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        body = parse_json(await read_limited_body(request, max_body_bytes))
        served_model(body, names)
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            raise APIError(400, "'input' must be the text to speak, a non-empty string.", "input")
        if len(text) > MAX_INPUT_CHARS:
            raise APIError(400, f"'input' holds {len(text)} characters; send at most {MAX_INPUT_CHARS}.", "input")
        response_format = body.get("response_format") or "wav"
        if response_format not in ("wav", "pcm"):
            raise APIError(400, f"response_format must be wav or pcm here (no {response_format!r} encoder is bundled).", "response_format")
        if body.get("stream_format") not in (None, "audio"):
            raise APIError(400, "Speech is returned whole here: leave 'stream_format' out.", "stream_format")
        if body.get("instructions"):
            raise APIError(400, "VITS reads no instructions (style prompts): leave 'instructions' out.", "instructions")
        options = _speech_options(body, speakers)
        speaker = {"speaker_id": options["speaker_id"]} if "speaker_id" in options else {}

        def synthesize() -> np.ndarray:
            audio = []
            for piece in text_pieces(text):
                ids = tokenizer(piece, return_tensors="np")
                if not ids["input_ids"].shape[-1]:
                    continue  # nothing the tokenizer can speak (characters outside its vocabulary)
                out = model.generate(dict(ids), speaking_rate=base_rate * options["speed"], **speaker)
                audio.append(out["waveform"][0, : int(out["sequence_lengths"][0])].numpy())
            return np.concatenate(audio) if audio else np.zeros(0, np.float32)

        async with lock:
            samples = await asyncio.to_thread(synthesize)
        if not len(samples):
            raise APIError(400, "The tokenizer reads nothing it can speak in 'input' (characters outside its vocabulary).", "input")
        if response_format == "pcm":
            return Response(pcm16(resample(samples, rate, PCM_RATE)), media_type="audio/pcm", headers={"X-Sampling-Rate": str(PCM_RATE)})
        return Response(wav_bytes(samples, rate), media_type="audio/wav", headers={"X-Sampling-Rate": str(rate)})

    return app


def open_tts_app(model_name: str, num_cores: int, mxfp6_matmul: bool, api_key: str | None, max_body_bytes: int | None):
    """(app, runner) for a VITS model's folder, with its tokenizer."""
    from QEfficient import QEFFAutoModelForTextToWaveform

    model = QEFFAutoModelForTextToWaveform.from_pretrained(model_name)
    tokenizer = tts_tokenizer(model.local_model_dir, model_name)
    model.compile(num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    return _served(model, tokenizer, [model.model_name, model_name], api_key, max_body_bytes)


def open_compiled_tts_app(qpc_path, served_names, num_cores: int, api_key: str | None, max_body_bytes: int | None):
    """(app, runner) over a VITS model's artifact, with the tokenizer it keeps: /v1/audio/speech as the server on the
    folder answers, without the folder or its weights (``serve --qpc_path``, a Ray replica)."""
    from QEfficient import QEFFAutoModelForTextToWaveform

    model = QEFFAutoModelForTextToWaveform.from_artifact(qpc_path, num_cores)
    names = artifact_model_names(model.model_name, served_names)
    return _served(model, tts_tokenizer(model.local_model_dir, str(qpc_path)), names, api_key, max_body_bytes)


def tts_tokenizer(folder, name: str):
    """The model's tokenizer, refused now (not per request) where it needs what is not installed (VitsTokenizer's
    phonemizer; uroman)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer("hello")
    except ImportError as err:
        raise ValueError(f"'{name}''s tokenizer cannot run here: {err}") from None
    if getattr(tokenizer, "is_uroman", False):
        import importlib.util

        if importlib.util.find_spec("uroman") is None:
            raise ValueError(
                f"'{name}''s tokenizer romanizes its text with uroman first (is_uroman), which is not installed: pip install uroman."
            )
    return tokenizer


def _served(model, tokenizer, names: list[str], api_key, max_body_bytes):
    limits = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
    app = create_tts_app(model, tokenizer, names[0], served_names=names[1:], api_key=api_key, **limits)
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()
