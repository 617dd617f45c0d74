"""OpenAI's transcription API over a CTC speech model (Wav2Vec2, HuBERT, WavLM, Data2VecAudio, Parakeet, ...
``ForCTC``), decoded greedily as QEFFAutoModelForCTC.generate and transformers' examples decode each
family's ids, a transducer (Parakeet's RNN-T and TDT, Nemotron ASR's RNN-T), decoded greedily as its generate does
(QEFFAutoModelForTDT, ...RNNT), or a
speech encoder-decoder other than Whisper (Moonshine, Speech2Text, SpeechT5, SpeechEncoderDecoderModel), decoded greedily as
transformers' generate decodes it with the checkpoint's generation config (QEFFAutoModelForSpeechEncoderDecoder): up to
30 s in one pass, untimed, streamed token by token.

Routes: GET /health, GET /v1/models, GET /version, POST /v1/audio/transcriptions (multipart form: ``file`` a PCM WAV at
the model's sampling rate, 16 kHz, stereo averaged; optional ``model``; ``response_format`` json, the default, text, and
for a model served with times the timed formats below). These models take no language hint (but Nemotron 3.5 ASR,
whose processor turns ``language`` into its prompt, and Canary, Cohere ASR and SeamlessM4T, whose decoder prompt names
it) and sample nothing, so Whisper's options that would change the answer (``language``, ``prompt``, a ``temperature``
above 0) are refused, saying so; /v1/audio/translations answers that such a model does not translate (but Canary, from
the form's ``language``, and SeamlessM4T, which reads none, translate into English). A CTC model whose config names its samples per
output frame (Wav2Vec2, HuBERT, WavLM, ...) reads up to 5 min in windows of its compiled 30 s, as transformers' pipeline
reads audio with ``chunk_length_s=30``, and where its tokenizer gives word offsets (Wav2Vec2CTCTokenizer) answers
with times too: the pipeline's word times. Another (Parakeet's CTC) reads up to 30 s in one pass, untimed. Every model
streams (``stream``, json or text) as vLLM's transcription stream: a CTC model each window's text as it is read, a model
read in one pass (a transducer too) all of it at once. A transducer
answers with times (its tokens' times as transformers' processor decodes them from the durations, grouped into words)
and reads up to 5 min in one pass, as transformers runs it. The timed formats: verbose_json, with segments (a sentence,
or at most 30 s) and, with ``timestamp_granularities[]=word``, words; srt; vtt. Their verbose_json has no ``language``
(the models name none) and its segments no Whisper scores (``tokens``, ``avg_logprob``, ``compression_ratio``,
``no_speech_prob``).
Transcriptions run one at a time on a worker thread, so /health keeps answering.
"""

from __future__ import annotations

import asyncio
import time
from itertools import groupby

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from QEfficient.generation.ctc_windows import WINDOW_SECONDS
from QEfficient.serving.app import openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.protocol import APIError, served_model_names
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.speech_app import form_flag, read_form, subtitles, timestamp_granularities
from QEfficient.serving.worker_stream import RowsStreamer, TextPieces, transcription_events, worker_items
from QEfficient.utils.audio import SAMPLING_RATE, decode_wav
from QEfficient.utils.checks import served_length

MAX_SECONDS = WINDOW_SECONDS  # a CTC model's compiled length: its one pass, or its windows
# a transducer's encoder takes any length in one pass, as transformers runs it; its attention's memory grows with the
# square of the length (5 min: ~3,750 frames), so the server stops there, and CTC models' windows too
MAX_LONG_SECONDS = 300
SENTENCE_ENDS = (".", "?", "!")  # a segment ends with a word ending so (NeMo's segment delimiters)
MAX_SEGMENT_SECONDS = 30  # or before a word that would take it longer (a Whisper segment is within a 30 s window)
MIN_SAMPLES = 400  # 25 ms at 16 kHz: what Wav2Vec2's first convolution reads
_TIMED = ("verbose_json", "srt", "vtt")  # the formats with times
# the kinds of model served here, as the answers name them
CTC, TRANSDUCER, ENCODER_DECODER = "CTC model", "transducer", "speech encoder-decoder"
_UNTIMED_TOKENS = "its tokens carry no times"  # an encoder-decoder's (Moonshine's, Speech2Text's)
GREEDY = {"num_beams": 1, "do_sample": False}  # an encoder-decoder's decoding here, whatever its checkpoint asks
DEFAULT_MAX_AUDIO_BYTES = 16 * 1024 * 1024  # 30 s of 16 kHz audio is 1 MB as 16-bit mono, 4 MB as 32-bit stereo
MAX_LONG_AUDIO_BYTES = 40 * 1024 * 1024  # 5 min: 9.6 MB as 16-bit mono, 38.4 MB as 32-bit stereo
# Whisper's form fields that the models served here cannot honour, with why
_REFUSED = {
    "language": "takes no language hint: it transcribes what it hears",
    "prompt": "takes no text before the audio",
}


