"""Ray Serve replicas and Ray Data batch jobs on one local Ray instance (2 CPUs) shared by the file."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.loopback import loopback_http

ray = pytest.importorskip("ray", reason='Ray is optional: pip install "QEfficient[ray]"')

from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES  # noqa: E402
from QEfficient.serving.artifact import compile_for_serving, open_app  # noqa: E402

PROMPTS = ["My name is", "The sun rises", "Once upon a time a robot", "What is the capital of France?", "Paris", "Numbers: 1 2"]
API_KEY = "test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def serve_url(ray_cluster) -> str:
    """One Serve instance (controller and HTTP proxy) for the file: each test runs its application in it and deletes it
    after (a start and a shutdown of Serve took seconds each)."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def artifact(tiny_model_dir):
    return compile_for_serving(str(tiny_model_dir("llama")), None, prefill_seq_len=8, ctx_len=96, full_batch_size=3, num_cores=1)


@pytest.fixture(scope="module")
def single(artifact):
    """The single-process server's app over the same artifact, to compare answers with."""
    from starlette.testclient import TestClient

    app, runner = open_app(artifact, 1, max_queue=32, api_key=API_KEY, max_body_bytes=2048)
    with TestClient(app) as client:
        yield client
    runner.stop()


@pytest.fixture(scope="module")
def replica_home(tmp_path_factory):
    return tmp_path_factory.mktemp("replica-home")


@pytest.fixture(scope="module")
def deployment(serve_url, artifact, replica_home, tmp_path_factory):
    """Two engine replicas of one core each behind the gateway, on real HTTP, on nodes that share no
    disk with the driver: their QEFF_HOME starts empty and the driver's copy of the artifact is gone
    once shipped, so they receive it through Ray's object store."""
    from ray import serve

    from QEfficient.distributed.ray_serve import APP_NAME, ReplicaOptions, build_application
    from QEfficient.distributed.shipping import ship

    driver_disk = tmp_path_factory.mktemp("driver-disk")
    qpc = shutil.copytree(artifact.qpc_path, driver_disk / "qpc")
    tokenizer = shutil.copytree(artifact.tokenizer_dir, driver_disk / "tokenizer")
    shipment = ship(qpc, tokenizer)
    shutil.rmtree(driver_disk)
    options = ReplicaOptions(
        num_replicas=2,
        cores_per_replica=1,
        full_batch_size=3,
        max_queue=32,
        pin_cores=False,
        runtime_env={"env_vars": {"QEFF_HOME": str(replica_home)}},
    )
    shipped = dataclasses.replace(artifact, qpc_path=str(qpc), tokenizer_dir=str(tokenizer))
    serve.run(build_application(shipped, options, api_key=API_KEY, max_body_bytes=2048, shipment=shipment), name=APP_NAME, route_prefix="/")
    yield serve_url
    serve.delete(APP_NAME)


@pytest.fixture
def bare_serve(serve_url):
    """The module's Serve with no application (its URL): a test's own replicas and the batch jobs' actors need the CPUs
    the module's deployment holds. Deletes it first (idempotent), and the test's own application after: the tests of
    ``deployment`` come before those of this fixture in the file, which runs in its order."""
    from ray import serve

    from QEfficient.distributed.ray_serve import APP_NAME

    serve.delete(APP_NAME)
    yield serve_url
    serve.delete(APP_NAME)


def complete(url: str, prompt: str, max_tokens: int = 12, **extra) -> httpx.Response:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **extra}
    return loopback_http.post(f"{url}/v1/completions", json=body, headers=AUTH, timeout=120)


def sse_events(response_lines) -> list[str]:
    return [line[len("data: ") :] for line in response_lines if line.startswith("data: ")]


