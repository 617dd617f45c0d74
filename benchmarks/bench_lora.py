"""The cost of LoRA adapters on SmolLM2-135M-Instruct (the default GGUF): decode tok/s with no adapter
(the plain graph) against the LoRA graph with 1, 4 and 16 adapters loaded (random, r=8 on q_proj and
v_proj, made with peft), at batch 1 and in a batch of 4 with mixed adapters.

    .venv/bin/python benchmarks/bench_lora.py [--threads 2] [--new-tokens 96] [--rounds 3]

Every configuration runs in the same process, interleaved round by round, and each figure is the
median over rounds: ratios matter, not absolute figures (the machines are shared and noisy). The
LoRA graph's "base" row is checked token for token against the plain graph. Then paired single decode
steps (the configurations taking turns step by step) give a second, less load-sensitive ratio. Writes
benchmarks/results/lora.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROMPT = "Write a short story about a robot who learns to paint."


def make_adapters(base_dir: Path, folder: Path, count: int, rank: int) -> list[Path]:
    """``count`` PEFT adapters saved by peft, with random A and B (B is zero when peft creates it)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir), LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"])
    )
    paths = []
    for i in range(count):
        torch.manual_seed(i)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_" in name:
                    p.normal_(0, 0.02)
        model.save_pretrained(folder / f"adapter{i}")
        paths.append(folder / f"adapter{i}")
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100, help="paired single decode steps per configuration")
    args = ap.parse_args()

    import numpy as np
    from transformers import AutoTokenizer

    from QEfficient import QEffAutoLoraModelForCausalLM, QEFFAutoModelForCausalLM
    from QEfficient.export.graph_names import LORA_IDS
    from QEfficient.generation.exec_kv import right_padding
    from QEfficient.generation.lora_generation import LoraTextGeneration
    from QEfficient.generation.text_generation import TextGeneration, eos_token_ids
    from QEfficient.loading.hf_loader import default_model_path
    from QEfficient.runtime.ort_session import open_kv_session

    gguf = default_model_path()
    source = {"pretrained_model_name_or_path": str(gguf.parent), "gguf_file": gguf.name}
    compile_args = {"prefill_seq_len": 32, "ctx_len": 512, "num_cores": args.threads}
    plain = QEFFAutoModelForCausalLM.from_pretrained(**source)
    plain_qpc = {b: plain.compile(**compile_args, batch_size=b) for b in (1, 4)}
    tok = right_padding(AutoTokenizer.from_pretrained(plain.local_model_dir))
    eos = eos_token_ids(tok, plain.model.hf.generation_config)
    prompt = tok.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True)

    lora = QEffAutoLoraModelForCausalLM.from_pretrained(**source)
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(make_adapters(plain.local_model_dir, Path(tmp), 16, args.rank)):
            lora.load_adapter(path, f"a{i}")
        lora_qpc = {b: lora.compile(**compile_args, batch_size=b) for b in (1, 4)}
    tables16 = lora.adapter_tables()

    def tables(n: int) -> dict:  # the first n adapters' rows (row 0: the base model)
        return {k: np.ascontiguousarray(v[:, : n + 1]) for k, v in tables16.items()}

    sessions = {("plain", b): open_kv_session(q, args.threads) for b, q in plain_qpc.items()}
    sessions |= {("lora", b): open_kv_session(q, args.threads) for b, q in lora_qpc.items()}
    configs = {
        "no adapter (plain graph), batch 1": lambda: TextGeneration(sessions["plain", 1], tok, 32, eos),
        "LoRA graph, base row, batch 1": lambda: LoraTextGeneration(sessions["lora", 1], tok, 32, eos, None, tables(1), [0]),
        "1 adapter, batch 1": lambda: LoraTextGeneration(sessions["lora", 1], tok, 32, eos, None, tables(1), [1]),
        "4 adapters loaded, batch 1": lambda: LoraTextGeneration(sessions["lora", 1], tok, 32, eos, None, tables(4), [3]),
        "16 adapters loaded, batch 1": lambda: LoraTextGeneration(sessions["lora", 1], tok, 32, eos, None, tables(16), [11]),
        "no adapter (plain graph), batch 4": lambda: TextGeneration(sessions["plain", 4], tok, 32, eos),
        "1 adapter on every row, batch 4": lambda: LoraTextGeneration(sessions["lora", 4], tok, 32, eos, None, tables(16), [5] * 4),
        "4 mixed adapters (of 16), batch 4": lambda: LoraTextGeneration(
            sessions["lora", 4], tok, 32, eos, None, tables(16), [2, 7, 11, 16]
        ),
    }
    runs: dict[str, list[float]] = {name: [] for name in configs}
    tokens = {}
    for name, make in configs.items():  # warm-up
        make().generate([prompt] * (4 if "batch 4" in name else 1), generation_len=8, stream=False)
    for _ in range(args.rounds):
        for name, make in configs.items():
            info = make().generate([prompt] * (4 if "batch 4" in name else 1), generation_len=args.new_tokens, stream=False)
            runs[name].append(info.perf_metrics.decode_perf)
            tokens[name] = info.generated_ids[0][0].tolist()
    assert tokens["LoRA graph, base row, batch 1"] == tokens["no adapter (plain graph), batch 1"], "the base row must equal the plain graph"

    # Paired decode steps: the configurations take turns step by step, so a change of load hits them
    # alike. They run on one-thread sessions that do not spin, so the CPU time of the calling thread
    # is the step's own work, far less sensitive to the other processes than wall time.
    quiet = {("plain", b): open_kv_session(q, 1, spin=False) for b, q in plain_qpc.items()}
    quiet |= {("lora", b): open_kv_session(q, 1, spin=False) for b, q in lora_qpc.items()}

    def step(key, rows: int, table_rows: int | None = None, ids: list[int] | None = None):
        session = quiet[key]
        feed = (np.full((rows, 1), 100, dtype=np.int64), np.full((rows, 1), 60, dtype=np.int64))
        bound = None if ids is None else {**tables(table_rows), LORA_IDS: np.array(ids, dtype=np.int64)[:, None]}

        def run() -> tuple[float, float]:
            if bound is not None:
                session.bind_inputs(**bound)
            wall, cpu = time.perf_counter(), time.thread_time()
            session.run(*feed)
            return time.perf_counter() - wall, time.thread_time() - cpu

        return run

    steppers = {
        "no adapter (plain graph), batch 1": step(("plain", 1), 1),
        "LoRA graph, base row, batch 1": step(("lora", 1), 1, 1, [0]),
        "1 adapter, batch 1": step(("lora", 1), 1, 1, [1]),
        "16 adapters loaded, batch 1": step(("lora", 1), 1, 16, [11]),
        "no adapter (plain graph), batch 4": step(("plain", 4), 4),
        "4 mixed adapters (of 16), batch 4": step(("lora", 4), 4, 16, [2, 7, 11, 16]),
    }
    for run in steppers.values():
        run()  # warm-up
    step_times: dict[str, list[tuple[float, float]]] = {name: [] for name in steppers}
    for _ in range(args.steps):
        for name, run in steppers.items():
            step_times[name].append(run())

    load = os.getloadavg()
    print(f"\n== SmolLM2-135M, {args.new_tokens} new tokens, {args.threads} threads, r={args.rank} on q_proj,v_proj, load {load[0]:.1f}")
    print(f"{'configuration':<38}{'decode tok/s':>14}{'x no adapter':>14}")
    results = {}
    for name, values in runs.items():
        base = statistics.median(runs[f"no adapter (plain graph), batch {4 if 'batch 4' in name else 1}"])
        median = statistics.median(values)
        results[name] = {"decode_tok_s": median, "vs_no_adapter": median / base, "rounds": values}
        print(f"{name:<38}{median:>14.1f}{median / base:>14.2f}")
    print(f"\n{'paired decode steps, 1 thread':<38}{'wall ms':>10}{'x':>6}{'CPU ms':>10}{'x':>6}")
    paired = {}
    for name, values in step_times.items():
        base_values = step_times[f"no adapter (plain graph), batch {4 if 'batch 4' in name else 1}"]
        wall, cpu = (statistics.median(v[i] for v in values) for i in (0, 1))
        base_wall, base_cpu = (statistics.median(v[i] for v in base_values) for i in (0, 1))
        paired[name] = {"wall_ms": 1000 * wall, "wall_speed": base_wall / wall, "cpu_ms": 1000 * cpu, "cpu_speed": base_cpu / cpu}
        print(f"{name:<38}{1000 * wall:>10.1f}{base_wall / wall:>6.2f}{1000 * cpu:>10.1f}{base_cpu / cpu:>6.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"threads": args.threads, "new_tokens": args.new_tokens, "rank": args.rank, "loadavg": load, **results, "paired_steps": paired}
    (RESULTS / "lora.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
