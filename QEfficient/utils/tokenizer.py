"""Tokenizer and processor loading with QEfficient's names (``QEfficient.utils.load_hf_tokenizer``).

A model folder without tokenizer files is reported as such, before any export: transformers would
otherwise fall back to a slow tokenizer class and ask for ``sentencepiece``, which is not the problem.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

# Any of these makes a folder hold a tokenizer transformers can load.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tekken.json",
)


class TokenizerNotFoundError(FileNotFoundError):
    pass


def tokenizer_folder(pretrained_model_name_or_path: str | os.PathLike, cache_dir: str | None = None) -> Path:
    """The folder holding the model's tokenizer; raises TokenizerNotFoundError naming what is missing."""
    from QEfficient.loading.model_path import resolve_model_path  # utils sit below loading: import on use

    folder, _ = resolve_model_path(pretrained_model_name_or_path, cache_dir)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise TokenizerNotFoundError(
            f"No tokenizer in '{folder}': none of {', '.join(TOKENIZER_FILES)} is there. "
            "Save the model's tokenizer into that folder (tokenizer.save_pretrained(folder)); execute takes another "
            "folder's with --model_name."
        )
    return folder


def check_and_assign_cache_dir(local_model_dir: str | None, cache_dir: str | None) -> str | None:
    """QEfficient's rule: a local model folder wins over a cache folder."""
    if local_model_dir is not None:
        if cache_dir is not None:
            logger.warning("Both local_model_dir (%s) and cache_dir (%s) given. Using local_model_dir.", local_model_dir, cache_dir)
        return None
    return cache_dir or None


def load_hf_tokenizer(
    pretrained_model_name_or_path: str | os.PathLike,
    cache_dir: str | None = None,
    hf_token: str | None = None,
    padding_side: str = "right",
    **kwargs,
):
    """The model's tokenizer (local folder or local HF cache), right-padded, with a pad token (EOS when it has none).

    ``hf_token`` is accepted for QEfficient's signature; nothing is downloaded, so it is not needed.
    """
    from transformers import AutoTokenizer

    path = Path(pretrained_model_name_or_path).expanduser()
    if path.suffix == ".gguf" and path.is_file():  # a GGUF file carries its tokenizer
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, padding_side=padding_side, **kwargs)
    else:
        folder = tokenizer_folder(pretrained_model_name_or_path, cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(folder, padding_side=padding_side, **kwargs)
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_hf_processor(
    pretrained_model_name_or_path: str | os.PathLike, cache_dir: str | None = None, hf_token: str | None = None, **kwargs
):
    """The model's processor (vision-language models), from a local folder or the local HF cache."""
    from transformers import AutoProcessor

    from QEfficient.loading.model_path import resolve_model_path

    folder, _ = resolve_model_path(pretrained_model_name_or_path, cache_dir)
    return AutoProcessor.from_pretrained(folder, **kwargs)
