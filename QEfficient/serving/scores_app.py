"""vLLM's score, rerank and classify APIs over a sequence classifier (a cross-encoder reranker such as
ms-marco-MiniLM or bge-reranker, any text classifier, a decoder's such as Qwen2ForSequenceClassification, or a causal
LM scored by some of its tokens' logits as vLLM's hf_overrides make Qwen3-Reranker one).

Routes: GET /health, GET /v1/models, GET /version, and POST
- /score, /v1/score: ``text_1`` and ``text_2`` (or ``queries`` and ``documents``/``items``, ``data_1`` and
  ``data_2``; each a string or a list of strings: one against many, or pairs) -> one score per pair (a
  cross-encoder: one label);
- /rerank, /v1/rerank, /v2/rerank (Jina's and Cohere's form): ``query``, ``documents`` (strings, or objects with a
  ``text``), ``top_n`` (0 or less: all), ``return_documents`` -> the documents by relevance, highest first;
- /classify, /v1/classify: ``input`` (OpenAI's four forms: strings or token ids) -> each input's label and
  probabilities (as vLLM takes them from the config's problem_type); vLLM's /pooling: the same probabilities as pooling
  items (its task "classify").

A pair is tokenized as the tokenizer pairs two texts (BERT's [CLS] A [SEP] B [SEP], the second of token type 1), or
as the two texts joined where the config's ``use_pad_token`` is false (vLLM's rule for an LM used as reranker), or
through the chat template of a sentence-transformers CrossEncoder that scores chat messages (score_template.py),
and a score is the model's logit through sentence-transformers' CrossEncoder activation (the folder's, else
sigmoid), as vLLM scores; ``"use_activation": false`` gives the logits. vLLM's ``max_tokens_per_query`` and
``max_tokens_per_doc`` cut each side of /score's and /rerank's pairs first (embed_fields.text_within). A pair longer than
the compiled length is refused unless vLLM's ``truncate_prompt_tokens`` cuts it (the tokenizer truncates, a pair's
longer side first; with ``truncation_side`` the tokens are cut from that side). Requests run one at a time on a worker
thread, so /health keeps answering.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request

from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS, TOKEN_TYPE_IDS
from QEfficient.runtime.tokenizer import RuntimeTokenizer
from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES, openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.embed_fields import (
    Truncation,
    encoding_format,
    packing,
    pooling_answer,
    refuse_unapplied,
    text_within,
    token_limits,
    truncation,
)
from QEfficient.serving.encoder_batches import length_batches, refuse_token_inputs, serving_lengths
from QEfficient.serving.messages import openai_input_forms
from QEfficient.serving.protocol import APIError, RequestParser, boolean, number, parse_json, served_model_names
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.score_template import ScoreTemplate, check_template_fields, saved_score_template
from QEfficient.serving.tokenize_routes import add_tokenize_routes

MAX_PAIRS = 2048  # pairs or texts per request, as the embeddings route takes inputs
_ACTIVATIONS = {"Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Identity": lambda x: x}


def cross_encoder_activation(config, folder: Path | None = None, default: str | None = "Sigmoid") -> str | None:
    """sentence-transformers' CrossEncoder activation for a one-label model (what vLLM applies too): the folder's
    ``config_sentence_transformers.json`` ``activation_fn`` (sentence-transformers 5.4 and later), the config's
    ``sentence_transformers.activation_fn`` or ``sbert_ce_default_activation_function``, else ``default``."""
    saved = Path(folder) / "config_sentence_transformers.json" if folder else None
    named = json.loads(saved.read_text()).get("activation_fn") if saved and saved.is_file() else None
    st = getattr(config, "sentence_transformers", None)
    named = named or ((st or {}).get("activation_fn") if isinstance(st, dict) else None)
    named = named or getattr(config, "sbert_ce_default_activation_function", None) or default
    if named is None:
        return None
    name = str(named).rsplit(".", 1)[-1]
    if name not in _ACTIVATIONS:
        raise ValueError(f"This cross-encoder's activation is {named}; the score server applies {', '.join(_ACTIVATIONS)}.")
    return name


def classify_probabilities(logits: np.ndarray, config, declared: str | None = None) -> np.ndarray:
    """/classify's probabilities, as vLLM's classifier pooler takes them from the config's problem_type: none for a
    regression, a sigmoid per label for one label or several independent ones, else a softmax; where the config names
    no problem type, a CrossEncoder's ``declared`` activation (cross_encoder_activation) first."""
    problem = getattr(config, "problem_type", None)
    if problem == "regression":
        return logits
    if problem not in ("single_label_classification", "multi_label_classification") and declared is not None:
        return _ACTIVATIONS[declared](logits)
    if problem == "multi_label_classification" or logits.shape[1] == 1:
        return _ACTIVATIONS["Sigmoid"](logits)
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def classify_rows(values: np.ndarray, config) -> list[dict]:
    """/classify's ``data``: each row's label (the config's name for its largest value), values and label count."""
    id2label = getattr(config, "id2label", None) or {}
    return [
        {
            "index": i,
            "label": id2label.get(int(row.argmax()), str(int(row.argmax()))),
            "probs": [float(p) for p in row],
            "num_classes": int(config.num_labels),
        }
        for i, row in enumerate(values)
    ]


