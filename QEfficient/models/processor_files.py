"""What a server on an image or audio classifier's artifact alone reads besides the graph (``serve --qpc_path``, a Ray
replica): the config's values it answers with (labels, problem_type) and the image processor's or feature extractor's
files, copied into the artifact at compile time and part of its key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from QEfficient.models.sentence_transformers import MODEL_FILES_SUBDIR, SERVING_CONFIG, serving_config_values
from QEfficient.utils.cache import file_digest, hash_dict

PROCESSOR_FILES = ("config.json", "preprocessor_config.json", "processor_config.json")
PROCESSOR_FILES_FORMAT = 1  # how save_processor_files writes them: part of the artifact's key


def processor_files(folder: Path | None) -> list[Path]:
    """The folder's config and processor files there are (paths relative to it)."""
    return [Path(name) for name in PROCESSOR_FILES if folder is not None and (Path(folder) / name).is_file()]


def processor_files_key(folder: Path | None, config) -> dict:
    """The compile parameters that make a changed file or config value another artifact."""
    files = {str(f): file_digest(Path(folder) / f) for f in processor_files(folder)} | {"format": PROCESSOR_FILES_FORMAT}
    return {"model_files": files, "serving_config": hash_dict(serving_config_values(config))}


def save_processor_files(folder: Path | None, artifact_dir: Path, config) -> None:
    """The config's values (SERVING_CONFIG) and the folder's processor files into the artifact; a model without a folder
    saves none (a server on it then refuses it, saying why)."""
    if folder is None:
        return
    destination = artifact_dir / MODEL_FILES_SUBDIR
    destination.mkdir(parents=True)
    (destination / SERVING_CONFIG).write_text(json.dumps(serving_config_values(config), indent=1, default=str))
    for relative in processor_files(folder):
        shutil.copy2(Path(folder) / relative, destination / relative)
