"""vLLM's classify API over an image classifier (ViT, ConvNeXt, Swin, DINOv2, ... ``ForImageClassification``).

Routes: GET /health, GET /v1/models, GET /version, and POST /classify, /v1/classify. The images come as vLLM's chat
form of a classification request takes them: ``messages`` whose content holds ``image_url`` parts (a base64 data: URL,
or an http(s) URL the server fetches, read as the vision-language server reads them). Each image gets one result, in
the order of the messages: its label and probabilities, as the text classifier's /classify answers (a softmax, or a
sigmoid per label where the config's problem_type is multi-label; ``"use_activation": false`` gives the logits). vLLM
answers one result per request, which is what a request with one image gets here.
The model's own image processor (its folder's preprocessor_config.json) resizes and normalizes the images; a text
``input`` or text parts are refused, since the model reads only pixels. Requests run one at a time on a worker thread,
so /health keeps answering.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request

from QEfficient.export.graph_specs import LOGITS, PIXEL_VALUES
from QEfficient.serving.app import openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.messages import chat_parts
from QEfficient.serving.protocol import APIError, parse_json
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.scores_app import classify_probabilities, classify_rows, listing, use_activation
from QEfficient.serving.vision_language import DEFAULT_MAX_BODY_BYTES, MAX_IMAGES_PER_REQUEST, read_images

# fields of vLLM's chat classification request that would change the answer, with the values that do not
_NEUTRAL = {"mm_processor_kwargs": (None, {})}


def image_urls(body: dict) -> list[str]:
    """The URLs of the ``image_url`` parts of a request's ``messages``, in order; a 400 for text (the model reads
    pixels only), for no image, or for more than MAX_IMAGES_PER_REQUEST."""
    if body.get("input") is not None or body.get("prompt") is not None:
        raise APIError(400, "This model classifies images: send them as 'image_url' parts of 'messages', not a text 'input'.", "input")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(
            400, "'messages' must be a non-empty list, whose content holds 'image_url' parts (the images to classify).", "messages"
        )
    urls = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise APIError(400, f"messages[{i}] must be an object with a 'role' and a 'content'.", "messages")
        parts, found = chat_parts(message.get("content"), i)
        texts = [parts] if isinstance(parts, str) else [p["text"] for p in parts if p["type"] == "text"]
        if any(text.strip() for text in texts):
            raise APIError(400, f"messages[{i}] holds text; this model reads only images: send 'image_url' parts alone.", "messages")
        urls += found
    if not urls:
        raise APIError(400, "The messages hold no 'image_url' part: send the images to classify.", "messages")
    if len(urls) > MAX_IMAGES_PER_REQUEST:
        raise APIError(400, f"At most {MAX_IMAGES_PER_REQUEST} images per request, got {len(urls)}.", "messages")
    return urls


def create_image_classify_app(
    model,
    processor,
    model_id: str,
    *,
    served_names=None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The app over a compiled QEFFAutoModelForImageClassification (``model.generate``) and its image processor."""
    app = FastAPI(title="QEfficient image classification", version="1")
    names = [model_id] + [n for n in served_names or [] if n != model_id]
    config = model.config
    lock = asyncio.Lock()  # one request at a time on the session: the cores are shared anyway
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    def check_model(body: dict) -> str:
        name = body.get("model")
        if name is not None and not isinstance(name, str):
            raise APIError(400, f"'model' must be a string, got {name!r}.", "model")
        if name is not None and name not in names:
            message = f"The model '{name}' does not exist; this server serves '{names[0]}' (see /v1/models)."
            raise APIError(404, message, "model", "model_not_found")
        return name or model_id

    def pixels(urls: list[str]) -> np.ndarray:
        images = read_images(urls)
        try:
            return np.asarray(processor(images=images, return_tensors="np")[PIXEL_VALUES], dtype=np.float32)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as err:
            raise APIError(400, f"The image processor rejected the images: {err}", "messages") from None

    async def classify(request: Request):
        body = parse_json(await read_limited_body(request, max_body_bytes))
        name = check_model(body)
        for field, neutral in _NEUTRAL.items():
            if body.get(field) not in neutral:
                raise APIError(400, f"'{field}' is not supported by this server; leave it out.", field)
        activate = use_activation(body)
        urls = image_urls(body)
        batch = await asyncio.to_thread(pixels, urls)  # fetched and decoded before the session is taken
        async with lock:
            logits = (await asyncio.to_thread(model.generate, {PIXEL_VALUES: batch}))[LOGITS].numpy()
        values = classify_probabilities(logits, config) if activate else logits
        return listing("classify", name, classify_rows(values, config), 0)  # no text tokens

    for path in ("/classify", "/v1/classify"):
        app.post(path)(classify)
    return app


def open_image_classify_app(
    model_name: str,
    num_cores: int,
    mxfp6_matmul: bool,
    api_key: str | None,
    max_body_bytes: int | None,
    hf_overrides: dict | None = None,
):
    """(app, runner) for an image classifier folder: compiled at its image processor's size, with that processor."""
    from transformers import AutoImageProcessor

    from QEfficient import QEFFAutoModelForImageClassification

    model = QEFFAutoModelForImageClassification.from_pretrained(model_name, hf_overrides=hf_overrides or None)
    folder = Path(model.local_model_dir) if model.local_model_dir else None
    if folder is None or not (folder / "preprocessor_config.json").is_file():
        raise ValueError(
            f"'{model_name}' has no preprocessor_config.json: the server resizes and normalizes images with the model's own "
            "image processor. Save it to the folder (AutoImageProcessor.save_pretrained), or classify from Python "
            "(QEFFAutoModelForImageClassification)."
        )
    processor = AutoImageProcessor.from_pretrained(folder)
    model.compile(batch_size=1, num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    limit = max_body_bytes or DEFAULT_MAX_BODY_BYTES
    app = create_image_classify_app(model, processor, model.model_name, served_names=[model_name], api_key=api_key, max_body_bytes=limit)
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()
