"""vLLM's classify API over an image classifier (ViT, ConvNeXt, Swin, DINOv2, ... ``ForImageClassification``) or an
audio classifier (Wav2Vec2, HuBERT, WavLM, AST, Whisper's encoder, ... ``ForSequenceClassification`` /
``ForAudioClassification``).

Routes: GET /health, GET /v1/models, GET /version, and POST /classify, /v1/classify. The inputs come as vLLM's chat
form of a classification request takes them: ``messages`` whose content holds
- images: ``image_url`` parts (a base64 data: URL, or an http(s) URL the server fetches, read as the vision-language
  server reads them);
- audio: OpenAI's ``input_audio`` parts (``{"data": base64, "format": "wav"}``) or vLLM's ``audio_url`` parts (a data:
  or http(s) URL); PCM WAV at the feature extractor's sampling rate (16 kHz), mono or averaged to mono, 25 ms to
  30 s each.
Each image or audio gets one result, in the order of the messages: its label and probabilities, as the text
classifier's /classify answers (a softmax, or a sigmoid per label where the config's problem_type is multi-label;
``"use_activation": false`` gives the logits). vLLM answers one result per request, which is what a request with one
input gets here. The model's own image processor or feature extractor (its folder's preprocessor_config.json, or an
image or audio classifier's artifact's copy: ``serve --qpc_path``) prepares the inputs; a text ``input`` or text parts are
refused. Requests run one at a time on a worker thread, so /health keeps answering.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request

from QEfficient.compile.ort_cpu import read_artifact
from QEfficient.export.graph_names import INPUT_VALUES, LOGITS, PIXEL_VALUES
from QEfficient.generation.audio_inputs import SAMPLES, audio_graph_inputs, processed_audio
from QEfficient.generation.encoder_run import run_image_graph, run_in_batches
from QEfficient.models.sentence_transformers import MODEL_FILES_SUBDIR
from QEfficient.runtime.ort_session import open_artifact_session
from QEfficient.serving.app import openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.encoder_artifact import check_servable, serving_config
from QEfficient.serving.protocol import APIError, artifact_model_names, parse_json, served_model, served_model_names
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.scores_app import classify_probabilities, classify_rows, listing, use_activation
from QEfficient.serving.vision_language import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_IMAGES_PER_REQUEST,
    REQUEST_FETCH_S,
    read_images,
    read_url_bytes,
)

# fields of vLLM's chat classification request that would change the answer, with the values that do not
_NEUTRAL = {"mm_processor_kwargs": (None, {})}
MAX_AUDIO_SECONDS = 30  # a raw-sample classifier's compiled length (fixed-size spectrograms read their extractor's window)
MIN_SAMPLES = 400  # 25 ms at 16 kHz: what Wav2Vec2's first convolution reads
MAX_AUDIO_BYTES = 16 * 1024 * 1024  # one audio: 30 s at 16 kHz is 1 MB as 16-bit mono, 4 MB as 32-bit stereo
MAX_REQUEST_AUDIO_BYTES = 64 * 1024 * 1024  # all the audio of one request


@dataclass(frozen=True)
class Modality:
    """What a classifier reads: ``noun`` (in messages), the content part types that carry it."""

    noun: str
    part_types: tuple[str, ...]


IMAGES = Modality("images", ("image_url",))
AUDIO = Modality("audio", ("input_audio", "audio_url"))


def media_parts(
    body: dict, modality: Modality, text_hint: str | None = None, said: str = "", max_items: int = MAX_IMAGES_PER_REQUEST
) -> list[tuple[str, dict]]:
    """(where, part) for each part of ``modality`` in a request's ``messages``, in order; a 400 for text (the model
    reads no text; ``text_hint``: where text goes instead; ``said``: a text the model's own prompt already says, which
    a part may repeat), another kind of part, no input, or more than ``max_items``."""
    kinds = " or ".join(f"'{t}'" for t in modality.part_types)
    if body.get("input") is not None or body.get("prompt") is not None:
        raise APIError(
            400, f"This model classifies {modality.noun}: send them as {kinds} parts of 'messages', not a text 'input'.", "input"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, f"'messages' must be a non-empty list, whose content holds {kinds} parts (what to classify).", "messages")
    found = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise APIError(400, f"messages[{i}] must be an object with a 'content'.", "messages")
        content, where = message.get("content"), f"messages[{i}].content"
        if isinstance(content, str) or content is None:
            content = [{"type": "text", "text": content or ""}]
        if not isinstance(content, list):
            raise APIError(400, f"{where} must be a list of {kinds} parts.", "messages")
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str) and part["text"].strip() in ("", said):
                continue  # an empty text part says nothing, nor one the model's prompt says anyway
            if kind == "text":
                hint = text_hint or f"this model reads only {modality.noun}: send {kinds} parts alone"
                raise APIError(400, f"{where}[{j}] is text; {hint}.", "messages")
            if kind not in modality.part_types:
                what = f"a part of type '{kind}'" if isinstance(kind, str) else "a part without a type"
                raise APIError(400, f"{where}[{j}] is {what}; this model takes {kinds} parts.", "messages")
            found.append((f"{where}[{j}]", part))
    if not found:
        raise APIError(400, f"The messages hold no {kinds} part: send the {modality.noun}.", "messages")
    if len(found) > max_items:
        raise APIError(400, f"At most {max_items} inputs per request, got {len(found)}.", "messages")
    return found


def part_url(where: str, part: dict) -> str:
    """The URL of an ``image_url`` or ``audio_url`` part (an object with a ``url``, or the URL itself)."""
    value = part.get(part["type"])
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise APIError(400, f'{where} needs "{part["type"]}": {{"url": "data:...;base64,..." or "https://..."}}.', "messages")
    return url


def audio_bytes(where: str, part: dict, max_bytes: int = MAX_AUDIO_BYTES) -> bytes:
    """The file an audio part holds: ``input_audio``'s base64 ``data`` (``format`` "wav"), or what ``audio_url`` names
    (at most ``max_bytes`` fetched)."""
    if part["type"] == "audio_url":
        return read_url_bytes(part_url(where, part), where, max_bytes=max_bytes)
    audio = part.get("input_audio")
    data, form = (audio.get("data"), audio.get("format")) if isinstance(audio, dict) else (None, None)
    if not isinstance(data, str) or not data:
        raise APIError(400, f'{where} needs "input_audio": {{"data": "<base64 WAV>", "format": "wav"}}.', "messages")
    if form not in (None, "wav"):
        raise APIError(
            400, f"{where} is {form!r}; this server reads PCM WAV: convert it (ffmpeg -i in -ar 16000 -ac 1 out.wav).", "messages"
        )
    try:
        return base64.b64decode(re.sub(r"\s+", "", data), validate=True)  # line breaks, as some encoders write them
    except (binascii.Error, ValueError):
        raise APIError(400, f"{where} holds invalid base64.", "messages") from None


def read_audio(parts: list[tuple[str, dict]], sampling_rate: int) -> list[np.ndarray]:
    """Each audio part's samples at ``sampling_rate`` (PCM WAV, channels averaged), within a request's limits (its
    bytes, the time to fetch them, MAX_AUDIO_SECONDS each); a 400 that says what to do."""
    from QEfficient.utils.audio import decode_wav

    samples, budget, deadline = [], MAX_REQUEST_AUDIO_BYTES, time.monotonic() + REQUEST_FETCH_S
    for where, part in parts:
        if time.monotonic() > deadline:
            raise APIError(400, f"The audio was not all read within {REQUEST_FETCH_S:g} s: send less, or as base64.", "messages")
        data = audio_bytes(where, part, min(MAX_AUDIO_BYTES, budget))
        budget -= len(data)
        if budget < 0:
            raise APIError(400, f"The audio of a request may hold {MAX_REQUEST_AUDIO_BYTES} bytes in all: send less.", "messages")
        try:
            samples.append(decode_wav(data, sampling_rate, where))
        except ValueError as err:
            raise APIError(400, str(err), "messages") from None
        seconds = len(samples[-1]) / sampling_rate
        if len(samples[-1]) < MIN_SAMPLES or seconds > MAX_AUDIO_SECONDS:
            limits = f"from {MIN_SAMPLES} samples (25 ms) to {MAX_AUDIO_SECONDS} s"
            raise APIError(400, f"{where} lasts {seconds:.3f} s; this server classifies audio {limits}: cut it.", "messages")
    return samples


def check_processor_size(processor, size: tuple[int, int], model_name: str, fix: str | None = None) -> None:
    """Refuse an image processor whose output is not the compiled size for images of any shape (one that resizes the
    shortest edge only keeps the aspect ratio): the graph runs one size. ``fix``: what to do, where it is not the
    processor's settings (an artifact compiled at another size)."""
    from PIL import Image

    for shape in ((640, 480), (480, 640)):
        written = tuple(np.asarray(processor(images=[Image.new("RGB", shape)], return_tensors="np")[PIXEL_VALUES]).shape[2:])
        if written != size:
            raise ValueError(
                f"'{model_name}''s image processor writes a {shape[0]}x{shape[1]} image as {written[1]}x{written[0]} pixels, not the "
                f"compiled {size[1]}x{size[0]}: the server runs one image size. "
                + (fix or "Give the processor a fixed size or a crop (preprocessor_config.json), or classify from Python.")
            )


