"""OpenAI-compatible transcription API for a speech model (Whisper).

Routes: GET /health, GET /v1/models, POST /v1/audio/transcriptions and /v1/audio/translations (into English, as
OpenAI's; multipart form: ``file`` a 16 kHz
WAV, optional ``model``, ``language``, ``response_format`` (json, text, or with segment times verbose_json, srt,
vtt), ``timestamp_granularities[]`` (segment, the default, and/or word: verbose_json's ``words``, timed from the
checkpoint's alignment heads), ``stream`` (with json or text: vLLM's transcription chunks, each 30 s window's text as it
is decided; ``stream_include_usage``), ``prompt`` (text before the audio's, as
Whisper's ``prompt_ids``) and ``temperature`` (0, the default: greedy; above 0 sampled at it, as vLLM does)). The form is parsed with the
standard library's MIME parser (no multipart dependency); transcriptions run one at a time on a
worker thread, so /health keeps answering.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import time

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from QEfficient.generation.speech_generation import NoRoomForPrompt
from QEfficient.serving.app import openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.protocol import APIError, served_model_names
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.worker_stream import TextPieces, transcription_events, worker_items
from QEfficient.utils.audio import decode_wav
from QEfficient.utils.checks import served_length

DEFAULT_MAX_AUDIO_BYTES = 64 * 1024 * 1024  # 30 min of 16 kHz 16-bit mono
_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
_TIMED = ("verbose_json", "srt", "vtt")  # the formats with segment times: decoded with timestamps


def parse_form(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """A multipart/form-data body as (field name, bytes) pairs, in order (a name may repeat: a list's items)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise APIError(400, "Send the audio as multipart/form-data with a 'file' field (as OpenAI's client does).", param="file")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise APIError(400, "The multipart body could not be read (check its boundary).", param="file")
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields.append((name, part.get_payload(decode=True) or b""))
    return fields


def read_form(request: Request, body: bytes, names: list[str]) -> tuple[list[tuple[str, bytes]], bytes, dict[str, str]]:
    """A transcription form's (field pairs, the audio file's bytes, its other fields as text); a 400 without a file, a
    404 for a ``model`` not among ``names`` (the first: the served model's id)."""
    pairs = parse_form(request.headers.get("content-type", ""), body)
    fields = dict(pairs)
    if "file" not in fields:
        raise APIError(400, "The form has no 'file' field: attach the audio as file=@speech.wav.", param="file")
    text = {k: v.decode("utf-8", "replace").strip() for k, v in fields.items() if k != "file"}
    if text.get("model") and text["model"] not in names:
        raise APIError(404, f"The model '{text['model']}' does not exist; this server serves '{names[0]}'.", param="model")
    return pairs, fields["file"], text


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def subtitles(segments: list[dict], kind: str) -> str:
    """The segments as SubRip (srt) or WebVTT (vtt) cues, as OpenAI's API writes them."""
    separator = "," if kind == "srt" else "."
    cues = []
    for i, segment in enumerate(s for s in segments if s["text"].strip()):
        timing = f"{_clock(segment['start'], separator)} --> {_clock(segment['end'], separator)}"
        cues.append((f"{i + 1}\n" if kind == "srt" else "") + f"{timing}\n{segment['text'].strip()}\n")
    return ("WEBVTT\n\n" if kind == "vtt" else "") + "\n".join(cues)


def verbose_json(info, duration: float, temperature: float, task: str = "transcribe", words: list[dict] | None = None) -> dict:
    """OpenAI's ``verbose_json`` transcription: the text, its language and duration, its timed segments, and where
    given its timed words (then the segments only where ``info`` has them)."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    code = (info.languages or [None])[0]
    segments = [
        {
            "id": i,
            "seek": s["seek"],
            "start": s["start"],
            "end": s["end"],
            "text": s["text"],
            "tokens": [int(t) for t in s["tokens"]],
            "temperature": s["temperature"] if s["temperature"] is not None else temperature,
            "avg_logprob": s["avg_logprob"],
            "compression_ratio": s["compression_ratio"],
            "no_speech_prob": s["no_speech_prob"],
        }
        for i, s in enumerate(info.segments[0] if info.segments is not None else [])
    ]
    language = LANGUAGES.get(code, code) if code else "english"  # an English-only model names no language
    out = {"task": task, "language": language, "duration": duration, "text": info.texts[0]}
    if words is None or info.segments is not None:
        out["segments"] = segments
    return out | ({"words": words} if words is not None else {})


def timestamp_granularities(pairs: list[tuple[str, bytes]], response_format: str) -> set[str]:
    """The form's ``timestamp_granularities[]`` ("segment" and/or "word"), checked against ``response_format``."""
    granularities = {v.decode("utf-8", "replace").strip() for k, v in pairs if k.startswith("timestamp_granularities")}
    if granularities - {"segment", "word"}:
        raise APIError(
            400, f"timestamp_granularities[] takes 'segment' and 'word', got {sorted(granularities)}.", param="timestamp_granularities"
        )
    if "word" in granularities and response_format != "verbose_json":  # segments: each format's own (srt, vtt) or none
        raise APIError(400, "timestamp_granularities[]=word needs response_format=verbose_json.", param="timestamp_granularities")
    return granularities


