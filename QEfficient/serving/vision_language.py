"""Serving a vision-language model: OpenAI chat messages whose content holds ``image_url`` parts.

An image arrives as a ``data:`` URL (base64, as OpenAI's and vLLM's clients send a local file) or as an
http(s) URL the server fetches, within a size and time limit. The messages go through the processor's own
chat template (HF's content parts: ``{"type": "image"}`` where each image stands), the processor makes the
prompt's tokens and pixels, and the model's ``request_extra`` runs the vision graph: all of it on the request's
worker thread, so the engine's thread only prefills and decodes. Prompts without an image (chat or
/v1/completions) run as text, as HF runs them.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from QEfficient.serving.protocol import APIError, artifact_model_names, served_model_names
from QEfficient.utils.images import upright_rgb

# A request body carries its images in base64; 4 MiB (the text server's limit) is one phone photo.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # one fetched image
MAX_AUDIO_BYTES = 40 * 1024 * 1024  # one fetched audio clip: 5 min of 16 kHz 32-bit stereo WAV
MAX_REQUEST_AUDIO_BYTES = 64 * 1024 * 1024  # all the audio of one request
MIN_AUDIO_SAMPLES = 400  # 25 ms at 16 kHz: a processor drops an empty clip's placeholder
FETCH_TIMEOUT_S = 10.0  # the whole fetch of one image, redirects included (vLLM's default is 5 s)
REQUEST_FETCH_S = 30.0  # all the fetched images of one request
MAX_REDIRECTS = 5
# Decoded images are held until the processor has resized them: bound what a small compressed file can become
# (a 12000 x 12000 one-bit PNG is 23 KB), and shapes a resize to a fixed short edge would blow up.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGES_PER_REQUEST = 16  # without --max_num_images: each image is decoded and held until it is processed
MAX_REQUEST_PIXELS = 64_000_000  # all the images of one request: about 200 MB of RGB
MAX_ASPECT_RATIO = 50
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,(?P<data>.*)", re.S | re.I)


def read_image(
    url: str, where: str, timeout: float = FETCH_TIMEOUT_S, max_bytes: int = MAX_IMAGE_BYTES, pixel_budget: int = MAX_IMAGE_PIXELS
):
    """The image at ``url`` (a data: URL or an http(s) URL) as RGB; a 400 that says what is wrong otherwise.
    ``pixel_budget``: what the request's images may still hold, checked before the image is decoded."""
    from PIL import Image, UnidentifiedImageError

    data = read_url_bytes(url, where, timeout, max_bytes)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > min(MAX_IMAGE_PIXELS, pixel_budget) or max(width, height) > MAX_ASPECT_RATIO * max(min(width, height), 1):
                raise APIError(
                    400,
                    f"{where} is {width}x{height} pixels: this server takes images of up to {MAX_IMAGE_PIXELS} pixels "
                    f"({MAX_REQUEST_PIXELS} for all the images of a request) and sides at most {MAX_ASPECT_RATIO}:1. "
                    "Resize it before sending.",
                    "messages",
                )
            return upright_rgb(image)
    except (APIError, MemoryError):
        raise
    except UnidentifiedImageError:
        raise APIError(
            400, f"{where} is not in an image format the server reads (PNG, JPEG, GIF, WebP, BMP, TIFF, ...).", "messages"
        ) from None
    except Exception as err:  # Pillow raises many kinds on a corrupt file (OSError, ValueError, SyntaxError, struct.error, ...)
        raise APIError(400, f"{where} is not an image the server can read: {err}", "messages") from None


