"""vLLM's late-interaction API over a ColBERT text retriever (QEFFColBERTModel), as vLLM serves ColBERT's ``token_embed``
pooling: the routes of serving/late_interaction_app.py (/pooling, /v1/embeddings, /score, /rerank), over text.

As in vLLM, each text is its tokenizer's tokens with the special tokens, every one kept, and no query or document
marker, expansion or skiplist (those are PyLate's ``encode``: QEFFColBERTModel.encode(texts, is_query=...)). A score is
MaxSim over the two texts' vectors. /score takes ``text_1`` and ``text_2`` (or vLLM's other names for them) as strings
or lists, /rerank a ``query`` and ``documents`` (strings or objects with a ``text``). Requests run one at a time on a
worker thread, each text alone at its own length (distinct texts of a request embedded once), at most ``max_len``
tokens each.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import numpy as np
from fastapi import FastAPI

from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS
from QEfficient.export.task_graph_specs import EMBEDDINGS
from QEfficient.generation.late_interaction import maxsim
from QEfficient.models.sentence_transformers import max_input_tokens
from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES, openai_app_basics, single_model_routes
from QEfficient.serving.late_interaction_app import LateInteraction, input_texts, late_interaction_routes
from QEfficient.serving.protocol import APIError
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.scores_app import rerank_documents, score_pairs

if TYPE_CHECKING:
    from QEfficient.models.colbert import QEFFColBERTModel


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
    app = FastAPI(title="QEfficient ColBERT retrieval", version="1")
    names = [model_id] + [n for n in served_names or [] if n != model_id]
    lock = asyncio.Lock()  # one request at a time on the session: the cores are shared anyway
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    def embed(texts: list[str]) -> dict[str, np.ndarray]:
        """Each distinct text's vectors, every token (the tokenizer runs on this one thread: it keeps settings as it runs)."""
        rows = {}
        for text in dict.fromkeys(texts):
            ids = tokenizer(text)[INPUT_IDS]
            if len(ids) > max_len:
                raise APIError(
                    400,
                    f"The text {text[:40]!r}{'...' if len(text) > 40 else ''} has {len(ids)} tokens, more than this server's "
                    f"{max_len} (--ctx_len); shorten it.",
                    code="context_length_exceeded",
                )
            feed = {INPUT_IDS: np.array([ids], np.int64), ATTENTION_MASK: np.ones((1, len(ids)), np.int64)}
            rows[text] = model.generate(feed)[EMBEDDINGS][0].astype(np.float32, copy=False)
        return rows

    async def embedded(texts: list[str]) -> dict[str, np.ndarray]:
        async with lock:
            return await asyncio.to_thread(embed, texts)

    async def pooling_rows(body: dict) -> list[np.ndarray]:
        if body.get("messages") is not None:
            raise APIError(400, "This model reads text: send the texts as 'input' (a string or a list of strings).", "messages")
        texts = input_texts(body.get("input"), "input")
        rows = await embedded(texts)
        return [rows[t] for t in texts]

    async def score_rows(body: dict) -> tuple[list[float], int]:
        pairs = score_pairs(body)
        rows = await embedded([t for pair in pairs for t in pair])
        return [maxsim(rows[q], rows[d]) for q, d in pairs], sum(len(r) for r in rows.values())

    async def rerank_rows(body: dict) -> tuple[list[float], list[dict], int]:
        query, documents = rerank_documents(body)
        rows = await embedded([query, *documents])
        scores = [maxsim(rows[query], rows[d]) for d in documents]
        return scores, [{"text": d} for d in documents], sum(len(r) for r in rows.values())

    late_interaction_routes(app, names, max_body_bytes, LateInteraction(model.settings.dim, pooling_rows, score_rows, rerank_rows))
    return app


def open_colbert_app(
    model_name: str, ctx_len: int, num_cores: int, mxfp6_matmul: bool, api_key: str | None, max_body_bytes: int | None
) -> tuple[FastAPI, NoRunner]:
    """(app, runner) for a ColBERT folder: compiled for texts of up to ``ctx_len`` tokens (within its encoder's positions,
    its tokenizer's and sentence-transformers' limits)."""
    from QEfficient.models.colbert import QEFFColBERTModel

    model = QEFFColBERTModel.from_pretrained(model_name)
    max_len = max_input_tokens(model.local_model_dir, model.config, model.tokenizer, ctx_len)
    path = model.compile(num_cores=num_cores, mxfp6_matmul=mxfp6_matmul, seq_len=max_len)
    limits = {"max_body_bytes": max_body_bytes} if max_body_bytes else {}
    app = create_colbert_app(model, model.tokenizer, model.model_name, max_len, served_names=[model_name], api_key=api_key, **limits)
    app.state.qpc_path = path
    return app, NoRunner()
