"""Speculative decoding on SmolLM2-135M-Instruct (the default GGUF): decode tok/s of plain greedy
(fp32 and the 8-bit mxfp6 artifact), prompt lookup and self-speculation (the 8-bit artifact drafts
for the fp32 target), on an input-grounded task (rewrite a given paragraph) and on free generation,
with acceptance rates. Every speculative run is checked token for token against plain fp32 greedy.

    .venv/bin/python benchmarks/bench_speculative.py [--threads 2] [--new-tokens 128] [--repeats 2]

Ratios matter, not absolute figures: the machines are shared and noisy. Speculative sessions spin
within a run and stop when it returns, or never on oversubscribed cores (--spin auto, the library's
choice; run / off force one); "x fp32" compares with plain fp32 greedy as the library runs it (spinning), "x nospin" with
plain fp32 on a session that never spins, and "cpu x" is plain fp32's CPU time per token over the
row's (the ratio that load on shared cores distorts least). Writes benchmarks/results/speculative.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PARAGRAPH = (
    "The city council met on Tuesday evening to discuss the proposal for a new public library in the north district. "
    "Supporters argued that the library would give children a safe place to study after school and would offer free "
    "internet access to families who cannot afford it at home. Opponents worried about the cost of construction and "
    "the yearly budget for staff and books, and asked whether the old library downtown could be repaired instead. "
    "After two hours of debate, the council voted to fund a study of both options and to decide next spring."
)
TASKS = {
    "rewrite": f"Rewrite the following paragraph, keeping its meaning and most of its words:\n\n{PARAGRAPH}",
    "free": "Write a short story about a robot who learns to paint.",
}


def chat_prompt(tokenizer, user: str) -> str:
    messages = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--lookup-k", type=int, default=8)
    ap.add_argument("--draft-k", type=int, nargs="+", default=[8])
    ap.add_argument("--draft", nargs="+", default=["mxfp6"], choices=["mxfp6", "gguf"], help="self-draft artifacts to measure")
    ap.add_argument("--schedule", nargs="+", default=["heuristic"], choices=["heuristic", "constant"])
    ap.add_argument("--min-ngram", type=int, default=2, help="prompt lookup's min_matching_ngram_size")
    ap.add_argument(
        "--spin",
        default="auto",
        choices=["auto", "run", "off"],
        help="speculative sessions: as the library picks, spin within runs, or never",
    )
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    args = ap.parse_args()

    from transformers import AutoTokenizer

    import QEfficient.models.speculative as speculative
    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.generation.exec_kv import right_padding
    from QEfficient.generation.text_generation import TextGeneration, eos_token_ids
    from QEfficient.loading.hf_loader import default_model_path
    from QEfficient.runtime.ort_session import open_kv_session

    gguf = default_model_path()
    source = {"pretrained_model_name_or_path": str(gguf.parent), "gguf_file": gguf.name}
    compile_args = {"prefill_seq_len": 32, "ctx_len": 1024, "num_cores": args.threads}
    budget = max(args.lookup_k, *args.draft_k)
    plain = QEFFAutoModelForCausalLM.from_pretrained(**source)
    plain.compile(**compile_args)
    plain8 = QEFFAutoModelForCausalLM.from_pretrained(**source)
    plain8.compile(**compile_args, mxfp6_matmul=True)
    speculative.SESSION_SPIN = {"auto": None, "run": "run", "off": False}[args.spin]
    targets = {}
    for draft in args.draft:
        targets[draft] = QEFFAutoModelForCausalLM.from_pretrained(**source, qaic_config={"speculative_model_type": "target"})
        targets[draft].compile(**compile_args, num_speculative_tokens=budget, speculative_draft=draft)
    target = next(iter(targets.values()))
    tok = AutoTokenizer.from_pretrained(plain.local_model_dir)

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def timed(generate) -> tuple:
        wall, cpu = time.perf_counter(), cpu_seconds()
        info = generate()
        return info, cpu_seconds() - cpu, time.perf_counter() - wall

    def summary(runs: list[tuple], first: tuple) -> dict:
        """Decode tok/s (median) and decode CPU ms per token: each run's CPU time less a run that only
        prefills (``first``, generation_len=1), over the tokens after the first."""
        tokens = runs[-1][0].generated_ids[0][0].tolist()
        decode_cpu = [r[1] - first[1] for r in runs]
        return {
            "decode_tok_s": statistics.median(r[0].perf_metrics.decode_perf for r in runs),
            "cpu_ms_per_token": 1e3 * statistics.median(decode_cpu) / (len(tokens) - 1),
            "tokens": tokens,
        }

    def measure(model, prompt: str, **kwargs) -> dict:
        model.generate(tok, [prompt], generation_len=8, stream=False, **kwargs)  # warm-up
        first = timed(lambda: model.generate(tok, [prompt], generation_len=1, stream=False, **kwargs))
        run = lambda: model.generate(tok, [prompt], generation_len=args.new_tokens, stream=False, **kwargs)  # noqa: E731
        runs = [timed(run) for _ in range(args.repeats)]
        out = summary(runs, first)
        runs = [r[0] for r in runs]
        stats = getattr(runs[-1], "speculative_stats", None)
        if stats:
            out["acceptance_rate"] = stats["acceptance_rate"]
            out["tokens_per_verify"] = len(out["tokens"]) / max(1, stats["verify_steps"])  # stats of the last run
        return out

    def measure_quiet(model, prompt: str) -> dict:
        """Plain greedy over a session whose threads do not spin between runs (as speculation's sessions)."""
        session = open_kv_session(model.qpc_path, args.threads, spin=False)
        gen = TextGeneration(session, right_padding(tok), 32, eos_token_ids(tok, model.model.hf.generation_config))
        gen.generate([prompt], generation_len=8, stream=False)
        first = timed(lambda: gen.generate([prompt], generation_len=1, stream=False))
        run = lambda: gen.generate([prompt], generation_len=args.new_tokens, stream=False)  # noqa: E731
        return summary([timed(run) for _ in range(args.repeats)], first)

    results = {}
    for task in args.tasks:
        prompt = chat_prompt(tok, TASKS[task])
        rows = {"plain fp32": measure(plain, prompt), "plain fp32, no spin": measure_quiet(plain, prompt)}
        rows["plain 8-bit"] = measure(plain8, prompt)
        lookup = {"prompt_lookup_num_tokens": args.lookup_k, "min_matching_ngram_size": args.min_ngram}
        rows[f"prompt lookup K={args.lookup_k} n>={args.min_ngram}"] = measure(target, prompt, **lookup)
        for draft, model in targets.items():
            for k in args.draft_k:
                for schedule in args.schedule:
                    name = f"self-spec {draft} K={k} {schedule[:5]}"
                    rows[name] = measure(model, prompt, num_assistant_tokens=k, num_assistant_tokens_schedule=schedule)
        base = rows["plain fp32"]
        print(f"\n== {task}: {len(tok(prompt)['input_ids'])} prompt tokens, {len(base['tokens'])} new tokens, {args.threads} threads")
        print(f"{'engine':<34}{'decode tok/s':>13}{'x fp32':>8}{'x nospin':>9}{'cpu ms/tok':>11}{'cpu x':>7}{'accept':>8}{'exact':>7}")
        for name, r in rows.items():
            exact = r["tokens"] == base["tokens"] if name != "plain 8-bit" else None
            r["speedup"] = r["decode_tok_s"] / base["decode_tok_s"]
            r["speedup_vs_no_spin"] = r["decode_tok_s"] / rows["plain fp32, no spin"]["decode_tok_s"]
            r["cpu_speedup_vs_no_spin"] = rows["plain fp32, no spin"]["cpu_ms_per_token"] / r["cpu_ms_per_token"]
            r["exact_vs_fp32"] = exact
            acc = f"{r['acceptance_rate']:.2f}" if "acceptance_rate" in r else "-"
            exact_text = "-" if exact is None else str(exact)
            print(
                f"{name:<34}{r['decode_tok_s']:>13.1f}{r['speedup']:>8.2f}{r['speedup_vs_no_spin']:>9.2f}"
                f"{r['cpu_ms_per_token']:>11.1f}{r['cpu_speedup_vs_no_spin']:>7.2f}{acc:>8}{exact_text:>7}"
            )
        results[task] = {name: {k: v for k, v in r.items() if k != "tokens"} for name, r in rows.items()}
    load = os.getloadavg()
    print(f"\nload average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (1/5/15 min), {os.cpu_count()} cores; speculative spin={args.spin}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "new_tokens": args.new_tokens, "load_average": load, "spin": args.spin}
    (RESULTS / "speculative.json").write_text(json.dumps({**meta, **results}, indent=1))


if __name__ == "__main__":
    main()
