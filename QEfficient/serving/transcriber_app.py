"""OpenAI's transcription API over a one-pass transcriber: a CTC speech model (Wav2Vec2, HuBERT, WavLM, Data2VecAudio,
Parakeet, ... ``ForCTC``), decoded greedily as QEFFAutoModelForCTC.generate and transformers' examples decode each
family's ids, or a Parakeet transducer (RNN-T, TDT), decoded greedily as its generate does (QEFFAutoModelForTDT).

Routes: GET /health, GET /v1/models, GET /version, POST /v1/audio/transcriptions (multipart form: ``file`` a PCM WAV
at the model's sampling rate, 16 kHz, stereo averaged; optional ``model``; ``response_format`` json, the default, or
text). These models take no language hint, are served without segment times and sample nothing, so Whisper's options
that would change the answer (``language``, ``prompt``, a ``temperature`` above 0, ``timestamp_granularities[]``,
``stream``, the timed formats) are refused, saying so; /v1/audio/translations answers that such a model does not
translate. Audio of up to 30 s (a CTC model's compiled length) is read in one pass. Transcriptions run one at a time
on a worker thread, so /health keeps answering.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from QEfficient.serving.app import openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.protocol import APIError
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.speech_app import read_form
from QEfficient.utils.audio import SAMPLING_RATE, decode_wav

MAX_SECONDS = 30  # the compiled length: audio of up to 30 s runs in one pass
MIN_SAMPLES = 400  # 25 ms at 16 kHz: what Wav2Vec2's first convolution reads
DEFAULT_MAX_AUDIO_BYTES = 16 * 1024 * 1024  # 30 s of 16 kHz audio is 1 MB as 16-bit mono, 4 MB as 32-bit stereo
# Whisper's form fields that the models served here cannot honour, with why
_REFUSED = {
    "language": "takes no language hint: it transcribes what it hears",
    "prompt": "takes no text before the audio",
    "timestamp_granularities": "is served here without segment or word times",
    "stream": "gives its text at once, not window by window",
}


def check_audio_length(samples: int, rate: int, what: str) -> None:
    """A 400 for audio shorter than 25 ms (less than a CTC model's first convolution reads) or longer than
    MAX_SECONDS, before it is run."""
    if samples < MIN_SAMPLES:
        raise APIError(400, f"{what} holds {samples} samples; send at least {MIN_SAMPLES} (25 ms at 16 kHz).", param="file")
    if samples > MAX_SECONDS * rate:
        raise APIError(400, f"{what} lasts {samples / rate:.1f} s; this server reads up to {MAX_SECONDS} s: cut it.", param="file")


def check_sampling_rate(rate: int, model_name: str) -> None:
    """The models run here read 16 kHz audio; refuse at start one whose processor says otherwise."""
    if rate != SAMPLING_RATE:
        raise ValueError(f"'{model_name}''s feature extractor reads {rate} Hz audio; the server runs models of {SAMPLING_RATE} Hz.")


def refused_fields(fields: list[tuple[str, str]], model_id: str, kind: str = "CTC model") -> None:
    """A 400 for a form field that would change a Whisper model's answer but cannot change this one's (``kind``)."""
    for name, value in fields:
        base = name.split("[", 1)[0]
        if base in _REFUSED and value and value.lower() not in ("false", "0"):
            raise APIError(400, f"'{model_id}' is a {kind}, which {_REFUSED[base]}: leave '{base}' out.", param=base)
    temperature = dict(fields).get("temperature")
    if temperature:
        try:
            greedy = float(temperature) == 0
        except ValueError:
            greedy = False
        if not greedy:
            raise APIError(400, f"'{model_id}' is a {kind}, decoded greedily: leave 'temperature' out or send 0.", param="temperature")


def create_transcriber_app(
    model, processor, model_id: str, *, served_names=None, api_key=None, max_body_bytes=DEFAULT_MAX_AUDIO_BYTES, kind: str = "CTC model"
):
    """The app over a compiled QEFFAutoModelForCTC (or a transducer: ``kind`` names it in messages) and its processor
    (feature extractor and tokenizer)."""
    app = FastAPI(title=f"QEfficient speech ({kind})", version="1")
    names = [model_id] + [n for n in served_names or [] if n != model_id]
    rate = int(getattr(getattr(processor, "feature_extractor", processor), "sampling_rate", 16000))
    lock = asyncio.Lock()  # one transcription at a time: the cores are shared anyway
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    @app.post("/v1/audio/translations")
    async def translations(request: Request):
        raise APIError(400, f"'{model_id}' is a {kind}: it transcribes what it hears and does not translate.")

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        pairs, audio_file, text_fields = read_form(request, await read_limited_body(request, max_body_bytes), names)
        response_format = text_fields.get("response_format") or "json"
        if response_format not in ("json", "text"):
            raise APIError(
                400,
                f"response_format must be json or text for a {kind}, served without segment times; got '{response_format}'.",
                param="response_format",
            )
        refused_fields([(k, v.decode("utf-8", "replace").strip()) for k, v in pairs if k != "file"], model_id, kind)
        try:
            audio = decode_wav(audio_file, rate, name="file")
        except ValueError as err:
            raise APIError(400, str(err), param="file") from None
        check_audio_length(len(audio), rate, "The file")
        async with lock:
            try:
                text = (await asyncio.to_thread(model.generate, processor, audio))[0]
            except ValueError as err:  # longer than the compiled length
                raise APIError(400, str(err), param="file") from None
        return PlainTextResponse(text) if response_format == "text" else {"text": text}

    return app


def open_transcriber_app(
    model_name: str, num_cores: int, mxfp6_matmul: bool, api_key: str | None, max_body_bytes: int | None, hf_overrides=None
):
    """(app, runner) for a CTC model's or a transducer's folder: a CTC model compiled for audio of up to MAX_SECONDS, with
    its processor."""
    from QEfficient import QEFFAutoModelForCTC
    from QEfficient.base.common import QEFFCommonLoader
    from QEfficient.utils.tokenizer import load_hf_processor

    model_class = QEFFCommonLoader.model_class(model_name)  # QEFFAutoModelForCTC, or a Parakeet transducer's class
    model = model_class.from_pretrained(model_name, hf_overrides=hf_overrides or None)
    processor = load_hf_processor(model.local_model_dir)
    rate = int(getattr(getattr(processor, "feature_extractor", processor), "sampling_rate", 16000))
    check_sampling_rate(rate, model_name)
    ctc = model_class is QEFFAutoModelForCTC
    if not ctc:
        model.decoding_rule()  # a generation config the greedy loop does not apply is refused at start, not per request
    length = {"seq_len": MAX_SECONDS * rate} if ctc else {}  # a transducer's graphs take any length
    model.compile(**length, batch_size=1, num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    limits = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
    kind = "CTC model" if ctc else "transducer"
    app = create_transcriber_app(model, processor, model.model_name, served_names=[model_name], api_key=api_key, kind=kind, **limits)
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()
