"""The OpenAI server on Ray Serve: N engine replicas behind one gateway, with autoscaling and retries.

Two deployments, the shape Ray Serve LLM uses too:

- ``QEffEngine``: one continuous-batching engine per replica, each with ``cores_per_replica`` CPUs
  (ONNX Runtime intra-op threads = those cores, and the process pinned to them), running the very
  FastAPI app of ``QEfficient.serving.app`` in-process: auth, body limits, parsing and errors are
  the single-process server's. Replicas open the artifact the driver compiled: from the shared
  QEFF_HOME, or received through Ray's object store (``shipping``) where the nodes share no disk.
- ``QEffGateway``: the HTTP ingress. It forwards each request (method, path, headers, body) to an
  engine replica through a deployment handle and relays the app's answer. A request that does not
  ask for a stream takes one call (``answer``: the whole answer in one reply, so when a replica dies
  mid-request the gateway sends it again to another replica and the client never sees the failure);
  a stream takes a streaming call (``forward``), and one already under way cannot be replayed, so
  it ends with an OpenAI error event and ``[DONE]``, never a silent truncation.

An encoder (embeddings or scores, ``build_encoder_application``) runs the same way: each replica serves the encoder's
artifact as ``serve --qpc_path`` does (tokenizer and model files inside it, no torch; an image or audio
classifier's: its processor, which imports torch), shipped like a decoder's.
``--ray --qpc_path`` serves an artifact compiled before, a decoder's, a vision-language model's or an encoder's, the
replicas opening it as ``serve --qpc_path`` does.

Ray Serve replaces a dead replica (health checks call ``check_health``) and drains ongoing requests
before stopping one (``graceful_shutdown_timeout_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from QEfficient.distributed import require_ray
from QEfficient.distributed.shipping import Shipment, receive, receive_vision
from QEfficient.export.graph_names import LOGITS
from QEfficient.serving.artifact import ServingArtifact, open_app
from QEfficient.serving.protocol import APIError

require_ray()

from ray import serve  # noqa: E402
from ray.exceptions import ActorUnavailableError, RayActorError  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response, StreamingResponse  # noqa: E402

logger = logging.getLogger(__name__)

APP_NAME = "qefficient"
REPLICA_HEADER = b"x-qeff-replica"
ENCODER_TASK = "encoder_task"  # in an engine's artifact dict: "embed" or "score" (a BGE-M3's: a token task), for an encoder's
# A replica that died mid-request is replaced within seconds; three more tries ride that out.
REPLICA_FAILURES = (RayActorError, ActorUnavailableError)
# How often a stopping replica counts its ongoing requests. Ray Serve sleeps this long before its first count (2 s by
# default), so every stop (a scale-down, a deletion, a shutdown) took at least that long with no request left to finish.
DRAIN_CHECK_S = 0.2


@dataclass
class ReplicaOptions:
    """How many engine replicas, how big, and how Ray Serve scales them."""

    num_replicas: int = 1
    cores_per_replica: int = 1
    min_replicas: int | None = None  # with max_replicas: autoscaling between the two
    max_replicas: int | None = None
    target_ongoing_requests: float | None = None  # default: the engine's slots (full_batch_size)
    full_batch_size: int = 4
    max_queue: int = 64
    pin_cores: bool = True
    retries: int = 3
    graceful_shutdown_timeout_s: float = 60.0
    runtime_env: dict | None = None  # the replicas' Ray runtime_env (e.g. env_vars: a node-local QEFF_HOME)

    def engine_config(self) -> dict:
        """Keyword arguments for ``QEffEngine.options``."""
        config: dict = {
            "ray_actor_options": {"num_cpus": self.cores_per_replica, **({"runtime_env": self.runtime_env} if self.runtime_env else {})},
            # room for every slot and the app's own queue: a full replica answers 429 as the single
            # server does, instead of requests waiting unseen in Ray's router
            "max_ongoing_requests": self.full_batch_size + self.max_queue + 1,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
            "graceful_shutdown_wait_loop_s": DRAIN_CHECK_S,
            "health_check_period_s": 2.0,
            "health_check_timeout_s": 30.0,
        }
        if (self.max_replicas is not None and self.max_replicas != self.num_replicas) or self.min_replicas is not None:
            low = self.min_replicas if self.min_replicas is not None else self.num_replicas
            high = self.max_replicas if self.max_replicas is not None else max(low, self.num_replicas)
            if not 0 <= low <= high or high < 1:
                raise ValueError(f"Replica bounds must satisfy 0 <= min_replicas <= max_replicas, 1 <= max_replicas; got {low}..{high}.")
            config["autoscaling_config"] = {
                "min_replicas": low,
                "initial_replicas": min(max(self.num_replicas, low), high),
                "max_replicas": high,
                "target_ongoing_requests": self.target_ongoing_requests or self.full_batch_size,
            }
        else:
            if self.num_replicas < 1:
                raise ValueError(f"num_replicas must be at least 1, got {self.num_replicas}.")
            config["num_replicas"] = self.num_replicas
        return config


def pin_to_cores(local_rank: int, count: int) -> list[int]:
    """Pin this process to ``count`` of the cores it may use, the block for ``local_rank`` (wrapping)."""
    cores = sorted(os.sched_getaffinity(0))
    start = (local_rank * count) % len(cores)
    chosen = [cores[(start + i) % len(cores)] for i in range(min(count, len(cores)))]
    os.sched_setaffinity(0, chosen)
    return chosen


@serve.deployment(name="QEffEngine")
class QEffEngine:
    """One engine and its FastAPI app; ``forward`` runs a request through the app in-process."""

    def __init__(
        self,
        artifact: dict,
        cores: int,
        max_queue: int,
        api_key: str | None,
        max_body_bytes: int | None,
        pin: bool,
        shipment: Shipment | None = None,
    ) -> None:
        if shipment is not None:  # the nodes may share no disk: this node's copy, from the object store if need be
            qpc_path, tokenizer_dir = receive(shipment)
            inside = artifact.get("tokenizer_dir") and Path(artifact["tokenizer_dir"]).is_relative_to(artifact["qpc_path"])
            if tokenizer_dir is None and inside:  # the artifact's own tokenizer (or processor) folder: this node's copy of it
                tokenizer_dir = qpc_path / Path(artifact["tokenizer_dir"]).relative_to(artifact["qpc_path"])
            artifact = {**artifact, "qpc_path": str(qpc_path)} | ({"tokenizer_dir": str(tokenizer_dir)} if tokenizer_dir else {})
            if (vision := receive_vision(shipment)) is not None and ENCODER_TASK in artifact:  # a two-graph encoder's
                artifact["server_options"] = {**(artifact.get("server_options") or {}), "vision_qpc_path": str(vision)}
            elif vision is not None:
                artifact["vision_language"] = {**artifact["vision_language"], "vision_qpc_path": str(vision)}
        self.qpc_path = artifact["qpc_path"]
        if pin:
            rank = serve.get_replica_context().rank
            self.cores = pin_to_cores(getattr(rank, "local_rank", rank or 0), cores)
        if ENCODER_TASK in artifact:  # an encoder's artifact: its embeddings or scores server (a text encoder's without torch)
            from QEfficient.serving.encoder_artifact import open_compiled_encoder_app

            names, task = artifact["served_names"], artifact[ENCODER_TASK]
            options = (cores, api_key, max_body_bytes, task)
            pooler, two_graphs = artifact.get("pooler"), artifact.get("server_options")
            self.app, self.runner = open_compiled_encoder_app(self.qpc_path, names, *options, pooler=pooler, server_options=two_graphs)
        else:
            self.app, self.runner = open_app(ServingArtifact(**artifact), cores, max_queue, api_key, max_body_bytes)
        self.replica_id = serve.get_replica_context().replica_id.unique_id

    async def forward(self, meta: dict, body: bytes) -> AsyncIterator[dict]:
        """The app's ASGI messages for one request (``http.response.start``, then body pieces)."""
        messages: asyncio.Queue = asyncio.Queue()
        gone = asyncio.Event()
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()  # the client's side went away (the gateway cancelled this generator)
            return {"type": "http.disconnect"}

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": "http",
            "method": meta["method"],
            "path": meta["path"],
            "raw_path": meta["path"].encode(),
            "query_string": meta["query_string"],
            "root_path": "",
            "headers": meta["headers"],
            "client": meta.get("client"),
            "server": None,
        }
        task = asyncio.create_task(self.app(scope, receive, messages.put))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # the app answered its own errors
        try:
            while True:
                getter = asyncio.ensure_future(messages.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    while not messages.empty():
                        yield messages.get_nowait()
                    return
                message = getter.result()
                if message["type"] == "http.response.start":  # which replica answered: for logs and the fault tests
                    message["headers"] = [*message.get("headers", []), (REPLICA_HEADER, self.replica_id.encode())]
                yield message
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    return
        finally:
            gone.set()

    async def answer(self, meta: dict, body: bytes) -> list[dict]:
        """The app's whole answer to one request, in one reply (one round trip for the gateway)."""
        return [message async for message in self.forward(meta, body)]

    def identity(self) -> tuple[str, int]:
        """(replica id, process id)."""
        return self.replica_id, os.getpid()

    def artifact_path(self) -> str:
        """The artifact this replica runs (the shared one, or its own received copy)."""
        return self.qpc_path

    def check_health(self) -> None:
        """Ray Serve's health check: a replica whose engine thread stopped is replaced."""
        if not self.runner.alive:
            raise RuntimeError("the replica's engine thread has stopped")

    def __del__(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.stop()


def _headers(raw: list) -> list[tuple[bytes, bytes]]:
    return [(bytes(k), bytes(v)) for k, v in raw]


def _asks_for_stream(body: bytes) -> bool:
    """Whether the body is a JSON object with ``"stream": true`` (anything else is answered whole)."""
    if b'"stream"' not in body:
        return False
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("stream") is True


@serve.deployment(
    name="QEffGateway", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=4096, graceful_shutdown_wait_loop_s=DRAIN_CHECK_S
)
class QEffGateway:
    """The HTTP ingress: forwards to an engine replica and retries when one dies mid-request."""

    def __init__(self, engine, max_body_bytes: int, retries: int) -> None:
        self.engine, self.streams = engine, engine.options(stream=True)
        self.max_body_bytes, self.retries = max_body_bytes, retries

    async def __call__(self, request: Request) -> Response:
        # At most one byte past the limit travels on: the app then answers its own 413.
        pieces, size = [], 0
        async for piece in request.stream():
            pieces.append(piece)
            size += len(piece)
            if size > self.max_body_bytes:
                break
        body = b"".join(pieces)[: self.max_body_bytes + 1]
        meta = {
            "method": request.method,
            "path": request.url.path,
            "query_string": request.url.query.encode(),
            "headers": [(k, v) for k, v in request.headers.raw],
            "client": list(request.client) if request.client else None,
        }
        failure: BaseException | None = None
        streaming = _asks_for_stream(body)
        for attempt in range(self.retries + 1):
            try:
                if not streaming:  # whatever the app answers, it comes whole (an event stream too)
                    start, *rest = await self.engine.answer.remote(meta, body)
                    response = Response(b"".join(m.get("body", b"") for m in rest), status_code=start["status"])
                    response.raw_headers = _headers(start.get("headers", []))
                    return response
                replies = self.streams.forward.remote(meta, body)
                start = await replies.__anext__()
                status, headers = start["status"], _headers(start.get("headers", []))
                if dict(headers).get(b"content-type", b"").startswith(b"text/event-stream"):
                    response = StreamingResponse(self._relay(replies), status_code=status)
                    response.raw_headers = headers
                    return response
                content = b"".join([m.get("body", b"") async for m in replies])
                response = Response(content, status_code=status)
                response.raw_headers = headers
                return response
            except REPLICA_FAILURES as err:
                failure = err
                logger.warning("replica failed mid-request (try %d of %d): %s", attempt + 1, self.retries + 1, err)
                await asyncio.sleep(0.2 * (attempt + 1))
        return APIError(
            503,
            f"No replica could finish this request ({type(failure).__name__}); try again later.",
            kind="server_error",
            code="replica_unavailable",
        ).response()

    async def _relay(self, replies) -> AsyncIterator[bytes]:
        """The stream's bytes; a replica lost mid-stream ends it with an error event, then [DONE]."""
        try:
            async for message in replies:
                if message.get("body"):
                    yield message["body"]
        except REPLICA_FAILURES as err:
            logger.warning("replica failed mid-stream: %s", err)
            error = APIError(
                503,
                f"The replica serving this stream stopped ({type(err).__name__}); the answer is incomplete, send the request again.",
                kind="server_error",
                code="replica_failed",
            )
            yield f"data: {json.dumps(error.body())}\n\n".encode()
            yield b"data: [DONE]\n\n"
        finally:
            replies.cancel()


def build_application(
    artifact: ServingArtifact,
    options: ReplicaOptions,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    shipment: Shipment | None = None,
):
    """The Ray Serve application (gateway bound to the engine deployment), ready for ``serve.run``.

    ``shipment`` (``shipping.ship``): replicas take the artifact from Ray's object store where they do
    not see the driver's copy; the shipping process must keep running while replicas start."""
    from QEfficient.serving import app, vision_language

    default = vision_language.DEFAULT_MAX_BODY_BYTES if artifact.vision_language is not None else app.DEFAULT_MAX_BODY_BYTES
    limit = max_body_bytes or default
    engine = QEffEngine.options(**options.engine_config()).bind(
        asdict(artifact), options.cores_per_replica, options.max_queue, api_key, limit, options.pin_cores, shipment
    )
    return QEffGateway.bind(engine, limit, options.retries)


def build_encoder_application(
    qpc_path: str,
    task: str,
    options: ReplicaOptions,
    served_names: list[str] | None = None,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    shipment: Shipment | None = None,
    pooler: dict | None = None,
    server_options: dict | None = None,
):
    """The Ray Serve application over an encoder's artifact (QEFFAutoModel's, a sequence classifier's, a ColBERT's,
    BGE-M3's, SPLADE's, an image or audio classifier's or a page retriever's text artifact): each replica serves its
    embeddings (``task`` "embed", with ``pooler``: --pooler_config's defaults), scores ("score"), a ColBERT's or a page
    retriever's routes ("embed", with ``server_options``: ctx_len, max_pages), a SPLADE model's vectors ("embed"), /classify
    or a BGE-M3 token task ("token_embed", "token_classify") as ``serve --qpc_path`` does (without torch, but for the
    image and page models). ``shipment``: ``shipping.ship(qpc_path, None)``, the artifact holding its tokenizer and model
    files (a page retriever's: with its vision artifact)."""
    from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES

    limit = max_body_bytes or DEFAULT_MAX_BODY_BYTES
    artifact = {"qpc_path": str(qpc_path), ENCODER_TASK: task, "served_names": list(served_names or [])}
    artifact |= {"pooler": pooler} if pooler else {}
    artifact |= {"server_options": server_options} if server_options is not None else {}
    engine = QEffEngine.options(**options.engine_config()).bind(
        artifact, options.cores_per_replica, options.max_queue, api_key, limit, options.pin_cores, shipment
    )
    return QEffGateway.bind(engine, limit, options.retries)


def app_builder(args: dict):
    """For ``serve run`` / ``serve deploy`` config files (``import_path: QEfficient.distributed.ray_serve:app_builder``).

    ``args`` takes the CLI's option names (model_name, prefill_seq_len, ctx_len, full_batch_size,
    num_replicas, cores_per_replica, min_replicas, max_replicas, target_ongoing_requests, max_queue,
    api_key, max_body_bytes, ...). The model is compiled here, once, where the application is built;
    the config's ``deployments:`` section may still override replica counts and autoscaling.
    ``serve deploy`` builds the application in a task that ends before replicas start, so nothing
    is shipped through the object store here: the nodes need a shared QEFF_HOME.
    """
    from QEfficient.cloud.serve_args import parse_args

    if args.get("ship_artifact", "off") not in ("off", None):
        raise ValueError(
            "ship_artifact is for `python -m QEfficient.cloud.serve --ray` (the driver keeps the shipped chunks alive); "
            "a config file needs a QEFF_HOME shared by the nodes."
        )
    args = {**args, "ship_artifact": "off"}

    argv = []
    for key, value in args.items():
        if value is True:
            argv.append(f"--{key}")
        elif value not in (False, None):  # a mapping or list (hf_overrides, lora) as the JSON the CLI takes
            argv += [f"--{key}", json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
    return application_from_args(parse_args(["--ray", *argv]))


def application_from_args(args):
    """The application the CLI's parsed arguments describe (compiles the model first, then ships
    it into the object store when ``args.ship_artifact`` says so)."""
    from QEfficient.cloud._cli import resolve_model_name
    from QEfficient.distributed.shipping import ship, should_ship
    from QEfficient.serving.artifact import compile_for_serving
    from QEfficient.serving.tasks import is_sparse_encoder, names_splade, pooling_task, reads_images, resolve_pooler_task
    from QEfficient.utils.checks import check_positive

    # (the counts every server has: parse_args) bad numbers fail before anything is compiled, as the single server's
    check_positive(**{name: getattr(args, name) for name in ("img_size", "max_num_images") if getattr(args, name, None) is not None})
    options = ReplicaOptions(
        num_replicas=args.num_replicas,
        cores_per_replica=args.cores_per_replica,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        target_ongoing_requests=args.target_ongoing_requests,
        full_batch_size=args.full_batch_size,
        max_queue=args.max_queue,
    )
    if getattr(args, "qpc_path", None):  # --model_name is then a name requests may use
        return _artifact_application(args, options)
    model_name, gguf_file = resolve_model_name(args.model_name, args.gguf_file)
    pooler, task = getattr(args, "pooler_task", None), getattr(args, "task", "auto")
    bge_m3_task, task, hf_overrides = resolve_pooler_task(model_name, gguf_file, pooler, task, getattr(args, "hf_overrides", None))
    if bge_m3_task is not None:  # compiled here (as the single server compiles it), each replica serves the artifact's task
        return _encoder_replicas(_compile_encoder(model_name, task, args), bge_m3_task, options, [model_name], args)
    if names_splade(hf_overrides) or (gguf_file is None and is_sparse_encoder(model_name)):  # the single server's refusals
        return _encoder_replicas(_compile_encoder(model_name, task, args), "embed", options, [model_name], args)
    # what the rest compiles and serves (build_server_from_args resolves no pooler task twice)
    args = argparse.Namespace(**{**vars(args), "task": task, "hf_overrides": hf_overrides, "pooler_task": None})
    pooling = pooling_task(model_name, gguf_file, task, hf_overrides)
    if pooling == "embed" and reads_images(model_name):  # CLIP's kind: compiled here, each replica serves its two artifacts
        return _encoder_replicas(_compile_encoder(model_name, "embed", args), "embed", options, [model_name], args)
    if gguf_file is None:
        from QEfficient.serving.tasks import is_colbert, is_retriever, is_text_to_speech

        if is_text_to_speech(model_name):  # VITS: compiled here, each replica serves its artifact (/v1/audio/speech)
            return _encoder_replicas(_compile_encoder(model_name, task, args), "auto", options, [model_name], args)
        if is_retriever(model_name):  # compiled here (its options checked there), each replica serves its two artifacts
            return _encoder_replicas(_compile_encoder(model_name, task, args), "embed", options, [model_name], args)
        if is_colbert(model_name):  # compiled here (another --task refused there), each replica serves its artifact's routes
            pooling = "embed" if task in ("auto", "embed") else task
    if pooling is not None:  # an encoder: compiled here, each replica serves the artifact (one request at a time)
        qpc_path = _compile_encoder(model_name, pooling, args)  # (--pooler_config's defaults checked there, as by the server)
        return _encoder_replicas(qpc_path, pooling, options, [model_name], args, getattr(args, "pooler_defaults", None))
    if getattr(args, "pooler_defaults", None) is not None:  # (an encoder's server took them above)
        raise ValueError(
            f"--pooler_config's {', '.join(args.pooler_defaults)} set an embedding model's vectors; '{model_name}' is served otherwise."
        )
    artifact = compile_for_serving(
        model_name,
        gguf_file,
        args.prefill_seq_len,
        args.ctx_len,
        args.full_batch_size,
        args.cores_per_replica,
        args.mxfp6_matmul,
        args.mxint8_kv_cache,
        prompt_lookup_num_tokens=args.prompt_lookup_num_tokens,  # the replicas' engines speculate too
        lora=getattr(args, "lora", None),
        draft_model=getattr(args, "draft_model", None),
        num_speculative_tokens=getattr(args, "num_speculative_tokens", None),
        img_size=getattr(args, "img_size", None),
        max_num_images=getattr(args, "max_num_images", None),
        hf_overrides=getattr(args, "hf_overrides", None),
    )
    parsers = {name: getattr(args, name, None) for name in ("tool_call_parser", "reasoning_parser")}
    artifact = replace(artifact, chat_template=getattr(args, "chat_template", None), **parsers)
    shipment = None
    if should_ship(args.ship_artifact):
        if artifact.vision_language is not None:  # the language artifact holds the processor; the vision graph goes too
            shipment = ship(artifact.qpc_path, None, artifact.vision_language["vision_qpc_path"])
        else:
            shipment = ship(artifact.qpc_path, artifact.tokenizer_dir)
    return build_application(artifact, options, args.api_key, args.max_body_bytes, shipment)


def _artifact_application(args, options: ReplicaOptions):
    """``--ray --qpc_path``: each replica serves the artifact, as ``serve --qpc_path`` does (without the model's folder):
    an encoder's embeddings or scores (an image or audio classifier's /classify), or a decoder's (or vision-language model's)
    generation."""
    from QEfficient.cloud.serve import artifact_pooler_task, decoder_artifact_from_args, refuse_generation_options
    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.distributed.shipping import ship, should_ship
    from QEfficient.serving.encoder_artifact import (
        check_kept_processor,
        check_servable,
        classifies_media,
        embeds_texts_and_images,
        is_encoder_artifact,
        serves_pages,
        speaks,
    )
    from QEfficient.serving.tasks import TASKS

    if getattr(args, "hf_overrides", None):
        raise ValueError("--hf_overrides applies when a model is compiled; an artifact keeps what it was compiled with: leave it out.")
    qconfig = read_artifact(Path(args.qpc_path))
    pooler_task = artifact_pooler_task(args, qconfig)  # a BGE-M3 artifact's token task; others refused
    if not is_encoder_artifact(qconfig):
        if getattr(args, "pooler_defaults", None) is not None:
            raise ValueError(
                f"--pooler_config's {', '.join(args.pooler_defaults)} set an encoder's embeddings; '{args.qpc_path}' is a decoder's."
            )
        artifact = decoder_artifact_from_args(args, args.cores_per_replica)
        # autoscaling's default target: the artifact's slots
        options = replace(options, full_batch_size=qconfig["compile_params"].get("full_batch_size") or options.full_batch_size)
        shipment = None
        if should_ship(args.ship_artifact):  # the artifact holds its tokenizer (a vision-language model's: its processor)
            vision = (artifact.vision_language or {}).get("vision_qpc_path")
            shipment = ship(artifact.qpc_path, None, vision)
        return build_application(artifact, options, args.api_key, args.max_body_bytes, shipment)
    refuse_generation_options(args, takes_pages=serves_pages(qconfig))
    check_servable(args.qpc_path, qconfig)
    if classifies_media(qconfig):  # its processor checked here, not in every replica
        from QEfficient.serving.classify_media_app import artifact_processor

        artifact_processor(args.qpc_path, qconfig)
    if serves_pages(qconfig) or embeds_texts_and_images(qconfig) or speaks(qconfig):  # likewise
        if getattr(args, "pooler_defaults", None) is not None:
            raise ValueError(
                f"'{args.qpc_path}' keeps its own processor and outputs: --pooler_config's {', '.join(args.pooler_defaults)} do not apply."
            )
        check_kept_processor(args.qpc_path, qconfig)
    family = qconfig.get("own_heads")
    if getattr(args, "pooler_defaults", None) is not None and family:  # (refused here, not in each replica)
        raise ValueError(
            f"'{args.qpc_path}' is a {family} model's artifact: --pooler_config's {', '.join(args.pooler_defaults)} set pooled "
            "embeddings; leave them out."
        )
    names = [args.model_name] if args.model_name else []
    if family == "BGE-M3":  # one of its token tasks, named as vLLM names them (artifact_pooler_task)
        return _encoder_replicas(args.qpc_path, pooler_task, options, names, args)
    task = "score" if qconfig["output_name"] == LOGITS else "auto" if speaks(qconfig) else "embed"
    if args.task not in (TASKS[0], task):
        raise ValueError(f"'{args.qpc_path}' was compiled for --task {task}, not {args.task}: leave --task out.")
    pooler = getattr(args, "pooler_defaults", None)
    if pooler is not None and task != "embed":
        raise ValueError(
            f"'{args.qpc_path}' is a classifier's artifact: --pooler_config's {', '.join(pooler)} set embeddings; leave them out."
        )
    return _encoder_replicas(args.qpc_path, task, options, names, args, pooler)


def _encoder_replicas(qpc_path: str, task: str, options: ReplicaOptions, names: list[str], args, pooler: dict | None = None):
    """``build_encoder_application`` for an encoder's artifact: shipped as ``args.ship_artifact`` says, one request at a
    time per replica (its autoscaling target)."""
    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.distributed.shipping import ship, should_ship
    from QEfficient.serving.classify_media_app import MAX_REQUEST_AUDIO_BYTES
    from QEfficient.serving.encoder_artifact import companion_artifact, embeds_texts_and_images, serves_pages, speaks
    from QEfficient.serving.tts_app import DEFAULT_MAX_TTS_BYTES
    from QEfficient.serving.vision_language import DEFAULT_MAX_BODY_BYTES as IMAGES_MAX_BODY_BYTES

    qconfig = read_artifact(Path(qpc_path))  # requests of images or audio: the single server's limit
    media = {"image_classifier": IMAGES_MAX_BODY_BYTES, "audio_classifier": MAX_REQUEST_AUDIO_BYTES}
    limit = args.max_body_bytes or next((limit for flag, limit in media.items() if qconfig.get(flag)), None)
    if embeds_texts_and_images(qconfig) or speaks(qconfig):
        limit = args.max_body_bytes or (IMAGES_MAX_BODY_BYTES if embeds_texts_and_images(qconfig) else DEFAULT_MAX_TTS_BYTES)
    # a page retriever: the single server's query and page limits; it and a contrastive model: their second artifact too
    pages = serves_pages(qconfig)
    server_options = {"ctx_len": args.ctx_len, "max_pages": getattr(args, "max_num_images", None)} if pages else None
    shipment = ship(qpc_path, None, companion_artifact(qpc_path, qconfig)) if should_ship(args.ship_artifact) else None
    options = replace(options, full_batch_size=1)
    return build_encoder_application(str(qpc_path), task, options, names, args.api_key, limit, shipment, pooler, server_options)


def _compile_encoder(model_name: str, task: str, args) -> str:
    """The encoder's artifact, compiled as the single-process server compiles it (the same checks and refusals)."""
    from QEfficient.cloud.serve import build_server_from_args

    app, runner = build_server_from_args(args, model_name, None, args.cores_per_replica, task)
    runner.stop()
    from QEfficient.serving.encoder_artifact import check_servable

    check_servable(app.state.qpc_path)  # what a replica needs (a fast tokenizer): refused here, not in every replica
    return str(app.state.qpc_path)


def run_cli(args) -> None:
    """``python -m QEfficient.cloud.serve --ray``: start (or join) Ray, deploy, serve until interrupted."""
    import signal
    import threading

    ray = require_ray()
    ray.init(address=args.ray_address, ignore_reinit_error=True)
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(application_from_args(args), name=APP_NAME, route_prefix="/", blocking=False)
    print(f"[QEfficient] serving on http://{args.host}:{args.port} with Ray Serve; Ctrl+C stops", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()  # replicas drain their ongoing requests first (graceful_shutdown_timeout_s)
