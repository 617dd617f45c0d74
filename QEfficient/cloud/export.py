"""python -m QEfficient.cloud.export: export a causal LM to the retained-state ONNX graph (cached)."""

from __future__ import annotations

import argparse

from QEfficient.cloud._cli import add_argument, fail, resolve_model_name, setup_logging, step
from QEfficient.utils.extras import MissingExtraError


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m QEfficient.cloud.export", description=__doc__)
    add_argument(p, "model_name", default=None, help="local folder, .gguf file or cached hub id (default: SmolLM2)")
    add_argument(p, "gguf_file", default=None)
    add_argument(p, "local_model_dir", default=None)
    add_argument(p, "cache_dir", default=None)
    add_argument(p, "export_dir", default=None, help="where to write (default: under QEFF_HOME)")
    add_argument(p, "dynamo", action="store_true", help="use the dynamo exporter (slower; TorchScript is the default)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    from QEfficient import QEFFAutoModelForCausalLM

    try:
        model_name, gguf_file = resolve_model_name(args.model_name or args.local_model_dir, args.gguf_file)
        with step(f"Loading {model_name}"):
            kwargs = {"gguf_file": gguf_file} if gguf_file else {}
            if args.cache_dir:
                kwargs["cache_dir"] = args.cache_dir
            model = QEFFAutoModelForCausalLM.from_pretrained(model_name, **kwargs)
        with step("Exporting to ONNX"):
            path = model.export(args.export_dir, dynamo=args.dynamo)
    except (FileNotFoundError, ValueError, TypeError, MissingExtraError) as err:
        fail(str(err))
    print(path)


if __name__ == "__main__":
    main()