def test_replicas_answer_as_the_single_process_server(deployment, single):
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda p: complete(deployment, p), PROMPTS * 2))
    for prompt, answer in zip(PROMPTS * 2, answers):
        expected = single.post("/v1/completions", json={"prompt": prompt, "max_tokens": 12, "temperature": 0}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"] == expected.json()["choices"]
        assert answer.json()["usage"] == expected.json()["usage"]
    # the tiny tokenizer has no chat template: stream a completion
    streamed = {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0, "stream": True}
    with loopback_http.stream("POST", f"{deployment}/v1/completions", json=streamed, headers=AUTH, timeout=60) as r:
        status, lines = r.status_code, list(r.iter_lines())
    events = sse_events(lines)
    assert status == 200 and events, (status, lines)
    reference = sse_events(single.post("/v1/completions", json=streamed, headers=AUTH).text.splitlines())
    assert events[-1] == reference[-1] == "[DONE]"

    def stream_of(evts: list[str]) -> tuple[str, list]:
        """The streamed text and the finish reasons: how tokens group into deltas depends on timing."""
        choices = [c for e in evts[:-1] for c in json.loads(e)["choices"]]
        text = "".join(c["text"] for c in choices)
        return text, [c["finish_reason"] for c in choices if c["finish_reason"]]

    assert stream_of(events) == stream_of(reference)


@pytest.mark.parametrize(
    "method, route, kwargs",
    [
        ("POST", "/v1/completions", {"json": {"prompt": "hi"}}),  # no key: 401
        ("POST", "/v1/completions", {"json": {"prompt": "hi", "max_tokens": -1}, "headers": AUTH}),  # 400
        ("POST", "/v1/completions", {"json": {"prompt": "x" * 4096}, "headers": AUTH}),  # 413
        ("POST", "/v1/completions", {"content": b"{not json", "headers": AUTH}),
        ("POST", "/v1/completions", {"json": {"prompt": "hi", "model": "nope"}, "headers": AUTH}),  # 404
        ("GET", "/v1/nothing", {"headers": AUTH}),
        ("GET", "/v1/models", {"headers": AUTH}),
    ],
)
def test_auth_limits_and_errors_are_the_single_servers(deployment, single, method, route, kwargs):
    ours = loopback_http.request(method, f"{deployment}{route}", timeout=60, **kwargs)
    theirs = single.request(method, route, **kwargs)
    assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json())
    assert ours.headers.get("www-authenticate") == theirs.headers.get("www-authenticate")


def test_health(deployment):
    assert loopback_http.get(f"{deployment}/health", timeout=30).json()["status"] == "ok"


def test_replicas_run_the_artifact_received_through_the_object_store(deployment, replica_home):
    from ray import serve

    from QEfficient.distributed.ray_serve import APP_NAME
    from QEfficient.utils.cache import verify_entry

    handle = serve.get_deployment_handle("QEffEngine", app_name=APP_NAME)
    paths = {handle.artifact_path.remote().result(timeout_s=30) for _ in range(6)}
    assert len(paths) == 1  # both replicas: one copy, built once under the lock, then reused
    (path,) = paths
    assert path.startswith(str(replica_home / "shipped" / "qpc-")) and verify_entry(path) is None


def test_a_shipped_artifact_the_node_already_sees_is_used_in_place(ray_cluster, artifact, qeff_home):
    from QEfficient.distributed.shipping import receive, ship

    assert receive(ship(artifact.qpc_path, artifact.tokenizer_dir)) == (Path(artifact.qpc_path), Path(artifact.tokenizer_dir))
    assert not (qeff_home / "shipped").exists()


def replica_pids(count: int) -> dict[str, int]:
    """{replica id: pid} of the engine replicas, once ``count`` of them have answered."""
    from ray import serve

    from QEfficient.distributed.ray_serve import APP_NAME

    handle = serve.get_deployment_handle("QEffEngine", app_name=APP_NAME)
    pids: dict[str, int] = {}
    for _ in range(50):
        pids.update(handle.identity.remote().result(timeout_s=30) for _ in range(4))
        if len(pids) >= count:
            break
    return pids


def running_replicas() -> int:
    from ray import serve

    from QEfficient.distributed.ray_serve import APP_NAME

    states = serve.status().applications[APP_NAME].deployments["QEffEngine"].replica_states
    return states.get("RUNNING", 0)


def test_a_killed_replica_loses_no_request_and_is_replaced(deployment, single):
    pids = replica_pids(2)
    prompts = PROMPTS * 5  # 30 requests of 60 tokens on 2 x 3 slots: the kill lands mid-load
    expected = {
        p: single.post("/v1/completions", json={"prompt": p, "max_tokens": 60, "temperature": 0}, headers=AUTH).json()["choices"][0]["text"]
        for p in PROMPTS
    }
    body = {"prompt": PROMPTS[0], "max_tokens": 60, "temperature": 0, "stream": True}
    with ThreadPoolExecutor(max_workers=30) as pool:
        answers = [pool.submit(lambda p: complete(deployment, p, 60), p) for p in prompts]
        time.sleep(0.3)  # the replicas' queues fill: a stream opened now waits behind them
        with loopback_http.stream("POST", f"{deployment}/v1/completions", json=body, headers=AUTH, timeout=120) as r:
            victim = pids[r.headers["x-qeff-replica"]]
            os.kill(victim, signal.SIGKILL)  # while this stream and the replica's queue are unfinished
            events = sse_events(r.iter_lines())
        results = [f.result() for f in answers]
    assert events[-1] == "[DONE]", events[-3:]
    last = json.loads(events[-2])
    if "error" in last:  # the kill cut the stream: it says so
        assert last["error"]["code"] == "replica_failed", events[-3:]
    else:  # the replica had already sent the whole stream when the kill landed: it must be complete, not truncated
        chunks = [json.loads(e)["choices"][0] for e in events[:-1]]
        assert chunks[-1]["finish_reason"] is not None, events[-3:]
        assert "".join(c["text"] for c in chunks) == expected[PROMPTS[0]]
    for prompt, answer in zip(prompts, results):
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["text"] == expected[prompt]

    def healed() -> bool:
        pids_now = replica_pids(2)
        return running_replicas() == 2 and len(pids_now) == 2 and victim not in pids_now.values()

    streak = 0  # Serve's status can still count the dead replica for a moment: ask for 3 checks in a row
    for _ in range(300):  # Ray Serve replaces the replica
        streak = streak + 1 if healed() else 0
        if streak == 3:
            break
        time.sleep(0.3)
    assert streak == 3, "the deployment did not heal back to 2 replicas"
    assert complete(deployment, "Paris").status_code == 200