def _decoding_options(fields: dict[str, str], processor) -> dict:
    """The form's ``temperature`` and ``prompt`` as generate() options."""
    options = {}
    if fields.get("temperature"):
        try:
            temperature = float(fields["temperature"])
        except ValueError:
            temperature = None
        if temperature is None or not 0 <= temperature <= 1:
            raise APIError(400, f"temperature must be a number from 0 to 1, got '{fields['temperature']}'.", param="temperature")
        if temperature > 0:
            options["temperature"] = temperature
    if fields.get("prompt"):
        try:
            options["prompt_ids"] = processor.get_prompt_ids(fields["prompt"], return_tensors="np")
        except ValueError as err:  # the text of a special token (<|en|>, <|endoftext|>): transformers refuses it
            raise APIError(400, f"{err} Send the prompt as plain text.", param="prompt") from None
    return options


def _no_room(err: NoRoomForPrompt, model_id: str) -> APIError:
    """A 400 for a window's prompt (the form's ``prompt``, or the previous window's text where the checkpoint conditions
    on it) that leaves no room in the decoder the server compiled, in the form's terms."""
    fixes = [f"shorten it to at most {err.ctx_len - err.start_tokens} tokens"] if err.from_prompt else []
    if err.ctx_len < err.max_positions:
        fixes.append(f"serve '{model_id}' with a larger --ctx_len (at most {err.max_positions})")
    what = "The prompt takes" if err.from_prompt else "This model puts the previous window's text (up to"
    tokens = f"{err.prompt_tokens} tokens with its <|startofprev|>" + ("" if err.from_prompt else ")")
    fix = " or ".join(fixes)
    return APIError(
        400,
        f"{what} {tokens} before each 30 s window's {err.start_tokens} start tokens: {err.prompt_tokens + err.start_tokens}, "
        f"more than the {err.ctx_len} tokens this server's decoder holds." + (f" {fix[:1].upper()}{fix[1:]}." if fix else ""),
        param="prompt" if err.from_prompt else None,
    )


def _english_only_language(model, language: str | None) -> str | None:
    """The form's ``language``, where an English-only model is asked for English: none (the model's own; openai-whisper and
    faster-whisper accept it, transformers refuses it)."""
    english_only = not getattr(model.hf.generation_config, "lang_to_id", None)
    if english_only and language and language.strip().lower() in ("en", "english", "<|en|>"):
        return None
    return language


