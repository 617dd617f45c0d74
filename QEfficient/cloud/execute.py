"""python -m QEfficient.cloud.execute: generate with an artifact that compile() already built."""

from __future__ import annotations

import argparse

from QEfficient.cloud._cli import add_argument, fail, setup_logging, step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m QEfficient.cloud.execute", description=__doc__)
    add_argument(p, "qpc_path", required=True, help="the artifact directory returned by compile()")
    add_argument(p, "model_name", default=None, help="where to load the tokenizer from (default: recorded at compile time)")
    add_argument(p, "local_model_dir", default=None)
    add_argument(p, "prompt", default="My name is", help="prompt(s), separated by '|'")
    add_argument(p, "prompts_txt_file_path", default=None)
    add_argument(p, "generation_len", type=int, default=None)
    add_argument(p, "num_cores", type=int, default=None)
    add_argument(p, "device_group", default=None, help="accepted for QEfficient compatibility")
    add_argument(p, "full_batch_size", type=int, default=None, help="accepted for QEfficient compatibility")
    add_argument(p, "no_stream", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    from transformers import AutoTokenizer

    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.generation.exec_kv import cloud_ai_100_exec_kv

    try:
        qconfig = read_artifact(args.qpc_path)
        source = args.model_name or args.local_model_dir or qconfig.get("local_model_dir")
        if not source:
            fail("the artifact does not record where its tokenizer is; pass --model_name.")
        with step(f"Loading the tokenizer from {source}"):
            tokenizer = AutoTokenizer.from_pretrained(source)
        cloud_ai_100_exec_kv(
            tokenizer,
            args.qpc_path,
            prompt=args.prompt.split("|"),
            prompts_txt_file_path=args.prompts_txt_file_path,
            generation_len=args.generation_len,
            stream=not args.no_stream,
            num_cores=args.num_cores,
        )
    except (FileNotFoundError, ValueError, OSError) as err:
        fail(str(err))


if __name__ == "__main__":
    main()