def test_a_damaged_shipment_is_refused_and_leaves_nothing_in_the_cache(ray_cluster, artifact, tmp_path, monkeypatch):
    from QEfficient.distributed.shipping import receive, ship

    qpc = shutil.copytree(artifact.qpc_path, tmp_path / "driver" / "qpc")
    shipment = ship(qpc, artifact.tokenizer_dir)
    shutil.rmtree(qpc)  # this "node" does not see the driver's copy
    first = next(iter(shipment.artifact.digests))
    damaged = dataclasses.replace(shipment.artifact, digests={**shipment.artifact.digests, first: "0" * 64})
    monkeypatch.setenv("QEFF_HOME", str(tmp_path / "home"))
    with pytest.raises(OSError, match="arrived damaged"):
        receive(dataclasses.replace(shipment, artifact=damaged))
    assert not (tmp_path / "home" / "shipped").exists()  # the folder made for it went too


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("batch") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(PROMPTS * 2)))
    return path


def test_a_vision_language_model_on_a_replica_answers_as_hf(bare_serve, tmp_path):
    """A replica serves the driver's two compiled graphs without loading the model, shipped through the object store to
    a node that shares no disk with the driver (both artifacts are gone from it), and takes images in chat as the single
    server."""
    from ray import serve
    from transformers import AutoProcessor

    from QEfficient.distributed.ray_serve import APP_NAME, ReplicaOptions, build_application
    from QEfficient.distributed.shipping import ship
    from tests.test_server_vlm import CHAT_TEMPLATE, TOKENS, data_url, hf_chat_text, image
    from tests.vlm_fixtures import build_llava

    folder = build_llava(tmp_path / "llava")
    processor = AutoProcessor.from_pretrained(folder)
    processor.chat_template = CHAT_TEMPLATE
    processor.save_pretrained(folder)
    artifact = compile_for_serving(str(folder), None, prefill_seq_len=8, ctx_len=96, full_batch_size=2, num_cores=1)
    driver_disk = tmp_path / "driver-disk"
    language, vision = (
        shutil.move(p, driver_disk / Path(p).name) for p in (artifact.qpc_path, artifact.vision_language["vision_qpc_path"])
    )
    shipment = ship(language, None, vision)
    shutil.rmtree(driver_disk)
    replica_home = tmp_path / "replica-home"
    options = ReplicaOptions(
        num_replicas=1,
        cores_per_replica=1,
        full_batch_size=2,
        max_queue=8,
        pin_cores=False,
        runtime_env={"env_vars": {"QEFF_HOME": str(replica_home)}},
    )
    serve.run(
        build_application(dataclasses.replace(artifact, qpc_path=str(language)), options, shipment=shipment),
        name=APP_NAME,
        route_prefix="/",
    )
    img = image(1)
    content = [{"type": "image_url", "image_url": {"url": data_url(img)}}, {"type": "text", "text": "What is this?"}]
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": TOKENS, "temperature": 0}
    r = loopback_http.post(f"{bare_serve}/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    expected = hf_chat_text(
        folder, [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "What is this?"}]}]
    )
    assert r.json()["choices"][0]["message"]["content"] == expected
    assert len(list((replica_home / "shipped").glob("qpc-*"))) == 2  # both graphs, the replica's own copies


