"""Where a model's files are: a local folder, a local ``.gguf`` file or a hub id already in the local Hugging
Face cache (nothing is downloaded). Imports neither torch nor transformers, so that a command line names a
missing model at once instead of after importing them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ModelNotFoundError", "resolve_model_path"]


class ModelNotFoundError(FileNotFoundError):
    pass


def resolve_model_path(
    name_or_path: str | os.PathLike, cache_dir: str | None = None, revision: str | None = None
) -> tuple[Path, str | None]:
    """Return (folder, gguf_file or None) for a local folder, a local .gguf file or a cached hub id."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"A model is named by its folder, a .gguf file or a hub id (a string or a path), not {name_or_path!r}.")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path, None
    if path.is_file():
        if path.suffix == ".gguf":
            return path.parent, path.name
        raise ModelNotFoundError(
            f"'{name_or_path}' is a file, not a model folder. Pass the folder that holds config.json, or a .gguf file."
        )
    name = str(name_or_path)
    looks_like_hub_id = name.count("/") == 1 and not name.startswith((".", "/", "~"))
    if looks_like_hub_id:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(name, cache_dir=cache_dir, revision=revision, local_files_only=True)), None
        except (LocalEntryNotFoundError, OSError, ValueError):
            pass
    raise ModelNotFoundError(
        f"Model '{name}' was not found: it is not a local folder or .gguf file"
        + (", and it is not in the local Hugging Face cache" if looks_like_hub_id else "")
        + ". Nothing is downloaded at run time: pass the path of a folder with config.json and weights, "
        "a .gguf file (or a folder plus gguf_file=...), or download the hub model first "
        "(e.g. `huggingface-cli download <id>` on a machine with network access, then copy the cache)."
    )