def image_pixels(image_processor, parts: list[tuple[str, dict]]) -> np.ndarray:
    """The images of ``image_url`` parts (read_images' limits) through the model's image processor: pixel_values, float32;
    a 400 where the processor refuses them."""
    images = read_images([part_url(where, part) for where, part in parts])
    try:
        return np.asarray(image_processor(images=images, return_tensors="np")[PIXEL_VALUES], dtype=np.float32)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as err:
        raise APIError(400, f"The image processor rejected the images: {err}", "messages") from None


def create_classify_media_app(
    model,
    processor,
    modality: Modality,
    model_id: str,
    *,
    served_names=None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The app over a compiled QEFFAutoModelForImageClassification (``modality`` IMAGES, ``processor`` its image
    processor) or QEFFAutoModelForAudioClassification (AUDIO; its feature extractor), or over either's artifact alone
    (CompiledImageClassifier, CompiledAudioClassifier)."""
    app = FastAPI(title=f"QEfficient {modality.noun} classification", version="1")
    names = served_model_names(model_id, served_names)
    config = model.config
    lock = asyncio.Lock()  # one request at a time on the session: the cores are shared anyway
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    def prepared(parts: list[tuple[str, dict]]):
        """The model's inputs: pixels through the image processor, or the audio's samples (generate() runs the
        feature extractor, one audio at a time where lengths differ)."""
        if modality is AUDIO:
            return read_audio(parts, int(getattr(processor, "sampling_rate", 16000)))
        return {PIXEL_VALUES: image_pixels(processor, parts)}

    def logits(inputs) -> np.ndarray:
        try:
            out = model.generate(processor, inputs) if modality is AUDIO else model.generate(inputs)
        except ValueError as err:  # an audio longer than the compiled length
            raise APIError(400, str(err), "messages") from None
        return np.asarray(out[LOGITS])

    # fetching and decoding on threads of their own: a slow fetch must not hold up the request that holds the session
    readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="qeff-media")

    async def classify(request: Request):
        body = parse_json(await read_limited_body(request, max_body_bytes))
        name = served_model(body, names)
        for field, neutral in _NEUTRAL.items():
            if body.get(field) not in neutral:
                raise APIError(400, f"'{field}' is not supported by this server; leave it out.", field)
        activate = use_activation(body)
        parts = media_parts(body, modality)
        inputs = await asyncio.get_running_loop().run_in_executor(readers, prepared, parts)  # before the session is taken
        async with lock:
            values = await asyncio.to_thread(logits, inputs)
        values = classify_probabilities(values, config) if activate else values
        return listing("classify", name, classify_rows(values, config), 0)  # no text tokens

    for path in ("/classify", "/v1/classify"):
        app.post(path)(classify)
    return app


def open_classify_media_app(
    model_name: str,
    modality: Modality,
    num_cores: int,
    mxfp6_matmul: bool,
    api_key: str | None,
    max_body_bytes: int | None,
    hf_overrides: dict | None = None,
):
    """(app, runner) for an image classifier's folder (compiled at its image processor's size) or an audio
    classifier's (audio of up to 30 s; a fixed-size spectrogram model at its extractor's size)."""
    from transformers import AutoFeatureExtractor, AutoImageProcessor

    from QEfficient import QEFFAutoModelForAudioClassification, QEFFAutoModelForImageClassification

    cls = QEFFAutoModelForAudioClassification if modality is AUDIO else QEFFAutoModelForImageClassification
    model = cls.from_pretrained(model_name, hf_overrides=hf_overrides or None)
    folder = Path(model.local_model_dir) if model.local_model_dir else None
    if folder is None or not (folder / "preprocessor_config.json").is_file():
        kind = "feature extractor" if modality is AUDIO else "image processor"
        raise ValueError(
            f"'{model_name}' has no preprocessor_config.json: the server prepares {modality.noun} with the model's own {kind}. "
            f"Save it to the folder (its save_pretrained), or classify from Python ({cls.__name__})."
        )
    processor = (AutoFeatureExtractor if modality is AUDIO else AutoImageProcessor).from_pretrained(folder)
    if modality is AUDIO:
        from QEfficient.serving.transcriber_app import check_sampling_rate

        check_sampling_rate(int(getattr(processor, "sampling_rate", 16000)), model_name)
    model.compile(batch_size=1, num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    if modality is IMAGES:
        check_processor_size(processor, tuple(read_artifact(model.qpc_path)["compile_params"]["image_size"]), model_name)
    limit = max_body_bytes or (MAX_REQUEST_AUDIO_BYTES if modality is AUDIO else DEFAULT_MAX_BODY_BYTES)
    app = create_classify_media_app(
        model, processor, modality, model.model_name, served_names=[model_name], api_key=api_key, max_body_bytes=limit
    )
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()


class _CompiledClassifier:
    """An image or audio classifier's artifact alone (``serve --qpc_path``, a Ray replica): its session, the config
    values it keeps (labels, problem_type) and ``local_model_dir``, its copy of the processor's files."""

    def __init__(self, qpc_path: str | Path, num_cores: int, qconfig: dict | None = None) -> None:
        self.qpc_path = Path(qpc_path)
        self.qconfig = read_artifact(self.qpc_path) if qconfig is None else qconfig
        check_servable(self.qpc_path, self.qconfig)
        self.config = serving_config(self.qpc_path)
        self.local_model_dir = self.qpc_path / MODEL_FILES_SUBDIR
        self.model_name = self.qconfig.get("model_name") or self.qpc_path.name
        self.session = open_artifact_session(self.qpc_path, num_cores)