def test_embeddings_and_scores_on_a_replica_answer_as_the_single_server(bare_serve, artifact, tmp_path):
    """An encoder's artifact on a replica: all-MiniLM-L6-v2's, shipped through the object store to a node that shares
    no disk with the driver, answers /v1/embeddings, and a cross-encoder and a ColBERT retriever compiled from
    --model_name answer /rerank, a SPLADE model /v1/embeddings and an image and an audio classifier /classify, exactly
    as the single-process server does."""
    from ray import serve
    from starlette.testclient import TestClient

    from QEfficient.cloud.serve import build_from_args
    from QEfficient.cloud.serve_args import parse_args
    from QEfficient.distributed.ray_serve import APP_NAME, ReplicaOptions, app_builder, application_from_args, build_encoder_application
    from QEfficient.distributed.shipping import ship
    from tests.test_encoder import minilm_folder
    from tests.test_server_scores import DOCS, QUERY, classifier

    def single_answer(folder: str, route: str, body: dict, *options: str, ctx_len: str | None = "64") -> tuple[dict, str]:
        limit = ["--ctx_len", ctx_len] if ctx_len else []  # (None: the model's default; an image or audio model takes none)
        app, runner = build_from_args(parse_args(["--model_name", folder, *limit, "--num_cores", "1", *options]))
        answer = TestClient(app).post(route, json=body).json()
        runner.stop()
        return answer, str(app.state.qpc_path)

    # with vLLM's --pooler_config defaults, which the replica receives with the artifact
    minilm, body, pooler = str(minilm_folder()), {"input": PROMPTS}, {"use_activation": False, "pooling_type": "lasttoken"}
    expected, qpc = single_answer(minilm, "/v1/embeddings", body, "--pooler_config", '{"use_activation": false, "pooling_type": "LAST"}')
    driver_disk = tmp_path / "driver-disk"
    copy = shutil.copytree(qpc, driver_disk / "qpc")
    shipment = ship(copy, None)
    shutil.rmtree(driver_disk)
    replica_home = tmp_path / "replica-home"
    options = ReplicaOptions(cores_per_replica=1, pin_cores=False, runtime_env={"env_vars": {"QEFF_HOME": str(replica_home)}})
    application = build_encoder_application(str(copy), "embed", options, [minilm], shipment=shipment, pooler=pooler)
    serve.run(application, name=APP_NAME, route_prefix="/")
    r = loopback_http.post(f"{bare_serve}/v1/embeddings", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert [d["embedding"] for d in r.json()["data"]] == [d["embedding"] for d in expected["data"]]
    assert list((replica_home / "shipped").glob("qpc-*"))  # the replica's own copy, from the object store
    serve.delete(APP_NAME)

    def answers_as_the_single_server(folder: str, route: str, body: dict, key: str, *options: str, ctx_len: str | None = "64") -> str:
        """Deploys the folder from --model_name (with ``options``) and checks its answer's ``key`` on ``route``; the single
        server's artifact."""
        expected, qpc = single_answer(folder, route, body, *options, ctx_len=ctx_len)
        limit = ["--ctx_len", ctx_len] if ctx_len else []
        ray_args = ["--ray", "--model_name", folder, *limit, "--cores_per_replica", "1", "--ship_artifact", "off"]
        serve.run(application_from_args(parse_args([*ray_args, *options])), name=APP_NAME, route_prefix="/")
        r = loopback_http.post(f"{bare_serve}{route}", json=body, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()[key] == expected[key]
        return qpc

    reranker = classifier(tmp_path / "ce", "bert", 1)
    qpc = answers_as_the_single_server(reranker, "/rerank", {"query": QUERY, "documents": DOCS}, "results")
    assert loopback_http.get(f"{bare_serve}/health", timeout=30).status_code == 200
    assert application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--ship_artifact", "off"])) is not None
    with pytest.raises(ValueError, match="compiled for --task score, not embed"):
        application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--task", "embed", "--ship_artifact", "off"]))
    with pytest.raises(ValueError, match="is a classifier's artifact: --pooler_config's use_activation set embeddings"):
        application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--pooler_config", '{"use_activation": false}']))
    with pytest.raises(ValueError, match="--lora are compiled with the model"):
        application_from_args(parse_args(["--ray", "--qpc_path", artifact.qpc_path, "--lora", "a=/x", "--ship_artifact", "off"]))
    with pytest.raises(ValueError, match="model_type cannot change"):  # a config file's mapping reaches the CLI as JSON
        app_builder({"model_name": reranker, "hf_overrides": {"model_type": "llama"}})

    # a ColBERT retriever: compiled by the driver, each replica serves its artifact's late-interaction routes
    serve.delete(APP_NAME)
    from tests.test_colbert import BUILDERS, DOCUMENTS

    body = {"query": "the cat", "documents": DOCUMENTS[1:3]}
    answers_as_the_single_server(str(BUILDERS["stanford-bert"](tmp_path / "colbert")), "/rerank", body, "results")
    # a SPLADE model: compiled by the driver as vLLM's override asks, each replica serves its artifact's vectors
    serve.delete(APP_NAME)
    from QEfficient.serving.tasks import SPLADE_ARCHITECTURE
    from tests.test_sparse_encoder import TEXTS, tiny_splade

    override = ["--hf_overrides", json.dumps({"architectures": [SPLADE_ARCHITECTURE]})]
    splade = str(tiny_splade(tmp_path / "splade"))
    body = {"input": TEXTS[:2]}
    qpc = answers_as_the_single_server(splade, "/v1/embeddings", body, "data", *override, ctx_len="24")  # its max_seq_length
    assert application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--ship_artifact", "off"])) is not None
    # an image classifier: its artifact keeps the image processor, which each replica reads from it
    serve.delete(APP_NAME)
    from tests.test_server_classify_media import image_parts, random_image, vit_classifier, wav2vec2_classifier

    body = {"messages": [{"role": "user", "content": image_parts(random_image(1, (40, 50)), random_image(2, (64, 64)))}]}
    qpc = answers_as_the_single_server(str(vit_classifier(tmp_path / "vit")), "/classify", body, "data", ctx_len=None)
    # a body past the text routes' 4 MiB: an image classifier's replica takes the single server's 32 MiB
    big = {"messages": [{"role": "user", "content": image_parts(random_image(3, (1500, 1500)))}]}
    assert len(json.dumps(big)) > DEFAULT_MAX_BODY_BYTES
    r = loopback_http.post(f"{bare_serve}/classify", json=big, timeout=120)
    assert r.status_code == 200 and len(r.json()["data"]) == 1, r.text
    assert application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--ship_artifact", "off"])) is not None
    # an audio classifier: its artifact keeps the feature extractor
    serve.delete(APP_NAME)
    from tests.test_ctranslate2_whisper import DATA, read_wav
    from tests.test_server_classify_media import wav

    clip = base64.b64encode(wav(read_wav(DATA / "speech16k.wav")[:24000])).decode()
    body = {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": clip, "format": "wav"}}]}]}
    answers_as_the_single_server(str(wav2vec2_classifier(tmp_path / "wav2vec2")), "/classify", body, "data", ctx_len=None)
    # a page retriever: compiled by the driver, each replica serves its text artifact and the vision artifact it names
    serve.delete(APP_NAME)
    from tests.test_retrieval import tiny_colqwen2
    from tests.test_server_retrieval import QUERIES, image_part

    tiny_colqwen2(tmp_path / "colqwen2")
    retriever = str(tmp_path / "colqwen2")
    body = {"query": QUERIES[0], "documents": {"content": [image_part(0), image_part(1)]}}
    qpc = answers_as_the_single_server(retriever, "/rerank", body, "results")
    # and shipped to a node that shares no disk with the driver: the vision artifact goes along
    serve.delete(APP_NAME)
    expected, _ = single_answer(retriever, "/rerank", body)
    vision = (Path(qpc) / json.loads((Path(qpc) / "qconfig.json").read_text())["vision_artifact"]).resolve()  # named relative to it
    text_copy, vision_copy = (shutil.copytree(p, tmp_path / "pages-disk" / Path(p).name) for p in (qpc, vision))
    shipment = ship(text_copy, None, vision_copy)
    shutil.rmtree(tmp_path / "pages-disk")
    pages_home = tmp_path / "pages-replica-home"
    options = ReplicaOptions(cores_per_replica=1, pin_cores=False, runtime_env={"env_vars": {"QEFF_HOME": str(pages_home)}})
    application = build_encoder_application(str(text_copy), "embed", options, ["pages"], shipment=shipment, server_options={"ctx_len": 64})
    serve.run(application, name=APP_NAME, route_prefix="/")
    r = loopback_http.post(f"{bare_serve}/rerank", json=body, timeout=120)
    assert r.status_code == 200 and r.json()["results"] == expected["results"], r.text
    assert len(list((pages_home / "shipped").glob("qpc-*"))) == 2  # the two artifacts, from the object store
    # a contrastive image-text model (CLIP): compiled by the driver, each replica serves its two towers' artifacts
    serve.delete(APP_NAME)
    from tests.test_server_dual_embeddings import data_url, tiny_clip

    images = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(s)}} for s in (1, 2)]}]}
    answers_as_the_single_server(str(tiny_clip(tmp_path / "clip")), "/v1/embeddings", images, "data", ctx_len="24")  # its positions
    # a text-to-speech model (VITS): compiled by the driver, each replica speaks from its artifact
    serve.delete(APP_NAME)
    from tests.test_server_tts import tiny_vits

    tiny_vits(tmp_path / "vits")
    app, runner = build_from_args(parse_args(["--model_name", str(tmp_path / "vits"), "--num_cores", "1"]))
    speech = {"input": "hello there"}
    expected = TestClient(app).post("/v1/audio/speech", json=speech).content
    runner.stop()
    ray_args = ["--ray", "--model_name", str(tmp_path / "vits"), "--cores_per_replica", "1", "--ship_artifact", "off"]
    serve.run(application_from_args(parse_args(ray_args)), name=APP_NAME, route_prefix="/")
    r = loopback_http.post(f"{bare_serve}/v1/audio/speech", json=speech, timeout=120)
    assert r.status_code == 200 and r.content == expected, r.text[:200]


