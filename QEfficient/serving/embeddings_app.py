"""OpenAI's embeddings API over an encoder (a sentence-transformers model such as all-MiniLM-L6-v2).

Routes: GET /health, GET /v1/models, POST /v1/embeddings, vLLM's POST /pooling (the same vectors as its pooling
items: the model's task, "embed", only, and no ``dimensions``, as vLLM answers) and POST /score and /rerank (a
bi-encoder's: the cosine similarity of two texts' embeddings). ``input`` is a string, a list of
strings, a list of token ids or a list of such lists (OpenAI's four forms); each gets one embedding, in order: the model's pooling (its
sentence-transformers folder says which: mean, CLS, max or last token; outside such a folder vLLM's, an encoder's CLS and
a decoder's last token) and Dense projections, L2-normalized as the folder's Normalize module (or, outside such a
folder, vLLM) does; a SPLADE folder's vocabulary-sized vectors as vLLM serves them (open_splade_embeddings_app), not
normalized. Embedding models built on a decoder (Qwen3-Embedding, e5-mistral, EmbeddingGemma) are served from their
sentence-transformers folders.

``encoding_format`` "float" (default), "base64" (float32, little-endian, as OpenAI sends), or vLLM's binary "bytes"
(the packed vectors as the body, a ``metadata`` header saying where each lies) and "bytes_only" (no header).
``dimensions`` asks a Matryoshka model (its config's, or --hf_overrides', ``matryoshka_dimensions`` or
``is_matryoshka``, as vLLM reads them) for its vectors' first dimensions, normalized after the cut. vLLM's fields beside
them (serving/embed_fields.py): ``use_activation`` false for the vectors before normalization,
``truncate_prompt_tokens`` and ``truncation_side``, ``add_special_tokens``, ``embed_dtype`` and ``endianness``, and chats
(``messages``, one conversation or a list of them) through the model's chat template. An input
longer than the compiled length is refused unless ``truncate_prompt_tokens`` cuts it. Requests run one at a time on a
worker thread, so /health keeps answering.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request, Response

from QEfficient.export.graph_names import INPUT_IDS
from QEfficient.generation.encoder_run import right_padded
from QEfficient.loading.sentence_transformers_files import sentence_bert_config
from QEfficient.models.sentence_transformers import (
    l2_normalized,
    sentence_transformers_pooling,
    sentence_transformers_width,
    served_input_limit,
    vllm_pooling,
)
from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES, openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.embed_fields import (
    BYTES_FORMATS,
    FLOAT32,
    Packing,
    Truncation,
    bytes_answer,
    encoding_format,
    packing,
    pooling_answer,
    refuse_unapplied,
    truncation,
)
from QEfficient.serving.encoder_batches import length_batches, refuse_own_heads, refuse_token_inputs, serving_lengths
from QEfficient.serving.messages import openai_input_forms
from QEfficient.serving.protocol import APIError, RequestParser, boolean, number, parse_json, served_model_names, template_options
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.scores_app import listing, rerank_answer, rerank_documents, rerank_options, score_field_names, score_pairs
from QEfficient.serving.tokenize_routes import add_tokenize_routes

MAX_INPUTS = 2048  # OpenAI's limit per request


def embedding_format(body: dict, width: int, config=None, hint: str = "") -> str:
    """The request's ``encoding_format`` ("float", "base64", or vLLM's binary "bytes" and "bytes_only"), after checking
    its ``dimensions``: ``width`` or none, or a shorter width where ``config`` says the model is a Matryoshka one
    (matryoshka_width; ``hint``: how to say it is)."""
    encoding = encoding_format(body)
    matryoshka_width(body, width, config, hint)
    return encoding


def matryoshka_width(body: dict, width: int, config=None, hint: str = "") -> int:
    """The width a request's ``dimensions`` asks for (``width`` where left out). A shorter one is a Matryoshka model's
    (trained so that its vectors' first dimensions embed on their own), as vLLM reads ``config``: one of its
    ``matryoshka_dimensions`` where it lists them, else any where ``is_matryoshka`` is true (matryoshka_widths). The
    model's own width is taken from any model (vLLM refuses it from one that is not a Matryoshka model)."""
    dimensions = number(body, "dimensions", int, None, low=1)
    if dimensions is None or dimensions == width:
        return width
    listed = matryoshka_widths(config, width)
    if listed is None:
        message = f"This model's embeddings have {width} dimensions; leave out 'dimensions' or send that.{hint}"
        raise APIError(400, message, "dimensions")
    if dimensions > width:
        message = f"This model's embeddings have {width} dimensions; 'dimensions' can ask for at most that, not {dimensions}."
        raise APIError(400, message, "dimensions")
    if listed and dimensions not in listed:
        message = f"This model's Matryoshka dimensions are {list(listed)} (or all {width}); send one of them, not {dimensions}."
        raise APIError(400, message, "dimensions")
    return dimensions


def matryoshka_widths(config, width: int) -> tuple[int, ...] | None:
    """The shorter widths ``config`` lets a request ask for: its ``matryoshka_dimensions`` (sorted), or () for any where
    ``is_matryoshka`` is true; None for a model that is not a Matryoshka one. A ValueError for values that are neither."""
    listed, flag = getattr(config, "matryoshka_dimensions", None), getattr(config, "is_matryoshka", None)
    if flag is not None and not isinstance(flag, bool):
        raise ValueError(f"The config's is_matryoshka must be true or false, got {flag!r}.")
    if listed is None or listed == []:
        return () if flag else None
    if not isinstance(listed, list) or not all(type(d) is int and 1 <= d <= width for d in listed):
        raise ValueError(f"The config's matryoshka_dimensions must be a list of widths from 1 to the model's {width}, got {listed!r}.")
    return tuple(sorted(set(listed)))


def embedding_list(vectors: np.ndarray, encoding: str, model: str, tokens: int, packed: Packing = FLOAT32) -> dict | Response:
    """OpenAI's embeddings response: one row of ``vectors`` per input, as floats or base64 bytes (``packed``: float32,
    little-endian, as OpenAI sends, unless vLLM's embed_dtype and endianness said otherwise); vLLM's binary answer for
    "bytes" and "bytes_only" (bytes_answer)."""
    if encoding in BYTES_FORMATS:
        return bytes_answer(list(vectors), encoding, packed, "embd", model, tokens)
    data = [
        {"object": "embedding", "index": i, "embedding": base64.b64encode(packed.pack(v)).decode() if encoding == "base64" else v.tolist()}
        for i, v in enumerate(vectors)
    ]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def parse_inputs(
    raw,
    tokenizer,
    max_len: int,
    vocab_size: int,
    lowercase: bool = False,
    special: bool = True,
    cut: Truncation | None = None,
    name: str = "input",
) -> list[list[int]]:
    """``input`` in any of OpenAI's four forms -> one list of token ids per input, each checked; texts lowercased first
    where ``lowercase`` (a folder's do_lower_case, as vLLM reads it), with the tokenizer's special tokens where
    ``special``; each cut as ``cut`` says (vLLM's truncate_prompt_tokens); errors name the field ``name`` (chats:
    "messages")."""
    items = openai_input_forms(raw, name, MAX_INPUTS, " (OpenAI's limit)")
    out = []
    for i, item in enumerate(items):
        where = f"{name}[{i}]" if len(items) > 1 else name
        if isinstance(item, str):
            text = item.lower() if lowercase else item
            ids = tokenizer(text, add_special_tokens=special)[INPUT_IDS]  # "" too: [CLS] [SEP] for BERT's, as vLLM embeds it
        else:
            text, ids = None, item
            bad = next((t for t in ids if not 0 <= t < vocab_size), None)
            if bad is not None:
                raise APIError(400, f"{where} has the token id {bad}, outside this model's vocabulary [0, {vocab_size}).", name)
        if cut is not None and ids:
            ids = cut.apply(tokenizer, text, list(ids))
        if not ids:
            raise APIError(400, f"{where} is empty." if not item else f"{where} gives no tokens.", name)
        if len(ids) > max_len:
            raise APIError(
                400,
                f"{where} has {len(ids)} tokens, more than this model's maximum of {max_len} (--ctx_len); shorten it, or send "
                "'truncate_prompt_tokens' (-1: that maximum), as vLLM.",
                name,
                "context_length_exceeded",
            )
        out.append(list(ids))
    return out


@dataclass(frozen=True)
class VectorSettings:
    """How a server makes its vectors: ``pooling`` (model.embed's keyword: other poolings than the folder's), L2 norm
    where ``normalize``, ``width`` dimensions unless a request asks for fewer, ``config`` (what says whether it may:
    matryoshka_widths) and the ``hint`` of the refusal where it may not."""

    pooling: dict
    normalize: bool
    width: int
    config: object = None
    hint: str = ""


def vector_settings(model, width: int, normalize: bool, pooler: dict | None, dense: bool) -> VectorSettings:
    """A ``dense`` model's settings as vLLM makes them: its pooling where the folder declares none (vllm_pooling), and
    --pooler_config's defaults (``pooler``: serve_args.pooler_defaults) over the folder's, each checked now; SPLADE's
    (not ``dense``: its vLLM pooler reads none of them) as they are."""
    pooler = dict(pooler or {})
    if not dense:
        if pooler:
            raise ValueError(f"--pooler_config's {', '.join(pooler)} do not apply to SPLADE's vectors; leave them out.")
        return VectorSettings({}, normalize, width)
    pooling = vllm_pooling(model.local_model_dir, model.decoder_architecture)
    if "pooling_type" in pooler:  # as vLLM, the flag's pooling instead of the folder's
        if model.graph_pooled:
            raise ValueError("--pooler_config's pooling_type does not apply: this model's graph gives one vector per input.")
        if len(sentence_transformers_pooling(model.local_model_dir)) > 1:
            raise ValueError("--pooler_config's pooling_type replaces one pooling: this model's is several, concatenated; leave it out.")
        pooling = [pooler["pooling_type"]]
    where = " from its folder" if getattr(model, "qconfig", None) is not None else ""  # a server on an artifact
    hint = (
        " (Shorter vectors are a Matryoshka model's: where this is one, serve it with --hf_overrides "
        f"'{{\"is_matryoshka\": true}}' or '{{\"matryoshka_dimensions\": [...]}}'{where}, as vLLM.)"
    )
    matryoshka_widths(model.config, width)  # its values checked now, not at the first request
    default_width = width
    if "dimensions" in pooler:  # each request's, unless it sends its own
        try:
            default_width = matryoshka_width({"dimensions": pooler["dimensions"]}, width, model.config, hint)
        except APIError as err:
            raise ValueError(f"--pooler_config's dimensions: {err.message}") from None
    return VectorSettings({"pooling": pooling}, pooler.get("use_activation", normalize), default_width, model.config, hint)


def is_chat(value) -> bool:
    """Whether an embeddings request's ``messages`` (or ``input``: vLLM takes chats there too) is one conversation (a
    list of role messages) or a list of them."""
    if not isinstance(value, list) or not value:
        return False
    return all(isinstance(m, dict) and "role" in m for m in value) or all(is_chat(c) and isinstance(c[0], dict) for c in value)


def chat_texts(parser: RequestParser, body: dict) -> list[str]:
    """vLLM's chat embeddings: ``messages`` (or a chat in ``input``; one conversation, or a list of them) each through the
    chat template, without a generation prompt unless ``add_generation_prompt`` asks for one; one text per conversation."""
    if body.get("messages") is not None and body.get("input") is not None:
        raise APIError(400, "Send the texts as 'input' or a chat as 'messages', not both.", "messages")
    messages = body["messages"] if body.get("messages") is not None else body["input"]
    if body.get("chat_template") is not None:
        raise APIError(400, "'chat_template' is not taken from a request: the model's own renders chats; leave it out.", "chat_template")
    if not getattr(parser.tokenizer, "chat_template", None):
        raise APIError(400, "This model has no chat template: send the texts as 'input'.", "messages")
    batch = isinstance(messages, list) and bool(messages) and all(isinstance(m, list) for m in messages)
    if batch and len(messages) > MAX_INPUTS:
        raise APIError(400, f"At most {MAX_INPUTS} conversations in 'messages', got {len(messages)}.", "messages")
    # vLLM's default for embeddings: no generation prompt (null too)
    options = template_options({**body, "add_generation_prompt": boolean(body, "add_generation_prompt", False)})
    return [parser.chat_prompt(conversation, options=options) for conversation in (messages if batch else [messages])]


def create_embeddings_app(
    model,
    tokenizer,
    model_id: str,
    max_len: int,
    normalize: bool,
    *,
    served_names=None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    batch_size: int = 8,
    width: int | None = None,
    lowercase: bool = False,
    dense: bool = True,
    pooler: dict | None = None,
) -> FastAPI:
    """The app over a compiled QEFFAutoModel (``model.embed``; a QEFFSparseEncoder's too, ``width`` its vocabulary, texts
    lowercased where ``lowercase``) and its tokenizer; inputs of at most ``max_len`` tokens, run ``batch_size`` at a time
    (rows of similar length together, so padding stays short). A ``dense`` model's vectors (not SPLADE's) are made as
    vector_settings says, with ``pooler`` (vLLM's --pooler_config defaults), L2-normalized where ``normalize`` unless
    either says otherwise; a request's ``messages`` are embedded through the chat template (chat_texts)."""
    app = FastAPI(title="QEfficient embeddings", version="1")
    names = served_model_names(model_id, served_names)
    vocab_size = min(len(tokenizer), int(getattr(model.config, "vocab_size", None) or len(tokenizer)))  # rows of the embedding table
    width = width or sentence_transformers_width(model.local_model_dir, model.config.hidden_size, model.graph_pooled)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    vectors = vector_settings(model, width, normalize, pooler, dense)
    lock = asyncio.Lock()  # one request at a time on the session: the cores are shared anyway
    app.state.tokenizer = tokenizer
    openai_app_basics(app, api_key)
    # vLLM's /tokenize and /detokenize with this model's tokenizer (prompts; chats where it has a template)
    parser = RequestParser(tokenizer, names, max_len, vocab_size, 1)
    add_tokenize_routes(app, parser, lambda request: read_limited_body(request, max_body_bytes))

    single_model_routes(app, model_id, lock.locked)

    def embed(token_lists: list[list[int]], dimensions: int, normalized: bool) -> np.ndarray:
        out = np.zeros((len(token_lists), 0), np.float32)
        for rows in length_batches([len(t) for t in token_lists], batch_size, model.reads_padding):
            # a Matryoshka model's shorter vectors are normalized after the cut, as vLLM does
            emb = model.embed(right_padded([token_lists[i] for i in rows], pad_id), normalize=False, **vectors.pooling)[:, :dimensions]
            if out.shape[1] == 0:
                out = np.zeros((len(token_lists), emb.shape[1]), np.float32)
            out[rows] = l2_normalized(emb) if normalized else emb
        return out

    async def pooled_rows(body: dict) -> tuple[np.ndarray, int]:
        """The request's vectors (one per input) and their tokens (its ``dimensions`` checked by embedding_format)."""
        dimensions = vectors.width if body.get("dimensions") is None else int(body["dimensions"])
        normalized = boolean(body, "use_activation", vectors.normalize) if dense else vectors.normalize
        chat = body.get("messages") is not None or is_chat(body.get("input"))
        special, cut = boolean(body, "add_special_tokens", not chat), truncation(body, max_len)  # vLLM's: chats' templates write them

        def token_lists_of_request() -> list[list[int]]:  # (off the event loop: templates and tokenizers take time)
            texts = chat_texts(parser, body) if chat else body.get("input")
            return parse_inputs(texts, tokenizer, max_len, vocab_size, lowercase, special, cut, "messages" if chat else "input")

        token_lists = await asyncio.to_thread(token_lists_of_request)
        async with lock:
            rows = await asyncio.to_thread(embed, token_lists, dimensions, normalized)
        return rows, sum(len(ids) for ids in token_lists)

    async def read(request: Request) -> dict:
        body = parse_json(await read_limited_body(request, max_body_bytes))
        parser.check_model(body)
        refuse_unapplied(body)
        return body

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await read(request)
        encoding, packed = embedding_format(body, width, vectors.config, vectors.hint), packing(body)
        rows, tokens = await pooled_rows(body)
        return embedding_list(rows, encoding, body.get("model") or model_id, tokens, packed)

    @app.post("/pooling")
    async def pooling(request: Request):
        """vLLM's /pooling for an embedding model: its pooling task ("embed"), each input's vector as an item."""
        body = await read(request)
        task = body.get("task")
        if task not in (None, "embed"):
            message = f"This server pools for 'embed', not {task!r}: leave 'task' out (vLLM's --pooler-config task chooses another)."
            raise APIError(400, message, "task")
        if body.get("dimensions") is not None:
            raise APIError(400, "'dimensions' is not supported on /pooling (as vLLM); POST /v1/embeddings for it.", "dimensions")
        encoding, packed = embedding_format(body, width), packing(body)
        rows, tokens = await pooled_rows(body)
        return pooling_answer(rows, encoding, packed, body.get("model") or model_id, tokens)

    async def cosine_scores(pairs: list[tuple[str, str]], labels: list[tuple[str, str]], body: dict) -> tuple[list[float], int]:
        """vLLM's bi-encoder scores: the cosine similarity of each pair's two embeddings (each distinct text embedded
        once; usage counts both texts of every pair and a pad token between, as vLLM); ``labels``: where each pair's texts are in
        the request, for the errors."""
        if not dense:
            raise APIError(400, "A sparse model's vectors are not scored here: POST /v1/embeddings and compare them.", code="unsupported")
        for name in ("max_tokens_per_query", "max_tokens_per_doc", "priority"):  # (the cross-encoder server applies the cuts)
            if body.get(name) not in (None, 0):
                raise APIError(400, f"'{name}' is not applied by an embedding model's /score and /rerank here; leave it out.", name)
        cut = truncation(body, max_len)
        where = {}
        for pair, label in zip(pairs, labels):
            for text, name in zip(pair, label):
                where.setdefault(text, name)

        def tokens() -> dict[str, list[int]]:
            out = {}
            for text, name in where.items():
                try:
                    out[text] = parse_inputs(text, tokenizer, max_len, vocab_size, lowercase, True, cut, name)[0]
                except APIError as err:  # named where it is in the request ("documents[2]"), the field as param
                    err.param = name.split("[")[0]
                    raise
            return out

        ids = await asyncio.to_thread(tokens)
        async with lock:
            rows = await asyncio.to_thread(embed, list(ids.values()), vectors.width, True)
        at = {text: i for i, text in enumerate(ids)}
        scores = [float(rows[at[a]] @ rows[at[b]]) for a, b in pairs]
        pad = int(tokenizer.pad_token_id is not None)  # vLLM's pair: the two texts' tokens joined by a pad token
        return scores, sum(len(ids[a]) + pad + len(ids[b]) for a, b in pairs)

    def indexed(name: str, value, i: int) -> str:
        return f"{name}[{i}]" if isinstance(value, list) and len(value) > 1 else name

    async def score(request: Request):
        """vLLM's /score for an embedding model (a bi-encoder): ``text_1`` against ``text_2``, by cosine similarity."""
        body = await read(request)
        pairs = score_pairs(body)
        first, second = score_field_names(body)
        labels = [(indexed(first, body[first], i), indexed(second, body[second], i)) for i in range(len(pairs))]
        scores, tokens = await cosine_scores(pairs, labels, body)
        data = [{"index": i, "object": "score", "score": value} for i, value in enumerate(scores)]
        return listing("score", body.get("model") or model_id, data, tokens)

    async def rerank(request: Request):
        """vLLM's /rerank for an embedding model: the documents by their cosine similarity to the query."""
        body = await read(request)
        query, documents = rerank_documents(body)
        top_n, keep = rerank_options(body)
        labels = [("query", f"documents[{i}]") for i in range(len(documents))]
        scores, tokens = await cosine_scores([(query, d) for d in documents], labels, body)
        return rerank_answer(body.get("model") or model_id, scores, [{"text": d} for d in documents], tokens, top_n, keep)

    for path in ("/score", "/v1/score"):
        app.post(path)(score)
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        app.post(path)(rerank)
    return app


def open_embeddings_app(
    model_name: str,
    ctx_len: int | None,
    num_cores: int,
    mxfp6_matmul: bool,
    api_key: str | None,
    max_body_bytes: int | None,
    hf_overrides: dict | None = None,
    pooler: dict | None = None,
):
    """(app, runner) for an encoder: compiled for inputs up to ``ctx_len`` tokens (a few lengths, so short inputs
    run short), its tokenizer, sentence-transformers' pooling and normalization; its config changed by
    ``hf_overrides`` (vLLM's) when given; ``pooler``: --pooler_config's defaults (create_embeddings_app)."""
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModel, QEFFAutoModelForZeroShotImageClassification
    from QEfficient.loading.sentence_transformers_files import warn_chat_formatting
    from QEfficient.models.sentence_transformers import check_sentence_transformers_folder, sentence_transformers_normalizes

    model = QEFFAutoModel.from_pretrained(model_name, hf_overrides=hf_overrides or None)
    if isinstance(model, QEFFAutoModelForZeroShotImageClassification):  # CLIP, SigLIP, ...: texts and images
        from QEfficient.serving.dual_embeddings_app import open_dual_embeddings_app

        if pooler:
            raise ValueError(f"'{model_name}' embeds as its towers do: --pooler_config's {', '.join(pooler)} do not apply; leave them out.")

        return open_dual_embeddings_app(model, model_name, ctx_len, num_cores, mxfp6_matmul, api_key, max_body_bytes)
    refuse_own_heads(model, model_name)
    if not isinstance(model, QEFFAutoModel):  # an image or audio encoder (QEFFAutoModelFor{Image,Audio}FeatureExtraction)
        kind = "images" if "Image" in type(model).__name__ else "audio"
        raise ValueError(f"'{model_name}' reads {kind}: the embeddings server takes text. Run it from Python ({type(model).__name__}).")
    refuse_token_inputs(model.model, model_name)
    check_sentence_transformers_folder(model.local_model_dir)
    warn_chat_formatting(model.local_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    limit = served_input_limit(model.local_model_dir, model.config, tokenizer, ctx_len, model_name)
    model.compile(seq_len=serving_lengths(limit), batch_size=1, num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    normalizes = sentence_transformers_normalizes(model.local_model_dir)
    app = create_embeddings_app(
        model,
        tokenizer,
        model.model_name,
        limit,
        True if normalizes is None else normalizes,
        served_names=[model_name],
        api_key=api_key,
        max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        lowercase=bool(sentence_bert_config(Path(model.local_model_dir)).get("do_lower_case")),  # as vLLM reads the folder
        pooler=pooler,
    )
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()


def check_vllm_splade(name: str, settings: dict) -> None:
    """Refuse a SPLADE model (``settings``: loading/sparse_encoder.serving_settings) whose vectors vLLM's
    BertSpladeSparseEmbeddingModel would not give: it pools the max of log(1 + relu) whatever the folder says, and leaves
    out the [CLS] and [SEP] ids a config names."""
    from QEfficient.serving.tasks import SPLADE_ARCHITECTURE

    pooling_strategy, activation_function = settings["pooling_strategy"], settings["activation_function"]
    if (pooling_strategy, activation_function) != ("max", "relu"):
        raise ValueError(
            f"'{name}' pools {pooling_strategy} of {activation_function}; vLLM's {SPLADE_ARCHITECTURE} pools the max of "
            "log(1 + relu) whatever the folder says, so its answers would not be this model's: run it with "
            "QEFFSparseEncoder.encode."
        )
    named = [n for n in ("cls_token_id", "sep_token_id") if settings[n] is not None]
    if named:
        raise ValueError(f"'{name}''s config names {' and '.join(named)} (vLLM then pools without them): serving it is not done.")


def open_splade_embeddings_app(
    model_name: str, ctx_len: int | None, num_cores: int, mxfp6_matmul: bool, api_key: str | None, max_body_bytes: int | None
):
    """(app, runner) for a SPLADE folder (sentence-transformers' SparseEncoder) served as vLLM serves its
    BertSpladeSparseEmbeddingModel: each input's vocabulary-sized vector on /v1/embeddings, log(1 + relu) of the masked
    LM's logits, the max over its tokens, not normalized, texts lowercased where the folder says so. vLLM pools so whatever
    the folder says, so a folder that pools otherwise (sum, log1p_relu) is refused, as is a config naming [CLS] and [SEP]
    ids (vLLM then leaves them out), both before the weights load. vLLM's class loads BERT; other masked LMs (DistilBERT,
    ...) are served the same way here."""
    from transformers import AutoConfig

    from QEfficient.loading.model_path import resolve_model_path
    from QEfficient.loading.sparse_encoder import read_splade_folder, serving_settings
    from QEfficient.models.sparse_encoder import QEFFSparseEncoder
    from QEfficient.serving.tasks import refuse_inference_free

    folder = resolve_model_path(model_name, None)[0]
    refuse_inference_free(model_name)
    settings = read_splade_folder(folder)
    check_vllm_splade(model_name, serving_settings(settings, AutoConfig.from_pretrained(folder)))
    model = QEFFSparseEncoder.from_pretrained(model_name)
    limit = served_input_limit(model.local_model_dir, model.config, model.tokenizer, ctx_len, model_name)
    model.compile(seq_len=serving_lengths(limit), num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    options = dict(served_names=[model_name], api_key=api_key, max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES)
    options |= {"width": int(model.config.vocab_size), "lowercase": settings.do_lower_case, "dense": False}
    app = create_embeddings_app(model, model.tokenizer, model.model_name, limit, False, **options)
    app.state.qpc_path = model.qpc_path
    return app, NoRunner()
