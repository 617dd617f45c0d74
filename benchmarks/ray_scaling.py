"""Requests/s of Ray Serve replicas (1 core each) against one single-process server, on this machine.

    PYTHONPATH=. python benchmarks/ray_scaling.py [--model_name DIR] [--requests 48] [--max_tokens 32]

Without --model_name it serves the default model (SmolLM2-135M-Instruct's GGUF). Every answer is
checked against the single-process server's (greedy); the load average is printed with the figures
(they mean little on a busy machine). The figures go to docs/scaling.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil

PROMPTS = ["My name is", "The sun rises", "Once upon a time a robot", "What is the capital of France?", "Paris", "Numbers: 1 2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ROLES = ("ProxyActor", "QEffGateway", "QEffEngine")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process (the load generator, and the single
    server when it runs here) and of the Ray Serve processes, by role."""
    totals = {"this process": sum(psutil.Process().cpu_times()[:2])}
    for proc in psutil.process_iter(["cmdline"]):
        title = " ".join(proc.info["cmdline"] or [])
        role = next((r for r in ROLES if title.startswith("ray::") and r in title), None)
        if role:
            try:
                totals[role] = totals.get(role, 0.0) + sum(proc.cpu_times()[:2])
            except psutil.Error:
                pass
    return totals


def load(url: str, n: int, max_tokens: int, concurrency: int) -> tuple[float, list[str]]:
    # one pooled client: a client per request would spend the cores on TLS contexts and connections
    client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=concurrency))

    def one(i: int) -> str:
        body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "temperature": 0}
        r = client.post(f"{url}/v1/completions", json=body)
        r.raise_for_status()
        return r.json()["choices"][0]["text"]

    with client, ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))  # warm-up
        before, start = cpu_seconds(), time.perf_counter()
        texts = list(pool.map(one, range(n)))
        rate, after = n / (time.perf_counter() - start), cpu_seconds()
    per_request = {role: 1000 * (after[role] - before.get(role, 0.0)) / n for role in after}
    print("  CPU ms per request: " + ", ".join(f"{role} {ms:.1f}" for role, ms in per_request.items()), flush=True)
    return rate, texts


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model_name", default=None, help="model folder (default: SmolLM2-135M-Instruct)")
    p.add_argument("--requests", type=int, default=48)
    p.add_argument("--max_tokens", type=int, default=32)
    p.add_argument("--full_batch_size", type=int, default=4)
    args = p.parse_args()
    import uvicorn

    from QEfficient.cloud._cli import resolve_model_name
    from QEfficient.serving.artifact import compile_for_serving, open_app

    fbs, n, mt = args.full_batch_size, args.requests, args.max_tokens
    artifact = compile_for_serving(*resolve_model_name(args.model_name, None), 32, 256, fbs, 1)
    print(f"load average before: {os.getloadavg()}", flush=True)
    results = {}
    app, runner = open_app(artifact, 2, max_queue=256)  # one server, 2 ORT threads
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    time.sleep(2)
    print("1 server, 2 cores:")
    results["1 server, 2 cores"], reference = load(f"http://127.0.0.1:{port}", n, mt, 2 * fbs)
    server.should_exit = True
    runner.stop()

    import ray
    from ray import serve

    from QEfficient.distributed.ray_serve import APP_NAME, ReplicaOptions, build_application

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    for replicas in (1, 2):
        options = ReplicaOptions(num_replicas=replicas, cores_per_replica=1, full_batch_size=fbs, max_queue=256)
        serve.run(build_application(artifact, options), name=APP_NAME, route_prefix="/")
        print(f"Ray, {replicas} replica(s) x 1 core:")
        rate, texts = load(f"http://127.0.0.1:{port}", n, mt, replicas * fbs)
        assert texts == reference, "a Ray answer differs from the single server's"
        results[f"Ray, {replicas} replica(s) x 1 core"] = rate
        serve.delete(APP_NAME)
    serve.shutdown()
    ray.shutdown()
    print(f"load average after: {os.getloadavg()}")
    for name, rate in results.items():
        print(f"{name}: {rate:.2f} requests/s ({rate * mt:.0f} tokens/s)")
    one, two = results["Ray, 1 replica(s) x 1 core"], results["Ray, 2 replica(s) x 1 core"]
    print(f"2 replicas / 1 replica: {two / one:.2f}x")


if __name__ == "__main__":
    main()