def create_speech_app(model, processor, model_id: str, *, served_names=None, api_key=None, max_body_bytes=DEFAULT_MAX_AUDIO_BYTES):
    """The app over a compiled QEFFAutoModelForSpeechSeq2Seq and its processor."""
    app = FastAPI(title="QEfficient speech", version="1")
    names = served_model_names(model_id, served_names)
    lock = asyncio.Lock()  # one transcription at a time: the sessions are not shared between threads
    openai_app_basics(app, api_key)

    single_model_routes(app, model_id, lock.locked)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        return await answer(request, None)  # the checkpoint's task (an English-only model names none)

    @app.post("/v1/audio/translations")
    async def translations(request: Request):  # into English; ``language``: the audio's, where known
        return await answer(request, "translate")

    async def answer(request: Request, task: str | None):
        pairs, audio_file, text_field = read_form(request, await read_limited_body(request, max_body_bytes), names)
        response_format = text_field.get("response_format") or "json"
        if response_format not in _FORMATS:
            raise APIError(400, f"response_format must be one of {list(_FORMATS)}, got '{response_format}'.", param="response_format")
        try:
            audio = decode_wav(audio_file, name="file")
        except ValueError as err:
            raise APIError(400, str(err), param="file") from None
        granularities = timestamp_granularities(pairs, response_format)
        if "word" in granularities and not model.decoder.alignment_heads:
            raise APIError(
                400,
                f"'{model_id}' names no alignment heads of its own (generation_config.alignment_heads), which word times "
                "are read from: ask for segment timestamps.",
                param="timestamp_granularities",
            )
        if task == "translate" and not getattr(model.hf.generation_config, "task_to_id", None):
            raise APIError(400, f"'{model_id}' is an English-only model and does not translate: use /v1/audio/transcriptions.")
        language = _english_only_language(model, text_field.get("language") or None)
        options = {"language": language, "task": task, **_decoding_options(text_field, processor)}
        if response_format in _TIMED:
            options.update(return_timestamps=True, return_segments="word" not in granularities or "segment" in granularities)
        if "word" in granularities:
            options["word_timestamps"] = True
        if form_flag(text_field, "stream"):
            if response_format not in ("json", "text"):
                raise APIError(400, "A stream gives the text as it is transcribed: use response_format json or text.", param="stream")
            usage = form_flag(text_field, "stream_include_usage")
            return await streamed(audio, options, task, text_field.get("model") or model_id, usage)
        async with lock:
            try:
                info = await asyncio.to_thread(model.transcribe, audio, processor, None, **options)
            except NoRoomForPrompt as err:
                raise _no_room(err, model_id) from None
            except ValueError as err:
                raise APIError(400, str(err)) from None
        text = info.texts[0]
        if response_format == "text":
            return PlainTextResponse(text)
        if response_format in ("srt", "vtt"):
            return PlainTextResponse(subtitles(info.segments[0], response_format))
        if response_format == "verbose_json":
            words = info.words[0] if info.words is not None else None
            return verbose_json(info, len(audio) / 16000, options.get("temperature", 0.0), task or "transcribe", words)
        return {"text": text}

    async def streamed(audio, options: dict, task: str | None, name: str, include_usage: bool) -> StreamingResponse:
        """vLLM's transcription stream: each 30 s window's text as it is decided, then the finish reason, the usage where
        asked (the encoder's audio positions as prompt tokens), then [DONE]."""

        def work(send) -> None:  # on the worker thread
            decode = lambda ids: processor.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
            pieces = TextPieces(decode, lambda piece: send("text", piece), open_words=False)  # windows end words

            def on_segments(_audio: int, segments: list) -> None:
                if segments:
                    pieces.add(np.concatenate([s.tokens for s in segments]))

            try:
                info = model.transcribe(audio, processor, None, on_segments=on_segments, **options)
            except NoRoomForPrompt as err:  # (before any window: a 400 answer, see worker_items)
                raise _no_room(err, model_id) from None
            send("done", info.texts[0], pieces, info)

        def usage(_pieces, info) -> dict:
            # the encoder's positions of the 30 s windows the audio spans (a window read again counts once)
            prompt = -(-len(audio) // (16000 * 30)) * model.config.max_source_positions
            generated = int((info.generated_ids[0][0] != model.hf.generation_config.pad_token_id).sum())
            return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}

        created = int(time.time())
        items = await worker_items(lock, work)
        events = transcription_events(items, name, created, usage if include_usage else None, task == "translate")
        return StreamingResponse(events, media_type="text/event-stream")

    return app


def form_flag(fields: dict[str, str], name: str) -> bool:
    """A form's boolean field (true/false, as a multipart form writes it)."""
    value = fields.get(name, "").lower()
    if value not in ("", "true", "false", "1", "0"):
        raise APIError(400, f"'{name}' must be true or false, got '{fields[name]}'.", param=name)
    return value in ("true", "1")


def open_speech_app(
    model_name: str, ctx_len: int | None, num_cores: int, api_key: str | None, max_body_bytes: int | None, hf_overrides: dict | None = None
):
    """(app, runner) for a Whisper model: POST /v1/audio/transcriptions and /v1/audio/translations, its decoder compiled for
    ``ctx_len`` tokens (None: the default, within its positions); its config changed by ``hf_overrides``."""
    from QEfficient import QEFFAutoModelForSpeechSeq2Seq
    from QEfficient.utils.tokenizer import load_hf_processor

    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(model_name, hf_overrides=hf_overrides or None)
    model.compile(ctx_len=served_length(model.config.max_target_positions, ctx_len, model_name, "decoder's positions"), num_cores=num_cores)
    limits = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
    app = create_speech_app(
        model, load_hf_processor(model.local_model_dir), model.model_name, served_names=[model_name], api_key=api_key, **limits
    )
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()