# fields vLLM takes that would change the answer, with the values that do not (a 400 for any other)
_NEUTRAL = {"priority": (None, 0)}


@dataclass(frozen=True)
class Shaping:
    """How a request's texts become tokens: the chat template's arguments (where the folder scores through one), vLLM's
    truncate_prompt_tokens and truncation_side (``cut``), max_tokens_per_doc (``doc_limit``) and add_special_tokens
    (``special``)."""

    template_kwargs: dict = field(default_factory=dict)
    cut: Truncation | None = None
    doc_limit: int = 0
    special: bool = True  # vLLM's add_special_tokens (a text's, on /classify and /pooling)


NO_SHAPING = Shaping()


def use_activation(body: dict) -> bool:
    """vLLM's ``use_activation`` (``activation`` and ``softmax`` are its older names): false gives the raw logits.
    The request's fields this server does not honour are refused first."""
    for name, value in body.items():
        if name in _NEUTRAL and value not in _NEUTRAL[name]:
            raise APIError(400, f"'{name}' is not supported by this server; leave it out.", name)
    given = [body.get(name) for name in ("use_activation", "activation", "softmax") if body.get(name) is not None]
    if any(not isinstance(v, bool) for v in given):
        raise APIError(400, "'use_activation' must be true or false.", "use_activation")
    return all(given)


def _texts(value, name: str, allow_one: bool = True) -> list[str]:
    if allow_one and isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        if len(value) > MAX_PAIRS:
            raise APIError(400, f"At most {MAX_PAIRS} texts in '{name}', got {len(value)}.", name)
        return value
    form = "a string or a non-empty list of strings" if allow_one else "a non-empty list"
    raise APIError(400, f"'{name}' must be {form}.", name)


def score_field_names(body: dict) -> tuple[str, str]:
    """The names /score's two sides have in ``body``: ``text_1`` and ``text_2``, or vLLM's other names for them
    (queries/documents, queries/items, data_1/data_2)."""
    first_name = next((n for n in ("text_1", "queries", "data_1") if body.get(n) is not None), "text_1")
    second_name = next((n for n in ("text_2", "documents", "items", "data_2") if body.get(n) is not None), "text_2")
    return first_name, second_name


def score_pairs(body: dict) -> list[tuple[str, str]]:
    """/score's ``text_1`` x ``text_2`` (``score_field_names``): one text against each of the others, or the lists
    pairwise (vLLM's rule)."""
    first_name, second_name = score_field_names(body)
    first, second = _texts(body.get(first_name), first_name), _texts(body.get(second_name), second_name)
    if len(first) == 1:
        first = first * len(second)
    if len(first) != len(second):
        raise APIError(
            400,
            f"'{first_name}' has {len(first)} texts and '{second_name}' {len(second)}: send one {first_name}, or as many as {second_name}.",
            first_name,
        )
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


def rerank_options(body: dict) -> tuple[int, bool]:
    """/rerank's ``top_n`` (0 or less: every document, as vLLM) and ``return_documents``, checked before any document runs."""
    top_n = number(body, "top_n", int, 0)
    keep = body.get("return_documents", True)
    if not isinstance(keep, bool):
        raise APIError(400, f"'return_documents' must be true or false, got {keep!r}.", "return_documents")
    return top_n, keep


