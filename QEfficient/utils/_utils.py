"""QEfficient's ``QEfficient.utils`` helpers that its scripts import (examples/performance/cpp_execution,
scripts/perplexity_computation, scripts/replicate_kv_head, ...): the same names, arguments and results, on this
library's files. Nothing is downloaded: a hub id is read from the local Hugging Face cache, as from_pretrained
reads it (loading/model_path.py). QEfficient's import path puts these helpers under ``utils``, below the stages they
read (loading, compile, transform): those are imported inside the functions that need them."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from QEfficient.utils.cache import qeff_home
from QEfficient.utils.tokenizer import check_and_assign_cache_dir, load_hf_processor, load_hf_tokenizer

logger = logging.getLogger(__name__)

__all__ = [
    "DownloadRetryLimitExceeded",
    "check_and_assign_cache_dir",
    "create_json",
    "get_num_layers_from_config",
    "get_onnx_dir_name",
    "get_padding_shape_from_config",
    "get_qpc_dir_path",
    "hf_download",
    "load_hf_processor",
    "load_hf_tokenizer",
    "load_json",
    "login_and_download_hf_lm",
    "onnx_exists",
    "padding_check_and_fix",
    "qpc_exists",
]


class DownloadRetryLimitExceeded(Exception):
    """QEfficient's: a download that failed ``max_retries`` times. Nothing is downloaded here, so it is never raised;
    scripts that catch it keep working."""


def hf_download(
    repo_id: str | None = None,
    cache_dir: str | None = None,
    hf_token: str | None = None,
    allow_patterns: list[str] | None = None,
    ignore_patterns: list[str] | None = None,
    max_retries: int | None = None,
) -> str:
    """The folder of ``repo_id``: a local folder as it is, a hub id from the local Hugging Face cache (``cache_dir``
    or the default). ``hf_token``, the patterns and ``max_retries`` are for a download, which does not happen here:
    a model missing from the cache is a ModelNotFoundError that says how to get it."""
    from QEfficient.loading.model_path import resolve_model_path

    if repo_id is None:
        raise ValueError("hf_download needs repo_id: a local folder or a hub id in the local Hugging Face cache.")
    folder, gguf_file = resolve_model_path(repo_id, cache_dir)
    return str(folder / gguf_file if gguf_file and Path(repo_id).is_file() else folder)  # a hub id: its snapshot folder


def login_and_download_hf_lm(model_name: str, *args, **kwargs) -> str:
    """QEfficient's: the model's folder (hf_download); ``hf_token`` is not needed to read the local cache."""
    return hf_download(repo_id=model_name, cache_dir=kwargs.get("cache_dir"))


def qpc_exists(qpc_dir_path: str | os.PathLike) -> bool:
    """Whether ``qpc_dir_path`` holds a complete compiled artifact (QEfficient's checks for programqpc.bin; the
    ONNX Runtime artifact is model.onnx with qconfig.json and its manifest, verified as a session would read it)."""
    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.utils.cache import CacheEntryDamagedError

    try:
        read_artifact(Path(qpc_dir_path))
    except (FileNotFoundError, CacheEntryDamagedError, json.JSONDecodeError):
        return False
    return True


def get_onnx_dir_name(model_name: str, has_fbs: bool) -> str:
    safe = model_name.replace("/", "_").replace("-", "_")
    return f"onnx_{safe}_{'with' if has_fbs else 'without'}_fbs"


def onnx_exists(model_name: str, full_batch_size: int | None) -> tuple[bool, str, str | None]:
    """QEfficient's (exists, onnx_dir_path, onnx_model_path) for ``QEFF_HOME/<model_name>/onnx_..._fbs``: the folder is
    made; a graph that ``QEFFAutoModelForCausalLM.export(onnx_dir_path)`` wrote (into ``<onnx_dir_path>-<digest>/``,
    keyed by what it holds) is found."""
    onnx_dir = qeff_home() / str(model_name) / get_onnx_dir_name(model_name, full_batch_size is not None)
    onnx_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(onnx_dir.parent.glob(f"{onnx_dir.name}*/*.onnx"))
    return bool(found), str(onnx_dir), str(found[0]) if found else None


def get_qpc_dir_path(
    model_card_name: str,
    num_cores: int,
    mos: int,
    batch_size: int,
    prompt_len: int,
    ctx_len: int,
    mxfp6: bool,
    mxint8: bool,
    device_group: list[int] | None,
    full_batch_size: int | None,
    num_speculative_tokens: int | None = None,
    enable_qnn: bool | None = False,
) -> str:
    """QEfficient's artifact path for these compile options, ``QEFF_HOME/<model>/qpc_..._<precision>/qpcs``, which
    ``QEfficient.compile(qpc_path=<its parent>)`` links to the artifact it builds."""
    name = (
        "qpc"
        + ("_qnn_" if enable_qnn else "_")
        + f"{num_cores}cores_{batch_size}bs_{prompt_len}pl_{ctx_len}cl_{mos}mos"
        + (f"_{full_batch_size}fbs_" if full_batch_size is not None else "_")
        + (f"_{num_speculative_tokens}nst_" if num_speculative_tokens is not None else "")
        + f"{len(device_group) if device_group is not None else 1}devices"
        + ("_mxfp6_mxint8" if (mxfp6 and mxint8) else "_mxfp6" if mxfp6 else "_fp16_mxint8" if mxint8 else "_fp16")
    )
    model_dir = qeff_home() / str(model_card_name)
    model_dir.mkdir(parents=True, exist_ok=True)
    return str(model_dir / name / "qpcs")


def padding_check_and_fix(tokenizer) -> None:
    """Right padding and a pad token (the EOS token, or the last id when EOS is outside the vocabulary), as
    QEfficient's generation needs them."""
    if tokenizer.padding_side != "right":
        logger.warning("Setting tokenizer padding_side to 'right', got %s", tokenizer.padding_side)
        tokenizer.padding_side = "right"
    if tokenizer.pad_token_id is None:
        if not isinstance(tokenizer.eos_token_id, int):
            raise TypeError("Found tokenizer.eos_token_id to be None, expected int: give the tokenizer a pad or EOS token.")
        eos = tokenizer.eos_token_id
        tokenizer.pad_token_id = eos if eos < tokenizer.vocab_size else tokenizer.vocab_size - 1


