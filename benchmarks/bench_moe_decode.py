"""Decode cost of a mixture-of-experts model against a dense model with the same active parameters.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_moe_decode.py [--layers 4] [--steps 64]

A Mixtral-shaped random model (8 experts, top-2, hidden 1024, expert width 3584) and a Mistral-shaped
one whose MLP is as wide as the two active experts together (7168): same attention, same active
MLP parameters. Both go through the pipeline (export, ONNX Runtime); the figure is the median time of
a batch-1 decode step after a 32-token prefill. The MoE graph gathers the two selected experts'
weights per token (QEfficient/transform/static_kv.py, EXPERTS_IMPLEMENTATION), so its decode step
reads 2 of the 8 experts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QEFF_HOME", tempfile.mkdtemp(prefix="qeff-moe-bench-"))


def decode_step_ms(model, steps: int, num_cores: int) -> float:
    import numpy as np

    from QEfficient.generation.exec_kv import open_session

    qpc = model.compile(prefill_seq_len=32, ctx_len=256, batch_size=1, num_cores=num_cores)
    session = open_session(qpc, num_cores)
    ids = np.arange(3, 35, dtype=np.int64)[None]
    logits = session.run(ids, np.arange(32, dtype=np.int64)[None])
    times = []
    for i in range(steps):
        token = np.array([[int(logits[0].argmax())]], np.int64)
        start = time.perf_counter()
        logits = session.run(token, np.array([[32 + i]], np.int64))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--num_cores", type=int, default=2)
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    from QEfficient import QEFFAutoModelForCausalLM

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    common = dict(hidden_size=1024, num_hidden_layers=args.layers, num_attention_heads=16, num_key_value_heads=4)
    common.update(vocab_size=32000, max_position_embeddings=512)
    moe = AutoConfig.for_model("mixtral", intermediate_size=3584, num_local_experts=8, num_experts_per_tok=2, **common)
    dense = AutoConfig.for_model("mistral", intermediate_size=2 * 3584, **common)
    rows = []
    for name, config in (("dense (same active parameters)", dense), ("MoE 8 experts, top-2", moe)):
        model = QEFFAutoModelForCausalLM(AutoModelForCausalLM.from_config(config).eval())
        rows.append((name, decode_step_ms(model, args.steps, args.num_cores)))
    for name, ms in rows:
        print(f"{name:32s} {ms:8.2f} ms / decode step")
    print(f"MoE / dense: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
