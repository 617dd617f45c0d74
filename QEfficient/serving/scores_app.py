"""vLLM's score, rerank and classify APIs over a sequence classifier (a cross-encoder reranker such as
ms-marco-MiniLM or bge-reranker, or any text classifier).

Routes: GET /health, GET /v1/models, and POST
- /score, /v1/score: ``text_1`` and ``text_2`` (each a string or a list of strings: one against many, or pairs)
  -> one score per pair (a cross-encoder: one label);
- /rerank, /v1/rerank, /v2/rerank (Jina's and Cohere's form): ``query``, ``documents`` (strings, or objects with a
  ``text``), ``top_n``, ``return_documents`` -> the documents by relevance, highest first (a cross-encoder);
- /classify, /v1/classify: ``input`` (a string or a list of strings) -> each text's label and probabilities.

A pair is tokenized as the tokenizer pairs two texts (BERT's [CLS] A [SEP] B [SEP], the second of token type 1),
and a score is the model's logit through sentence-transformers' CrossEncoder activation (the config's, else
sigmoid), as vLLM scores. A pair longer than the compiled length is refused, not truncated. Requests run one at a
time on a worker thread, so /health keeps answering.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np
from fastapi import FastAPI, Request

from QEfficient.export.graph_specs import ATTENTION_MASK, INPUT_IDS, TOKEN_TYPE_IDS
from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES, openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.protocol import APIError, number, parse_json
from QEfficient.serving.runner import NoRunner

MAX_PAIRS = 2048  # pairs or texts per request, as the embeddings route takes inputs
_ACTIVATIONS = {"Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Identity": lambda x: x}


def cross_encoder_activation(config) -> str:
    """sentence-transformers' CrossEncoder activation for a one-label model (what vLLM applies too): the config's
    ``sentence_transformers.activation_fn`` or ``sbert_ce_default_activation_function``, else Sigmoid."""
    st = getattr(config, "sentence_transformers", None)
    named = (st or {}).get("activation_fn") if isinstance(st, dict) else None
    named = named or getattr(config, "sbert_ce_default_activation_function", None) or "Sigmoid"
    name = str(named).rsplit(".", 1)[-1]
    if name not in _ACTIVATIONS:
        raise ValueError(f"This cross-encoder's activation is {named}; the score server applies {', '.join(_ACTIVATIONS)}.")
    return name


def _texts(value, name: str, allow_one: bool = True) -> list[str]:
    if allow_one and isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        if len(value) > MAX_PAIRS:
            raise APIError(400, f"At most {MAX_PAIRS} texts in '{name}', got {len(value)}.", name)
        return value
    form = "a string or a non-empty list of strings" if allow_one else "a non-empty list"
    raise APIError(400, f"'{name}' must be {form}.", name)


def score_pairs(body: dict) -> list[tuple[str, str]]:
    """/score's ``text_1`` x ``text_2``: one text against each of the others, or the lists pairwise (vLLM's rule)."""
    first, second = _texts(body.get("text_1"), "text_1"), _texts(body.get("text_2"), "text_2")
    if len(first) == 1:
        first = first * len(second)
    if len(first) != len(second):
        raise APIError(400, f"'text_1' has {len(first)} texts and 'text_2' {len(second)}: send one text_1, or as many as text_2.", "text_1")
    return list(zip(first, second))


def rerank_documents(body: dict) -> tuple[str, list[str]]:
    """/rerank's ``query`` and ``documents`` (strings, or objects with a ``text`` string)."""
    query = body.get("query")
    if not isinstance(query, str):
        raise APIError(400, "'query' must be a string.", "query")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise APIError(400, "'documents' must be a non-empty list of strings (or of objects with a 'text').", "documents")
    texts = []
    for i, doc in enumerate(documents):
        text = doc.get("text") if isinstance(doc, dict) else doc
        if not isinstance(text, str):
            raise APIError(400, f"documents[{i}] must be a string or an object with a 'text' string.", "documents")
        texts.append(text)
    if len(texts) > MAX_PAIRS:
        raise APIError(400, f"At most {MAX_PAIRS} documents, got {len(texts)}.", "documents")
    return query, texts