def test_a_decoder_artifact_on_a_replica_answers_as_the_single_server(bare_serve, artifact, single, tmp_path):
    """``--ray --qpc_path`` with a decoder's artifact: shipped through the object store (the driver's copy deleted before
    the replica starts), the replica opens it as ``serve --qpc_path`` does and answers greedy completions as the
    single-process server over the same artifact; its compiled slots are autoscaling's default target."""
    from ray import serve

    from QEfficient.cloud.serve_args import parse_args
    from QEfficient.distributed.ray_serve import APP_NAME, application_from_args

    driver_disk = tmp_path / "driver-disk"
    copy = shutil.copytree(artifact.qpc_path, driver_disk / "qpc")
    args = ["--ray", "--qpc_path", str(copy), "--cores_per_replica", "1", "--ship_artifact", "on", "--api_key", API_KEY]
    app = application_from_args(parse_args([*args, "--model_name", "served-name"]))
    shutil.rmtree(driver_disk)
    serve.run(app, name=APP_NAME, route_prefix="/")
    for prompt in PROMPTS[:3]:
        body = {"prompt": prompt, "max_tokens": 12, "temperature": 0}
        expected = single.post("/v1/completions", json=body, headers=AUTH).json()
        got = complete(bare_serve, prompt, model="served-name")
        assert got.status_code == 200, got.text
        assert got.json()["choices"][0]["text"] == expected["choices"][0]["text"]
    handle = serve.get_deployment_handle("QEffEngine", app_name=APP_NAME)
    assert handle.artifact_path.remote().result(timeout_s=30) != str(copy)  # the replica's own copy


