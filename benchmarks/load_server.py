"""Load test of the OpenAI-compatible server, loopback only, bounded in requests and time.

    .venv/bin/python benchmarks/load_server.py [--clients 16] [--requests 32] [--full-batch-size 4] [--max-tokens 48]

Starts the server in this process on 127.0.0.1 (SmolLM2 by default), computes each prompt's offline
greedy answer first, then runs the same prompts one at a time and with C concurrent streaming
clients. Reports requests/s, aggregate tok/s, p50/p95 latency and time to first token, and checks
every response against the offline answer.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scratch import scratch_dir  # benchmarks/scratch.py

USERS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Name three colours.",
    "What is 2 + 2?",
    "Give me a tip for learning to paint.",
    "Who wrote Hamlet?",
    "Describe a robot in one sentence.",
    "What is the sun?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_request(url: str, messages: list, max_tokens: int, deadline: float) -> dict:
    import httpx

    start = time.perf_counter()
    first, text, tokens = None, "", 0
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=max(1.0, deadline - time.time())) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            piece = json.loads(line[6:])["choices"][0]["delta"].get("content")
            if piece:
                first = first or time.perf_counter()
                text += piece
                tokens += 1
    end = time.perf_counter()
    return {"latency": end - start, "ttft": (first or end) - start, "text": text}


def run(url: str, jobs: list, clients: int, max_tokens: int, deadline: float) -> tuple[list, float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda m: one_request(url, m, max_tokens, deadline), jobs))
    return results, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--full-batch-size", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mxfp6", action="store_true", help="serve with 8-bit MatMul weights")
    ap.add_argument("--time-limit", type=float, default=600, help="seconds; the whole run stops by then")
    args = ap.parse_args()
    deadline = time.time() + args.time_limit
    os.environ.setdefault("QEFF_HOME", scratch_dir("qeff-load-"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import uvicorn

    from QEfficient.cloud.serve import build_server
    from QEfficient.loading.hf_loader import default_model_path

    gguf = default_model_path()
    app, runner = build_server(
        str(gguf.parent), gguf.name, 32, 512, args.full_batch_size, args.threads, max_queue=4 * args.requests, mxfp6_matmul=args.mxfp6
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    time.sleep(1.0)
    jobs = [[{"role": "user", "content": USERS[i % len(USERS)]}] for i in range(args.requests)]

    # Offline answers: each distinct prompt alone, one at a time, through the same server.
    reference = {}
    for messages in jobs[: len(USERS)]:
        reference[messages[0]["content"]] = one_request(url, messages, args.max_tokens, deadline)["text"]
    serial, serial_time = run(url, jobs, 1, args.max_tokens, deadline)
    concurrent, concurrent_time = run(url, jobs, args.clients, args.max_tokens, deadline)
    server.should_exit = True
    runner.stop()

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model_dir(gguf))

    def report(name: str, results: list, elapsed: float) -> dict:
        ok = sum(r["text"] == reference[m[0]["content"]] for r, m in zip(results, jobs))
        tokens = sum(len(tokenizer(r["text"])["input_ids"]) for r in results)
        lat = sorted(r["latency"] for r in results)
        row = {
            "mode": name,
            "requests": len(results),
            "correct": ok,
            "requests_per_s": len(results) / elapsed,
            "aggregate_tok_s": tokens / elapsed,
            "p50_latency_s": statistics.median(lat),
            "p95_latency_s": lat[int(0.95 * (len(lat) - 1))],
            "p50_ttft_s": statistics.median(r["ttft"] for r in results),
        }
        print(
            f"{name:22s} {row['correct']:>3d}/{len(results)} correct  {row['requests_per_s']:6.2f} req/s  "
            f"{row['aggregate_tok_s']:7.1f} tok/s  p50 {row['p50_latency_s']:5.2f} s  p95 {row['p95_latency_s']:5.2f} s  "
            f"TTFT p50 {row['p50_ttft_s']:5.2f} s"
        )
        return row

    weights = "8-bit weights (--mxfp6)" if args.mxfp6 else "fp32 weights"
    print(f"SmolLM2-135M-Instruct, {weights}, full_batch_size {args.full_batch_size}, {args.max_tokens} max tokens, greedy, loopback")
    rows = [report("one at a time", serial, serial_time), report(f"{args.clients} concurrent clients", concurrent, concurrent_time)]
    print(f"aggregate throughput: {rows[1]['aggregate_tok_s'] / rows[0]['aggregate_tok_s']:.2f}x one-at-a-time")
    out = Path(__file__).resolve().parent / "results" / "load_server.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


def default_model_dir(gguf: Path) -> Path:
    from QEfficient.loading.hf_loader import _convert_gguf

    return _convert_gguf(gguf.parent, gguf.name)


if __name__ == "__main__":
    main()