def rerank_answer(model: str, scores, documents: list[dict], tokens: int, top_n: int, keep: bool) -> dict:
    """vLLM's rerank response: the ``top_n`` documents by score, highest first, each its ``document`` (vLLM's
    RerankDocument) where ``keep``."""
    ranked = sorted(range(len(documents)), key=lambda i: -scores[i])[: top_n if top_n > 0 else len(documents)]
    results = [{"index": i, **({"document": documents[i]} if keep else {}), "relevance_score": float(scores[i])} for i in ranked]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}  # vLLM's RerankUsage
    return {"id": f"rerank-{uuid.uuid4().hex}", "model": model, "usage": usage, "results": results}


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
    template: ScoreTemplate | None = None,
) -> FastAPI:
    """The app over a compiled QEFFAutoModelForSequenceClassification (``model.generate``) and its tokenizer; pairs
    and texts of at most ``max_len`` tokens, run ``batch_size`` at a time; pairs rendered by ``template`` where the
    folder scores through a chat template (score_template.py)."""
    app = FastAPI(title="QEfficient scores", version="1")
    names = served_model_names(model_id, served_names)
    config = model.config
    labels = int(config.num_labels)
    try:
        declared = cross_encoder_activation(config, getattr(model, "local_model_dir", None), default=None)
    except ValueError as err:  # a declared Softmax: a one-label model's score needs it; several labels take vLLM's softmax
        if labels == 1 or "Softmax" not in str(err):
            raise
        declared = None
    activation = (declared or "Sigmoid") if labels == 1 else None
    vocab_size = min(len(tokenizer), int(getattr(config, "vocab_size", None) or len(tokenizer)))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    joined = getattr(config, "use_pad_token", None) is False  # an LM as reranker reads "query + document" as one text
    lock = asyncio.Lock()  # one request at a time on the session: the cores are shared anyway
    openai_app_basics(app, api_key)
    # vLLM's /tokenize and /detokenize with this model's tokenizer (prompts; chats where it has a template)
    parser = RequestParser(tokenizer, names, max_len, vocab_size, 1)
    add_tokenize_routes(app, parser, lambda request: read_limited_body(request, max_body_bytes))
    single_model_routes(app, model_id, lock.locked)

    def check_model(body: dict) -> str:
        parser.check_model(body)
        return body.get("model") or model_id

    def truncating(cut: Truncation | None) -> dict:
        """The tokenizer's arguments for vLLM's truncate_prompt_tokens without a side (with one: cut after)."""
        return {"truncation": True, "max_length": cut.keep} if cut is not None and cut.side is None else {}

    def pair_limit(query: str, shaping: Shaping) -> dict:
        """vLLM's tokenizer arguments for a (query, document) pair: with max_tokens_per_doc, the document alone truncated
        (only_second) to the query's tokens, that limit and the special tokens (within truncate_prompt_tokens, else one
        past the longest input), where the query leaves it room."""
        cut = shaping.cut
        limit = truncating(cut)
        if shaping.doc_limit > 0:
            query_tokens = len(tokenizer(query, add_special_tokens=False)[INPUT_IDS])
            special = tokenizer.backend_tokenizer.num_special_tokens_to_add(True)
            existing = None if cut is not None and cut.side is not None else (cut.keep if cut is not None else max_len + 1)
            effective = min(query_tokens + shaping.doc_limit + special, existing or 1 << 30)
            if query_tokens + special < effective:
                limit = {"truncation": "only_second", "max_length": effective}
        return limit

    def tokenized(item: str | tuple[str, str], shaping: Shaping) -> dict[str, list[int]]:
        """A text or pair's tokens; with vLLM's truncate_prompt_tokens (``shaping.cut``) the tokenizer truncates them (a
        pair's longer side first), or with its truncation_side they are cut from that side after; what the tokenizer
        leaves longer (a limit below its special tokens) is cut on the tokenizer's truncation side, as vLLM cuts it."""
        cut = shaping.cut
        limit = truncating(cut)
        if isinstance(item, tuple) and template is not None:  # rendered, then tokenized as a prompt (vLLM's)
            enc = tokenizer(template.prompt(tokenizer, *item, shaping.template_kwargs), **limit)
        elif isinstance(item, tuple) and joined:  # an LM as reranker reads "query + document" as one text (use_pad_token)
            enc = tokenizer(item[0] + item[1], **limit)
        elif isinstance(item, tuple):  # the tokenizer's pairing
            enc = tokenizer(*item, **pair_limit(item[0], shaping))
        else:
            enc = tokenizer(item, add_special_tokens=shaping.special, **limit)
        if cut is not None and len(enc[INPUT_IDS]) > cut.keep:  # (no side given: the tokenizer's, as vLLM falls back to)
            side = cut.side or getattr(tokenizer, "truncation_side", "right")
            enc = {name: list(v[-cut.keep :] if side == "left" else v[: cut.keep]) for name, v in enc.items()}
        return enc

    def encode(texts: list[str | list[int] | tuple[str, str]], shaping: Shaping = NO_SHAPING) -> list[dict[str, list[int]]]:
        """Each text, pair or list of token ids (checked against the vocabulary) as the graph's inputs, as the request's
        ``shaping`` says (the chat template's arguments, where the folder scores through one; vLLM's truncation)."""
        cut = shaping.cut
        encoded = []
        for i, item in enumerate(texts):
            if isinstance(item, list):
                bad = next((t for t in item if not 0 <= t < vocab_size), None)
                if bad is not None or not item:
                    problem = "is empty" if not item else f"has the token id {bad}, outside this model's vocabulary [0, {vocab_size})"
                    raise APIError(400, f"The input at index {i} {problem}.", "input")
                enc = {INPUT_IDS: item if cut is None or len(item) <= cut.keep else cut.apply(tokenizer, None, item)}
            else:
                enc = tokenized(item, shaping)
            if not enc[INPUT_IDS]:  # (a decoder's tokenizer gives "" no token: the graph would read an empty row)
                what = "pair" if isinstance(item, tuple) else "input"
                raise APIError(400, f"The {what} at index {i} gives no tokens: it is empty.", "input")
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
        out = np.zeros((len(encoded), labels), np.float32)
        for indices in length_batches([len(enc[INPUT_IDS]) for enc in encoded], batch_size, model.reads_padding):
            rows = [encoded[i] for i in indices]
            width = max(len(r[INPUT_IDS]) for r in rows)
            batch = {name: np.zeros((len(rows), width), np.int64) for name in (INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS)}
            batch[INPUT_IDS][:] = pad_id
            for row, enc in enumerate(rows):
                n = len(enc[INPUT_IDS])
                batch[INPUT_IDS][row, :n], batch[ATTENTION_MASK][row, :n] = enc[INPUT_IDS], 1
                if TOKEN_TYPE_IDS in enc:
                    batch[TOKEN_TYPE_IDS][row, :n] = enc[TOKEN_TYPE_IDS]
            out[indices] = np.asarray(model.generate(batch)["logits"], np.float32)
        return out

    def template_kwargs(body: dict) -> dict:
        """The request's chat template arguments where pairs go through the folder's template (checked either way)."""
        check_template_fields(body)
        return template.request_kwargs(body) if template is not None else {}

    def within_limits(pairs: list[tuple[str, str]], body: dict) -> tuple[list[tuple[str, str]], Shaping]:
        """The pairs with each side cut to the request's max_tokens_per_query and max_tokens_per_doc (vLLM's), and how
        they are then tokenized."""
        query_limit, doc_limit = token_limits(body, max_len)
        cut_pairs = [(text_within(tokenizer, q, query_limit), text_within(tokenizer, d, doc_limit)) for q, d in pairs]
        return cut_pairs, Shaping(template_kwargs(body), truncation(body, max_len), doc_limit)

    async def run(texts, shaping: Shaping = NO_SHAPING) -> tuple[np.ndarray, int]:
        encoded = await asyncio.to_thread(encode, texts, shaping)
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

    def relevance(values: np.ndarray, activate: bool) -> np.ndarray:
        return _ACTIVATIONS[activation](values[:, 0]) if activate else values[:, 0]

    async def score(request: Request):
        body = await read(request)
        scores_only("/score")
        name = check_model(body)
        pairs = score_pairs(body)
        activate = use_activation(body)
        values, tokens = await run(*within_limits(pairs, body))
        data = [{"index": i, "object": "score", "score": float(v)} for i, v in enumerate(relevance(values, activate))]
        return listing("score", name, data, tokens)

    async def rerank(request: Request):
        body = await read(request)
        scores_only("/rerank")
        name = check_model(body)
        query, documents = rerank_documents(body)
        top_n, keep = rerank_options(body)
        activate = use_activation(body)
        values, tokens = await run(*within_limits([(query, d) for d in documents], body))
        return rerank_answer(name, relevance(values, activate), [{"text": d} for d in documents], tokens, top_n, keep)

    async def classify(request: Request):
        body = await read(request)
        name = check_model(body)
        refuse_unapplied(body)
        inputs = openai_input_forms(body.get("input"), "input", MAX_PAIRS)
        activate = use_activation(body)
        values, tokens = await run(inputs, Shaping(cut=truncation(body, max_len), special=boolean(body, "add_special_tokens", True)))
        probs = classify_probabilities(values, config, declared) if activate else values
        return listing("classify", name, classify_rows(probs, config), tokens)

    async def pooling(request: Request):
        """vLLM's /pooling for a classifier: its pooling task ("classify"), each input's probabilities as an item."""
        body = await read(request)
        name = check_model(body)
        refuse_unapplied(body)
        if body.get("dimensions") is not None:
            raise APIError(400, "'dimensions' is not supported on /pooling (as vLLM); leave it out.", "dimensions")
        if body.get("task") not in (None, "classify"):
            pairs = " (POST /score for pairs)" if model.config.num_labels == 1 else ""  # (/score takes one-label models only)
            message = f"This server pools for 'classify', not {body['task']!r}: leave 'task' out{pairs}."
            raise APIError(400, message, "task")
        encoding, packed = encoding_format(body), packing(body)
        inputs = openai_input_forms(body.get("input"), "input", MAX_PAIRS)
        activate = use_activation(body)
        values, tokens = await run(inputs, Shaping(cut=truncation(body, max_len), special=boolean(body, "add_special_tokens", True)))
        probs = classify_probabilities(values, config, declared) if activate else values
        return pooling_answer(probs, encoding, packed, name, tokens)

    for path in ("/score", "/v1/score"):
        app.post(path)(score)
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        app.post(path)(rerank)
    for path in ("/classify", "/v1/classify"):
        app.post(path)(classify)
    app.post("/pooling")(pooling)
    return app


