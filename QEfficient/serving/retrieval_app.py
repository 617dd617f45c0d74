"""vLLM's late-interaction API over a document retriever (ColPali, ColQwen2, ColModernVBert: QEFFAutoModelForRetrieval),
as vLLM serves ColPali's and ColQwen's ``token_embed`` pooling, on the routes of serving/late_interaction_app.py:

- /pooling: ``input`` (a string or a list of strings: queries) or ``messages`` whose ``image_url`` parts are pages ->
  one item per query or page; /v1/embeddings: the queries' (``input``);
- /score, /v1/score: ``text_1`` (queries) and ``text_2`` (pages: ``{"content": [image_url parts]}``, vLLM's form, or a
  list of image_url parts) -> one MaxSim score per pair (one query against each page, or the lists pairwise);
- /rerank, /v1/rerank, /v2/rerank: ``query`` and ``documents`` (pages, as ``text_2``), ``top_n``,
  ``return_documents`` -> the pages by MaxSim score, highest first.

Each query and page is what transformers' processor writes for it (``process_queries``: its prefix and augmentation
tokens; ``process_images``: the page with the processor's own prompt, whose instruction, "Describe the image.", a text
part of a page's message may repeat but not replace), so its embeddings are transformers' forward's at its tokens. A
score is ColBERT's MaxSim over the two's tokens, what ``processor.score_retrieval`` gives for one query and one page.
Text documents are refused: the processor defines queries (text) and pages (images). Requests run one at a time on a
worker thread, each query at its own length; at most MAX_TEXTS queries and ``max_pages`` pages a request.
"""

from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from fastapi import FastAPI

from QEfficient.export.graph_names import ATTENTION_MASK
from QEfficient.generation.late_interaction import maxsim
from QEfficient.serving.app import (
    DEFAULT_MAX_BODY_BYTES,
    openai_app_basics,
    single_model_routes,
)
from QEfficient.serving.classify_media_app import IMAGES, media_parts, part_url
from QEfficient.serving.late_interaction_app import LateInteraction, input_texts, late_interaction_routes
from QEfficient.serving.protocol import APIError, artifact_model_names, served_model_names
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.scores_app import score_field_names
from QEfficient.serving.vision_language import MAX_IMAGES_PER_REQUEST, read_images
from QEfficient.utils.checks import served_length

if TYPE_CHECKING:
    from transformers import ProcessorMixin

    from QEfficient.models.retrieval import QEFFAutoModelForRetrieval


def page_instruction(prompt: str) -> str:
    """The words of a processor's page prompt ("Describe the image."): its longest line between special tokens, a turn's
    role marker ("User:") left out."""
    return max((re.sub(r"^\w+:", "", part).strip() for part in re.split(r"<[^>]*>|\n", prompt)), key=len)


