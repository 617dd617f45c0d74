"""What the caches' keys hold: an artifact's, the content of its graph (not its path); an export's, the weights as they
are when it is exported, a pooling function's code and the graph's file name. What they leave out: Cloud AI 100's
options, and where the cache lies (a moved one keeps its artifacts). Real exports and sessions of tiny models
(``home``, ``llama``: tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from QEfficient import QEFFAutoModel, QEFFAutoModelForCausalLM

COMPILE = dict(prefill_seq_len=8, ctx_len=32, num_cores=1, fuse=False)


def tokens(model, tokenizer) -> list[int]:
    return [int(t) for t in model.generate(tokenizer, ["My name is"], generation_len=6, stream=False).generated_ids[0][0]]


def negated_copy(folder: Path, destination: Path) -> Path:
    """The model with every weight negated, under the same folder name (so its graph file has the same name)."""
    shutil.copytree(folder, destination)
    hf = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for p in hf.parameters():
            p.mul_(-1)
    hf.save_pretrained(destination)
    return destination


def test_another_graph_at_the_same_path_is_another_artifact(llama, home, tmp_path):
    """compile(onnx_path=...) on a file overwritten by another model's graph builds that graph, and the artifact takes
    the files the graph names, not the folder's others."""
    folder, tokenizer = llama
    negated = negated_copy(folder, tmp_path / "negated" / folder.name)
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.bin").write_bytes(b"unrelated" * 100)
    built = []
    for source in (folder, negated):
        model = QEFFAutoModelForCausalLM.from_pretrained(source)
        exported = model.export(offload_pt_weights=False)
        for old in user.glob(f"{exported.name}*"):
            old.unlink()
        for part in exported.parent.glob(f"{exported.name}*"):  # the graph and its data, new files at the same paths
            shutil.copy(part, user / part.name)
        path = model.compile(onnx_path=user / exported.name, **COMPILE)
        own = QEFFAutoModelForCausalLM.from_pretrained(source)
        own.compile(**COMPILE)
        built.append((path, tokens(model, tokenizer)))
        assert built[-1][1] == tokens(own, tokenizer)
    assert built[0][0] != built[1][0] and built[0][1] != built[1][1]
    assert not (built[0][0] / "notes.bin").exists()


def test_a_moved_cache_keeps_its_artifacts(llama, tmp_path, monkeypatch):
    folder, tokenizer = llama
    monkeypatch.setenv("QEFF_HOME", str(tmp_path / "a"))
    first = QEFFAutoModelForCausalLM.from_pretrained(folder)
    path = first.compile(**COMPILE)
    expected = tokens(first, tokenizer)
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # copy2: the files' mtimes come along
    monkeypatch.setenv("QEFF_HOME", str(tmp_path / "b"))
    moved = tmp_path / "b" / path.relative_to(tmp_path / "a")
    before = sorted(moved.parent.iterdir())
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    assert model.compile(**COMPILE) == moved and sorted(moved.parent.iterdir()) == before
    assert tokens(model, tokenizer) == expected


def test_weights_changed_in_place_are_exported_again(llama, home):
    folder, tokenizer = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    first = model.compile(offload_pt_weights=False, **COMPILE)
    before = tokens(model, tokenizer)
    assert model.compile(offload_pt_weights=False, **COMPILE) == first  # unchanged weights: the same artifact
    with torch.no_grad():
        for p in model.model.parameters():
            p.mul_(-1)
    assert model.compile(offload_pt_weights=False, **COMPILE) != first
    assert tokens(model, tokenizer) != before