def read_url_bytes(url: str, where: str, timeout: float = FETCH_TIMEOUT_S, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes a data: URL holds, or those an http(s) URL answers (at most ``max_bytes``, within ``timeout``); a
    400 that says what is wrong otherwise (the server reads no files of its own)."""
    try:
        scheme = urllib.parse.urlparse(url).scheme.lower()
    except ValueError as err:
        raise APIError(400, f"{where} is not a valid URL: {err}.", "messages") from None
    if scheme == "data":
        return _data_url_bytes(url, where)
    if scheme in ("http", "https"):
        return _fetch(url, where, timeout, max_bytes)
    raise APIError(
        400,
        f"{where} must be a data: URL (base64) or an http(s) URL, got a '{scheme or 'relative'}' URL: "
        "the server does not read its own files.",
        "messages",
    )


def read_images(urls: list[str], wheres: list[str] | None = None) -> list:
    """The images of a request's messages (``urls`` in order; ``wheres``: where each is, for the errors) as RGB, within
    the limits of one request: its pixels (MAX_REQUEST_PIXELS) and the time to fetch them all (REQUEST_FETCH_S)."""
    images, budget, deadline = [], MAX_REQUEST_PIXELS, time.monotonic() + REQUEST_FETCH_S
    for n, url in enumerate(urls):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise APIError(400, f"The images were not all read within {REQUEST_FETCH_S:g} s: send fewer, or as data: URLs.", "messages")
        where = wheres[n] if wheres else f"image {n} of the messages"
        images.append(read_image(url, where, timeout=min(FETCH_TIMEOUT_S, remaining), pixel_budget=budget))
        budget -= images[-1].width * images[-1].height
    return images


def read_audios(urls: list[str], sampling_rate: int, longest_s: float) -> list[np.ndarray]:
    """The audio clips of a request's messages (``urls`` in order: data: URLs of WAV files, or http(s) URLs), as mono
    samples at ``sampling_rate``, each of MIN_AUDIO_SAMPLES to ``longest_s`` seconds, all of them within
    MAX_REQUEST_AUDIO_BYTES and read within the time one request may take (REQUEST_FETCH_S)."""
    from QEfficient.utils.audio import decode_wav

    clips, budget, deadline = [], MAX_REQUEST_AUDIO_BYTES, time.monotonic() + REQUEST_FETCH_S
    for n, url in enumerate(urls):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise APIError(400, f"The audio was not all read within {REQUEST_FETCH_S:g} s: send less, or as data: URLs.", "messages")
        where = f"audio {n} of the messages"
        data = read_url_bytes(url, where, timeout=min(FETCH_TIMEOUT_S, remaining), max_bytes=min(MAX_AUDIO_BYTES, budget))
        budget -= len(data)
        if budget < 0:
            raise APIError(400, f"The messages' audio is more than {MAX_REQUEST_AUDIO_BYTES >> 20} MiB: send less.", "messages")
        try:
            clip = decode_wav(data, sampling_rate, name=where)
        except ValueError as err:
            raise APIError(400, str(err), "messages") from None
        if not MIN_AUDIO_SAMPLES <= len(clip) <= longest_s * sampling_rate:
            raise APIError(
                400,
                f"{where} is {len(clip) / sampling_rate:.2f} s; this model reads clips of {MIN_AUDIO_SAMPLES / sampling_rate:g} s "
                f"to {longest_s:g} s (its processor would cut a longer one short): send shorter clips.",
                "messages",
            )
        clips.append(clip)
    return clips


def _data_url_bytes(url: str, where: str) -> bytes:
    match = _DATA_URL.fullmatch(url)
    if match is None or not match["b64"]:
        example = "'data:<media type>;base64,<base64 bytes>' (data:image/png;base64,...)"
        raise APIError(400, f"{where} is not a base64 data URL: send {example}.", "messages")
    text = re.sub(r"\s+", "", match["data"])  # line breaks, as some encoders write them
    try:  # the standard alphabet, or the URL-safe one
        return base64.b64decode(text, altchars=b"-_" if re.search(r"[-_]", text) else None, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{where} holds invalid base64.", "messages") from None


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Follows at most MAX_REDIRECTS redirects, and only to http(s) URLs (urllib's own also follows ftp://)."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        if urllib.parse.urlparse(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to a URL that is not http(s): {newurl}", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpRedirectsOnly)


def _fetch(url: str, where: str, timeout: float, max_bytes: int) -> bytes:
    """The body at ``url``: at most ``max_bytes``, within ``timeout`` seconds in all (a slow sender is cut off)."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": "QEfficient-server"})
    try:
        # each read may wait half the limit: a sender that stalls is cut off near the limit, not only between reads
        with _OPENER.open(request, timeout=timeout / 2) as response:
            pieces, size = [], 0
            while piece := response.read1(64 * 1024):
                pieces.append(piece)
                size += len(piece)
                if size > max_bytes:
                    raise APIError(400, f"{where}: the file at {url} is larger than {max_bytes} bytes.", "messages")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not received within {timeout:g} s")
    except urllib.error.HTTPError as err:
        raise APIError(400, f"{where}: fetching {url} answered HTTP {err.code} {err.reason}.", "messages") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:  # TimeoutError is an OSError
        reason = getattr(err, "reason", None) or err
        message = f"{where}: could not fetch {url} ({reason}); send it as a base64 data: URL instead."
        raise APIError(400, message, "messages") from None
    return b"".join(pieces)


