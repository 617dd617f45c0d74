"""python -m QEfficient.cloud.execute: generate with an artifact that compile() already built.

From Python, ``execute.main(model_name=..., qpc_path=..., prompt=...)`` takes QEfficient's keyword arguments.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from QEfficient.cloud._cli import add_argument, cli_warnings, device_group, fail, print_completions, setup_logging


def execute(
    model_name: str | None = None,
    qpc_path: str | None = None,
    device_group: list[int] | None = None,
    local_model_dir: str | None = None,
    prompt: list[str] | str | None = None,
    prompts_txt_file_path: str | None = None,
    generation_len: int | None = None,
    cache_dir: str | None = None,
    hf_token: str | None = None,
    full_batch_size: int | None = None,
    *,
    num_cores: int | None = None,
    stream: bool = True,
    mxint8_kv_cache: bool = False,
):
    """QEfficient's ``execute.main``: the tokenizer saved in the artifact (when ``model_name`` is the
    compiled model or not given: no torch is imported), else from ``local_model_dir``, ``model_name`` or the
    folder recorded at compile time; then generation with the artifact at ``qpc_path``.

    ``full_batch_size`` and ``mxint8_kv_cache`` are fixed by the artifact; a value that disagrees warns.
    """
    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.generation.exec_kv import right_padding
    from QEfficient.generation.text_generation_inference import cloud_ai_100_exec_kv
    from QEfficient.runtime.tokenizer import has_runtime_tokenizer, load_tokenizer
    from QEfficient.utils.checks import check_positive
    from QEfficient.utils.tokenizer import check_and_assign_cache_dir, load_hf_tokenizer

    if qpc_path is None:
        raise TypeError("execute needs qpc_path: the artifact folder that compile() returned.")
    qpc_path = Path(qpc_path).expanduser()
    if num_cores is not None:
        check_positive(num_cores=num_cores)
    qconfig = read_artifact(Path(qpc_path))
    compiled_fbs = qconfig["kv_shape"][0] if qconfig.get("continuous_batching") else None
    if full_batch_size is not None and full_batch_size != compiled_fbs:
        warnings.warn(f"full_batch_size={full_batch_size} is ignored: the artifact was compiled with {compiled_fbs}.", stacklevel=2)
    if mxint8_kv_cache and qconfig.get("kv_dtype") != "float16":
        warnings.warn("mxint8_kv_cache is ignored: the artifact was compiled without it (compile decides).", stacklevel=2)
    cache_dir = check_and_assign_cache_dir(local_model_dir, cache_dir)
    source = local_model_dir or model_name
    compiled_from = {qconfig.get(k) for k in ("model_name", "pretrained_model_name_or_path", "local_model_dir")} - {None}
    if has_runtime_tokenizer(qpc_path) and (source is None or source in compiled_from):
        tokenizer = load_tokenizer(qpc_path)  # saved by compile(): no torch, no transformers modeling code
    else:
        source = source or qconfig.get("local_model_dir")
        if not source:
            raise ValueError("the artifact does not record where its tokenizer is; pass --model_name.")
        tokenizer = load_hf_tokenizer(source, cache_dir=cache_dir)
    tokenizer = right_padding(tokenizer, quiet=True)  # (loaded here: padded on the right without a word)
    info = cloud_ai_100_exec_kv(
        tokenizer,
        qpc_path,
        prompt=prompt if prompt is not None or prompts_txt_file_path else "My name is",
        prompts_txt_file_path=prompts_txt_file_path,
        device_id=device_group,
        generation_len=generation_len,
        stream=stream,
        num_cores=num_cores,
    )
    if not stream:  # the completions, printed once all are done
        print_completions(info)
    return info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m QEfficient.cloud.execute", description=__doc__)
    add_argument(p, "qpc_path", required=True, help="the artifact directory returned by compile()")
    add_argument(p, "model_name", default=None, help="where to load the tokenizer from (default: recorded at compile time)")
    add_argument(p, "local_model_dir", default=None)
    add_argument(p, "cache_dir", default=None, help="Hugging Face cache folder to look the hub id up in")
    add_argument(p, "hf_token", default=None, help="accepted for QEfficient compatibility (nothing is downloaded)")
    add_argument(p, "prompt", default=None, type=lambda text: text.split("|"), help="prompt(s), separated by '|' (default: 'My name is')")
    add_argument(p, "prompts_txt_file_path", default=None)
    add_argument(p, "generation_len", type=int, default=None)
    add_argument(p, "num_cores", type=int, default=None)
    add_argument(p, "device_group", type=device_group, default=None, help="accepted for QEfficient compatibility, e.g. [0]")
    add_argument(p, "full_batch_size", type=int, default=None, help="accepted for QEfficient compatibility (the artifact decides)")
    add_argument(p, "mxint8_kv_cache", "mxint8", action="store_true", help="accepted for QEfficient compatibility (the artifact decides)")
    add_argument(p, "no_stream", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(*args, **kwargs):
    """``main(model_name=..., qpc_path=..., ...)`` from Python (QEfficient's keywords; errors raise), or
    ``main()`` / ``main(argv)`` as the command line."""
    if kwargs or (args and not isinstance(args[0], list | tuple)):
        return execute(*args, **kwargs)
    parsed = build_parser().parse_args(args[0] if args else None)
    setup_logging(parsed.verbose)
    cli_warnings()
    options = vars(parsed)
    options.pop("verbose")
    options["stream"] = not options.pop("no_stream")
    try:
        execute(**options)
    except (OSError, ValueError, TypeError, NotImplementedError) as err:
        fail(err)


if __name__ == "__main__":
    main()
