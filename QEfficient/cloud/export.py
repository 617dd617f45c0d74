"""python -m QEfficient.cloud.export: export a causal LM to the retained-state ONNX graph (cached).

From Python, ``export.main(model_name=..., ...)`` takes QEfficient's keyword arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from QEfficient.cloud._cli import add_argument, cli_warnings, fail, resolve_model_name, setup_logging, step
from QEfficient.utils.extras import MissingExtraError


def _flag(text: str) -> bool:
    """QEfficient's export takes --mxint8_kv_cache with or without a value."""
    return text.strip().lower() not in ("0", "false", "no", "off", "")


def export(
    model_name: str | None = None,
    cache_dir: str | None = None,
    hf_token: str | None = None,
    local_model_dir: str | None = None,
    full_batch_size: int | None = None,
    mxint8_kv_cache: bool = False,
    *,
    gguf_file: str | None = None,
    export_dir: str | None = None,
    dynamo: bool = False,
) -> Path:
    """QEfficient's ``export.main``; returns the .onnx path. ``mxint8_kv_cache`` exports a float16 KV cache
    (QEfficient writes a custom-IO file for it instead); ``full_batch_size`` needs nothing at export here
    (one graph serves continuous batching)."""
    from QEfficient.utils.tokenizer import check_and_assign_cache_dir

    cache_dir = check_and_assign_cache_dir(local_model_dir, cache_dir)
    model_name, gguf_file = resolve_model_name(local_model_dir if local_model_dir is not None else model_name, gguf_file, cache_dir)
    from QEfficient import QEFFAutoModelForCausalLM

    with step(f"Loading {model_name}"):
        kwargs = {k: v for k, v in {"gguf_file": gguf_file, "cache_dir": cache_dir}.items() if v}
        model = QEFFAutoModelForCausalLM.from_pretrained(model_name, **kwargs)
    with step("Exporting to ONNX"):
        return model.export(export_dir, dynamo=dynamo, kv_cache_dtype="float16" if mxint8_kv_cache else None)


def get_onnx_path_and_setup_customIO(  # noqa: N802 - QEfficient's name
    model_name: str,
    cache_dir: str | None = None,
    hf_token: str | None = None,
    full_batch_size: int | None = None,
    local_model_dir: str | None = None,
    mxint8_kv_cache: bool = False,
) -> str:
    """QEfficient's: export (or reuse the cached export of) the model and return the .onnx path. Its custom-IO file
    (a float16 cache for ``mxint8_kv_cache``) is the graph's own cache type here."""
    return str(export(model_name, cache_dir, hf_token, local_model_dir, full_batch_size, mxint8_kv_cache))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m QEfficient.cloud.export", description=__doc__)
    add_argument(p, "model_name", default=None, help="local folder, .gguf file or cached hub id (default: SmolLM2)")
    add_argument(p, "gguf_file", default=None)
    add_argument(p, "local_model_dir", default=None)
    add_argument(p, "cache_dir", default=None)
    add_argument(p, "hf_token", default=None, help="accepted for QEfficient compatibility (nothing is downloaded)")
    add_argument(p, "full_batch_size", type=int, default=None, help="accepted for QEfficient compatibility (no effect on the graph)")
    add_argument(
        p, "mxint8_kv_cache", "mxint8", nargs="?", const=True, default=False, type=_flag, help="export a float16 KV cache (MXINT8 option)"
    )
    add_argument(p, "export_dir", default=None, help="where to write (default: under QEFF_HOME)")
    add_argument(p, "dynamo", action="store_true", help="use the dynamo exporter (slower; TorchScript is the default)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(*args, **kwargs):
    """``main(model_name=..., ...)`` from Python (errors raise), or ``main()`` / ``main(argv)`` as the command line."""
    if kwargs or (args and not isinstance(args[0], list | tuple)):
        return export(*args, **kwargs)
    parsed = build_parser().parse_args(args[0] if args else None)
    setup_logging(parsed.verbose)
    cli_warnings()
    options = vars(parsed)
    options.pop("verbose")
    try:
        path = export(**options)
    except (OSError, ValueError, TypeError, MissingExtraError) as err:
        fail(err)
    print(path)


if __name__ == "__main__":
    main()
