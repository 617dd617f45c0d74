"""A dataset (and optionally a collator) from the user's own Python file, named in the custom dataset config as
``"preproc_file": "path/to/file.py:function"`` (QEfficient's ``custom_dataset``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_function(reference: str, key: str) -> Callable:
    """``"file.py:function"`` -> the function, with an error that names the config key for each way it can be wrong."""
    if ":" not in reference:
        raise ValueError(f"The custom dataset config's '{key}' must be 'path/to/file.py:function_name', got {reference!r}.")
    path, name = reference.rsplit(":", 1)
    if not path.endswith(".py"):
        raise ValueError(f"The custom dataset config's '{key}' must name a .py file, got {path!r}.")
    if not Path(path).is_file():
        raise FileNotFoundError(f"The custom dataset config's '{key}' names {path}, which is not a file.")
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, name, None)):
        raise AttributeError(f"{path} has no function {name!r} (the custom dataset config's '{key}').")
    return getattr(module, name)


def get_custom_dataset(dataset_config: Any, tokenizer: Any, split: str, context_length: int | None = None) -> Any:
    if not getattr(dataset_config, "preproc_file", None):
        raise ValueError("The custom dataset config needs 'preproc_file': 'path/to/file.py:function_name'.")
    function = load_function(dataset_config.preproc_file, "preproc_file")
    return function(dataset_config, tokenizer, split, context_length)


def get_data_collator(tokenizer: Any, dataset_config: Any) -> Callable | None:
    """The collator ``collate_file`` names (called with the tokenizer), or None for the default one."""
    reference = getattr(dataset_config, "collate_file", None)
    if not reference:
        return None
    return load_function(reference, "collate_file")(tokenizer)
