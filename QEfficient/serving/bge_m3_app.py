"""BGE-M3's sparse and multi-vector outputs served as vLLM serves them (its ``BgeM3EmbeddingModel``, chosen with
``--hf_overrides '{"architectures": ["BgeM3EmbeddingModel"]}'``), one pooling task a server (``--pooler_config
'{"task": ...}'``, vLLM's ``--pooler-config``):

- ``token_embed``: the multi-vector head's vectors, L2-normalized, every token but the first where that is the BOS
  token (the last one kept, as FlagEmbedding keeps it): /pooling, /v1/embeddings (one matrix per text), /score and /rerank
  (vLLM's MaxSim: the sum over the query's tokens, where FlagEmbedding's ``colbert_score`` averages), the routes of
  serving/colbert_app.py;
- ``token_classify``: the sparse head's relu weight of every token, the BOS and EOS tokens left out: /pooling answers one
  float per token for each text; clients pair them with /tokenize's tokens (vLLM's recipe) for lexical weights.

The dense vectors (``embed``, the default) are the embeddings server's (serving/embeddings_app.py). BOS and EOS are the
config's ``bos_token_id`` and ``eos_token_id``, as vLLM reads them. Each text runs alone, padded to the shortest compiled
length that holds it, one request at a time, at most ``max_len`` tokens. A BGE-M3 artifact is served alone for a token task
(``create_compiled_bge_m3_app``: its run-time tokenizer and graph, no torch).
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
from fastapi import FastAPI, Request

from QEfficient.generation.encoder_run import right_padded
from QEfficient.models.sentence_transformers import l2_normalized, served_input_limit
from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES, openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.colbert_app import text_ids, text_late_interaction_routes
from QEfficient.serving.embed_fields import packing, pooling_answer
from QEfficient.serving.embeddings_app import embedding_format
from QEfficient.serving.encoder_batches import serving_lengths
from QEfficient.serving.late_interaction_app import check_neutral, input_texts
from QEfficient.serving.protocol import APIError, RequestParser, parse_json, served_model, served_model_names
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.tasks import BGE_M3_TASKS
from QEfficient.serving.tokenize_routes import add_tokenize_routes

if TYPE_CHECKING:
    from QEfficient.models.bge_m3 import QEFFBGEM3Model
    from QEfficient.serving.encoder_artifact import CompiledEncoder

# vLLM's pooling fields that would change a token_classify answer, with the values that do not
_NEUTRAL = {"task": (None, "token_classify"), "truncate_prompt_tokens": (None,), "priority": (None, 0), "dimensions": (None,)}
_NEUTRAL |= {"use_activation": (None, True), "normalize": (None,), "late_chunking_params": (None,)}


def create_bge_m3_app(
    model: QEFFBGEM3Model | ArtifactHeads,
    tokenizer,
    model_id: str,
    max_len: int,
    task: str,
    *,
    served_names: list[str] | None = None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    limit_source: str = "--ctx_len",
) -> FastAPI:
    """The app over a compiled QEFFBGEM3Model and its tokenizer for ``task`` (one of BGE_M3_TASKS); texts of at most
    ``max_len`` tokens (``limit_source``: what set it, for the message)."""
    if task not in BGE_M3_TASKS:
        raise ValueError(f"BGE-M3's heads are served for {' or '.join(BGE_M3_TASKS)}, not {task!r}.")
    bos, eos = getattr(model.config, "bos_token_id", None), getattr(model.config, "eos_token_id", None)
    app = FastAPI(title=f"QEfficient BGE-M3 ({task})", version="1")
    limits = dict(served_names=served_names, api_key=api_key, max_body_bytes=max_body_bytes, limit_source=limit_source)
    if task == "token_embed":

        def token_vectors(ids: list[int]) -> np.ndarray:
            return l2_normalized(model.token_outputs(ids)[1][1 if ids[0] == bos else 0 :])

        text_late_interaction_routes(app, token_vectors, model.colbert_dim, tokenizer, model_id, max_len, **limits)
        return app

    names = served_model_names(model_id, served_names)
    lock = asyncio.Lock()  # one request at a time on the session: the cores are shared anyway
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)
    app.state.tokenizer = tokenizer
    add_tokenize_routes(app, RequestParser(tokenizer, names, max_len, len(tokenizer), 1), lambda r: read_limited_body(r, max_body_bytes))

    def sparse_weights(texts: list[str]) -> tuple[list[np.ndarray], int]:
        rows, tokens = [], 0
        for text in texts:
            ids = text_ids(tokenizer, text, max_len, limit_source)
            weights = model.token_outputs(ids)[2][:, 0]
            rows.append(weights[1 if ids[0] == bos else 0 : -1 if ids[-1] == eos else None])  # as vLLM's BOSEOSFilter
            tokens += len(ids)
        return rows, tokens

    @app.post("/pooling")
    async def pooling(request: Request):
        body = parse_json(await read_limited_body(request, max_body_bytes))
        check_neutral(body, _NEUTRAL, lambda field: "it gives BGE-M3's sparse weights ('token_classify')")
        name = served_model(body, names)
        if body.get("messages") is not None:
            raise APIError(400, "This model reads text: send the texts as 'input' (a string or a list of strings).", "messages")
        texts = input_texts(body.get("input"), "input")
        encoding, packed = embedding_format(body, 1), packing(body)
        async with lock:
            rows, tokens = await asyncio.to_thread(sparse_weights, texts)
        return pooling_answer(rows, encoding, packed, name, tokens)

    async def not_this_task(request: Request):
        raise APIError(
            400,
            "This server gives BGE-M3's sparse weights ('token_classify') on /pooling; start one with --pooler_config "
            '\'{"task": "embed"}\' for dense embeddings, or \'{"task": "token_embed"}\' for multi-vector scores.',
            "task",
        )

    for path in ("/v1/embeddings", "/score", "/v1/score", "/rerank", "/v1/rerank", "/v2/rerank"):
        app.post(path)(not_this_task)
    return app


class ArtifactHeads:
    """What the app reads of a QEFFBGEM3Model, from its artifact alone: each token's outputs (the graph's hidden state,
    multi-vector head and sparse weight side by side), the multi-vector width, the config's BOS and EOS ids."""

    def __init__(self, encoder: CompiledEncoder) -> None:
        self.encoder = encoder
        resolved = vars(encoder.config)  # as transformers' config resolved them; an older artifact: its config.json's
        saved = resolved if "bos_token_id" in resolved else json.loads((encoder.local_model_dir / "config.json").read_text())
        self.config = SimpleNamespace(bos_token_id=saved.get("bos_token_id"), eos_token_id=saved.get("eos_token_id"))
        self.hidden_size = int(encoder.config.hidden_size)
        width = next(o.shape[-1] for o in encoder.session.get_outputs() if o.name == encoder.output_name)
        if not isinstance(width, int):  # a dynamic last axis: one token's outputs say it
            width = encoder.generate(right_padded([[0]], 0))[encoder.output_name].shape[-1]
        self.colbert_dim = int(width) - self.hidden_size - 1

    def token_outputs(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self.encoder.generate(right_padded([ids], 0))[self.encoder.output_name][0, : len(ids)]
        hidden, vectors, weights = np.split(out, [self.hidden_size, self.hidden_size + self.colbert_dim], axis=-1)
        return hidden, vectors, weights


def create_compiled_bge_m3_app(encoder: CompiledEncoder, task: str, max_len: int, **options) -> FastAPI:
    """The app for ``task`` over a BGE-M3 artifact alone (``serve --qpc_path``, Ray replicas): its run-time tokenizer,
    texts of at most ``max_len`` tokens; ``options``: create_bge_m3_app's."""
    heads, source = ArtifactHeads(encoder), "the artifact's length limit"
    return create_bge_m3_app(heads, encoder.tokenizer, encoder.model_name, max_len, task, limit_source=source, **options)


def open_bge_m3_app(
    model_name: str, task: str, ctx_len: int | None, num_cores: int, mxfp6_matmul: bool, api_key: str | None, max_body_bytes: int | None
) -> tuple[FastAPI, NoRunner]:
    """(app, runner) for a BGE-M3 folder served for ``task``: compiled for texts of up to ``ctx_len`` tokens (within its
    encoder's positions and its tokenizer's limit)."""
    from QEfficient.models.bge_m3 import QEFFBGEM3Model

    model = QEFFBGEM3Model.from_pretrained(model_name)
    max_len = served_input_limit(model.local_model_dir, model.config, model.tokenizer, ctx_len, model_name)
    # its graph reads no padding: each text runs at the shortest length that holds it
    path = model.compile(num_cores=num_cores, mxfp6_matmul=mxfp6_matmul, seq_len=serving_lengths(max_len))
    limits = {"max_body_bytes": max_body_bytes} if max_body_bytes else {}
    app = create_bge_m3_app(model, model.tokenizer, model.model_name, max_len, task, served_names=[model_name], api_key=api_key, **limits)
    app.state.qpc_path = path
    return app, NoRunner()
