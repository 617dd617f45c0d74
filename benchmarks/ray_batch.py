"""Ray Data batch generation against plain generate() over the same rows, one process per core.

    PYTHONPATH=. python benchmarks/ray_batch.py [--model_name DIR_OR_GGUF] [--rows 96] [--generation_len 32] \
        [--workers 2] [--batch_size 4] [--ray_first]

Both sides run the same compiled artifact (batch_size rows per call, greedy, 1 ONNX Runtime thread
per worker) over the same rows, split in ``workers`` shares:

- plain: ``workers`` processes, each loading the model and running ``generate()`` over its share;
- Ray: ``run_batch`` with ``workers`` actors x 1 core on a local Ray instance started beforehand.

Wall time counts from the start of the job (processes spawned / run_batch called) to the last row,
so model loading is in both. The Ray rows are checked equal to generate()'s. Without --model_name it
runs the default model (SmolLM2-135M-Instruct). The figures go to docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

PROMPTS = ["My name is", "The sun rises", "Once upon a time a robot", "What is the capital of France?", "Paris", "Numbers: 1 2"]


def plain_worker(args: tuple) -> tuple[list[str], float]:
    """One process: load, compile (cached), generate() over its share; (texts, seconds in generate)."""
    model_name, prompts, generation_len, prefill_seq_len, ctx_len, batch_size = args
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM

    model = QEFFAutoModelForCausalLM.from_pretrained(model_name)
    model.compile(prefill_seq_len=prefill_seq_len, ctx_len=ctx_len, batch_size=batch_size, num_cores=1)
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    start = time.perf_counter()
    texts = model.generate(tokenizer, prompts, generation_len=generation_len, stream=False).texts
    return texts, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model_name", default=None, help="model folder or .gguf file (default: SmolLM2-135M-Instruct)")
    p.add_argument("--rows", type=int, default=96)
    p.add_argument("--generation_len", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--ray_first", action="store_true", help="run the Ray job first")
    args = p.parse_args()
    from QEfficient.cloud._cli import resolve_model_name
    from QEfficient.distributed.ray_data import BatchJob, run_batch

    folder, gguf = resolve_model_name(args.model_name, None)
    model_name = str(Path(folder) / gguf) if gguf else folder
    rows = [PROMPTS[i % len(PROMPTS)] for i in range(args.rows)]
    job = BatchJob(
        model_name=model_name,
        generation_len=args.generation_len,
        prefill_seq_len=32,
        ctx_len=256,
        batch_size=args.batch_size,
        num_actors=args.workers,
        cores_per_actor=1,
        ship_artifact="off",
    )
    job.load()  # compile once: both sides then find the artifact in QEFF_HOME
    print(f"load average before: {os.getloadavg()}", flush=True)

    def plain() -> tuple[float, list[str], float]:
        # contiguous shares, as Ray Data hands out blocks; the concatenation is the rows in order
        per = -(-len(rows) // args.workers)
        work = [(model_name, rows[i * per : (i + 1) * per], args.generation_len, 32, 256, args.batch_size) for i in range(args.workers)]
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            done = pool.map(plain_worker, work)
        return time.perf_counter() - start, [t for texts, _ in done for t in texts], max(seconds for _, seconds in done)

    def on_ray() -> tuple[float, list[str]]:
        import ray

        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        with tempfile.TemporaryDirectory() as work_dir:
            source, out = Path(work_dir) / "in.jsonl", Path(work_dir) / "out.jsonl"
            source.write_text("".join(json.dumps({"prompt": r}) + "\n" for r in rows))
            start = time.perf_counter()
            run_batch(job, source, out)
            wall = time.perf_counter() - start
            texts = [json.loads(line)["generated_text"] for line in out.read_text().splitlines()]
        ray.shutdown()
        return wall, texts

    if args.ray_first:  # the other jobs on a shared machine change between the two runs: swap to see it
        ray_wall, got = on_ray()
        plain_wall, expected, plain_generate = plain()
    else:
        plain_wall, expected, plain_generate = plain()
        ray_wall, got = on_ray()
    assert got == expected, "a Ray Data row differs from generate()'s"
    n = len(rows)
    print(f"load average after: {os.getloadavg()}")
    print(f"plain, {args.workers} processes x generate(): {n / plain_wall:.2f} rows/s ({plain_wall:.1f} s)", end="")
    print(f" (of which generate() {plain_generate:.1f} s)")
    print(f"Ray Data, {args.workers} actors x 1 core:      {n / ray_wall:.2f} rows/s ({ray_wall:.1f} s)")
    print(f"Ray / plain throughput: {plain_wall / ray_wall:.3f}")


if __name__ == "__main__":
    main()