class ImagePrompts:
    """A vision-language model's prompts for the server: (tokens, ``Request.extra``) per prompt.

    ``max_images``: the most images one request may hold (``--max_num_images``; a cross-attention model's image slots).
    """

    def __init__(self, model, processor, prefiller, max_images: int = MAX_IMAGES_PER_REQUEST) -> None:
        self.model, self.processor, self.prefiller, self.max_images = model, processor, prefiller, max_images
        self.tokenizer = processor.tokenizer
        # one vision graph run at a time: each already uses every core given, and requests parse on many threads
        self._vision_turn = threading.Lock()
        # image chats parse here, not on the event loop's shared pool: a slow image fetch must not hold up text requests
        self.executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="qeff-images")

    @property
    def sampling_rate(self) -> int:
        """The audio rate the processor's feature extractor reads (16 kHz where it names none)."""
        return int(getattr(getattr(self.processor, "feature_extractor", None), "sampling_rate", None) or 16000)

    @property
    def takes_audio(self) -> bool:
        """An audio-text model (Voxtral, Qwen2-Audio, ...): its chats hold audio, not images."""
        return self.model.adapter.takes_audio

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.processor, "chat_template", None))

    def chat(
        self, messages: list[dict], urls: list[str], fits: Callable[[list[int]], None], options: dict | None = None
    ) -> tuple[list[int], dict]:
        """Messages with HF content parts (``chat_parts``) and their images' URLs, in order; ``fits(tokens)`` raises
        the 400 of a prompt beyond the context, before the vision graph runs; ``options``: the template's
        (serving/protocol.template_options; by default a generation prompt)."""
        if self.takes_audio and urls:
            self._check_clip_count(len(urls))
        try:
            prompt = self.processor.apply_chat_template(messages, tokenize=False, **(options or {"add_generation_prompt": True}))
        except Exception as err:  # the template's own checks (roles must alternate, ...) and jinja errors
            raise APIError(400, f"The chat template rejected these messages: {err}", "messages") from None
        if not isinstance(prompt, str):  # a processor whose template tokenizes anyway (Voxtral's)
            raise APIError(
                400, f"{self.model.config.model_type}'s processor does not render a chat as text: use /v1/completions.", "messages"
            )
        images = read_audios(urls, self.sampling_rate, self._longest_clip()) if self.takes_audio else read_images(urls)
        # the template may write the BOS token itself: then the processor must not add another (HF's rule)
        bos = self.tokenizer.bos_token
        special = {"add_special_tokens": False} if bos is not None and prompt.startswith(bos) else {}
        return self._extra(prompt, images, special, "messages", fits)

    def _check_clip_count(self, clips: int) -> None:
        """An audio-text model's clips per conversation, as its processor takes them (one prompt: AudioFlamingo 3's and
        GLM-ASR's one clip; none for Voxtral's, which takes audio only through its own chat request format)."""
        most = self.model.adapter.chat_clips
        if most is not None and clips > most:
            takes = f"{most} audio clip per conversation" if most else "no audio in chat messages here (its processor reads none)"
            raise APIError(400, f"The messages hold {clips} audio clips; {self.model.config.model_type} takes {takes}.", "messages")

    def _longest_clip(self) -> float:
        """The most seconds of one clip the processor reads (its max_audio_len, else its feature extractor's window);
        a longer clip would be cut short without a word."""
        extractor = getattr(self.processor, "feature_extractor", None)
        return float(getattr(self.processor, "max_audio_len", None) or getattr(extractor, "chunk_length", None) or 30)

    def text(self, prompt: str | list[int], where: str, fits: Callable[[list[int]], None]) -> tuple[list[int], dict]:
        """A /v1/completions prompt: a string through the processor, or token ids as they are; no image."""
        if isinstance(prompt, str):
            return self._extra(prompt, [], {}, where, fits)
        ids = np.asarray([prompt], dtype=np.int64)
        return self._run({"input_ids": ids, "attention_mask": np.ones_like(ids)}, where, fits)

    def _extra(self, prompt: str, images: list, processor_kwargs: dict, where: str, fits) -> tuple[list[int], dict]:
        adapter = self.model.adapter
        media = {"images": [images]} if images else {}  # the batch of one conversation's images, as HF's chat path gives it
        if images and self.takes_audio:  # its clips, at the feature extractor's rate
            media = {"audio": images, "sampling_rate": self.sampling_rate}
        try:
            inputs = self.processor(**media, text=[prompt], return_tensors=adapter.processor_tensors, **processor_kwargs)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as err:
            completion = where.startswith("prompt")
            kind = "audio clip(s)" if self.takes_audio else "image(s)"
            media = "audio: send 'input_audio'" if self.takes_audio else "images: send images as 'image_url'"
            hint = f" /v1/completions takes no {media} parts of a chat message." if completion else ""
            raise APIError(400, f"The processor rejected {where} with {len(images)} {kind}: {err}{hint}", _param(where)) from None
        return self._run(inputs, where, fits)

    def _run(self, inputs, where: str, fits) -> tuple[list[int], dict]:
        fits(self.model.prompt_token_lists(inputs)[0])
        try:
            with self._vision_turn:
                return self.model.request_extra(self.prefiller, inputs)
        except ValueError as err:  # image tokens without images, more images than slots, a wrong image size
            if "image tokens but no images" in str(err):
                message = f"{where} holds image tokens but no image: send images as 'image_url' parts of a chat message."
                raise APIError(400, message, _param(where)) from None
            if "audio tokens but no audio" in str(err):
                message = f"{where} holds audio tokens but no audio: send audio as 'input_audio' parts of a chat message."
                raise APIError(400, message, _param(where)) from None
            raise APIError(400, f"{where}: {err}", _param(where)) from None


