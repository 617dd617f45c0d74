"""Decode cost of a mixture-of-experts model against a dense model with the same active parameters.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_moe_decode.py [--layers 4] [--steps 64] [--gather] [--mxfp6]

A Mixtral-shaped random model (8 experts, top-2, hidden 1024, expert width 3584) and a Mistral-shaped
one whose MLP is as wide as the two active experts together (7168): same attention, same active
MLP parameters. Both go through the pipeline (export, ONNX Runtime); the figure is the median time of
a batch-1 decode step after a 32-token prefill, the two models taking turns step by step. Each MoE
layer is one ONNX Runtime ``com.microsoft::MoE`` node (QEfficient/transform/moe_op.py), which reads
only the two selected experts' weights, in place.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from scratch import scratch_dir  # benchmarks/scratch.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QEFF_HOME", scratch_dir("qeff-moe-bench-"))


def compiled(model, experts: str, **options):
    """``model`` compiled with its experts exported as ``experts`` (an experts implementation name)."""
    from QEfficient.transform import moe_op

    default, moe_op.TRACED_EXPERTS = moe_op.TRACED_EXPERTS, experts
    try:
        return model.compile(**options)
    finally:
        moe_op.TRACED_EXPERTS = default


def decode_steps_ms(models: list, steps: int, num_cores: int, mxfp6: bool = False) -> list[float]:
    """Median batch-1 decode step of each (model, experts implementation) after a 32-token prefill. The models take turns step by
    step, so a change in the machine's load (it is shared) weighs on all of them alike."""
    import numpy as np

    from QEfficient.generation.exec_kv import open_session

    options = dict(prefill_seq_len=32, ctx_len=256, batch_size=1, num_cores=num_cores, mxfp6_matmul=mxfp6)
    sessions = [open_session(compiled(m, experts, **options), num_cores) for m, experts in models]
    ids = np.arange(3, 35, dtype=np.int64)[None]
    tokens = [int(s.run(ids, np.arange(32, dtype=np.int64)[None])[0].argmax()) for s in sessions]
    times: list[list[float]] = [[] for _ in sessions]
    for i in range(steps):
        for j, session in enumerate(sessions):
            start = time.perf_counter()
            logits = session.run(np.array([[tokens[j]]], np.int64), np.array([[32 + i]], np.int64))
            times[j].append(time.perf_counter() - start)
            tokens[j] = int(logits[0].argmax())
    return [1000 * statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--num_cores", type=int, default=2)
    parser.add_argument("--gather", action="store_true", help="also the MoE graph with gathered expert weights (batched_mm)")
    parser.add_argument("--mxfp6", action="store_true", help="8-bit weights: MatMulNBits (dense) against QMoE (experts)")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.transform.moe_op import IMPLEMENTATION

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    common = dict(hidden_size=1024, num_hidden_layers=args.layers, num_attention_heads=16, num_key_value_heads=4)
    common.update(vocab_size=32000, max_position_embeddings=512)
    moe = AutoConfig.for_model("mixtral", intermediate_size=3584, num_local_experts=8, num_experts_per_tok=2, **common)
    dense = AutoConfig.for_model("mistral", intermediate_size=2 * 3584, **common)
    variants = [("dense (same active parameters)", dense, IMPLEMENTATION), ("MoE 8 experts, top-2", moe, IMPLEMENTATION)]
    if args.gather:
        variants.append(("MoE, gathered expert weights", moe, "batched_mm"))
    names = [name for name, _, _ in variants]
    models = []
    for i, (_, config, experts) in enumerate(variants):
        torch.manual_seed(i)  # distinct weights: each variant gets its own export
        models.append((QEFFAutoModelForCausalLM(AutoModelForCausalLM.from_config(config).eval()), experts))
    rows = list(zip(names, decode_steps_ms(models, args.steps, args.num_cores, args.mxfp6)))
    for name, ms in rows:
        print(f"{name:32s} {ms:8.2f} ms / decode step")
    for name, ms in rows[1:]:
        print(f"{name} / dense: {ms / rows[0][1]:.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
