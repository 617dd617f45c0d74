"""The peer engines of benchmarks/bench_causal_lm.py (ONNX Runtime GenAI, OpenVINO GenAI, llama.cpp), each run
in its own virtualenv (made by benchmarks/setup_peers.sh) as ``PYTHON benchmarks/peers.py --worker CFG``,
and the per-process measurement helpers (peak RSS, perplexity from logits) the benchmark's own workers share.

This file imports only the standard library at the top: it runs unchanged under a peer's interpreter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


# ---------------------------------------------------------------- measurement helpers (worker side)
def peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM, the peak resident set


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def log_softmax_ppl(logits, targets) -> float:
    """exp(mean negative log-likelihood) of ``targets`` under ``logits`` (one row per target)."""
    import numpy as np

    scores = np.asarray(logits, dtype=np.float64)
    top = scores.max(-1, keepdims=True)
    logz = top[:, 0] + np.log(np.exp(scores - top).sum(-1))
    return float(np.exp(np.mean(logz - scores[np.arange(len(scores)), targets])))


def measure_peer(run, cfg: dict) -> dict:
    """A warm-up, then ``repeats`` timed runs of ``run(new_tokens, prompt_ids) -> (ttft_s, tok/s, tokens)``
    (CPU ms per token: the process's CPU time over the run, prefill included, / new_tokens); the
    LONG_PROMPT-token time to first token when the driver gave those ids."""
    run(4, cfg["prompt_ids"])
    runs = []
    load_peak = peak_rss_mb()  # loading the model and tokenizer, and the warm-up
    peak_rss_reset()
    for _ in range(cfg["repeats"]):
        cpu = time.process_time()
        ttft, rate, out = run(cfg["new_tokens"], cfg["prompt_ids"])
        runs.append((ttft, rate, (time.process_time() - cpu) * 1e3 / cfg["new_tokens"]))
    result = {
        "ttft_s": statistics.median(r[0] for r in runs),
        "decode_tok_s": statistics.median(r[1] for r in runs),
        "cpu_ms_per_token": statistics.median(r[2] for r in runs),
        "peak_rss_mb": peak_rss_mb(),
        "load_peak_rss_mb": load_peak,
        "tokens": out,
    }
    if cfg.get("long_prompt_ids"):
        result["ttft_long_s"] = statistics.median(run(1, cfg["long_prompt_ids"])[0] for _ in range(cfg["repeats"]))
    return result


def worker_ortgenai(cfg: dict) -> dict:
    """ONNX Runtime GenAI (its own venv): the model builder's graph, the same prompt token ids, greedy; the
    output decoded to text by its tokenizer, as a user's script does (every other engine holds one: ours and
    OpenVINO's pipeline load theirs, llama.cpp reads its vocabulary from the GGUF)."""
    import onnxruntime_genai as og

    config = og.Config(cfg["model_dir"])
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": cfg["threads"]}}}}))
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)

    def run(n: int, prompt: list[int]) -> tuple[float, float, list[int]]:
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(prompt) + n, min_length=len(prompt) + n)
        gen = og.Generator(model, params)
        start = time.perf_counter()
        gen.append_tokens(prompt)
        gen.generate_next_token()  # the prompt's logits -> the first token
        first = time.perf_counter()
        while not gen.is_done():
            gen.generate_next_token()
        end = time.perf_counter()
        out = [int(t) for t in gen.get_sequence(0)][len(prompt) :]
        tokenizer.decode(out)  # after the clock, as ours decodes its texts
        return first - start, (len(out) - 1) / (end - first), out

    result = measure_peer(run, cfg)
    if cfg.get("ppl"):  # every position's logits of the text in one prefill
        text = cfg["ppl_ids"]
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(text) + 1)
        gen = og.Generator(model, params)
        gen.append_tokens(text)
        logits = gen.get_output("logits").reshape(len(text), -1)
        result["perplexity"] = log_softmax_ppl(logits[:-1], text[1:])
    return result


def worker_openvino(cfg: dict) -> dict:
    """OpenVINO GenAI (its own venv) on the optimum-intel export, the same prompt token ids, greedy; the
    perplexity through the same IR with OpenVINO's runtime (LLMPipeline returns no logits)."""
    import numpy as np
    import openvino as ov
    import openvino_genai as ov_genai

    props = {"INFERENCE_NUM_THREADS": cfg["threads"], "INFERENCE_PRECISION_HINT": "f32"}
    scheduler = ov_genai.SchedulerConfig()
    scheduler.enable_prefix_caching = False  # on by default: a repeated prompt would skip its prefill
    pipe = ov_genai.LLMPipeline(cfg["model_dir"], "CPU", scheduler_config=scheduler, **props)

    def run(n: int, prompt: list[int]) -> tuple[float, float, list[int]]:
        config = ov_genai.GenerationConfig(max_new_tokens=n, min_new_tokens=n, do_sample=False)
        ids = ov.Tensor(np.asarray([prompt], dtype=np.int64))
        out = pipe.generate(ov_genai.TokenizedInputs(ids, ov.Tensor(np.ones((1, len(prompt)), dtype=np.int64))), config)
        ttft, tpot = out.perf_metrics.get_ttft().mean, out.perf_metrics.get_tpot().mean  # ms
        return ttft / 1e3, 1e3 / tpot if tpot > 0 else float("nan"), [int(t) for t in out.tokens[0]]

    result = measure_peer(run, cfg)
    if cfg.get("ppl"):
        del pipe
        request = ov.Core().compile_model(str(Path(cfg["model_dir"]) / "openvino_model.xml"), "CPU", props).create_infer_request()
        text = np.asarray([cfg["ppl_ids"]], dtype=np.int64)
        n = text.shape[1]
        feeds = {
            "input_ids": text,
            "attention_mask": np.ones_like(text),
            "position_ids": np.arange(n)[None],
            "beam_idx": np.zeros(1, np.int32),
        }
        request.reset_state()
        request.infer({k: v for k, v in feeds.items() if any(k in i.names for i in request.model_inputs)})
        result["perplexity"] = log_softmax_ppl(request.get_tensor("logits").data[0, :-1], cfg["ppl_ids"][1:])
    return result


