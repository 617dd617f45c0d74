"""The run-time tokenizer a compiled artifact holds, built once per tokenizer folder.

Building it means loading the folder's tokenizer with transformers (seconds for a large vocabulary:
transformers parses ``tokenizer.json`` several times), so the result is kept under
``QEFF_HOME/runtime_tokenizers/`` and copied into each artifact compiled from the same folder (another
``ctx_len``, ``mxfp6_matmul``, batch size...). The key covers what the result is made of: the folder's
tokenizer files and ``config.json`` (transformers picks the tokenizer class from it), the EOS ids,
the versions of transformers and tokenizers, and the code that writes the run-time tokenizer.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from QEfficient.runtime import tokenizer as runtime_tokenizer
from QEfficient.utils.cache import build_entry, file_digest, hash_dict, qeff_home, source_digest

logger = logging.getLogger(__name__)

RUNTIME_TOKENIZERS = "runtime_tokenizers"
# files transformers may read besides those tokenizer_digest covers
OTHER_SOURCES = ("config.json", "spiece.model", "sentencepiece.bpe.model", "tekken.json")


def runtime_tokenizer_key(folder: Path, generation_config: Any) -> str:
    """The cache key of ``folder``'s run-time tokenizer (module docstring: what it covers)."""
    import tokenizers
    import transformers

    return hash_dict(
        {
            "tokenizer": runtime_tokenizer.tokenizer_digest(folder),
            "other": {name: file_digest(folder / name) for name in OTHER_SOURCES if (folder / name).is_file()},
            "eos": getattr(generation_config, "eos_token_id", None),
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "writer": source_digest(str(Path(runtime_tokenizer.__file__).parent)),
        }
    )


class _NoRuntimeTokenizer(Exception):
    """Raised inside a build so that nothing is cached: whether transformers can load a fast tokenizer may
    change with packages the key does not cover (sentencepiece, tiktoken)."""


def copy_runtime_tokenizer(folder: Path, generation_config: Any, artifact_dir: Path) -> bool:
    """Put the run-time tokenizer of ``folder`` into ``artifact_dir`` (runtime/tokenizer.py's folder),
    building it first if no compile has; False when there is none to put (no fast tokenizer, or one
    transformers cannot load: a warning says why)."""
    folder = Path(folder)
    entry = qeff_home() / RUNTIME_TOKENIZERS / f"{folder.name}-{runtime_tokenizer_key(folder, generation_config)}"

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        # generate() will say what is wrong when it loads one; a TypeError: no files, and a class whose constructor
        # needs more than they would give (MarkupLM's tags_dict); an ImportError: a package its class needs
        # (sacremoses for XLM's and FlauBERT's, rjieba for RoFormer's)
        except (OSError, ValueError, TypeError, ImportError) as err:
            logger.warning("The artifact holds no tokenizer: transformers could not load the one in %s (%s).", folder, err)
            raise _NoRuntimeTokenizer from err
        if runtime_tokenizer.save_artifact_tokenizer(tokenizer, tmp, generation_config) is None:
            logger.info("The artifact holds no tokenizer: %s has no fast tokenizer (the run time needs transformers).", folder)
            raise _NoRuntimeTokenizer

    try:
        if build_entry(entry, build):
            logger.info("Run-time tokenizer reused from %s", entry)
    except _NoRuntimeTokenizer:
        return False
    shutil.copytree(entry / runtime_tokenizer.TOKENIZER_SUBDIR, Path(artifact_dir) / runtime_tokenizer.TOKENIZER_SUBDIR)
    return True
