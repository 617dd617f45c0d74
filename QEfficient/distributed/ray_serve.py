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
replicas opening it as ``serve --qpc_path`` does. What the command line's arguments build: cli_application.py.

Ray Serve replaces a dead replica (health checks call ``check_health``) and drains ongoing requests
before stopping one (``graceful_shutdown_timeout_s``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

from QEfficient.distributed import require_ray
from QEfficient.distributed.shipping import Shipment, receive, receive_vision
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
    """The application the CLI's parsed arguments describe (distributed/cli_application.py): the model compiled first,
    then shipped into the object store when ``args.ship_artifact`` says so."""
    from QEfficient.distributed.cli_application import application_from_args as build

    return build(args)


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