def worker_llamacpp(cfg: dict) -> dict:
    """llama.cpp through llama-cpp-python (its own venv) on the GGUF file itself, the same prompt token
    ids, greedy (argmax of each step's logits); perplexity on the same tokens as every engine."""
    import numpy as np
    from llama_cpp import Llama

    def load(n_ctx: int, logits_all: bool = False) -> Llama:
        return Llama(
            model_path=cfg["gguf"],
            n_ctx=n_ctx,
            n_threads=cfg["threads"],
            n_threads_batch=cfg["threads"],
            n_batch=512,
            logits_all=logits_all,
            verbose=False,
        )

    llm = load(2 * max(512, len(cfg.get("long_prompt_ids") or [])))
    vocab = llm.n_vocab()

    def next_token() -> int:  # llama-cpp-python 0.3: the last position's logits stay in the context
        return int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))))

    def run(n: int, prompt: list[int]) -> tuple[float, float, list[int]]:
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        out = [next_token()]
        first = time.perf_counter()
        for _ in range(n - 1):
            llm.eval(out[-1:])
            out.append(next_token())
        end = time.perf_counter()
        return first - start, (n - 1) / (end - first) if n > 1 else float("nan"), out

    result = measure_peer(run, cfg)
    result["version"] = __import__("llama_cpp").__version__
    if cfg.get("ppl"):  # every position's logits of the text in one prefill
        del llm
        text = cfg["ppl_ids"]
        llm = load(len(text), logits_all=True)
        llm.eval(text)
        result["perplexity"] = log_softmax_ppl(np.asarray(llm.scores[: len(text) - 1]), text[1:])
    return result


# ---------------------------------------------------------------- peers
# peer engine -> (its virtualenv under --peers, the model folder under --peers/models); see docs/performance.md
PEERS = {
    "ortgenai_fp32": ("ortgenai", "ortgenai-fp32", "ONNX Runtime GenAI fp32"),
    "ortgenai_int8": ("ortgenai", "ortgenai-int8", "ONNX Runtime GenAI int8"),
    "ortgenai_int4": ("ortgenai", "ortgenai-int4", "ONNX Runtime GenAI int4"),
    "openvino_fp32": ("openvino", "openvino-fp32", "OpenVINO GenAI fp32"),
    "openvino_int8": ("openvino", "openvino-int8", "OpenVINO GenAI int8"),
    "openvino_int4": ("openvino", "openvino-int4", "OpenVINO GenAI int4"),
    "llamacpp": ("llamacpp", None, "llama.cpp (the GGUF file)"),  # model: the benchmarked GGUF file itself
}


def run_peer_worker(cfg: dict, python: Path) -> dict | None:
    """A worker under another interpreter (a peer engine's own virtualenv); this file imports only the
    standard library at the top, so it runs there as it is."""
    proc = subprocess.run([str(python), __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"worker {cfg['engine']} ({python}) failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
    return None


def peer_config(peers: Path, key: str, base: dict) -> tuple[dict, Path] | None:
    """The worker configuration and interpreter of peer ``key`` under ``peers``, or None (said) when
    its virtualenv or model is missing. ONNX Runtime GenAI and OpenVINO run the SmolLM2 models
    setup_peers.sh built; llama.cpp runs the benchmarked GGUF file."""
    venv, model, _ = PEERS[key]
    python = peers / venv / "bin" / "python"
    folder = peers / "models" / model if model else Path(base["gguf_dir"]) / base["gguf_file"]
    if not (python.is_file() and folder.exists()):
        print(f"(no {key}: {python} or {folder} is missing; see docs/performance.md)")
        return None
    engine = key.split("_")[0]
    return {**base, "engine": engine, "model_dir": str(folder), "gguf": str(folder)}, python


def worker_ortgenai_beams(cfg: dict) -> dict:
    """ONNX Runtime GenAI's beam search (benchmarks/bench_causal_beams.py): ``beams`` beams, exactly ``new_tokens``
    tokens (min_length holds every hypothesis to that length); seconds per generate, median of ``repeats`` after a
    warm-up, and the best sequence."""
    import onnxruntime_genai as og

    config = og.Config(cfg["model_dir"])
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": cfg["threads"]}}}}))
    model = og.Model(config)
    prompt, total = cfg["prompt_ids"], len(cfg["prompt_ids"]) + cfg["new_tokens"]

    def run() -> tuple[float, list[int]]:
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, num_beams=cfg["beams"], max_length=total, min_length=total, early_stopping=False)
        gen = og.Generator(model, params)
        start = time.perf_counter()
        gen.append_tokens(prompt)
        while not gen.is_done():
            gen.generate_next_token()
        return time.perf_counter() - start, [int(t) for t in gen.get_sequence(0)][len(prompt) :]

    run()
    times, out = [], []
    for _ in range(cfg["repeats"]):
        seconds, out = run()
        times.append(seconds)
    return {"seconds": statistics.median(times), "tokens": out}


WORKERS = {"ortgenai": worker_ortgenai, "openvino": worker_openvino, "llamacpp": worker_llamacpp, "ortgenai_beams": worker_ortgenai_beams}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True, help="the JSON configuration bench_causal_lm.py passes")
    cfg = json.loads(ap.parse_args().worker)
    print("RESULT " + json.dumps(WORKERS[cfg["engine"]](cfg)), flush=True)