def _param(where: str) -> str:
    return "messages" if where.startswith("messages") else "prompt"


def compile_options(
    prefill_seq_len: int,
    ctx_len: int,
    full_batch_size: int,
    num_cores: int,
    mxfp6_matmul: bool,
    mxint8_kv_cache: bool,
    img_size: int | None,
    max_num_images: int | None,
    *,
    lora: bool = False,
    speculative: bool = False,
) -> dict:
    """``QEFFAutoModelForImageTextToText.compile``'s options for serving; LoRA and speculative decoding are refused."""
    if lora or speculative:
        raise ValueError("A vision-language model is served without LoRA adapters or speculative decoding; leave those options out.")
    return dict(
        prefill_seq_len=prefill_seq_len,
        ctx_len=ctx_len,
        full_batch_size=full_batch_size,
        num_cores=num_cores,
        mxfp6_matmul=mxfp6_matmul,
        mxint8_kv_cache=mxint8_kv_cache,
        img_size=img_size,
        max_num_images=max_num_images,  # None: one image slot (cross-attention models), MAX_IMAGES_PER_REQUEST images per request
    )


def compile_vision_language(model_name: str, compile_options: dict, hf_overrides: dict | None = None, chat_template: str | None = None):
    """A ``ServingArtifact`` for a vision-language model, its graphs compiled (and cached under QEFF_HOME), served
    from the two artifacts without the model's weights (``open_app``, on this process or a Ray replica). A
    ``chat_template`` is checked before the compile: one that cannot work stops the server first."""
    from QEfficient import QEFFAutoModelForImageTextToText
    from QEfficient.utils.extras import require_extra

    require_extra("vision", "serving a vision-language model")
    model = QEFFAutoModelForImageTextToText.from_pretrained(
        model_name, kv_offload=True, continuous_batching=True, hf_overrides=hf_overrides
    )
    _processor(model, chat_template)
    paths = model.compile(**_compile_kwargs(compile_options))
    artifact = vision_language_artifact(str(paths["lang_qpc_path"]), (), compile_options["num_cores"], None)
    limits = {**artifact.vision_language, "max_num_images": compile_options.get("max_num_images")}
    names = tuple(served_model_names(artifact.model_id, [model_name])[1:])  # the folder's path or hub id: accepted, not the id
    return replace(artifact, vision_language=limits, chat_template=chat_template, served_names=names)


