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
import io
import re
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from QEfficient.serving.protocol import APIError

# A request body carries its images in base64; 4 MiB (the text server's limit) is one phone photo.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # one fetched image
FETCH_TIMEOUT_S = 10.0  # per fetched image (vLLM's default is 5 s)
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,(?P<data>.*)", re.S)


def read_image(url: str, where: str, timeout: float = FETCH_TIMEOUT_S, max_bytes: int = MAX_IMAGE_BYTES):
    """The image at ``url`` (a data: URL or an http(s) URL) as RGB; a 400 that says what is wrong otherwise."""
    from PIL import Image, UnidentifiedImageError

    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme == "data":
        match = _DATA_URL.fullmatch(url)
        if match is None or not match["b64"]:
            raise APIError(400, f"{where} is not a base64 data URL: send 'data:image/png;base64,<base64 bytes>'.", "messages")
        try:
            data = base64.b64decode(match["data"], validate=True)
        except (binascii.Error, ValueError):
            raise APIError(400, f"{where} holds invalid base64.", "messages") from None
    elif scheme in ("http", "https"):
        data = _fetch(url, where, timeout, max_bytes)
    else:
        raise APIError(
            400,
            f"{where} must be a data: URL (base64) or an http(s) URL, got a '{scheme or 'relative'}' URL: "
            "the server does not read its own files.",
            "messages",
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise APIError(400, f"{where} is not an image the server can read: {err}", "messages") from None


def _fetch(url: str, where: str, timeout: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "QEfficient-server"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as err:
        raise APIError(400, f"{where}: fetching {url} answered HTTP {err.code} {err.reason}.", "messages") from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        message = f"{where}: could not fetch {url} ({reason}); send the image as a base64 data: URL instead."
        raise APIError(400, message, "messages") from None
    if len(data) > max_bytes:
        raise APIError(400, f"{where}: the image at {url} is larger than {max_bytes} bytes.", "messages")
    return data


class ImagePrompts:
    """A vision-language model's prompts for the server: (tokens, ``Request.extra``) per prompt."""

    def __init__(self, model, processor, prefiller) -> None:
        self.model, self.processor, self.prefiller = model, processor, prefiller
        self.tokenizer = processor.tokenizer

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.processor, "chat_template", None))

    def chat(self, messages: list[dict], urls: list[str]) -> tuple[list[int], dict]:
        """Messages with HF content parts (``chat_parts``) and their images' URLs, in order."""
        try:
            prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as err:  # the template's own checks (roles must alternate, ...) and jinja errors
            raise APIError(400, f"The chat template rejected these messages: {err}", "messages") from None
        images = [read_image(url, f"image {n} of the messages") for n, url in enumerate(urls)]
        # the template may write the BOS token itself: then the processor must not add another (HF's rule)
        bos = self.tokenizer.bos_token
        special = {"add_special_tokens": False} if bos is not None and prompt.startswith(bos) else {}
        return self._extra(prompt, images, special, "messages")

    def text(self, prompt: str | list[int], where: str) -> tuple[list[int], dict]:
        """A /v1/completions prompt: a string through the processor, or token ids as they are; no image."""
        if isinstance(prompt, str):
            return self._extra(prompt, [], {}, where)
        ids = np.asarray([prompt], dtype=np.int64)
        return self._run({"input_ids": ids, "attention_mask": np.ones_like(ids)}, where)

    def _extra(self, prompt: str, images: list, processor_kwargs: dict, where: str) -> tuple[list[int], dict]:
        adapter = self.model.adapter
        media = {}
        if images:  # the adapter's batch form for one prompt: its image, or the list of its images
            media["images"] = adapter.processor_images(images[:1] if len(images) == 1 else [images])
        try:
            inputs = self.processor(**media, text=[prompt], return_tensors=adapter.processor_tensors, **processor_kwargs)
        except (ValueError, TypeError, KeyError, IndexError) as err:
            raise APIError(400, f"The processor rejected {where} with {len(images)} image(s): {err}", _param(where)) from None
        return self._run(inputs, where)

    def _run(self, inputs, where: str) -> tuple[list[int], dict]:
        try:
            return self.model.request_extra(self.prefiller, inputs)
        except ValueError as err:  # image tokens without images, more images than slots, a wrong image size
            raise APIError(400, f"{where}: {err}", _param(where)) from None


def _param(where: str) -> str:
    return "messages" if where.startswith("messages") else "prompt"


def open_vision_language_app(
    model_name: str, compile_options: dict, max_queue: int = 64, api_key: str | None = None, max_body_bytes: int | None = None
):
    """(app, runner) for a vision-language model: two graphs (vision, language) compiled with ``compile_options``
    (``QEFFAutoModelForImageTextToText.compile``'s, ``full_batch_size`` included), continuous batching, the
    processor's tokenizer and chat template."""
    from QEfficient import QEFFAutoModelForImageTextToText
    from QEfficient.serving.app import create_app
    from QEfficient.serving.runner import EngineRunner
    from QEfficient.utils.extras import require_extra
    from QEfficient.utils.tokenizer import load_hf_processor

    require_extra("vision", "serving a vision-language model")
    model = QEFFAutoModelForImageTextToText.from_pretrained(model_name, kv_offload=True, continuous_batching=True)
    processor = load_hf_processor(model.local_model_dir)
    model.compile(**compile_options)
    engine = model.serving_engine(processor.tokenizer)
    runner = EngineRunner(engine, max_queue=max_queue).start()
    app = create_app(
        runner,
        processor.tokenizer,
        model.model_name,
        compile_options["ctx_len"],
        served_names=[model_name],
        api_key=api_key,
        max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        images=ImagePrompts(model, processor, engine.prefiller),
    )
    app.state.qpc_path = model.qpc_paths["lang_qpc_path"]
    return app, runner
