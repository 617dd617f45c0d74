"""python -m QEfficient.cloud.compile: build the runtime artifact from an exported graph (QEfficient's
legacy compile command); prints the artifact's path, ``<qpc_path>/qpcs``."""

from __future__ import annotations

import argparse

from QEfficient.cloud._cli import add_argument, cli_warnings, device_group, fail, parse_with_extras, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m QEfficient.cloud.compile", description=__doc__)
    add_argument(p, "onnx_path", required=True, help="the .onnx file from QEfficient.export or cloud.export")
    add_argument(p, "qpc_path", required=True, help="folder for the artifact (written to <qpc_path>/qpcs)")
    add_argument(p, "batch_size", type=int, default=1)
    add_argument(p, "prompt_len", type=int, default=32, help="prefill chunk length")
    add_argument(p, "ctx_len", type=int, default=128)
    add_argument(p, "mxfp6", "mxfp6_matmul", action="store_true", help="8-bit MatMul weights (QEfficient's MXFP6 option)")
    add_argument(p, "mxint8", "mxint8_kv_cache", action="store_true", help="float16 KV cache: needs a graph exported with it")
    add_argument(p, "num_cores", type=int, default=16)
    add_argument(p, "custom_io_file_path", default=None, help="accepted for QEfficient compatibility (ignored, with a warning)")
    add_argument(p, "device_group", type=device_group, default=None, help="accepted for QEfficient compatibility, e.g. [0]")
    add_argument(p, "aic_enable_depth_first", action="store_true", help="Cloud AI 100 compiler option (ignored, with a warning)")
    add_argument(p, "mos", type=int, default=-1, help="Cloud AI 100 compiler option (ignored, with a warning)")
    add_argument(p, "full_batch_size", type=int, default=None, help="continuous batching with this many KV-cache slots")
    add_argument(p, "allow_mxint8_mdp_io", action="store_true", help="Cloud AI 100 compiler option (ignored, with a warning)")
    add_argument(p, "enable_qnn", nargs="?", const=True, default=False, help="QNN compilation: not available (ignored, with a warning)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> None:
    parsed, extras = parse_with_extras(build_parser(), argv)
    setup_logging(parsed.verbose)
    cli_warnings()
    import QEfficient

    options = vars(parsed)
    options.pop("verbose")
    if isinstance(options["enable_qnn"], str):  # --enable_qnn CONFIG, as in QEfficient
        options["qnn_config"], options["enable_qnn"] = options["enable_qnn"], True
    try:
        print(QEfficient.compile(**options, **extras))
    except (OSError, ValueError, TypeError) as err:
        fail(err)


if __name__ == "__main__":
    main()
