"""Shared fixtures: a private QEFF_HOME, a locally trained tokenizer and tiny random-weight models."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Every test run gets its own cache root, set before QEfficient is imported anywhere.
_QEFF_HOME = tempfile.mkdtemp(prefix="qeff-test-home-")
os.environ["QEFF_HOME"] = _QEFF_HOME
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402

from tests.tiny_models import TINY_CONFIGS, build_tokenizer, save_tiny_model  # noqa: E402

torch.set_num_threads(2)
transformers.logging.set_verbosity_error()


@pytest.fixture(scope="session")
def qeff_home() -> Path:
    return Path(_QEFF_HOME)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer_dir):
    """Factory: model_type -> folder with a tiny random-weight model and the local tokenizer."""
    made: dict[str, Path] = {}

    def make(model_type: str) -> Path:
        if model_type not in made:
            made[model_type] = save_tiny_model(model_type, tmp_path_factory.mktemp(model_type), tokenizer_dir)
        return made[model_type]

    return make


__all__ = ["TINY_CONFIGS"]


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (``-n 2 --dist loadgroup``, pyproject.toml) each module's tests stay on one
    worker, so a module's fixtures (an exported model, a server) are built once; the sweeps' types are
    independent and spread over both workers."""
    for item in items:
        if item.get_closest_marker("sweep") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def pytest_sessionfinish(session, exitstatus):
    """The run's private QEFF_HOME holds exported models (about 1 GB with SmolLM2): remove it."""
    import shutil

    shutil.rmtree(_QEFF_HOME, ignore_errors=True)
