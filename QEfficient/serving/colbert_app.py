"""vLLM's late-interaction API over a ColBERT text retriever (QEFFColBERTModel), as vLLM serves ColBERT's ``token_embed``
pooling: the routes of serving/late_interaction_app.py (/pooling, /v1/embeddings, /score, /rerank), over text.

As in vLLM, each text is its tokenizer's tokens with the special tokens, every one kept, and no query or document
marker, expansion or skiplist (those are PyLate's ``encode``: QEFFColBERTModel.encode(texts, is_query=...)). A score is
MaxSim over the two texts' vectors. /score takes ``text_1`` and ``text_2`` (or vLLM's other names for them) as strings
or lists, /rerank a ``query`` and ``documents`` (strings or objects with a ``text``). Requests run one at a time on a
worker thread, each text alone at its own length (distinct texts of a request embedded once), at most ``max_len``
tokens each. vLLM's /tokenize and /detokenize answer with the model's tokenizer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from fastapi import FastAPI

from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS
from QEfficient.export.task_graph_specs import EMBEDDINGS
from QEfficient.generation.late_interaction import maxsim
from QEfficient.models.sentence_transformers import served_input_limit
from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES, openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.late_interaction_app import LateInteraction, input_texts, late_interaction_routes
from QEfficient.serving.protocol import APIError, RequestParser, served_model_names
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.scores_app import rerank_documents, score_pairs
from QEfficient.serving.tokenize_routes import add_tokenize_routes

if TYPE_CHECKING:
    from QEfficient.models.colbert import QEFFColBERTModel
    from QEfficient.serving.encoder_artifact import CompiledEncoder


def create_colbert_app(
    model: QEFFColBERTModel,
    tokenizer,
    model_id: str,
    max_len: int,
    *,
    served_names: list[str] | None = None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The app over a compiled QEFFColBERTModel and its tokenizer; texts of at most ``max_len`` tokens."""

    def token_vectors(ids: list[int]) -> np.ndarray:
        feed = {INPUT_IDS: np.array([ids], np.int64), ATTENTION_MASK: np.ones((1, len(ids)), np.int64)}
        return model.generate(feed)[EMBEDDINGS][0].astype(np.float32, copy=False)

    app = FastAPI(title="QEfficient ColBERT retrieval", version="1")
    limits = dict(served_names=served_names, api_key=api_key, max_body_bytes=max_body_bytes)
    text_late_interaction_routes(app, token_vectors, model.settings.dim, tokenizer, model_id, max_len, **limits)
    return app