def open_vision_language_app(
    model_name: str,
    compile_options: dict,
    max_queue: int = 64,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    chat_template: str | None = None,
    hf_overrides: dict | None = None,
    tool_call_parser: str | None = None,
    reasoning_parser: str | None = None,
):
    """(app, runner) for a vision-language model: two graphs (vision, language) compiled with ``compile_options``
    (``QEFFAutoModelForImageTextToText.compile``'s, ``full_batch_size`` included), continuous batching, the
    processor's tokenizer and chat template; its config changed by ``hf_overrides`` (vLLM's) when given;
    ``tool_call_parser``: the model's tool-call syntax (serving/tool_parsers.py), ``reasoning_parser`` its thinking's
    (serving/reasoning.py). The weights are let go once compiled:
    the server runs the artifacts."""
    artifact = compile_vision_language(model_name, compile_options, hf_overrides, chat_template)
    artifact = replace(artifact, tool_call_parser=tool_call_parser, reasoning_parser=reasoning_parser)
    return open_vision_language_artifact_app(artifact, compile_options["num_cores"], max_queue, api_key, max_body_bytes)


def vision_language_artifact(qpc_path: str, served_names: tuple[str, ...], num_cores: int | None, prompt_lookup_num_tokens: int | None):
    """A ``ServingArtifact`` for a vision-language model's language artifact, or its one graph's (``serve --qpc_path``):
    the model is not loaded, its compiled graphs are served (QEFFAutoModelForImageTextToText.from_artifact)."""
    from QEfficient.compile.ort_cpu import language_companion, read_artifact
    from QEfficient.models.sentence_transformers import MODEL_FILES_SUBDIR
    from QEfficient.serving.artifact import ServingArtifact

    qconfig = read_artifact(Path(qpc_path))
    if qconfig.get("kind") == "vision":
        raise ValueError(
            f"'{qpc_path}' is a vision-language model's vision graph: serve its language artifact (compile()'s lang_qpc_path)."
        )
    if not qconfig.get("continuous_batching"):
        raise ValueError(
            f"'{qpc_path}' was compiled without continuous batching; the server needs it. Compile with "
            "from_pretrained(..., continuous_batching=True) and compile(full_batch_size=N), or serve --model_name."
        )
    if not (Path(qpc_path) / MODEL_FILES_SUBDIR).is_dir():
        raise ValueError(
            f"'{qpc_path}' holds no processor: a server starts from the artifact of a model compiled by this version "
            "(from_pretrained(..., continuous_batching=True), then compile(full_batch_size=N): the language artifact with "
            "kv_offload=True, the one graph's with kv_offload=False), or serve --model_name."
        )
    if prompt_lookup_num_tokens is not None:
        raise ValueError("A vision-language model is served without speculative decoding; leave --prompt_lookup_num_tokens out.")
    params = qconfig["compile_params"]
    names = artifact_model_names(qconfig.get("model_name") or Path(qpc_path).name, served_names)  # --model_name: its id
    return ServingArtifact(
        qpc_path=str(qpc_path),
        tokenizer_dir=str(Path(qpc_path) / MODEL_FILES_SUBDIR),
        model_id=names[0],
        served_names=tuple(names[1:]),
        eos_token_ids=(),  # the engine reads them from the artifact's generation config
        prefill_seq_len=params["prefill_seq_len"],
        ctx_len=params["ctx_len"],
        num_cores=num_cores or qconfig.get("num_cores") or 1,
        # a replica's own copy, when shipped; None: one graph (kv_offload=False)
        vision_language={"vision_qpc_path": str(vision) if (vision := language_companion(qpc_path, qconfig)) else None},
    )