def check_audio_length(samples: int, rate: int, what: str, max_seconds: int = MAX_SECONDS) -> None:
    """A 400 for audio shorter than 25 ms (less than a CTC model's first convolution reads) or longer than
    ``max_seconds``, before it is run."""
    if samples < MIN_SAMPLES:
        raise APIError(400, f"{what} holds {samples} samples; send at least {MIN_SAMPLES} (25 ms at 16 kHz).", param="file")
    if samples > max_seconds * rate:
        limit = f"{max_seconds} s ({max_seconds * rate} samples)"
        raise APIError(
            400, f"{what} holds {samples} samples ({samples / rate:.3f} s); this server reads up to {limit}: cut it.", param="file"
        )


def timed_words(tokens: list[dict]) -> list[dict]:
    """OpenAI's ``words`` from a transcript's timed pieces (transformers' ParakeetProcessor.decode with durations:
    ``token``, ``start``, ``end`` in seconds): a piece after a space (its own, or a space piece's: SentencePiece's lone
    word boundary) starts a word, the others (word pieces, punctuation) end the one before; punctuation before the
    first word opens it."""
    words: list[dict] = []
    spaced, opening = True, None  # whether the next piece starts a word; punctuation before any word
    for piece in tokens:
        text = piece["token"]
        if not text.strip():
            spaced = True
            continue
        if words and not spaced and not text[:1].isspace():
            words[-1]["word"] += text
            words[-1]["end"] = max(words[-1]["end"], piece["end"])
        elif not words and opening is None and not any(c.isalnum() for c in text):
            opening = {"word": text.strip(), "start": piece["start"]}
        else:
            word = {"word": text.strip(), "start": piece["start"], "end": piece["end"]}
            if opening is not None and not words:
                word |= {"word": opening["word"] + word["word"], "start": opening["start"]}
            words.append(word)
        spaced = text[-1:].isspace()
    if not words and opening is not None:  # punctuation alone
        words.append(opening | {"end": tokens[-1]["end"]})
    return words


def sentence_segments(words: list[dict]) -> list[dict]:
    """OpenAI's ``segments`` from timed words: one per sentence (a word ending with . ? or ! closes it), or closed before
    a word that would take it past MAX_SEGMENT_SECONDS; decoded greedily (temperature 0)."""
    segments, current = [], []
    for i, word in enumerate(words):
        current.append(word)
        following = words[i + 1] if i + 1 < len(words) else None
        too_long = following is not None and following["end"] - current[0]["start"] > MAX_SEGMENT_SECONDS
        if word["word"].endswith(SENTENCE_ENDS) or following is None or too_long:
            text = " " + " ".join(w["word"] for w in current)
            segment = {"id": len(segments), "seek": 0, "start": current[0]["start"], "end": current[-1]["end"], "text": text}
            segments.append(segment | {"temperature": 0.0})
            current = []
    return segments


def timed_transcript(model, features, processor) -> tuple[str, list[dict]]:
    """A transducer's greedy transcript of one recording's processor output and its timed pieces, as transformers'
    processor decodes its generate output with the durations."""
    out = model.generate(features)
    texts, pieces = processor.decode(out.sequences, durations=out.durations, skip_special_tokens=True)
    return texts[0], pieces[0]


def check_sampling_rate(rate: int, model_name: str) -> None:
    """The models run here read 16 kHz audio; refuse at start one whose processor says otherwise."""
    if rate != SAMPLING_RATE:
        raise ValueError(f"'{model_name}''s feature extractor reads {rate} Hz audio; the server runs models of {SAMPLING_RATE} Hz.")