def create_compiled_colbert_app(
    encoder: CompiledEncoder,
    max_len: int,
    *,
    served_names: list[str] | None = None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The app over a ColBERT retriever's artifact alone (``serve --qpc_path``, Ray replicas): its run-time tokenizer,
    texts of at most ``max_len`` tokens (within its longest compiled length), its vectors' width from the graph."""

    def token_vectors(ids: list[int]) -> np.ndarray:
        feed = {INPUT_IDS: np.array([ids], np.int64), ATTENTION_MASK: np.ones((1, len(ids)), np.int64)}
        return encoder.generate(feed)[EMBEDDINGS][0].astype(np.float32, copy=False)

    width = next(o.shape[-1] for o in encoder.session.get_outputs() if o.name == encoder.output_name)
    if not isinstance(width, int):  # a dynamic last axis: one token's vector says it
        width = token_vectors([0]).shape[-1]
    app = FastAPI(title="QEfficient ColBERT retrieval", version="1")
    limits = dict(served_names=served_names, api_key=api_key, max_body_bytes=max_body_bytes)
    limits["limit_source"] = "the artifact's length limit"
    text_late_interaction_routes(app, token_vectors, width, encoder.tokenizer, encoder.model_name, max_len, **limits)
    return app


def text_late_interaction_routes(
    app: FastAPI,
    token_vectors: Callable[[list[int]], np.ndarray],
    width: int,
    tokenizer,
    model_id: str,
    max_len: int,
    *,
    served_names: list[str] | None = None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    limit_source: str = "--ctx_len",
) -> None:
    """The module docstring's routes on ``app``, over ``token_vectors(ids)``: a text's vectors [tokens, width] from its
    token ids (the tokenizer's, special tokens included; a BGE-M3 server's leave its first token out); vLLM's /tokenize
    and /detokenize with the tokenizer."""
    names = served_model_names(model_id, served_names)
    lock = asyncio.Lock()  # one request at a time on the session: the cores are shared anyway
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)
    app.state.tokenizer = tokenizer
    parser = RequestParser(tokenizer, names, max_len, len(tokenizer), 1)
    add_tokenize_routes(app, parser, lambda request: read_limited_body(request, max_body_bytes))

    def embed(texts: list[str]) -> dict[str, tuple[np.ndarray, int]]:
        """Each distinct text's vectors and token count (the tokenizer runs on this one thread: it keeps settings as it runs)."""
        found = {}
        for text in dict.fromkeys(texts):
            ids = text_ids(tokenizer, text, max_len, limit_source)
            found[text] = token_vectors(ids), len(ids)
        return found

    async def embedded(texts: list[str]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Each distinct text's vectors and token count."""
        async with lock:
            found = await asyncio.to_thread(embed, texts)
        return {text: rows for text, (rows, _) in found.items()}, {text: count for text, (_, count) in found.items()}

    async def pooling_rows(body: dict) -> tuple[list[np.ndarray], int]:
        if body.get("messages") is not None:
            raise APIError(400, "This model reads text: send the texts as 'input' (a string or a list of strings).", "messages")
        texts = input_texts(body.get("input"), "input")
        rows, counts = await embedded(texts)
        return [rows[t] for t in texts], sum(counts[t] for t in texts)

    async def score_rows(body: dict) -> tuple[list[float], int]:
        pairs = score_pairs(body)
        rows, counts = await embedded([t for pair in pairs for t in pair])
        # vLLM's count: every text as sent, a query against several documents once
        queries = [pairs[0][0]] if len(pairs) > 1 and len({q for q, _ in pairs}) == 1 else [q for q, _ in pairs]
        return [maxsim(rows[q], rows[d]) for q, d in pairs], sum(counts[t] for t in queries + [d for _, d in pairs])

    async def rerank_rows(body: dict) -> tuple[list[float], list[dict], int]:
        query, documents = rerank_documents(body)
        rows, counts = await embedded([query, *documents])
        tokens = sum(counts[t] for t in [query, *documents])  # vLLM's count: every text as sent
        return [maxsim(rows[query], rows[d]) for d in documents], [{"text": d} for d in documents], tokens

    late_interaction_routes(app, names, max_body_bytes, LateInteraction(width, pooling_rows, score_rows, rerank_rows))


def text_ids(tokenizer, text: str, max_len: int, limit_source: str = "--ctx_len") -> list[int]:
    """The text's token ids (special tokens included), a 400 when there are more than ``max_len`` (``limit_source``:
    what set it, for the message)."""
    ids = tokenizer(text)[INPUT_IDS]
    if not ids:
        raise APIError(400, "A text of no tokens (this tokenizer adds no special tokens): send some text.", "input")
    if len(ids) > max_len:
        raise APIError(
            400,
            f"The text {text[:40]!r}{'...' if len(text) > 40 else ''} has {len(ids)} tokens, more than this server's "
            f"{max_len} ({limit_source}); shorten it.",
            code="context_length_exceeded",
        )
    return ids


def open_colbert_app(
    model_name: str, ctx_len: int | None, num_cores: int, mxfp6_matmul: bool, api_key: str | None, max_body_bytes: int | None
) -> tuple[FastAPI, NoRunner]:
    """(app, runner) for a ColBERT folder: compiled for texts of up to ``ctx_len`` tokens (within its encoder's positions,
    its tokenizer's and sentence-transformers' limits)."""
    from QEfficient.models.colbert import QEFFColBERTModel

    model = QEFFColBERTModel.from_pretrained(model_name)
    max_len = served_input_limit(model.local_model_dir, model.config, model.tokenizer, ctx_len, model_name)
    path = model.compile(num_cores=num_cores, mxfp6_matmul=mxfp6_matmul, seq_len=max_len)
    limits = {"max_body_bytes": max_body_bytes} if max_body_bytes else {}
    app = create_colbert_app(model, model.tokenizer, model.model_name, max_len, served_names=[model_name], api_key=api_key, **limits)
    app.state.qpc_path = path
    return app, NoRunner()