def open_vision_language_artifact_app(
    artifact, num_cores: int | None, max_queue: int = 64, api_key: str | None = None, max_body_bytes: int | None = None
):
    """(app, runner) for a vision-language model's compiled graphs (``vision_language_artifact``), without its weights."""
    from QEfficient import QEFFAutoModelForImageTextToText
    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.utils.extras import require_extra

    require_extra("vision", "serving a vision-language model")
    vision = artifact.vision_language.get("vision_qpc_path")
    model = QEFFAutoModelForImageTextToText.from_artifact(artifact.qpc_path, num_cores or artifact.num_cores, vision)
    processor = _processor(model, artifact.chat_template)
    given = artifact.vision_language.get("max_num_images")  # serve --max_num_images; else the slots compiled, if any
    slots = read_artifact(Path(artifact.qpc_path))["compile_params"].get("max_num_images")
    if given is not None and slots is not None and given > slots:
        raise ValueError(f"--max_num_images {given}: this artifact keeps {slots} image slots per sequence (compile's max_num_images).")
    limits = (artifact.ctx_len, given or slots)
    names = [artifact.model_id, *artifact.served_names]
    parsers = (artifact.tool_call_parser, artifact.reasoning_parser)
    return _app(model, processor, limits, names, max_queue, api_key, max_body_bytes, parsers)


def _processor(model, chat_template: str | None):
    """The model's processor, with ``chat_template`` instead of its own when given (checked to write the images)."""
    from QEfficient.utils.tokenizer import load_hf_processor

    processor = load_hf_processor(model.local_model_dir)
    if chat_template is not None:
        processor.chat_template = chat_template
        check_template_writes_images(model, processor)
    return processor


def _app(model, processor, limits: tuple[int, int | None], names: list[str], max_queue, api_key, max_body_bytes, parsers=(None, None)):
    """The engine over ``model``'s compiled graphs on its thread, and the OpenAI app; ``limits``: (ctx_len, the most
    images per request as compiled, None for the default); ``names``: the model id first, then its other names;
    ``parsers``: (tool-call parser, reasoning parser)."""
    from QEfficient.serving.app import create_app
    from QEfficient.serving.runner import EngineRunner

    ctx_len, given = limits
    engine = model.serving_engine(processor.tokenizer)
    max_images = given if given is not None else 1 if model.adapter.cross_attention else MAX_IMAGES_PER_REQUEST
    runner = EngineRunner(engine, max_queue=max_queue).start()
    app = create_app(
        runner,
        processor.tokenizer,
        names[0],
        ctx_len,
        served_names=names[1:],
        api_key=api_key,
        max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        images=ImagePrompts(model, processor, engine.prefiller, max_images),
        tool_call_parser=parsers[0],
        reasoning_parser=parsers[1],
    )
    app.state.qpc_path = model.lang_qpc_path
    return app, runner


def _compile_kwargs(compile_options: dict) -> dict:
    """compile()'s own defaults where serving left an option unset (the image size, one image slot)."""
    return {name: value for name, value in compile_options.items() if value is not None}


def check_template_writes_images(model, processor) -> None:
    """A chat template given at start must write the model's image placeholder where an image part stands (an
    audio-text model's audio placeholder where an audio part does): otherwise every request with one would fail; the
    server refuses to start instead."""
    kind = "audio" if model.adapter.takes_audio else "image"
    placeholder = getattr(processor, "audio_token", None) if kind == "audio" else model.adapter.image_placeholder(processor)
    messages = [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": "Hello"}]}]
    try:
        rendered = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # its own raise_exception, names it does not define
        raise ValueError(f"The chat template fails on a message with an {kind}: {type(err).__name__}: {err}") from None
    if kind == "audio" and placeholder is None:
        raise ValueError(f"{model.config.model_type}'s processor names no audio token: its chats cannot hold audio here.")
    if placeholder is not None and placeholder not in str(rendered):
        raise ValueError(
            f"The chat template does not write the {kind} placeholder {placeholder!r} for an {kind} part "
            f'({{"type": "{kind}"}} in HF\'s content parts): it renders {rendered!r}. Fix the template.'
        )
