"""python -m QEfficient.cloud.batch: generation or embeddings over a JSONL/Parquet file on Ray Data.

    python -m QEfficient.cloud.batch (--model_name M | --qpc_path ARTIFACT) --input prompts.jsonl --output out.jsonl
        [--task generate|embed] [--input_column prompt] [--output_column NAME] [--generation_len 64]
        [--prefill_seq_len 32] [--ctx_len 512] [--batch_size 4] [--seq_len 128] [--pooling mean]
        [--num_actors 2] [--cores_per_actor 1] [--ray_address ADDR] [--ship_artifact auto|on|off]

Each output row is its input row plus the generated text (or the embedding). Run it again after an
interruption and it goes on from the last row written. With --qpc_path, an artifact compile() built runs as it
is (its task and sizes; no torch, no model folder). Needs Ray: pip install "QEfficient[ray]".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from QEfficient.cloud._cli import add_argument, fail, resolve_model_name, setup_logging, step

COMPILE_OPTIONS = (  # what is compiled: fixed by an artifact given with --qpc_path
    "prefill_seq_len",
    "ctx_len",
    "batch_size",
    "seq_len",
    "pooling",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m QEfficient.cloud.batch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_argument(p, "model_name", default=None)
    add_argument(p, "qpc_path", default=None, help="an artifact compile() built, run as it is (instead of compiling a model)")
    add_argument(p, "input", required=True, help="JSONL file, or Parquet file or folder")
    add_argument(p, "output", required=True, help="*.jsonl (appended) or *.parquet (a folder of parts)")
    add_argument(p, "task", choices=("generate", "embed"), default=None, help="default: generate (with --qpc_path: the artifact's)")
    add_argument(p, "input_column", default="prompt")
    add_argument(p, "output_column", default=None, help="default: generated_text or embedding")
    add_argument(p, "generation_len", type=int, default=None)
    # what is compiled (None: BatchJob's default; refused with --qpc_path, whose artifact fixes them)
    add_argument(p, "prefill_seq_len", type=int, default=None, help="default 32")
    add_argument(p, "ctx_len", type=int, default=None, help="default 512")
    add_argument(p, "batch_size", type=int, default=None, help="rows per model call (the compiled batch size; default 4)")
    add_argument(p, "seq_len", type=int, default=None, help="embed: the longest input in tokens (default 128)")
    add_argument(p, "pooling", default=None, help="embed: mean, cls, max, lasttoken (default: the model's sentence-transformers config)")
    add_argument(p, "num_actors", type=int, default=1, help="compiled models working at once")
    add_argument(p, "cores_per_actor", type=int, default=1)
    add_argument(p, "ray_address", default=None, help="Ray cluster to join (default: start a local one)")
    add_argument(
        p,
        "ship_artifact",
        choices=("auto", "on", "off"),
        default="auto",
        help="send the compiled model to the actors through Ray's object store (auto: when the cluster has several nodes)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(args.verbose)
    # what the user can get wrong is checked before Ray (and torch) import: seconds, not a stack trace later
    if not Path(args.input).exists():
        fail(f"The input '{args.input}' does not exist.")
    if not Path(args.output).absolute().parent.is_dir():
        fail(f"The output's folder '{Path(args.output).absolute().parent}' does not exist: create it, or pick another --output.")
    compiled = {name: getattr(args, name) for name in COMPILE_OPTIONS if getattr(args, name) is not None}
    if args.qpc_path is not None:
        if compiled:
            fail(f"--{' --'.join(compiled)}: the artifact at --qpc_path was compiled with its own; leave them out.")
        model_name = args.model_name
    else:
        try:
            model_name, gguf_file = resolve_model_name(args.model_name, None)
        except (FileNotFoundError, ValueError) as err:
            fail(str(err))
        if gguf_file:  # the default model: its .gguf file (from_pretrained loads one by path)
            model_name = str(Path(model_name) / gguf_file)
    from QEfficient.distributed.ray_data import BatchJob, run_batch

    options = dict(input_column=args.input_column, output_column=args.output_column, generation_len=args.generation_len)
    options |= dict(num_actors=args.num_actors, cores_per_actor=args.cores_per_actor, ship_artifact=args.ship_artifact)
    try:
        job = BatchJob(model_name=model_name, task=args.task, qpc_path=args.qpc_path, **options, **compiled)
    except (ImportError, ValueError) as err:  # (ImportError: an embedding artifact needs the serve extra)
        fail(str(err))
    try:
        from QEfficient.distributed import require_ray

        ray = require_ray()
    except ImportError as err:
        fail(str(err))
    try:
        ray.init(address=args.ray_address, ignore_reinit_error=True)
        with step(f"{job.task} over {args.input} with {args.num_actors} x {job.model_name}"):
            written = run_batch(job, args.input, args.output)
    except (OSError, ValueError, TypeError) as err:
        fail(err)
    print(f"[QEfficient] {written} rows written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