def get_num_layers_from_config(config) -> int:
    """The model's layer count as QEfficient reads it: ``n_layer``, ``num_hidden_layers`` or ``n_layers``."""
    for key in ("n_layer", "num_hidden_layers", "n_layers"):
        if getattr(config, key, None) is not None:
            return getattr(config, key)
    raise ValueError("Invalid model configuration: n_layer/n_layers or num_hidden_layers not found.")


def get_padding_shape_from_config(config, batch_size: int, seq_len: int) -> list[int]:
    """[batch_size, KV heads, seq_len, head_dim]: the shape of one layer's key (or value) cache, as the architecture's
    adapter sizes it (grouped and multi-query heads, explicit head_dim, latent caches)."""
    from QEfficient.transform.adapters import get_adapter

    _, n_kv, head_dim = get_adapter(config).kv_geometry(config)
    return [batch_size, n_kv, seq_len, head_dim]


def load_json(file_path: str | os.PathLike) -> dict[str, Any]:
    try:
        return json.loads(Path(file_path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"Failed to load json object from {file_path}: {err}") from err


def _serializable(value: Any) -> Any:
    """What QEfficient's writer turns into JSON besides JSON's own types: sets (sorted), dataclasses, arrays."""
    if isinstance(value, set):
        return sorted(v.__name__ if isinstance(v, type) else str(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return value.tolist()
    return str(value)


def create_json(file_path: str | os.PathLike, json_data: object) -> None:
    """Write ``json_data`` as QEfficient does (sorted keys, no NaN), atomically: a reader never sees half a file. A value
    JSON cannot hold is a ValueError (QEfficient prints it)."""
    path = Path(file_path)
    text = json.dumps(json_data, allow_nan=False, indent=4, separators=(",", ":"), default=_serializable, sort_keys=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
