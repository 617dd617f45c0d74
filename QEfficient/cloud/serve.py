"""python -m QEfficient.cloud.serve: an OpenAI-compatible server with continuous batching.

    python -m QEfficient.cloud.serve [--model_name M] [--gguf_file F] [--host 127.0.0.1] [--port 8000]
        [--prefill_seq_len 32] [--ctx_len 512] [--full_batch_size 4] [--num_cores N] [--max_queue 64] [--mxfp6] [--mxint8]

With no --model_name it serves the default model, SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import argparse

from QEfficient.cloud._cli import add_argument, fail, resolve_model_name, setup_logging, step
from QEfficient.utils.extras import MissingExtraError, require_extra


def build_server(
    model_name: str,
    gguf_file: str | None,
    prefill_seq_len: int,
    ctx_len: int,
    full_batch_size: int,
    num_cores: int,
    max_queue: int = 64,
    mxfp6_matmul: bool = False,
    mxint8_kv_cache: bool = False,
):
    """(app, runner): the model compiled for continuous batching, its engine running, the FastAPI app."""
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.generation.continuous_batching import ContinuousBatchingEngine
    from QEfficient.generation.exec_kv import open_session, right_padding
    from QEfficient.generation.text_generation import eos_token_ids
    from QEfficient.serving.app import create_app
    from QEfficient.serving.runner import EngineRunner

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    model = QEFFAutoModelForCausalLM.from_pretrained(model_name, continuous_batching=True, **kwargs)
    qpc = model.compile(
        prefill_seq_len=prefill_seq_len,
        ctx_len=ctx_len,
        full_batch_size=full_batch_size,
        num_cores=num_cores,
        mxfp6_matmul=mxfp6_matmul,
        mxint8_kv_cache=mxint8_kv_cache,
    )
    tokenizer = right_padding(AutoTokenizer.from_pretrained(model.local_model_dir))
    session = open_session(qpc, num_cores)
    eos = eos_token_ids(tokenizer, model.model.hf.generation_config)
    engine = ContinuousBatchingEngine(session, prefill_seq_len, eos, tokenizer.pad_token_id or 0)
    runner = EngineRunner(engine, max_queue=max_queue).start()
    return create_app(runner, tokenizer, model.model_name, ctx_len), runner


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m QEfficient.cloud.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_argument(p, "model_name", default=None)
    add_argument(p, "gguf_file", default=None)
    add_argument(p, "host", default="127.0.0.1")
    add_argument(p, "port", type=int, default=8000)
    add_argument(p, "prefill_seq_len", type=int, default=32)
    add_argument(p, "ctx_len", type=int, default=512)
    add_argument(p, "full_batch_size", type=int, default=4)
    add_argument(p, "num_cores", type=int, default=16)
    add_argument(p, "max_queue", type=int, default=64, help="requests waiting for a slot before the server answers 429")
    add_argument(p, "mxfp6", action="store_true", help="8-bit MatMul weights (mxfp6_matmul): about 2x faster decode")
    add_argument(p, "mxint8", action="store_true", help="float16 KV cache (mxint8_kv_cache): half the cache memory")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    try:
        require_extra("serve", "python -m QEfficient.cloud.serve")
    except MissingExtraError as err:
        fail(str(err))
    import uvicorn

    try:
        model_name, gguf_file = resolve_model_name(args.model_name, args.gguf_file)
        with step(f"Loading and compiling {model_name} for continuous batching ({args.full_batch_size} slots)"):
            app, runner = build_server(
                model_name, gguf_file, args.prefill_seq_len, args.ctx_len, args.full_batch_size, args.num_cores, args.max_queue
            )
    except (FileNotFoundError, ValueError, TypeError) as err:
        fail(str(err))
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    finally:
        runner.stop()


if __name__ == "__main__":
    main()