def refused_fields(fields: list[tuple[str, str]], model_id: str, kind: str = "CTC model", taken: tuple[str, ...] = ()) -> None:
    """A 400 for a form field that would change a Whisper model's answer but cannot change this one's (``kind``; the
    fields in ``taken`` it reads)."""
    for name, value in fields:
        base = name.split("[", 1)[0]
        if base in _REFUSED and base not in taken and value and value.lower() not in ("false", "0"):
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
    model,
    processor,
    model_id: str,
    *,
    served_names: list[str] | None = None,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    kind: str = CTC,
) -> FastAPI:
    """The app over a compiled QEFFAutoModelForCTC (compiled for MAX_SECONDS) and its processor (feature extractor and
    tokenizer): audio of up to MAX_LONG_SECONDS in windows of MAX_SECONDS where the model's config names its samples per
    frame, timed where its tokenizer gives word offsets, else up to MAX_SECONDS in one pass, untimed; or, ``kind``
    TRANSDUCER, over a compiled transducer (QEFFAutoModelForTDT, ...RNNT: Parakeet's, Nemotron ASR's), whose durations time each token
    as transformers' processor reads them, audio of up to MAX_LONG_SECONDS; or, ``kind`` ENCODER_DECODER, over a
    compiled QEFFAutoModelForSpeechEncoderDecoder (Moonshine, Speech2Text, SpeechT5, ...), decoded greedily, audio of up to MAX_SECONDS,
    untimed. ``max_body_bytes``: the upload limit (default: DEFAULT_MAX_AUDIO_BYTES for 30 s, MAX_LONG_AUDIO_BYTES for
    5 min)."""
    if kind not in (CTC, TRANSDUCER, ENCODER_DECODER):
        raise ValueError(f"kind must be one of {[CTC, TRANSDUCER, ENCODER_DECODER]}, got {kind!r}.")
    transducer, encoder_decoder = kind == TRANSDUCER, kind == ENCODER_DECODER
    # the languages of a model that takes a prompt (Nemotron 3.5 ASR's processor turns ``language`` into its prompt; Canary's,
    # Cohere ASR's and SeamlessM4T's decoder prompt names it), or None
    languages = processor.prompt_dictionary if transducer and model.prompted else None
    if encoder_decoder:
        languages = model.transcription_languages(processor)
    translates = encoder_decoder and languages is not None and model.translates(processor)
    windowed = kind == CTC and model.window_samples(processor) is not None  # a CTC model read in windows
    untimed = {CTC: lambda: model.timestamps_refusal(processor), TRANSDUCER: lambda: None}.get(kind, lambda: _UNTIMED_TOKENS)()
    max_seconds = MAX_LONG_SECONDS if transducer or windowed else MAX_SECONDS
    if max_body_bytes is None:
        max_body_bytes = MAX_LONG_AUDIO_BYTES if max_seconds == MAX_LONG_SECONDS else DEFAULT_MAX_AUDIO_BYTES
    app = FastAPI(title=f"QEfficient speech ({kind})", version="1")
    names = served_model_names(model_id, served_names)
    rate = sampling_rate(processor)
    lock = asyncio.Lock()  # one transcription at a time: the cores are shared anyway
    formats = ("json", "text") if untimed else ("json", "text", *_TIMED)
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    def features(audio, language: str | None):
        """A transducer's processor output for one recording (in ``language``, for a prompted one)."""
        return processor(audio, sampling_rate=rate, return_tensors="np", **({"language": language} if language else {}))

    def transcript(audio, language: str | None = None, task: str | None = None) -> str:
        if encoder_decoder:
            return model.transcribe(audio, processor, language=language, task=task, **GREEDY).texts[0]
        if windowed:
            return model.transcribe(processor, audio, chunk_length_s=MAX_SECONDS)["text"]
        if transducer:
            return processor.batch_decode(model.generate(features(audio, language)).sequences, skip_special_tokens=True)[0]
        return model.generate(processor, audio)[0]

    def timed(audio, language: str | None = None) -> tuple[str, list[dict]]:
        """The transcript and its timed words."""
        if transducer:
            text, pieces = timed_transcript(model, features(audio, language), processor)
            return text, timed_words(pieces)
        out = model.transcribe(processor, audio, chunk_length_s=MAX_SECONDS, return_timestamps="word")
        return out["text"], [{"word": c["text"], "start": c["timestamp"][0], "end": c["timestamp"][1]} for c in out["chunks"]]

    async def run(work, audio, *prompt):
        async with lock:
            try:
                return await asyncio.to_thread(work, audio, *prompt)
            except ValueError as err:  # longer than the compiled length
                raise APIError(400, str(err), param="file") from None

    def read_audio(data: bytes) -> np.ndarray:
        """The form's WAV file as samples at the model's rate, within the server's lengths; a 400 otherwise."""
        try:
            audio = decode_wav(data, rate, name="file")
        except ValueError as err:
            raise APIError(400, str(err), param="file") from None
        check_audio_length(len(audio), rate, "The file", max_seconds)
        return audio

    async def streamed(
        audio: np.ndarray, name: str, include_usage: bool, language: str | None, task: str | None = None
    ) -> StreamingResponse:
        """vLLM's transcription stream: a CTC model's text as each window is read (up to its last space: the next window
        may end the word; a model read in one pass, or a transducer, all of it at once), an encoder-decoder's token by
        token, then the finish reason, the usage where asked (the encoder's frames as prompt tokens; the transcript's
        tokens, a CTC model's repeats merged and blanks dropped, as completion tokens), then [DONE]."""

        def work(send) -> None:  # on the worker thread
            if encoder_decoder:  # each token's text as it is decoded (held back while it splits a character), as vLLM's
                decode = lambda ids: model.text_of(processor, ids)  # noqa: E731
                streamer = RowsStreamer(decode, lambda _row, piece, _step: send("text", piece) if piece else None, open_words=False)
                info = model.transcribe(audio, processor, language=language, task=task, streamer=streamer, **GREEDY)
                frames = model.encoder_positions(model.transcription_inputs(audio, processor, language, task))[0]
                row = streamer.rows[0]
                row.finish_reason = "stop" if row.tokens and row.tokens[-1] in model.end_token_ids() else "length"
                send("done", info.texts[0], row, frames, streamer.generated(0))
                return
            if transducer:
                out = model.generate(features(audio, language))
                texts, tokens = processor.decode(out.sequences, durations=out.durations, skip_special_tokens=True)
                nothing_sent = TextPieces(lambda ids: "", lambda piece: None)  # the whole text goes in the last event
                send("done", texts[0], nothing_sent, int(out.durations[0].sum()), len(tokens[0]))  # the frames it walked
                return
            pieces = TextPieces(lambda ids: model.frames_text(processor, np.asarray(ids)[None])[0], lambda piece: send("text", piece))
            text = model.transcribe(processor, audio, chunk_length_s=MAX_SECONDS if windowed else None, on_window=pieces.add)["text"]
            blank = model.config.pad_token_id
            send("done", text, pieces, len(pieces.tokens), sum(1 for token, _ in groupby(pieces.tokens) if token != blank))

        def usage(_pieces: TextPieces, frames: int, tokens: int) -> dict:
            return {"prompt_tokens": frames, "completion_tokens": tokens, "total_tokens": frames + tokens}

        created = int(time.time())
        items = await worker_items(lock, work)
        events = transcription_events(items, name, created, usage if include_usage else None, translate=task == "translate")
        return StreamingResponse(events, media_type="text/event-stream")

    def prompt_language(text_fields: dict, task: str | None) -> str | None:
        """The form's ``language`` (the audio's; SeamlessM4T's transcript's), checked against the model's prompt: a 400
        saying what to send otherwise (a transcription by Canary, Cohere ASR or SeamlessM4T needs one)."""
        language = (text_fields.get("language") or "").strip() or None
        if encoder_decoder:
            try:
                model.check_transcribable(language=language, task=task, processor=processor)
            except ValueError as err:
                raise APIError(400, str(err), param="language") from None
        elif language is not None and language not in languages:
            message = f"language must be one of this model's: {', '.join(sorted(languages))}; got '{language}'."
            raise APIError(400, message, param="language")
        return language

    @app.post("/v1/audio/translations")
    async def translations(request: Request):
        """Into English, as OpenAI's translations, for a model whose prompt names a target language: Canary from the form's
        ``language`` (vLLM's field: the audio's), SeamlessM4T from any (it reads no language); json or text, or streamed."""
        if not translates:
            if encoder_decoder and languages is None:  # a speech-translation checkpoint answers in its own target language
                raise APIError(400, f"'{model_id}' is served at /v1/audio/transcriptions only: it answers there in its own language.")
            raise APIError(400, f"'{model_id}' is a {kind}: it transcribes what it hears and does not translate.")
        pairs, audio_file, text_fields = read_form(request, await read_limited_body(request, max_body_bytes), names)
        response_format = text_fields.get("response_format") or "json"
        if response_format not in ("json", "text"):
            message = f"response_format must be json or text for this {kind} ({_UNTIMED_TOKENS}); got '{response_format}'."
            raise APIError(400, message, param="response_format")
        fields = [(k, v.decode("utf-8", "replace").strip()) for k, v in pairs if k not in ("file", "stream", "stream_include_usage")]
        refused_fields(fields, model_id, kind, ("language",))
        language = prompt_language(text_fields, "translate")
        audio = read_audio(audio_file)
        if form_flag(text_fields, "stream"):
            name, usage = text_fields.get("model") or model_id, form_flag(text_fields, "stream_include_usage")
            return await streamed(audio, name, usage, language, "translate")
        text = await run(transcript, audio, language, "translate")
        return PlainTextResponse(text) if response_format == "text" else {"text": text}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        pairs, audio_file, text_fields = read_form(request, await read_limited_body(request, max_body_bytes), names)
        response_format = text_fields.get("response_format") or "json"
        if response_format not in formats:
            detail = f", served without times: {untimed}" if untimed else ""
            message = f"response_format must be one of {list(formats)} for this {kind}{detail}; got '{response_format}'."
            raise APIError(400, message, param="response_format")
        granularities = set() if untimed else timestamp_granularities(pairs, response_format)
        fields = [(k, v.decode("utf-8", "replace").strip()) for k, v in pairs if k != "file"]
        if untimed and any(k.startswith("timestamp_granularities") and v for k, v in fields):
            message = f"'{model_id}' is served without segment or word times: {untimed}. Leave 'timestamp_granularities' out."
            raise APIError(400, message, param="timestamp_granularities")
        taken = ("language",) if languages is not None else ()
        refused_fields([(k, v) for k, v in fields if not k.startswith(("timestamp_granularities", "stream"))], model_id, kind, taken)
        # ("false" or "0" pass the refusal above for a model that takes no language: none)
        language = prompt_language(text_fields, None) if languages is not None else None
        audio = read_audio(audio_file)
        if form_flag(text_fields, "stream"):
            if response_format not in ("json", "text"):
                raise APIError(400, "A stream gives the text as it is transcribed: use response_format json or text.", param="stream")
            name, usage = text_fields.get("model") or model_id, form_flag(text_fields, "stream_include_usage")
            return await streamed(audio, name, usage, language)
        if response_format not in _TIMED:
            text = await run(transcript, audio, language)
            return PlainTextResponse(text) if response_format == "text" else {"text": text}
        text, words = await run(timed, audio, language)
        segments = sentence_segments(words)
        if response_format != "verbose_json":
            return PlainTextResponse(subtitles(segments, response_format))
        answer = {"task": "transcribe", "duration": len(audio) / rate, "text": text}
        if "segment" in granularities or not granularities:
            answer["segments"] = segments
        return answer | ({"words": words} if "word" in granularities else {})

    return app