def test_batch_generation_equals_generate_row_by_row_and_resumes(bare_serve, tiny_model_dir, prompts_file, tmp_path):
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.distributed.ray_data import BatchJob, read_dataset, run_batch

    folder = str(tiny_model_dir("llama"))
    job = BatchJob(model_name=folder, generation_len=10, prefill_seq_len=8, ctx_len=64, batch_size=2, num_actors=2)
    out = tmp_path / "out.jsonl"
    dataset = read_dataset(prompts_file)
    assert run_batch(job, prompts_file, out, dataset=dataset) == 12
    assert dataset.context.execution_options.preserve_order  # set where Ray reads it: the dataset binds its own context
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=1, num_cores=1)
    tok = AutoTokenizer.from_pretrained(folder)
    expected = [model.generate(tok, [p], generation_len=10, stream=False).texts[0] for p in PROMPTS]
    assert [r["id"] for r in rows] == list(range(12))
    assert [r["generated_text"] for r in rows] == expected * 2
    # an interrupted run: 5 rows and a torn line are there; the rest is generated, nothing twice
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:5]) + lines[5][:7])
    shipped = dataclasses.replace(job, ship_artifact="on", num_actors=1)  # the actor receives it, and finds it in place
    assert run_batch(shipped, prompts_file, out) == 7
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    assert run_batch(job, prompts_file, out) == 0
    # the artifact compiled before, run as it is: its task and sizes
    by_artifact = BatchJob(qpc_path=str(job.load()[0].qpc_path), generation_len=10, num_actors=1)
    assert (by_artifact.task, by_artifact.batch_size, by_artifact.ctx_len) == ("generate", 2, 64)
    assert run_batch(by_artifact, prompts_file, tmp_path / "again.jsonl") == 12
    assert [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()] == rows
    # strings of digits and ISO times stay strings (pandas' reader made them numbers and dates), in the input's column
    # order; a missing key is null (and a number column with a null comes back as floats, as numpy holds it)
    typed = [{"n": 1, "prompt": "007", "at": "2020-01-01T10:00:00"}, {"prompt": PROMPTS[0], "at": "12"}]
    (tmp_path / "typed.jsonl").write_text("".join(json.dumps(row) + "\n" for row in typed))
    assert run_batch(job, tmp_path / "typed.jsonl", tmp_path / "typed-out.jsonl") == 2
    got = [json.loads(line) for line in (tmp_path / "typed-out.jsonl").read_text().splitlines()]
    assert [list(row) for row in got] == [["n", "prompt", "at", "generated_text"]] * 2
    assert [{k: v for k, v in row.items() if k != "generated_text"} for row in got] == [typed[0], {**typed[1], "n": None}]
    assert got[1]["generated_text"] == expected[0]
    # an actor's error reaches the caller as what the actor raised, not Ray's wrapping of it
    (tmp_path / "empty.jsonl").write_text(json.dumps({"prompt": ""}) + "\n")
    with pytest.raises(ValueError, match=r"empty.*\(0 rows were written before it; run again to resume\)"):
        run_batch(job, tmp_path / "empty.jsonl", tmp_path / "empty-out.jsonl")


