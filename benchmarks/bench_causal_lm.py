"""Side-by-side speed of SmolLM2-135M-Instruct: Hugging Face eager (PyTorch) vs QEfficient on ONNX Runtime.

    .venv/bin/python benchmarks/bench_causal_lm.py [--threads 2] [--new-tokens 128] [--repeats 3]

Both run in this one process, on the same weights, threads and 32-token chat prompt, greedy.
Prints time to first token, decode tok/s and the ratios, plus export/compile times (cold in a fresh
QEFF_HOME, then cached), and writes the figures as JSON. Ratios matter, not absolute seconds: the
machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

PROMPT_SYSTEM = "You are a helpful assistant."
PROMPT_USER = "Write a short story about a robot who learns to paint."


def hf_eager(hf_model, input_ids, new_tokens: int) -> tuple[float, float, list[int]]:
    """(ttft s, decode tok/s, tokens) for HF generate, timed with a logits-processor timestamp."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    stamps: list[float] = []

    class Stamp(LogitsProcessor):
        def __call__(self, ids, scores):
            stamps.append(time.perf_counter())
            return scores

    start = time.perf_counter()
    with torch.inference_mode():
        out = hf_model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                                max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                logits_processor=LogitsProcessorList([Stamp()]))
    return stamps[0] - start, (len(stamps) - 1) / (stamps[-1] - stamps[0]), out[0, input_ids.shape[1]:].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ctx-len", type=int, default=256)
    ap.add_argument("--json", default="benchmarks/results/causal_lm.json")
    args = ap.parse_args()

    os.environ["QEFF_HOME"] = tempfile.mkdtemp(prefix="qeff-bench-")  # cold export/compile, measured
    import torch
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.loading.hf_loader import default_model_path

    torch.set_num_threads(args.threads)
    gguf = default_model_path()
    t = time.perf_counter()
    model = QEFFAutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    load_cold = time.perf_counter() - t
    t = time.perf_counter()
    model.export()
    export_cold = time.perf_counter() - t
    t = time.perf_counter()
    model.compile(prefill_seq_len=32, ctx_len=args.ctx_len, num_cores=args.threads)
    compile_after_export = time.perf_counter() - t

    t = time.perf_counter()
    model2 = QEFFAutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    load_cached = time.perf_counter() - t
    t = time.perf_counter()
    model2.compile(prefill_seq_len=32, ctx_len=args.ctx_len, num_cores=args.threads)
    compile_cached = time.perf_counter() - t
    del model2

    tok = AutoTokenizer.from_pretrained(model.local_model_dir)
    messages = [{"role": "system", "content": PROMPT_SYSTEM}, {"role": "user", "content": PROMPT_USER}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    input_ids = tok(prompt, return_tensors="pt").input_ids

    t = time.perf_counter()
    model.generate(tok, [prompt], generation_len=2, stream=False)  # warm-up; includes session creation
    session_create = time.perf_counter() - t
    hf_eager(model.model.hf, input_ids, 4)

    hf_runs, ours_runs = [], []
    for _ in range(args.repeats):
        hf_runs.append(hf_eager(model.model.hf, input_ids, args.new_tokens))
        info = model.generate(tok, [prompt], generation_len=args.new_tokens, stream=False)
        ours_runs.append((info.perf_metrics.prefill_time, info.perf_metrics.decode_perf, info.generated_ids[0][0].tolist()))

    def med(runs, i):
        return statistics.median(r[i] for r in runs)

    ref, ours = hf_runs[0][2], ours_runs[0][2]
    same = next((i for i, (a, b) in enumerate(zip(ref, ours)) if a != b), min(len(ref), len(ours)))
    result = {
        "machine": {"cpus": os.cpu_count(), "threads": args.threads},
        "prompt_tokens": int(input_ids.shape[1]), "new_tokens": args.new_tokens, "ctx_len": args.ctx_len,
        "hf_eager": {"ttft_s": med(hf_runs, 0), "decode_tok_s": med(hf_runs, 1)},
        "qeff_ort_fp32": {"ttft_s": med(ours_runs, 0), "decode_tok_s": med(ours_runs, 1)},
        "greedy_tokens_equal_to_hf": f"{same}/{len(ref)}",
        "startup_s": {"load_gguf_cold": load_cold, "export_cold": export_cold, "compile_after_export": compile_after_export,
                      "load_cached": load_cached, "compile_cached": compile_cached, "session_create_and_warmup": session_create},
    }
    hf, ort_ = result["hf_eager"], result["qeff_ort_fp32"]
    print(f"\nSmolLM2-135M-Instruct, batch 1, {args.threads} threads, {result['prompt_tokens']}-token prompt, "
          f"{args.new_tokens} new tokens, median of {args.repeats}")
    print(f"{'':16s}{'TTFT ms':>10s}{'decode tok/s':>14s}")
    print(f"{'HF eager':16s}{hf['ttft_s'] * 1e3:10.1f}{hf['decode_tok_s']:14.1f}")
    print(f"{'QEfficient fp32':16s}{ort_['ttft_s'] * 1e3:10.1f}{ort_['decode_tok_s']:14.1f}")
    print(f"ratio: decode {ort_['decode_tok_s'] / hf['decode_tok_s']:.2f}x HF, TTFT {hf['ttft_s'] / ort_['ttft_s']:.2f}x faster")
    print(f"greedy tokens equal to HF: {result['greedy_tokens_equal_to_hf']}")
    print("start-up (s): " + ", ".join(f"{k} {v:.2f}" for k, v in result["startup_s"].items()))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
