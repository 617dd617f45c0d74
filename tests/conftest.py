"""Shared fixtures: a private QEFF_HOME, a locally trained tokenizer and tiny random-weight models."""

from __future__ import annotations

import gc
import os
import tempfile
from pathlib import Path

import pytest

# Every test run gets its own cache root, set before QEfficient is imported anywhere.
_QEFF_HOME = tempfile.mkdtemp(prefix="qeff-test-home-")
os.environ["QEFF_HOME"] = _QEFF_HOME
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tests' transformers references run transformers' own forwards: from 5.25 its from_pretrained swaps in kernels
# from the hub unless told not to
os.environ.setdefault("USE_HUB_KERNELS", "NO")


def torch_threads() -> int:
    """2, or under pytest-xdist each worker's share of the cores: with ``-n 2`` on 2 cores, two workers of
    2 threads each oversubscribe them and torch's idle threads spin (README, "Set up on a fresh machine")."""
    from QEfficient.runtime.ort_session import available_cores  # imports no torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return 2 if workers < 2 else max(1, available_cores() // workers)


# torch reads it when imported, here and in the subprocesses a test starts (the CLI, a second process);
# only in a worker: the workers inherit the controller's environment
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(torch_threads())

import torch  # noqa: E402
import transformers  # noqa: E402

from tests.tiny_models import TINY_CONFIGS, build_tokenizer, save_tiny_model  # noqa: E402

torch.set_num_threads(torch_threads())
transformers.logging.set_verbosity_error()
# The objects of the modules imported so far live as long as the process: frozen, the cyclic garbage collector's
# full passes no longer walk them (about half the collector's time in the suite); again once the tests are collected.
# A collection first: garbage frozen would stay for good.
gc.collect()
gc.freeze()


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


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A cache root of the test's own, so each test damages (or keys) only its entries."""
    monkeypatch.setenv("QEFF_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    """(folder, tokenizer) of the tiny llama; modules with a llama of their own define theirs."""
    from transformers import AutoTokenizer

    folder = tiny_model_dir("llama")
    return folder, AutoTokenizer.from_pretrained(folder)


__all__ = ["TINY_CONFIGS"]


# Test modules whose cases are independent of each other (no module fixture worth sharing).
SPREAD_MODULES = ("tests/test_arch_sweep.py", "tests/test_image_text_sweep.py", "tests/test_encoder_sweep.py")
# Modules that convert (and export) the real SmolLM2 file: one worker runs them all, so its QEFF_HOME
# keeps one conversion and one export for all of them.
SMOLLM2_MODULES = ("tests/test_gguf_blocks.py", "tests/test_no_torch.py", "tests/test_smollm2.py")
# Modules that export the real Whisper models (base, tiny.en): one worker runs them, so each model is exported once (the
# export is shape-free; their compiled lengths differ).
WHISPER_MODULES = (
    "tests/test_speech.py",
    "tests/test_whisper_longform.py",
    "tests/test_whisper_timestamps.py",
    "tests/test_ctranslate2_whisper.py",
)


# The longest modules (real models, Ray deployments), first: the two workers take them at the start and the many short
# modules fill in after, so that neither worker is left alone with a long module at the end (docs/performance.md, "The
# test suite on 2 cores").
LONG_MODULES_FIRST = (
    "tests/test_ray.py",
    "tests/test_gemma3_gguf.py",
    *SMOLLM2_MODULES,
    *WHISPER_MODULES,
    "tests/test_vlm_inkling.py",
    "tests/test_cli.py",
    "tests/test_seq2seq.py",
    "tests/test_keypoints.py",
    "tests/test_mask_generation.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    """The long modules first (LONG_MODULES_FIRST), each module's tests in their own order."""
    rank = {module: i for i, module in enumerate(LONG_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def pytest_collection_finish(session) -> None:
    """The test modules and what they imported, frozen too (see the first gc.freeze()), once -k/-m deselected."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown when xdist is not loaded (-p no:xdist)
def pytest_xdist_make_scheduler(config, log):
    """With ``-n 2 --dist loadscope`` (pyproject.toml) each test module runs on one worker, so its module
    fixtures (an exported model, a converted GGUF file, a server) are built once, and the modules of the
    real SmolLM2 file share one worker (and so its cached conversion), as do those of the real Whisper models (their
    cached exports); the sweeps' cases are
    independent, so each is a unit of its own and they fill in wherever a worker is free.

    (Grouping by ``xdist_group`` marks does not work with pytest 9.2: pytest-xdist 3.8 renames tests
    through ``item._nodeid``, which pytest 9.2 no longer reads, so a module's tests were split over both
    workers and its fixtures built twice.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module in SMOLLM2_MODULES:
                return "real SmolLM2"
            if module in WHISPER_MODULES:
                return "real Whisper"
            return nodeid if module in SPREAD_MODULES else module

    return ModuleScheduling(config, log)


def pytest_sessionfinish(session, exitstatus):
    """The run's private QEFF_HOME holds exported models (about 1 GB with SmolLM2): remove it."""
    import shutil

    shutil.rmtree(_QEFF_HOME, ignore_errors=True)
