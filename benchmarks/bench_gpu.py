"""The same decoder on the CPU and on a GPU (ONNX Runtime's CUDA provider), side by side in one script.

Random weights in the shapes of real checkpoints (SmolLM2-135M, Qwen2.5-0.5B, Qwen2.5-1.5B): speed does not
depend on the values, and a machine with a GPU here has no model files. Each shape is compiled twice, as
compile() builds it for each device (fused for the CPU, the plain graph for CUDA), and run by the runtime's
KVCacheSession alone: a prefill of PROMPT tokens in chunks, then NEW decode steps. Prints time to first token,
decode tok/s and the GPU/CPU ratios; writes benchmarks/results/gpu.json.

    QEFF_HOME=/tmp/qeff python benchmarks/bench_gpu.py [--threads 16] [--prompt 512] [--new-tokens 128] [--shapes smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_causal_lm import cpu_model  # benchmarks/bench_causal_lm.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {  # config fields of the real checkpoints
    "smollm2-135m": dict(
        model_type="llama",
        hidden_size=576,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        intermediate_size=1536,
        vocab_size=49152,
        tie_word_embeddings=True,
    ),
    "qwen2.5-0.5b": dict(
        model_type="qwen2",
        hidden_size=896,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        intermediate_size=4864,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
    "qwen2.5-1.5b": dict(
        model_type="qwen2",
        hidden_size=1536,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        intermediate_size=8960,
        vocab_size=151936,
        tie_word_embeddings=True,
    ),
}


def save_random(shape: str, folder: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(SHAPES[shape])
    config = AutoConfig.for_model(fields.pop("model_type"), max_position_embeddings=4096, **fields)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).eval().save_pretrained(folder)
    return folder


def time_session(qpc, threads: int, prompt: int, chunk: int, new: int, rounds: int) -> dict:
    from QEfficient.runtime.ort_session import open_kv_session

    session = open_kv_session(qpc, threads)
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 1000, prompt)
    ttft, tok_s = [], []
    for _ in range(rounds):
        session.reset()
        start = time.perf_counter()
        for at in range(0, prompt, chunk):
            piece = ids[at : at + chunk]
            pos = np.full(chunk, -1)
            pos[: len(piece)] = np.arange(at, at + len(piece))
            logits = session.run(np.pad(piece, (0, chunk - len(piece)))[None], pos[None])
        ttft.append(time.perf_counter() - start)
        token = int(logits[0].argmax())
        start = time.perf_counter()
        for i in range(new):
            token = int(session.run(np.array([[token]]), np.array([[prompt + i]]))[0].argmax())
        tok_s.append(new / (time.perf_counter() - start))
    return {
        "providers": session.session.get_providers()[:1],
        "ttft_ms": statistics.median(ttft) * 1e3,
        "decode_tok_s": statistics.median(tok_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="where gpu.json goes")
    args = parser.parse_args()
    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.runtime.devices import cuda_runs

    if not cuda_runs(0):
        sys.exit("ONNX Runtime's CUDA provider cannot run here: this benchmark needs a GPU and onnxruntime-gpu.")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            folder = save_random(shape, Path(tmp) / shape)
            row = {"shape": shape}
            for device in ("cpu", "cuda"):
                os.environ["QEFF_DEVICE"] = device
                model = QEFFAutoModelForCausalLM.from_pretrained(folder)
                qpc = model.compile(prefill_seq_len=args.chunk, ctx_len=args.prompt + args.new_tokens, num_cores=args.threads)
                row[device] = time_session(qpc, args.threads, args.prompt, args.chunk, args.new_tokens, args.rounds)
                del model
            row["decode_ratio"] = row["cuda"]["decode_tok_s"] / row["cpu"]["decode_tok_s"]
            row["ttft_ratio"] = row["cpu"]["ttft_ms"] / row["cuda"]["ttft_ms"]
            rows.append(row)
            print(
                f"{shape:14s} decode tok/s cpu {row['cpu']['decode_tok_s']:7.1f}  cuda {row['cuda']['decode_tok_s']:7.1f}  "
                f"({row['decode_ratio']:.2f}x)   TTFT@{args.prompt} ms cpu {row['cpu']['ttft_ms']:8.1f}  "
                f"cuda {row['cuda']['ttft_ms']:7.1f}  ({row['ttft_ratio']:.2f}x)   {row['cuda']['providers']}",
                flush=True,
            )
    out = {"cpu": cpu_model(), "threads": args.threads, "args": vars(args), "rows": rows}
    try:
        query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
        out["gpu"] = subprocess.run(query, capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    results = Path(args.out)
    results.mkdir(parents=True, exist_ok=True)
    (results / "gpu.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
