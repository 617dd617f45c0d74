"""bench_causal_lm.py's sweeps (decode tok/s against the compiled ctx_len and the batch size, each point in
its own worker process) and their PNG plot."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

CTX_LENS = (256, 1024, 4096)
BATCHES = (1, 2, 4)


def sweeps(base: dict, res: dict, run_worker: Callable[[dict], dict | None]) -> None:
    """Fill ``res["ctx_sweep"]`` (fp32 and mxfp6 decode tok/s at each compiled ctx_len, the same 32-token
    prompt) and ``res["batch_sweep"]`` (aggregate decode tok/s of HF, fp32 and mxfp6 at each batch size);
    a failed worker leaves None."""
    res["ctx_sweep"] = {}
    for ctx in CTX_LENS:
        for mx in (False, True):
            r = run_worker({**base, "engine": "qeff", "ctx": ctx, "mxfp6": mx, "repeats": 2})
            res["ctx_sweep"][f"{'mxfp6' if mx else 'fp32'}@{ctx}"] = r and r["decode_tok_s"]
    print("\ndecode tok/s by ctx_len (same 32-token prompt): " + json.dumps(_rounded(res["ctx_sweep"])))
    res["batch_sweep"] = {}
    for batch in BATCHES:
        for key, cfg in (("hf", {"engine": "hf"}), ("fp32", {"engine": "qeff"}), ("mxfp6", {"engine": "qeff", "mxfp6": True})):
            r = run_worker({**base, **cfg, "batch": batch, "repeats": 2})
            res["batch_sweep"][f"{key}@{batch}"] = r and r["decode_tok_s"] * batch
    print("aggregate decode tok/s by batch: " + json.dumps(_rounded(res["batch_sweep"])))


def _rounded(figures: dict) -> dict:
    return {k: v if v is None else round(v, 1) for k, v in figures.items()}


def plot(res: dict, results: Path) -> None:
    """The two sweeps side by side in ``results``/causal_lm.png (needs matplotlib; skipped without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("(pip install matplotlib for the PNG plot)")
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for kind in ("fp32", "mxfp6"):
        a.plot(CTX_LENS, [res["ctx_sweep"][f"{kind}@{c}"] for c in CTX_LENS], marker="o", label=f"QEfficient {kind}")
    if res.get("hf_eager"):
        a.axhline(res["hf_eager"]["decode_tok_s"], color="gray", ls="--", label="HF eager (ctx 256)")
    if res.get("llamacpp"):
        a.axhline(res["llamacpp"]["decode_tok_s"], color="black", ls=":", label="llama.cpp (the GGUF file)")
    a.set(xscale="log", xlabel="ctx_len (compiled)", ylabel="decode tok/s (batch 1)", title="Decode speed vs context length")
    a.set_xticks(CTX_LENS, [str(c) for c in CTX_LENS])
    a.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    a.legend()
    for key, name in (("hf", "HF eager"), ("fp32", "QEfficient fp32"), ("mxfp6", "QEfficient mxfp6")):
        b.plot(BATCHES, [res["batch_sweep"][f"{key}@{n}"] for n in BATCHES], marker="o", label=name)
    b.set(xlabel="batch size", ylabel="aggregate decode tok/s", title="Decode throughput vs batch size")
    b.set_xticks(BATCHES)
    b.legend()
    fig.tight_layout()
    results.mkdir(parents=True, exist_ok=True)
    fig.savefig(results / "causal_lm.png", dpi=110)
    print(f"wrote {results / 'causal_lm.png'}")