def _check_page_part(part: object, where: str, name: str) -> None:
    """A 400 unless ``part`` is an image_url part: each part of /score's and /rerank's documents is one document."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "image_url":
        return
    if kind == "text" or isinstance(part, str):
        raise APIError(
            400,
            f"{where} is text; documents are pages, each read with its processor's own prompt: send queries as text and pages "
            "as image_url parts.",
            name,
        )
    what = f"a part of type '{kind}'" if isinstance(kind, str) else "not an image_url part"
    raise APIError(400, f"{where} is {what}; pages are image_url parts.", name)


def page_parts(value: object, name: str, max_pages: int) -> list[tuple[str, dict]]:
    """(where, part) for each page of ``text_2`` / ``documents``: vLLM's ``{"content": [parts]}`` or a list of parts,
    each one document (a text part is refused)."""
    parts = value.get("content") if isinstance(value, dict) else value
    if not isinstance(parts, list) or not parts:
        raise APIError(
            400,
            f'\'{name}\' must hold the pages as image_url parts: {{"content": [{{"type": "image_url", "image_url": '
            '{"url": "data:image/png;base64,..."}}, ...]} or a list of such parts (documents are pages, not text).',
            name,
        )
    where = f"{name}.content" if isinstance(value, dict) else name
    found = [(f"{where}[{i}]", part) for i, part in enumerate(parts)]
    for place, part in found:
        _check_page_part(part, place, name)
    if len(found) > max_pages:
        raise APIError(400, f"At most {max_pages} pages per request (--max_num_images), got {len(found)}.", name)
    return found


def token_rows(embeddings: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """Each row's embeddings at its real tokens (the attention mask's ones), float32 [tokens, dim]."""
    values, mask = np.asarray(embeddings, np.float32), np.asarray(mask).astype(bool)
    return [values[i][mask[i]] for i in range(len(values))]


def create_retrieval_app(
    model: QEFFAutoModelForRetrieval,
    processor: ProcessorMixin,
    model_id: str,
    max_len: int,
    *,
    served_names: list[str] | None = None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_pages: int = MAX_IMAGES_PER_REQUEST,
) -> FastAPI:
    """The app over a compiled QEFFAutoModelForRetrieval and its processor; queries of at most ``max_len`` tokens, at
    most ``max_pages`` pages a request."""
    app = FastAPI(title="QEfficient late-interaction retrieval", version="1")
    names = served_model_names(model_id, served_names)
    width = int(model.config.embedding_dim)
    instruction = page_instruction(str(getattr(processor, "visual_prompt_prefix", "") or ""))
    image_token = getattr(processor, "image_token", None)
    lock = asyncio.Lock()  # one request at a time on the sessions: the cores are shared anyway
    processing = threading.Lock()  # the processor's tokenizer changes its padding settings as it runs: one call at a time
    readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="qeff-images")  # image fetches: off the session's turn
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    def query_inputs(texts: list[str]) -> list:
        """Each query as the processor writes it, on its own (no padding to the longest)."""
        out = []
        for i, text in enumerate(texts):
            try:
                with processing:
                    inputs = processor.process_queries([text])
            except ValueError as err:
                raise APIError(400, f"The processor rejected query {i}: {err}", "input") from None
            n = int(np.asarray(inputs[ATTENTION_MASK]).sum())
            if n > max_len:
                where = f"query {i}" if len(texts) > 1 else "the query"
                raise APIError(
                    400,
                    f"{where} has {n} tokens, more than this server's {max_len} (--ctx_len); shorten it.",
                    code="context_length_exceeded",
                )
            out.append(inputs)
        return out

    def page_inputs(parts: list[tuple[str, dict]], name: str) -> list:
        try:
            images = read_images([part_url(where, part) for where, part in parts], [where for where, _ in parts])
        except APIError as err:
            err.param = name
            raise
        try:
            with processing:  # each page on its own: pages differ in length (tiles, patch grids), padding would not pay
                return [processor.process_images([image]) for image in images]
        except (ValueError, TypeError) as err:
            raise APIError(400, f"The image processor rejected the pages: {err}", name) from None

    def embed(batches: list) -> list[np.ndarray]:
        return [row for inputs in batches for row in token_rows(model.generate(inputs).embeddings.numpy(), inputs[ATTENTION_MASK])]

    async def queries(texts: list[str]) -> list[np.ndarray]:
        batches = await asyncio.to_thread(query_inputs, texts)
        async with lock:
            return await asyncio.to_thread(embed, batches)

    async def pages(parts: list[tuple[str, dict]], name: str) -> list[np.ndarray]:
        batches = await asyncio.get_running_loop().run_in_executor(readers, page_inputs, parts, name)
        async with lock:
            return await asyncio.to_thread(embed, batches)

    async def pooling_rows(body: dict) -> tuple[list[np.ndarray], int]:
        if (body.get("input") is None) == (body.get("messages") is None):
            raise APIError(400, "Send queries as 'input' or pages as image_url parts of 'messages' (one of the two).", "input")
        if body.get("input") is not None:
            rows = await queries(input_texts(body["input"], "input", image_token))
        else:
            hint = "a page is read with its processor's own prompt: send queries as 'input', in a request of their own"
            rows = await pages(media_parts(body, IMAGES, hint, said=instruction, max_items=max_pages), "messages")
        return rows, sum(len(r) for r in rows)  # a vector for every token

    async def scored(first: list[str], first_name: str, documents: list[tuple[str, dict]], name: str) -> tuple[list[float], int]:
        if len(first) not in (1, len(documents)):
            raise APIError(
                400, f"'{first_name}' has {len(first)} queries and {len(documents)} pages: send one query, or one per page.", first_name
            )
        texts = list(dict.fromkeys(first))  # each distinct query embedded once
        query_rows = dict(zip(texts, await queries(texts), strict=True))
        page_rows = await pages(documents, name)
        firsts = first * len(documents) if len(first) == 1 else first
        scores = [maxsim(query_rows[q], p) for q, p in zip(firsts, page_rows, strict=True)]
        return scores, sum(len(r) for r in query_rows.values()) + sum(len(r) for r in page_rows)

    async def score_rows(body: dict) -> tuple[list[float], int]:
        first_name, second_name = score_field_names(body)
        first = input_texts(body.get(first_name), first_name, image_token)
        return await scored(first, first_name, page_parts(body.get(second_name), second_name, max_pages), second_name)

    async def rerank_rows(body: dict) -> tuple[list[float], list[dict], int]:
        if not isinstance(body.get("query"), str):
            raise APIError(400, "'query' must be a string.", "query")
        query = input_texts(body["query"], "query", image_token)
        documents = page_parts(body.get("documents"), "documents", max_pages)
        scores, tokens = await scored(query, "query", documents, "documents")
        return scores, [{"text": None, "multi_modal": part} for _, part in documents], tokens

    late_interaction_routes(app, names, max_body_bytes, LateInteraction(width, pooling_rows, score_rows, rerank_rows))
    return app


def open_retrieval_app(
    model_name: str,
    ctx_len: int | None,
    num_cores: int,
    mxfp6_matmul: bool,
    api_key: str | None,
    max_body_bytes: int | None,
    max_pages: int | None = None,
) -> tuple[FastAPI, NoRunner]:
    """(app, runner) for a late-interaction retriever's folder: compiled (a batch of one) with its processor; queries
    of up to ``ctx_len`` tokens (within its language model's positions), ``max_pages`` pages a request."""
    from QEfficient import QEFFAutoModelForRetrieval

    model = QEFFAutoModelForRetrieval.from_pretrained(model_name)
    processor = retrieval_processor(model.local_model_dir, model_name)
    max_len = _query_limit(model, ctx_len)  # (a --ctx_len past its positions refused before compiling)
    model.compile(num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    return _served(model, processor, [model.model_name, model_name], max_len, api_key, max_body_bytes, max_pages)


def open_compiled_retrieval_app(
    qpc_path: str | Path,
    served_names,
    num_cores: int,
    api_key: str | None,
    max_body_bytes: int | None,
    ctx_len: int | None = None,
    max_pages: int | None = None,
    vision_qpc_path: str | Path | None = None,
) -> tuple[FastAPI, NoRunner]:
    """(app, runner) over a retriever's text artifact (compile()'s ``text_qpc_path``) and the vision artifact it names
    (``vision_qpc_path``: a copy of that elsewhere), with the processor the text artifact keeps: the routes the server on
    the folder gives, answered alike, without the folder or its weights (``serve --qpc_path``, a Ray replica). Queries of
    up to ``ctx_len`` tokens (None: the server's default, within the language model's positions)."""
    from QEfficient import QEFFAutoModelForRetrieval

    model = QEFFAutoModelForRetrieval.from_artifact(qpc_path, num_cores, vision_qpc_path)
    processor = retrieval_processor(model.local_model_dir, str(qpc_path))
    names, max_len = artifact_model_names(model.model_name, served_names), _query_limit(model, ctx_len)
    return _served(model, processor, names, max_len, api_key, max_body_bytes, max_pages)


def retrieval_processor(folder, name: str) -> ProcessorMixin:
    """The retrieval processor of a model's folder (or of its text artifact's copy), refused without its two methods."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    if not all(hasattr(processor, method) for method in ("process_queries", "process_images")):
        raise ValueError(f"'{name}' has no retrieval processor (process_queries, process_images): save its processor to the folder.")
    return processor


def _query_limit(model, ctx_len: int | None) -> int:
    """The longest query served: ``ctx_len`` (None: the server's default) within the language model's positions."""
    positions = getattr(model.config.vlm_config.text_config, "max_position_embeddings", None)
    return served_length(positions, ctx_len, model.model_name, "language model's positions")


def _served(model, processor, names: list[str], max_len: int, api_key, max_body_bytes, max_pages) -> tuple[FastAPI, NoRunner]:
    """The app over a compiled retriever and its processor (``names``: the model id first), for queries of up to
    ``max_len`` tokens."""
    limits = {"max_body_bytes": max_body_bytes} if max_body_bytes else {}
    limits |= {"max_pages": max_pages} if max_pages else {}
    app = create_retrieval_app(model, processor, names[0], max_len, served_names=names[1:], api_key=api_key, **limits)
    app.state.qpc_path = model.qpc_paths["text_qpc_path"]
    return app, NoRunner()