class CompiledImageClassifier(_CompiledClassifier):
    """``generate(inputs)``: the graph on the image processor's pixel_values."""

    def generate(self, inputs) -> dict[str, np.ndarray]:
        pixels = np.ascontiguousarray(inputs[PIXEL_VALUES], dtype=np.float32)
        return {LOGITS: run_image_graph(self.session, self.qconfig["compile_params"], pixels)[0]}


class CompiledAudioClassifier(_CompiledClassifier):
    """``generate(processor, audio)``: the graph on raw 16 kHz audio (a list of arrays) through the feature extractor,
    as QEFFAutoModelForAudioClassification.generate runs it."""

    def generate(self, processor, audio: list[np.ndarray]) -> dict[str, np.ndarray]:
        reads, params = self.qconfig["audio_reads"], self.qconfig["compile_params"]
        longest, logits = max(params["seq_len"]), []
        for batch in processed_audio(processor, audio, reads):
            columns = audio_graph_inputs(reads, batch)
            samples = columns[INPUT_VALUES].shape[1] if reads["kind"] == SAMPLES else 0  # (a spectrogram's frames: any number)
            if samples > longest:
                raise ValueError(
                    f"The audio has {samples} samples but the model was compiled for at most {longest}: compile with seq_len "
                    f">= {samples} or cut the audio."
                )
            logits.append(run_in_batches(self.session, columns, params["batch_size"])[0])
        return {LOGITS: np.concatenate(logits)}