def test_batch_embeddings_to_parquet_equal_encode(bare_serve, tmp_path, tokenizer_dir):
    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from QEfficient import QEFFAutoModel
    from QEfficient.distributed.ray_data import BatchJob, ModelActor, run_batch

    folder = tmp_path / "bert"
    torch.manual_seed(7)
    sizes = dict(vocab_size=320, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96)
    config = AutoConfig.for_model("bert", max_position_embeddings=130, **sizes)
    AutoModel.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    source = tmp_path / "in.parquet"
    import pyarrow as pa

    pq.write_table(pa.table({"prompt": PROMPTS}), source)
    # the actor receives the artifact through the object store (in place here: the same disk) and runs it alone
    job = BatchJob(model_name=str(folder), task="embed", pooling="mean", seq_len=64, batch_size=2, num_actors=1, ship_artifact="on")
    assert run_batch(job, source, tmp_path / "out.parquet") == len(PROMPTS)
    table = pq.read_table(tmp_path / "out.parquet")
    model = QEFFAutoModel.from_pretrained(folder, pooling="mean")
    model.compile(seq_len=[32, 64], batch_size=2, num_cores=1)  # the job's: a few lengths up to its seq_len
    expected = model.encode(PROMPTS, AutoTokenizer.from_pretrained(folder), batch_size=2)
    assert table.column("prompt").to_pylist() == PROMPTS
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), expected, rtol=1e-5, atol=1e-6)
    # without an artifact (one without a run-time tokenizer) an actor loads the model from its folder
    fallback = ModelActor(dataclasses.asdict(job))
    assert fallback.encoder is None
    got = fallback({"prompt": np.array(PROMPTS[:3], dtype=object)})["embedding"]
    np.testing.assert_allclose(got, expected[:3], rtol=1e-5, atol=1e-6)
    # an actor on the artifact imports neither torch nor transformers' modeling code, and needs no model folder
    shutil.rmtree(folder)
    actor = (
        "import json, sys, numpy as np\n"
        "from QEfficient.distributed.ray_data import ModelActor\n"
        f"actor = ModelActor({dataclasses.asdict(job)!r}, artifact={{'qpc_path': {str(model.qpc_path)!r}, 'tokenizer_dir': None}})\n"
        f"out = actor({{'prompt': np.array({PROMPTS[:2]!r}, dtype=object)}})['embedding']\n"
        "print(json.dumps([out.tolist(), [m for m in ('torch', 'transformers.modeling_utils') if m in sys.modules]]))\n"
    )
    ran = subprocess.run([sys.executable, "-c", actor], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]
    vectors, imported = json.loads(ran.stdout.splitlines()[-1])
    assert imported == []
    np.testing.assert_allclose(vectors, expected[:2], rtol=1e-5, atol=1e-6)
    # the artifact given to the job: its task and sizes, the folder gone
    by_artifact = BatchJob(qpc_path=str(model.qpc_path))
    assert (by_artifact.task, by_artifact.batch_size, by_artifact.seq_len) == ("embed", 2, 64)
    assert run_batch(by_artifact, source, tmp_path / "again.parquet") == len(PROMPTS)
    again = pq.read_table(tmp_path / "again.parquet").column("embedding").to_pylist()
    np.testing.assert_allclose(np.array(again), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="is compiled for task embed, not generate: leave task out"):
        BatchJob(qpc_path=str(model.qpc_path), task="generate")
    assert BatchJob(qpc_path=str(model.qpc_path), batch_size=2).batch_size == 2  # its own size, given again
    with pytest.raises(ValueError, match="batch_size, pooling: .* was compiled with its own"):
        BatchJob(qpc_path=str(model.qpc_path), batch_size=8, pooling="cls")
    with pytest.raises(ValueError, match="cannot be read as an artifact"):
        BatchJob(qpc_path=str(tmp_path))


