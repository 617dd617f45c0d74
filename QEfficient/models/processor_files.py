"""What a server on an artifact alone reads besides the graph (``serve --qpc_path``, a Ray replica), copied into the
artifact at compile time and part of its key:

- an image or audio classifier's: the config's values it answers with (labels, problem_type) and the image processor's
  or feature extractor's files (``processor_files``);
- a vision-language model's or a page retriever's: the config (as loaded) and every file of the folder its processor
  reads, its tokenizer's included (``whole_processor_files``)."""

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


# the files of a folder a processor and its tokenizer read (a chat template, a vocabulary, a sentencepiece model, ...)
WHOLE_PROCESSOR_SUFFIXES = (".json", ".jinja", ".txt", ".model", ".tiktoken")
WRITTEN_FROM_MODEL = ("config.json", "generation_config.json", "model.safetensors.index.json")  # or not needed
WHOLE_PROCESSOR_FORMAT = 1  # how save_whole_processor writes them: part of the artifact's key


def whole_processor_files(folder: Path | None) -> list[Path]:
    """The folder's files a processor and its tokenizer read (absolute paths), sorted; none without a folder."""
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(
        f for f in Path(folder).iterdir() if f.is_file() and f.suffix in WHOLE_PROCESSOR_SUFFIXES and f.name not in WRITTEN_FROM_MODEL
    )


def whole_processor_key(folder: Path | None, generation_config=None) -> dict:
    """The compile parameters that make a changed processor file (or generation config) another artifact; the config is
    in the graph's key already."""
    files = {f.name: file_digest(f) for f in whole_processor_files(folder)} | {"format": WHOLE_PROCESSOR_FORMAT}
    return {"model_files": files} | ({} if generation_config is None else {"generation_config": generation_config.to_diff_dict()})


def save_whole_processor(folder: Path | None, artifact_dir: Path, config, generation_config=None) -> None:
    """The processor's files, the config and the generation config (written as they are: save_pretrained would refuse
    some real checkpoints' generation settings) into the artifact's MODEL_FILES_SUBDIR."""
    destination = artifact_dir / MODEL_FILES_SUBDIR
    destination.mkdir()
    for source in whole_processor_files(folder):
        shutil.copyfile(source, destination / source.name)
    config.to_json_file(destination / "config.json")
    if generation_config is not None:
        generation_config.to_json_file(destination / "generation_config.json")