def artifact_processor(qpc_path: str | Path, qconfig: dict):
    """The image processor or feature extractor a classifier's artifact keeps, checked as the server on the folder
    checks it (the compiled image size; 16 kHz audio); Ray's driver checks it before any replica starts."""
    from transformers import AutoFeatureExtractor, AutoImageProcessor

    folder, name = Path(qpc_path) / MODEL_FILES_SUBDIR, qconfig.get("model_name") or str(qpc_path)
    if qconfig.get("audio_classifier"):
        from QEfficient.serving.transcriber_app import check_sampling_rate

        processor = AutoFeatureExtractor.from_pretrained(folder)
        check_sampling_rate(int(getattr(processor, "sampling_rate", 16000)), name)
        return processor
    processor = AutoImageProcessor.from_pretrained(folder)
    check_processor_size(processor, tuple(qconfig["compile_params"]["image_size"]), name)
    return processor


def open_compiled_classifier_app(
    qpc_path: str | Path, qconfig: dict, served_names, num_cores: int, api_key: str | None, max_body_bytes: int | None
):
    """(app, runner): /classify over an image or audio classifier's artifact (``qconfig``: its, read), with the processor
    it keeps, as the server on the model's folder answers (open_classify_media_app), without the folder or its weights."""
    audio = qconfig.get("audio_classifier")
    model = (CompiledAudioClassifier if audio else CompiledImageClassifier)(qpc_path, num_cores, qconfig)
    processor = artifact_processor(qpc_path, model.qconfig)
    limit = max_body_bytes or (MAX_REQUEST_AUDIO_BYTES if audio else DEFAULT_MAX_BODY_BYTES)
    modality, names = AUDIO if audio else IMAGES, artifact_model_names(model.model_name, served_names)
    app = create_classify_media_app(model, processor, modality, names[0], served_names=names[1:], api_key=api_key, max_body_bytes=limit)
    app.state.qpc_path = str(model.qpc_path)
    return app, NoRunner()
