"""vLLM's routes for a late-interaction (``token_embed``) model, shared by the document retrievers' server
(serving/retrieval_app.py: ColPali & co) and ColBERT's (serving/colbert_app.py). Each retriever says how a request's
texts or pages become per-token vectors and scores (``LateInteraction``); the routes read, check and answer:

- /pooling: one item per input, ``data`` its L2-normalized vectors [tokens, dim] (``encoding_format`` "float", or
  "base64": the rows' little-endian float32 bytes in one string, or as vLLM's embed_dtype and endianness say; or vLLM's
  binary "bytes" and "bytes_only" answers);
- /v1/embeddings: the same vectors as vLLM 0.34 answers for a ``token_embed`` model, one matrix per input text
  (``embedding`` [tokens, dim], "float" only);
- /score, /v1/score: one MaxSim score per pair; /rerank, /v1/rerank, /v2/rerank: the documents by MaxSim, highest first.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, Request, Response

from QEfficient.serving.app import read_limited_body
from QEfficient.serving.embed_fields import BYTES_FORMATS, packing, pooling_answer
from QEfficient.serving.embeddings_app import embedding_format
from QEfficient.serving.protocol import APIError, parse_json, served_model
from QEfficient.serving.scores_app import listing, rerank_answer, rerank_options

MAX_TEXTS = 256  # per request: each runs on its own, and /pooling returns every token's vector
# vLLM's pooling fields that would change the answer here, with the values that do not
_NEUTRAL = {"task": (None, "token_embed"), "normalize": (None, True), "truncate_prompt_tokens": (None,), "priority": (None, 0)}
_NEUTRAL |= {"late_chunking_params": (None,), "use_activation": (None, True)}  # vLLM 0.34's switch of the normalization
_NEUTRAL |= {"max_tokens_per_query": (None, 0), "max_tokens_per_doc": (None, 0)}  # /score's and /rerank's cuts
_NEUTRAL |= {"mm_processor_kwargs": (None, {})}  # (the image processor runs with the model's settings)


def _token_embed_detail(name: str) -> str:
    normalization = ("task", "normalize", "use_activation")
    return "this model gives L2-normalized per-token embeddings ('token_embed')" if name in normalization else ""


def check_neutral(body: dict, neutral: dict | None = None, detail: Callable[[str], str] = _token_embed_detail) -> None:
    """vLLM's pooling fields that would change the answer (``neutral``: each field's values that do not; these routes' by
    default): a 400 for any other value, with ``detail(field)`` where it says more."""
    for name, allowed in (_NEUTRAL if neutral is None else neutral).items():
        value = body.get(name)
        if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):  # true is not 1 here
            said = detail(name)
            raise APIError(400, f"'{name}' is not supported by this server{': ' + said if said else ''}; leave it out.", name)


def input_texts(value: object, name: str, image_token: str | None = None) -> list[str]:
    """A string or a non-empty list of strings (each is tokenized here), none holding ``image_token`` (a document
    retriever's: pages go in image_url parts)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        if len(value) > MAX_TEXTS:
            raise APIError(400, f"At most {MAX_TEXTS} texts in '{name}', got {len(value)}.", name)
        for i, text in enumerate(value):
            if image_token and image_token in text:
                where = f"{name}[{i}]" if len(value) > 1 else name
                raise APIError(400, f"{where} holds the image token {image_token!r}: pages go in image_url parts, not in queries.", name)
        return value
    raise APIError(
        400,
        f"'{name}' must be a text or a non-empty list of them (token ids are not taken: each text is tokenized here).",
        name,
    )


@dataclass(frozen=True)
class LateInteraction:
    """What the routes ask of a retriever, each from a request's body (checked there, a 400 saying what is wrong): the
    /pooling rows and the token count (``pooling_rows``; /v1/embeddings gives it a body with ``input`` only), /score's
    scores and the token count, /rerank's scores, its documents as vLLM's RerankDocument and the token count. ``width``:
    the vectors' size."""

    width: int
    pooling_rows: Callable[[dict], Awaitable[tuple[list[np.ndarray], int]]]
    score_rows: Callable[[dict], Awaitable[tuple[list[float], int]]]
    rerank_rows: Callable[[dict], Awaitable[tuple[list[float], list[dict], int]]]


def late_interaction_routes(app: FastAPI, names: list[str], max_body_bytes: int, retriever: LateInteraction) -> None:
    """The routes of the module docstring on ``app``."""

    async def read(request: Request) -> tuple[dict, str]:
        body = parse_json(await read_limited_body(request, max_body_bytes))
        check_neutral(body)
        return body, served_model(body, names)

    async def json_response(payload: dict) -> Response:
        """Serialized off the event loop: the answer holds every token's vector."""
        return Response(await asyncio.to_thread(json.dumps, payload), media_type="application/json")

    @app.post("/pooling")
    async def pooling(request: Request):
        body, name = await read(request)
        encoding, packed = embedding_format(body, retriever.width), packing(body)
        rows, tokens = await retriever.pooling_rows(body)
        answer = pooling_answer(rows, encoding, packed, name, tokens)
        return answer if encoding in BYTES_FORMATS else await json_response(answer)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body, name = await read(request)
        if body.get("encoding_format") not in (None, "float"):
            message = "A per-token /v1/embeddings answer is 'float' only (vLLM's); POST /pooling for base64 or bytes."
            raise APIError(400, message, "encoding_format")
        if body.get("dimensions") is not None:
            raise APIError(400, "'dimensions' does not apply to per-token embeddings; leave it out.", "dimensions")
        if body.get("input") is None:
            raise APIError(400, "Send the texts as 'input' (a string or a list of strings); pages go to /pooling.", "input")
        rows, tokens = await retriever.pooling_rows({"input": body["input"]})
        data = [{"index": i, "object": "embedding", "embedding": r.tolist()} for i, r in enumerate(rows)]
        return await json_response(listing("embd", name, data, tokens))

    async def score(request: Request):
        body, name = await read(request)
        scores, tokens = await retriever.score_rows(body)
        return listing("score", name, [{"index": i, "object": "score", "score": s} for i, s in enumerate(scores)], tokens)

    async def rerank(request: Request):
        body, name = await read(request)
        top_n, keep = rerank_options(body)
        scores, documents, tokens = await retriever.rerank_rows(body)
        return rerank_answer(name, scores, documents, tokens, top_n, keep)

    for path in ("/score", "/v1/score"):
        app.post(path)(score)
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        app.post(path)(rerank)