def check_sequence_classifier(config, model_name: str) -> None:
    """Refuse a checkpoint that is not a sequence classifier: its classification head would be untrained."""
    architectures = getattr(config, "architectures", None) or []
    if not architectures or not all(a.endswith("ForSequenceClassification") for a in architectures):
        raise ValueError(
            f"'{model_name}' is not a sequence classifier (its architectures: {architectures or 'none'}): its classification head "
            "would be untrained. Score with a cross-encoder or classifier checkpoint, serve this one with --task embed, or, "
            "for a causal LM used as a reranker, name the tokens it scores by in --hf_overrides (classifier_from_token)."
        )


def open_scores_app(
    model_name: str,
    ctx_len: int | None,
    num_cores: int,
    mxfp6_matmul: bool,
    api_key: str | None,
    max_body_bytes: int | None,
    hf_overrides: dict | None = None,
):
    """(app, runner) for a sequence classifier: compiled for inputs up to ``ctx_len`` tokens (a few lengths, so short
    pairs run short), with its tokenizer. ``hf_overrides`` (vLLM's) may make a causal LM the classifier; their other keys
    change the model's config."""
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForSequenceClassification
    from QEfficient.models.sentence_transformers import served_input_limit
    from QEfficient.serving.tasks import classifier_overrides, split_hf_overrides

    conversion, use_pad_token = classifier_overrides(hf_overrides)
    config_overrides = split_hf_overrides(hf_overrides)[1] or None
    model = QEFFAutoModelForSequenceClassification.from_pretrained(model_name, **conversion, hf_overrides=config_overrides)
    if use_pad_token is not None:
        model.config.use_pad_token = use_pad_token
    refuse_token_inputs(model.model, model_name)
    check_sequence_classifier(model.config, model_name)
    if model.config.num_labels == 1:
        cross_encoder_activation(model.config, model.local_model_dir)  # an activation not run here stops the server now
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    if getattr(tokenizer, "backend_tokenizer", None) is not None:  # truncating copies of its backend, not its shared state
        tokenizer = RuntimeTokenizer.from_hf(tokenizer)  # (as a server on the artifact tokenizes)
    limit = served_input_limit(model.local_model_dir, model.config, tokenizer, ctx_len, model_name)
    template = saved_score_template(model.local_model_dir, tokenizer)  # a CrossEncoder that scores chat messages (vLLM's)
    model.compile(seq_len=serving_lengths(limit), batch_size=1, num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    app = create_scores_app(
        model,
        tokenizer,
        model.model_name,
        limit,
        served_names=[model_name],
        api_key=api_key,
        max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        template=template,
    )
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()
