"""OpenAI's embeddings API over a contrastive image-text model (CLIP, SigLIP, ...), as vLLM serves one: texts as
``input`` (a string, a list of them, or token ids) get the text tower's embeddings; images as ``image_url`` parts of
``messages`` (vLLM's chat form of an embeddings request; base64 data: URLs or http(s) URLs) get the image tower's, one
per image in order. Both are L2-normalized, as the model's forward normalizes them, so a text's and an image's dot
product is their cosine (vLLM's ``use_activation`` false: the projections before it; ``embed_dtype`` and ``endianness``
pack base64 as vLLM does). Each text runs alone, as its tokenizer writes it (SigLIP's padded to its 64 positions, as it
was trained); one longer than the text tower's positions is refused. Requests run one at a time on a worker thread.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from fastapi import FastAPI, Request

from QEfficient.compile.ort_cpu import read_artifact
from QEfficient.export.graph_names import INPUT_IDS
from QEfficient.models.dual_encoder import l2_rows
from QEfficient.serving.app import openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.classify_media_app import IMAGES, check_processor_size, image_pixels, media_parts
from QEfficient.serving.embed_fields import packing, refuse_unapplied
from QEfficient.serving.embeddings_app import MAX_INPUTS, embedding_format, embedding_list
from QEfficient.serving.messages import openai_input_forms
from QEfficient.serving.protocol import APIError, artifact_model_names, boolean, parse_json, served_model, served_model_names
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.vision_language import DEFAULT_MAX_BODY_BYTES
from QEfficient.utils.checks import served_length

PADDED_TO_POSITIONS = frozenset({"siglip"})  # trained on texts padded to every position: tokenized so here too


def create_dual_embeddings_app(
    model, processor, model_id: str, max_len: int, *, served_names=None, api_key=None, max_body_bytes=DEFAULT_MAX_BODY_BYTES
) -> FastAPI:
    """The app over a compiled QEFFAutoModelForZeroShotImageClassification and its processor (tokenizer and image
    processor); texts of at most ``max_len`` tokens."""
    app = FastAPI(title="QEfficient image-text embeddings", version="1")
    names = served_model_names(model_id, served_names)
    tokenizer, image_processor = processor.tokenizer, processor.image_processor
    vocab_size = len(tokenizer)
    padding = {"padding": "max_length", "max_length": max_len} if model.config.model_type in PADDED_TO_POSITIONS else {}
    lock = asyncio.Lock()  # one request at a time on the sessions: the cores are shared anyway
    readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="qeff-images")  # image fetches: off the session's turn
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    def token_lists(raw, special: bool) -> list[list[int]]:
        out = []
        items = openai_input_forms(raw, "input", MAX_INPUTS, " (OpenAI's limit)")
        for i, item in enumerate(items):
            where = f"input[{i}]" if len(items) > 1 else "input"
            ids = tokenizer(item, add_special_tokens=special, **padding)[INPUT_IDS] if isinstance(item, str) else list(item)
            if not ids:
                raise APIError(400, f"{where} is empty.", "input")
            bad = next((t for t in ids if not 0 <= t < vocab_size), None)
            if bad is not None:
                raise APIError(400, f"{where} has the token id {bad}, outside this model's vocabulary [0, {vocab_size}).", "input")
            if len(ids) > max_len:
                message = f"{where} has {len(ids)} tokens, more than the text tower's {max_len} positions; shorten it."
                raise APIError(400, message, "input", "context_length_exceeded")
            out.append(ids)
        return out

    def texts(lists: list[list[int]]) -> np.ndarray:
        return np.concatenate([model.get_text_features({INPUT_IDS: np.asarray([ids], np.int64)}) for ids in lists])

    def pixels(body: dict) -> np.ndarray:
        return image_pixels(image_processor, media_parts(body, IMAGES, "send texts as 'input', in a request of their own"))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = parse_json(await read_limited_body(request, max_body_bytes))
        name = served_model(body, names)
        encoding, packed, normalized = embedding_format(body, model.embedding_width), packing(body), boolean(body, "use_activation", True)
        if body.get("truncate_prompt_tokens") is not None:
            message = "'truncate_prompt_tokens' is not applied by this server: shorten the text instead."
            raise APIError(400, message, "truncate_prompt_tokens")
        refuse_unapplied(body)  # normalize, padding: as the text embeddings server
        if body.get("mm_processor_kwargs") not in (None, {}):
            raise APIError(
                400,
                "'mm_processor_kwargs' is not applied by this server (its image processor's settings are the model's).",
                "mm_processor_kwargs",
            )
        if (body.get("input") is None) == (body.get("messages") is None):
            raise APIError(400, "Send texts as 'input' or images as 'image_url' parts of 'messages' (one of the two).", "input")
        if body.get("input") is not None:
            lists = await asyncio.to_thread(token_lists, body["input"], boolean(body, "add_special_tokens", True))
            async with lock:
                vectors = await asyncio.to_thread(texts, lists)
            return embedding_list(l2_rows(vectors) if normalized else vectors, encoding, name, sum(len(ids) for ids in lists), packed)
        batch = await asyncio.get_running_loop().run_in_executor(readers, pixels, body)
        async with lock:
            vectors = await asyncio.to_thread(model.get_image_features, batch)
        return embedding_list(l2_rows(vectors) if normalized else vectors, encoding, name, 0, packed)

    return app


def open_dual_embeddings_app(model, model_name: str, ctx_len: int | None, num_cores: int, mxfp6_matmul: bool, api_key, max_body_bytes):
    """(app, runner) for a loaded QEFFAutoModelForZeroShotImageClassification: compiled for texts of up to ``ctx_len``
    tokens (within its text tower's positions) and its image processor's size, with its processor."""
    processor = dual_processor(model.local_model_dir, model_name)
    max_len = served_length(getattr(model._text_config(), "max_position_embeddings", None), ctx_len, model_name, "positions")
    model.compile(seq_len=max_len, num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    return _served(model, processor, model_name, [model.model_name, model_name], max_len, api_key, max_body_bytes)


def open_compiled_dual_embeddings_app(
    qpc_path, served_names, num_cores: int, api_key, max_body_bytes, vision_qpc_path=None, ctx_len: int | None = None
) -> tuple[FastAPI, NoRunner]:
    """(app, runner) over a contrastive model's text artifact (compile()'s ``text_qpc_path``) and the image artifact it
    names (``vision_qpc_path``: a copy of that elsewhere), with the processor the text artifact keeps: /v1/embeddings of
    texts (up to the compiled length, or ``ctx_len`` tokens where fewer) and images as the server on the folder answers,
    without the folder or weights."""
    from QEfficient.models.dual_encoder import QEFFAutoModelForZeroShotImageClassification

    model = QEFFAutoModelForZeroShotImageClassification.from_artifact(qpc_path, num_cores, vision_qpc_path)
    processor = dual_processor(model.local_model_dir, str(qpc_path))
    compiled = int(max(read_artifact(model.qpc_path)["compile_params"]["seq_len"]))
    positions = getattr(model._text_config(), "max_position_embeddings", None) or compiled
    if model.config.model_type in PADDED_TO_POSITIONS and ctx_len and ctx_len < positions <= compiled:
        raise ValueError(f"'{qpc_path}' reads texts padded to its {positions} positions: leave --ctx_len out (or give {positions}).")
    max_len = served_length(compiled, ctx_len or compiled, str(qpc_path), "compiled length")
    names = artifact_model_names(model.model_name, served_names)
    return _served(model, processor, str(qpc_path), names, max_len, api_key, max_body_bytes)


def dual_processor(folder, name: str):
    """The folder's (or text artifact's) processor, refused without a tokenizer and an image processor."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
        raise ValueError(f"'{name}' has no processor with a tokenizer and an image processor: save its processor to the folder.")
    return processor


def _served(model, processor, name: str, names: list[str], max_len: int, api_key, max_body_bytes) -> tuple[FastAPI, NoRunner]:
    """The app over a compiled model (``names``: its id first), its processor checked against the compiled image size
    and text length."""
    from_artifact = getattr(model, "_without_weights", False)
    fix = "Compile it at its processor's size (leave img_size out) to serve it, or embed from Python." if from_artifact else None
    check_processor_size(processor.image_processor, tuple(model.compiled_image_size), name, fix)
    positions = getattr(model._text_config(), "max_position_embeddings", None) or max_len
    if model.config.model_type in PADDED_TO_POSITIONS and max_len < positions:
        fix = f"compile it again with seq_len={positions}" if from_artifact else f"leave --ctx_len out (or give {positions})"
        raise ValueError(f"'{name}' reads texts padded to its {positions} positions: {fix}.")
    limits = {"max_body_bytes": max_body_bytes} if max_body_bytes else {}
    app = create_dual_embeddings_app(model, processor, names[0], max_len, served_names=names[1:], api_key=api_key, **limits)
    app.state.qpc_path = model.qpc_paths["text_qpc_path"]
    return app, NoRunner()