def test_batch_cli_names_a_missing_input(tmp_path, capsys):
    from QEfficient.cloud.batch import main
    from QEfficient.distributed.ray_data import BatchJob

    with pytest.raises(SystemExit):
        main(["--model_name", str(tmp_path), "--input", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "o.jsonl")])
    assert "does not exist" in capsys.readouterr().err
    from QEfficient.distributed.ray_data import read_dataset

    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl' line 3 is not JSON"):  # named here, not in Ray's readers' tracebacks
        read_dataset(tmp_path / "bad.jsonl")
    (tmp_path / "bad.jsonl").write_text('["a"]\n')
    with pytest.raises(ValueError, match="line 1 is a JSON list, not an object"):
        read_dataset(tmp_path / "bad.jsonl")
    (tmp_path / "in.jsonl").write_text('{"prompt": "a"}\n')
    with pytest.raises(SystemExit):  # an artifact's sizes are its own
        main(["--qpc_path", str(tmp_path), "--seq_len", "64", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl")])
    assert "--seq_len: the artifact at --qpc_path was compiled with its own" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs model_name .* or qpc_path"):
        BatchJob()
    for line, message in (
        ('{"other": 1}', "line 1 has no 'prompt'"),
        ('{"prompt": null}', "line 1 has no 'prompt'"),
        ('{"prompt": 7}', "line 1 has a number in its 'prompt'"),
        ('{"prompt": "a", "id": 1}\n{"prompt": "b", "id": "x"}', "column 'id' holds numbers \\(line 1\\) and strings \\(line 2\\)"),
    ):
        (tmp_path / "bad.jsonl").write_text(line + "\n")
        with pytest.raises(ValueError, match=message):  # (a null was run as the text "nan")
            read_dataset(tmp_path / "bad.jsonl", "prompt")
    import numpy as np

    from QEfficient.distributed.ray_data import _plain

    # a Parquet input's timestamps, as numpy gives them, in ISO 8601 (item() gave nanoseconds); a numeric null as null
    assert _plain(np.datetime64("2020-01-01T10:30:00", "ns")).startswith("2020-01-01T10:30:00") and _plain(np.float64("nan")) is None
    with pytest.raises(ValueError, match="output_column and input_column are both 'prompt'"):  # (its resume would fail)
        BatchJob(model_name=str(tmp_path), output_column="prompt")
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        BatchJob(model_name=str(tmp_path), temperature=-1)
    with pytest.raises(SystemExit):  # an output that cannot be written: said before Ray starts
        main(["--model_name", str(tmp_path), "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "no" / "o.jsonl")])
    assert f"folder '{tmp_path / 'no'}' does not exist" in capsys.readouterr().err


def test_an_output_that_is_not_a_batch_jobs_is_refused_untouched(ray_cluster, tmp_path):
    """A file that is not a batch job's output is refused before anything is written to it (a torn last line of one
    is dropped and written again); an input without rows says so."""
    from QEfficient.distributed.ray_data import BatchJob, _Output, run_batch

    texts = {
        "notes.jsonl": "first line\nlast line, no newline",
        "other.jsonl": '{"text": 1}\n',
        "single.jsonl": "no newline",
        "one-row.jsonl": '{"text": "mine"}',
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        match = "not the output of a batch job" + (" over 'prompt' \\(line 1\\)" if "\n" in text or "{" in text else ": remove it")
        with pytest.raises(ValueError, match=match):
            _Output(tmp_path / name, "prompt").written()
        assert (tmp_path / name).read_text() == text
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        _Output(tmp_path / "folder.jsonl", "prompt").written()
    (tmp_path / "file.parquet").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        _Output(tmp_path / "file.parquet", "prompt").written()
    row = '{"prompt": "a", "generated_text": "b"}'
    for text, rows in ((f"{row}\n" + '{"pro', ["a"]), (row, ["a"])):  # a torn last line; a whole one without its newline
        (tmp_path / "out.jsonl").write_text(text)
        output = _Output(tmp_path / "out.jsonl", "prompt")
        assert output.written() == rows and (tmp_path / "out.jsonl").read_text() == text  # read only
        output.resume()  # once run_batch has found the rows to be this input's
        assert (tmp_path / "out.jsonl").read_text() == f"{row}\n"
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds no rows"):
        run_batch(BatchJob(model_name=str(tmp_path)), tmp_path / "empty.jsonl", tmp_path / "new.jsonl")