def sampling_rate(processor) -> int:
    """The audio rate ``processor``'s feature extractor reads (16 kHz where it names none)."""
    return int(getattr(getattr(processor, "feature_extractor", processor), "sampling_rate", SAMPLING_RATE))


def open_transcriber_app(
    model_name: str,
    num_cores: int,
    mxfp6_matmul: bool,
    api_key: str | None,
    max_body_bytes: int | None,
    hf_overrides=None,
    ctx_len: int | None = None,
) -> tuple[FastAPI, NoRunner]:
    """(app, runner) for a CTC model's folder (compiled for MAX_SECONDS: its one pass, or its windows), a transducer's
    (Parakeet's, Nemotron ASR's: its graphs take any length) or a speech encoder-decoder's (Moonshine, Speech2Text, SpeechT5, ...: its
    decoder compiled for ``ctx_len`` tokens, within its position table), with its processor; a generation config a
    transducer's greedy loop does not apply is refused at start."""
    from QEfficient import QEFFAutoModelForCTC, QEFFAutoModelForSpeechEncoderDecoder
    from QEfficient.base.common import QEFFCommonLoader
    from QEfficient.utils.tokenizer import load_hf_processor

    model_class = QEFFCommonLoader.model_class(model_name)  # QEFFAutoModelForCTC, a transducer's or an encoder-decoder's
    model = model_class.from_pretrained(model_name, hf_overrides=hf_overrides or None)
    ctc, encoder_decoder = model_class is QEFFAutoModelForCTC, model_class is QEFFAutoModelForSpeechEncoderDecoder
    processor = load_hf_processor(model.local_model_dir)
    rate = sampling_rate(processor)
    check_sampling_rate(rate, model_name)
    kind = CTC if ctc else ENCODER_DECODER if encoder_decoder else TRANSDUCER
    if kind == TRANSDUCER:
        model.decoding_rule()  # a generation config the greedy loop does not apply is refused at start, not per request
        model.check_lookahead(getattr(processor, "default_num_lookahead_tokens", None))  # Nemotron's processor's, too
    # a CTC model's windows (whole frames), or its one pass; an encoder-decoder's decoder slots; a transducer's graphs
    # take any length
    length = {"seq_len": model.window_samples(processor) or MAX_SECONDS * rate} if ctc else {}
    if encoder_decoder:
        length = {"ctx_len": served_length(model.decoder_positions(), ctx_len, model_name, "decoder's positions")}
    model.compile(**length, batch_size=1, num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    app = create_transcriber_app(
        model, processor, model.model_name, served_names=[model_name], api_key=api_key, max_body_bytes=max_body_bytes, kind=kind
    )
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()