def test_cloud_ai_100_options_leave_the_key_alone(llama, home):
    folder, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    path = model.compile(**COMPILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each is warned of as ignored
        assert model.compile(num_devices=2, aic_enable_depth_first=True, mos=1, **COMPILE) == path


def test_two_names_over_one_model_export_their_own_files(llama, home, tmp_path):
    folder, _ = llama
    copy = shutil.copytree(folder, tmp_path / "llama_copy")
    for source in (folder, copy):
        exported = QEFFAutoModelForCausalLM.from_pretrained(source).export(export_dir=tmp_path / "exports" / "exp")
        assert exported.is_file() and exported.name == f"{Path(source).name}.onnx"


def test_a_model_loaded_from_dot_is_named_by_its_folder(llama, home, monkeypatch):
    folder, tokenizer = llama
    expected = tokens(compiled(folder), tokenizer)
    monkeypatch.chdir(folder)
    for source in (".", "./"):
        model = QEFFAutoModelForCausalLM.from_pretrained(source)
        assert model.model_name == folder.name
        model.compile(**COMPILE)
        assert tokens(model, tokenizer) == expected


def compiled(folder: Path) -> QEFFAutoModelForCausalLM:
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(**COMPILE)
    return model


def test_two_pooling_functions_of_one_name_are_two_graphs(home):
    config = AutoConfig.for_model("bert", vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    hf = AutoModel.from_config(config).eval()

    def graph(pooling) -> Path:
        return QEFFAutoModel(hf, pooling=pooling).export()

    first = graph(lambda last_hidden_states, attention_mask: last_hidden_states[:, 0])
    again = graph(lambda last_hidden_states, attention_mask: last_hidden_states[:, 0])  # the same code: the same graph
    other = graph(lambda last_hidden_states, attention_mask: last_hidden_states.max(1).values)
    assert first == again and other != first


POOLING_MODULE = """
import functools, torch
SCALE = torch.ones(3)
def pool(last_hidden_states, attention_mask, reduce=torch.amax, names=frozenset({"a", "b", "c"})):
    return reduce(last_hidden_states, 1) * SCALE.sum()
partial_pool = functools.partial(pool, reduce=torch.amin)
"""


HELPER_MODULE = """
import numpy as np
import torch
from torch import Tensor, nn
K = 0
WEIGHTS = np.zeros(2000)  # numpy shows a large array with an ellipsis: its bytes are keyed
REGISTRY = {}
class Head(nn.Module):
    pass
def helper(h):
    return h[:, K] + float(WEIGHTS[1000])
def pool(last_hidden_states, attention_mask):
    assert isinstance(last_hidden_states, Tensor) and Head is not None and REGISTRY is not None
    return helper(torch.nn.functional.normalize(last_hidden_states, dim=-1))
REGISTRY["pool"] = pool  # a container that reaches the function again
"""


def test_a_pooling_functions_key_holds_the_globals_it_reads(tmp_path, monkeypatch):
    """A module-level constant, or a helper's code, changed between runs is another graph."""
    (tmp_path / "my_helper_pooling.py").write_text(HELPER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_helper_pooling as module

    from QEfficient.models.pooling_key import pooling_key

    first = pooling_key(module.pool)  # classes, a library's functions and a self-reaching registry: keyed, by name
    assert pooling_key(module.pool) == first
    monkeypatch.setattr(module, "K", 2)
    second = pooling_key(module.pool)
    module.WEIGHTS[1000] = 1.0
    third = pooling_key(module.pool)
    monkeypatch.setattr(module, "helper", lambda h: h.mean(1))
    assert len({first, second, third, pooling_key(module.pool)}) == 4


def test_a_pooling_functions_key_is_the_same_in_every_process(tmp_path, monkeypatch):
    """Builtin defaults, set literals and partials keyed without addresses or hash order: a new process (another
    PYTHONHASHSEED) reuses the graph."""
    (tmp_path / "my_pooling.py").write_text(POOLING_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_pooling

    from QEfficient.models.pooling_key import pooling_key

    script = (
        "import my_pooling; from QEfficient.models.pooling_key import pooling_key as key; "
        "print(key(my_pooling.pool)); print(key(my_pooling.partial_pool))"
    )
    path = os.pathsep.join([str(tmp_path), os.getcwd(), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "PYTHONHASHSEED": "7"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env).stdout.splitlines()
    assert out == [pooling_key(my_pooling.pool), pooling_key(my_pooling.partial_pool)]
    assert out[0] != out[1]


def test_bad_paths_are_named(llama, home, tmp_path):
    folder, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="compile_dir .* is a file: name a folder"):
        model.compile(compile_dir=tmp_path / "a_file", offload_pt_weights=False, **COMPILE)
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07 not a protobuf")
    with pytest.raises(ValueError, match="is not an ONNX model"):
        model.compile(onnx_path=tmp_path / "junk.onnx", **COMPILE)


def test_a_killed_builds_temp_folder_is_swept_by_the_next_build_beside_it(llama, home):
    folder, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    path = model.compile(offload_pt_weights=False, **COMPILE)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = path.parent / ".tmp-qpc-another-entry-ab12cd34"  # a build of another key, killed
    stale.mkdir()
    (stale / ".pid").write_text(f"{socket.gethostname()} {dead.stdout.strip()}")
    kept = [path.parent / ".tmp-not-a-build", path.parent / ".tmp-qpc-of-another-host-x2"]  # no builder's record; not ours
    for folder_ in kept:
        folder_.mkdir()
    (kept[1] / ".pid").write_text(f"another-host-{socket.gethostname()} {dead.stdout.strip()}")
    model.compile(offload_pt_weights=False, **{**COMPILE, "ctx_len": 48})
    assert not stale.exists() and os.path.isdir(path) and all(k.is_dir() for k in kept)


def test_compile_after_an_export_to_a_folder_uses_that_graph(llama, home, tmp_path):
    folder, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    exported = model.export(export_dir=tmp_path / "mine" / "llama")
    assert model.compile(**COMPILE).parent == exported.parent and not list(home.rglob("*.onnx"))