def listing(kind: str, model: str, data: list[dict], tokens: int) -> dict:
    """vLLM's list response of /score and /classify."""
    usage = {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}
    return {"id": f"{kind}-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()), "model": model, "data": data, "usage": usage}


def create_scores_app(
    model,
    tokenizer,
    model_id: str,
    max_len: int,
    *,
    served_names=None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    batch_size: int = 8,
) -> FastAPI:
    """The app over a compiled QEFFAutoModelForSequenceClassification (``model.generate``) and its tokenizer; pairs
    and texts of at most ``max_len`` tokens, run ``batch_size`` at a time."""
    app = FastAPI(title="QEfficient scores", version="1")
    names = [model_id] + [n for n in served_names or [] if n != model_id]
    config = model.config
    labels = int(config.num_labels)
    activation = cross_encoder_activation(config) if labels == 1 else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    lock = asyncio.Lock()  # one request at a time on the session: the cores are shared anyway
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    def check_model(body: dict) -> str:
        name = body.get("model")
        if name is not None and not isinstance(name, str):
            raise APIError(400, f"'model' must be a string, got {name!r}.", "model")
        if name is not None and name not in names:
            raise APIError(
                404, f"The model '{name}' does not exist; this server serves '{model_id}' (see /v1/models).", "model", "model_not_found"
            )
        return name or model_id

    def encode(texts: list[str] | list[tuple[str, str]]) -> list[dict[str, list[int]]]:
        encoded = []
        for i, item in enumerate(texts):
            enc = tokenizer(*item) if isinstance(item, tuple) else tokenizer(item)
            if len(enc[INPUT_IDS]) > max_len:
                what = "pair" if isinstance(item, tuple) else "input"
                raise APIError(
                    400,
                    f"The {what} at index {i} has {len(enc[INPUT_IDS])} tokens, more than this model's maximum of {max_len} "
                    "(--ctx_len); shorten it.",
                    code="context_length_exceeded",
                )
            encoded.append(enc)
        return encoded

    def logits(encoded: list[dict[str, list[int]]]) -> np.ndarray:
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][INPUT_IDS]))  # similar lengths together
        out = np.zeros((len(encoded), labels), np.float32)
        for start in range(0, len(order), batch_size):
            rows = [encoded[i] for i in order[start : start + batch_size]]
            width = max(len(r[INPUT_IDS]) for r in rows)
            batch = {name: np.zeros((len(rows), width), np.int64) for name in (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS)}
            batch[INPUT_IDS][:] = pad_id
            for row, enc in enumerate(rows):
                n = len(enc[INPUT_IDS])
                batch[INPUT_IDS][row, :n], batch[ATTENTION_MASK][row, :n] = enc[INPUT_IDS], 1
                if TOKEN_TYPE_IDS in enc:
                    batch[TOKEN_TYPE_IDS][row, :n] = enc[TOKEN_TYPE_IDS]
            out[order[start : start + batch_size]] = np.asarray(model.generate(batch)["logits"], np.float32)
        return out

    async def run(texts) -> tuple[np.ndarray, int]:
        encoded = await asyncio.to_thread(encode, texts)
        async with lock:
            values = await asyncio.to_thread(logits, encoded)
        return values, sum(len(enc[INPUT_IDS]) for enc in encoded)

    def scores_only(route: str) -> None:
        if labels != 1:
            raise APIError(
                400, f"{route} needs a cross-encoder (one label); this model has {labels} labels: use /classify.", code="unsupported"
            )

    async def read(request: Request) -> dict:
        return parse_json(await read_limited_body(request, max_body_bytes))

    async def score(request: Request):
        body = await read(request)
        scores_only("/score")
        name = check_model(body)
        values, tokens = await run(score_pairs(body))
        data = [{"index": i, "object": "score", "score": float(v)} for i, v in enumerate(_ACTIVATIONS[activation](values[:, 0]))]
        return listing("score", name, data, tokens)

    async def rerank(request: Request):
        body = await read(request)
        scores_only("/rerank")
        name = check_model(body)
        query, documents = rerank_documents(body)
        top_n = number(body, "top_n", int, 0, low=0) or len(documents)
        keep = body.get("return_documents", True)
        if not isinstance(keep, bool):
            raise APIError(400, f"'return_documents' must be true or false, got {keep!r}.", "return_documents")
        values, tokens = await run([(query, d) for d in documents])
        relevance = _ACTIVATIONS[activation](values[:, 0])
        ranked = sorted(range(len(documents)), key=lambda i: -relevance[i])[:top_n]
        results = [
            {"index": i, **({"document": {"text": documents[i]}} if keep else {}), "relevance_score": float(relevance[i])} for i in ranked
        ]
        return {"id": f"rerank-{uuid.uuid4().hex}", "model": name, "usage": {"total_tokens": tokens}, "results": results}

    async def classify(request: Request):
        body = await read(request)
        name = check_model(body)
        values, tokens = await run(_texts(body.get("input"), "input"))
        if labels == 1:
            probs = _ACTIVATIONS[activation](values)
        else:
            shifted = np.exp(values - values.max(1, keepdims=True))
            probs = shifted / shifted.sum(1, keepdims=True)
        id2label = getattr(config, "id2label", None) or {}
        data = [
            {
                "index": i,
                "label": id2label.get(int(row.argmax()), str(int(row.argmax()))),
                "probs": [float(p) for p in row],
                "num_classes": labels,
            }
            for i, row in enumerate(probs)
        ]
        return listing("classify", name, data, tokens)

    for path in ("/score", "/v1/score"):
        app.post(path)(score)
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        app.post(path)(rerank)
    for path in ("/classify", "/v1/classify"):
        app.post(path)(classify)
    return app


def open_scores_app(model_name: str, ctx_len: int, num_cores: int, mxfp6_matmul: bool, api_key: str | None, max_body_bytes: int | None):
    """(app, runner) for a sequence classifier: compiled for inputs up to ``ctx_len`` tokens (a few lengths, so short
    pairs run short), with its tokenizer."""
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForSequenceClassification
    from QEfficient.serving.embeddings_app import max_input_tokens

    model = QEFFAutoModelForSequenceClassification.from_pretrained(model_name)
    if model.config.num_labels == 1:
        cross_encoder_activation(model.config)  # an activation not run here stops the server now
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    limit = max_input_tokens(model.local_model_dir, model.config, tokenizer, ctx_len)
    lengths = sorted({n for n in (32, 64, 128, 256, 512) if n < limit} | {limit})
    model.compile(seq_len=lengths, batch_size=1, num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    app = create_scores_app(
        model,
        tokenizer,
        model.model_name,
        limit,
        served_names=[model_name],
        api_key=api_key,
        max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
    )
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()
