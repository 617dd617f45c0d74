"""The cache on disk under fault: damaged entries are rebuilt or reported by name, builds are shared
between processes, and generation inputs are checked. Real files, real exports, tiny models."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.compile.ort_cpu import read_artifact
from QEfficient.export.onnx_export import WeightsOffloadedError
from QEfficient.loading.gguf_shared import gguf_parsed_once
from QEfficient.loading.hf_loader import _convert_gguf
from QEfficient.runtime.ort_session import GraphLoadError, open_inference_session, session_options
from QEfficient.utils.cache import (
    COMPLETE_MARKER,
    LOCK_SUFFIX,
    MANIFEST,
    CacheEntryDamagedError,
    build_entry,
    entry_lock,
    verify_entry,
)
from QEfficient.utils.memory import folder_bytes
from tests.tiny_models import write_tiny_gguf

PROMPT = "My name is"


def build(source, **kwargs) -> QEFFAutoModelForCausalLM:
    model = QEFFAutoModelForCausalLM.from_pretrained(source, **kwargs)
    # fuse=False: that artifact hard-links the exported graph, so damage to the export shows in both
    model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1, fuse=False)
    return model


def completion(model, tokenizer) -> list[int]:
    info = model.generate(tokenizer, [PROMPT], generation_len=8, stream=False)
    return [int(t) for t in info.generated_ids[0][0]]


def flip_bytes(path: Path, count: int = 64) -> None:
    """Overwrite ``count`` random bytes in place (same size)."""
    rng = random.Random(0)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        for offset in rng.sample(range(size), min(count, size)):
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ 0xFF]))


def damage(path: Path, how: str) -> None:
    if how == "flip":
        flip_bytes(path)
    elif how == "truncate":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    elif how == "delete":
        path.unlink()
    elif how == "bad_json":
        path.write_text('{"specializations": [')
    else:
        raise AssertionError(how)


def rebuilds_with_warning(source, **kwargs) -> QEFFAutoModelForCausalLM:
    with pytest.warns(UserWarning, match="damaged.*Rebuilding"):
        return build(source, **kwargs)


# --- item 10: damaged entries -------------------------------------------------------------------


@pytest.mark.parametrize(
    "file, how",
    [
        ("{model}.onnx.data", "flip"),
        ("{model}.onnx", "truncate"),
        ("{model}.onnx", "delete"),
        ("hashed_export_params.json", "bad_json"),
        (MANIFEST, "bad_json"),
    ],
)
def test_damaged_export_entry_is_reported_then_rebuilt(llama, home, file, how):
    folder, tokenizer = llama
    model = build(folder)
    reference = completion(model, tokenizer)
    export_dir, qpc = model.onnx_path.parent, model.qpc_path
    target = export_dir / file.format(model=model.onnx_path.stem)
    damage(target, how)

    problem = verify_entry(export_dir)
    assert problem is not None and problem.damaged and str(target) in problem.describe()
    if target.name.startswith(model.onnx_path.stem) and how != "delete":  # hard-linked into the artifact: damaged too
        with pytest.raises(CacheEntryDamagedError, match=re.escape(f"rm -rf '{qpc}'")):
            read_artifact(qpc)
    if how == "flip":  # the damaged export's graph given by path: named, not compiled as if it were the export
        other = QEFFAutoModelForCausalLM.from_pretrained(folder)
        with pytest.raises(ValueError, match=re.escape(f"{target} changed after it was written")):
            other.compile(onnx_path=model.onnx_path, prefill_seq_len=8, ctx_len=32, num_cores=1, fuse=False, compile_dir=home / "elsewhere")

    again = rebuilds_with_warning(folder)
    assert again.onnx_path == model.onnx_path and again.qpc_path == qpc
    assert verify_entry(export_dir) is None and verify_entry(qpc) is None
    assert completion(again, tokenizer) == reference


@pytest.mark.parametrize(
    "file, how",
    [
        ("qconfig.json", "bad_json"),
        ("specializations.json", "bad_json"),
        ("model.onnx", "delete"),
        (COMPLETE_MARKER, "delete"),
    ],
)
def test_damaged_artifact_is_a_clear_error_then_rebuilt(llama, home, file, how):
    folder, tokenizer = llama
    model = build(folder)
    reference = completion(model, tokenizer)
    qpc = model.qpc_path
    damage(qpc / file, how)
    with pytest.raises(CacheEntryDamagedError) as err:
        read_artifact(qpc)
    assert f"rm -rf '{qpc}'" in str(err.value) and file in str(err.value)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an incomplete entry is rebuilt without a warning, a damaged one with one
        again = build(folder)
    assert again.qpc_path == qpc and verify_entry(qpc) is None
    assert completion(again, tokenizer) == reference


def test_execute_on_a_damaged_artifact_is_one_clear_line(llama, home):
    folder, _ = llama
    qpc = build(folder).qpc_path
    flip_bytes(qpc / "specializations.json", count=4)
    env = {**os.environ, "QEFF_HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "QEfficient.cloud.execute", "--qpc_path", str(qpc), "--prompt", PROMPT, "--model_name", str(folder)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "specializations.json changed after it was written" in res.stderr and f"rm -rf '{qpc}'" in res.stderr


def test_damaged_export_without_weights_names_the_file(llama, home):
    """No source to export from again (a model built from an in-memory module, weights released)."""
    folder, _ = llama
    model = QEFFAutoModelForCausalLM(AutoModelForCausalLM.from_pretrained(folder))
    onnx_path = model.export()  # releases the PyTorch weights
    flip_bytes(onnx_path.with_name(onnx_path.name + ".data"))
    with pytest.raises(WeightsOffloadedError, match=re.escape(f"{onnx_path.name}.data changed after it was written")):
        model.export()


def test_removing_the_complete_marker_keeps_compiled_artifacts(llama, home):
    folder, tokenizer = llama
    model = build(folder)
    reference = completion(model, tokenizer)
    export_dir, qpc = model.onnx_path.parent, model.qpc_path
    assert qpc.parent == export_dir  # artifacts live inside the export entry
    qconfig_inode = (qpc / "qconfig.json").stat().st_ino
    (export_dir / COMPLETE_MARKER).unlink()

    again = build(folder)  # exports again, and adopts the artifact instead of deleting it
    assert verify_entry(export_dir) is None
    assert again.qpc_path == qpc and (qpc / "qconfig.json").stat().st_ino == qconfig_inode
    assert completion(again, tokenizer) == reference
    assert not [p for p in export_dir.parent.iterdir() if p.name.startswith(".tmp-")]


def test_graph_that_is_not_onnx_is_a_clear_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07 not a protobuf")
    with pytest.raises(GraphLoadError, match=r"model\.onnx.*rm -rf"):
        open_inference_session(path, session_options(1))
    with pytest.raises(GraphLoadError, match="does not exist"):
        open_inference_session(tmp_path / "missing.onnx", session_options(1))


def test_fast_path_trusts_size_and_mtime_full_mode_hashes(tmp_path, monkeypatch):
    """The trade-off of utils/cache.py, pinned: an mtime change means a full hash; bytes changed with
    the mtime put back pass the fast path, and QEFF_VERIFY_CACHE=full catches them."""
    monkeypatch.delenv("QEFF_VERIFY_CACHE", raising=False)
    entry = tmp_path / "entry-0123456789abcdef"
    assert not build_entry(entry, lambda tmp: (tmp / "w.bin").write_bytes(bytes(range(256)) * 64))
    assert build_entry(entry, lambda tmp: pytest.fail("an intact entry is built again"))
    data = entry / "w.bin"
    old = time.time_ns() - 3600 * 10**9
    os.utime(data, ns=(old, old))
    assert verify_entry(entry) is None  # hashed in full (mtime changed), clean: the new mtime is recorded
    assert json.loads((entry / MANIFEST).read_text())["files"]["w.bin"]["mtime_ns"] == old
    flip_bytes(data)
    os.utime(data, ns=(old, old))
    assert verify_entry(entry) is None
    monkeypatch.setenv("QEFF_VERIFY_CACHE", "full")
    problem = verify_entry(entry)
    assert problem is not None and f"{data} changed after it was written" in problem.reason


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    """Neither a half-written entry nor an empty lock file: the folder is as it was."""
    entry = tmp_path / "cache" / "qpc-0123456789abcdef"

    def failing(tmp: Path) -> None:
        (tmp / "half.bin").write_bytes(b"x" * 100)
        raise RuntimeError("the compiler failed")

    with pytest.raises(RuntimeError, match="compiler failed"):
        build_entry(entry, failing)
    assert not entry.parent.exists()  # made for the entry, removed with it
    entry.parent.mkdir()
    with pytest.raises(RuntimeError, match="compiler failed"):
        build_entry(entry, failing)
    assert list(entry.parent.iterdir()) == []  # a folder that was there before stays
    assert not build_entry(entry, lambda tmp: (tmp / "w.bin").write_bytes(b"w"))
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # the lock file went with the build


def test_entry_lock_stays_exclusive_while_holders_remove_its_file(tmp_path):
    """Each holder deletes the lock file on leaving; a waiter that had opened the deleted file must not build
    alongside a newcomer that created the next one (flock conflicts between open files, so threads show it)."""
    entry = tmp_path / "cache" / "qpc-0123456789abcdef"  # its folder made, and removed, by the holders too
    inside, most = [0], [0]

    def hold(_: int) -> None:
        with entry_lock(entry):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.002)
            inside[0] -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hold, range(200)))
    assert most[0] == 1
    assert not list(tmp_path.rglob(f"*{LOCK_SUFFIX}"))


# --- item 10: the GGUF conversion cache ---------------------------------------------------------


@pytest.mark.parametrize("how", ["flip", "delete"])
def test_damaged_gguf_conversion_is_converted_again(llama, home, tmp_path, how):
    folder, _ = llama
    gguf_dir = tmp_path / "gguf_model"
    gguf_dir.mkdir()
    write_tiny_gguf(folder, gguf_dir / "tiny.gguf")
    model = build(gguf_dir, gguf_file="tiny.gguf")
    converted = model.local_model_dir
    assert (home / "gguf") in converted.parents
    tokenizer = AutoTokenizer.from_pretrained(converted)
    reference = completion(model, tokenizer)
    assert reference[0] != tokenizer.pad_token_id

    damage(converted / "model.safetensors", how)
    again = rebuilds_with_warning(gguf_dir, gguf_file="tiny.gguf")
    assert again.local_model_dir == converted and verify_entry(converted) is None
    assert again.onnx_path == model.onnx_path  # the same weights again: the export is reused
    assert completion(again, tokenizer) == reference


def test_a_gguf_rewritten_with_the_same_size_and_mtime_is_converted_again(llama, home, tmp_path):
    """A file replaced in place by another of the same size, its mtime kept (cp -p, rsync -a): the conversion is keyed
    by samples of its content too, so the new weights are not answered by the old file's conversion."""
    folder, _ = llama
    path = write_tiny_gguf(folder, tmp_path / "tiny.gguf")
    first = _convert_gguf(tmp_path, path.name)
    stat = path.stat()
    write_tiny_gguf(folder, path, scale=-1.0)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    second = _convert_gguf(tmp_path, path.name)
    assert second != first
    assert torch.equal(load_file(second / "model.safetensors")["lm_head.weight"], -load_file(first / "model.safetensors")["lm_head.weight"])


def test_a_gguf_without_a_tokenizer_loads_as_transformers_loads_it(llama, home, tmp_path):
    """transformers loads a GGUF that holds no tokenizer (its model alone): so does from_pretrained, the tokenizer given
    to generate(); a .gguf path beside another gguf_file is refused, not the other file loaded."""
    folder, _ = llama
    plain = write_tiny_gguf(folder, tmp_path / "plain.gguf")
    bare = write_tiny_gguf(folder, tmp_path / "bare.gguf", tokenizer=False)
    tokenizer = AutoTokenizer.from_pretrained(_convert_gguf(tmp_path, plain.name))
    model = build(bare)
    assert not (model.local_model_dir / "tokenizer.json").exists()
    assert completion(model, tokenizer) == completion(build(plain), tokenizer)
    with pytest.raises(ValueError, match="is a .gguf file and gguf_file='plain.gguf' names another"):
        QEFFAutoModelForCausalLM.from_pretrained(bare, gguf_file="plain.gguf")


def test_gguf_conversion_parses_the_file_once_and_keeps_transformers_weights(llama, home, tmp_path, monkeypatch):
    """transformers opens a GGUF several times per conversion (the config, the weights, the tokenizer's
    config: four readers for this file) and builds gguf's table of tensor names once per submodule; the
    conversion gives them one reader and one table. The weights written are the ones transformers loads
    from the file, the tied LM head is not written twice, and gguf's own functions are back afterwards."""
    folder, _ = llama
    path = write_tiny_gguf(folder, tmp_path / "tiny.gguf", tied=True)
    reader_class, name_map, parsed, tables = gguf.GGUFReader, gguf.get_tensor_name_map, [], []
    parse, build_table = reader_class.__init__, gguf.TensorNameMap.__init__

    def counted(self, file, *args, **kwargs):
        parsed.append(Path(file).name)
        parse(self, file, *args, **kwargs)

    def counted_table(self, arch, n_blocks):
        tables.append((arch, n_blocks))
        build_table(self, arch, n_blocks)

    monkeypatch.setattr(reader_class, "__init__", counted)
    monkeypatch.setattr(gguf.TensorNameMap, "__init__", counted_table)
    converted = _convert_gguf(tmp_path, path.name)
    assert parsed == [path.name] and gguf.GGUFReader is reader_class
    assert len(tables) == 1 and gguf.get_tensor_name_map is name_map

    ref = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name)
    assert ref.config.tie_word_embeddings
    ref = ref.state_dict()
    written = load_file(converted / "model.safetensors")
    assert set(written) == set(ref) - {"lm_head.weight"}  # the embedding table serves both
    assert all(torch.equal(written[name], ref[name]) for name in written)


def test_a_gguf_conversion_gives_the_heap_it_freed_back(llama, home, tmp_path, monkeypatch):
    """The conversion holds the model twice (as transformers loads it and as it is saved); once it is
    written, glibc is asked to return the freed arenas (only then: a cached conversion frees nothing)."""
    from QEfficient.loading import hf_loader

    folder, _ = llama
    path = write_tiny_gguf(folder, tmp_path / "tiny.gguf")
    released = []
    monkeypatch.setattr(hf_loader, "release_freed_memory", released.append)
    converted = _convert_gguf(tmp_path, path.name)
    assert released == [folder_bytes(converted)] and released[0] > 0
    assert _convert_gguf(tmp_path, path.name) == converted and len(released) == 1


def assert_same_fields(mine, theirs) -> None:
    """Two readers' fields: the same names, types, data indices and parts (dtype, byte order, shape, bytes)."""
    assert list(mine.fields) == list(theirs.fields)
    for a, b in zip(mine.fields.values(), theirs.fields.values()):
        assert (a.name, a.offset, a.types, a.data, len(a.parts)) == (b.name, b.offset, b.types, b.data, len(b.parts)), a.name
        for x, y in zip(a.parts, b.parts):
            assert type(x) is np.ndarray and x.dtype == y.dtype and x.dtype.str == y.dtype.str and x.shape == y.shape
            assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("endian", [gguf.GGUFEndian.LITTLE, gguf.GGUFEndian.BIG])
def test_the_shared_gguf_parse_reads_every_kind_of_array_as_gguf_does(tmp_path, endian):
    """The shared reader builds arrays of scalars and of strings in bulk: the fields equal gguf's own
    reader's for each element type, empty and nested arrays, in either byte order."""
    path = tmp_path / "kinds.gguf"
    writer = gguf.GGUFWriter(str(path), "llama", endianess=endian)
    writer.add_array("t.strings", ["a", "", "ü-ünïcode", "x" * 300])
    writer.add_array("t.ints", [1, -2, 3])
    writer.add_array("t.floats", [1.5, -2.25])
    writer.add_array("t.bools", [True, False])
    writer.add_array("t.empty", [])
    writer.add_array("t.nested", [[1, 2], [3]])
    writer.add_uint64("t.scalar", 7)
    writer.add_string("t.string", "after the arrays")
    writer.add_tensor("w", np.arange(8, dtype=np.float32).reshape(2, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    def values(reader) -> dict:
        """What transformers parses of each field (it refuses nested arrays: the error's text stands in)."""
        out = {}
        for key, field in reader.fields.items():
            try:
                out[key] = [gguf_utils._gguf_parse_value(field.parts[i], field.types) for i in field.data]
            except ValueError as err:
                out[key] = str(err)
        return out

    reader_class, parse = gguf.GGUFReader, gguf_utils._gguf_parse_value
    own = reader_class(path)
    expected = values(own)
    assert "too many values" in expected["t.nested"]
    with gguf_parsed_once(path):
        shared = gguf.GGUFReader(path)
        assert values(shared) == values(shared) == expected  # from the elements parsed in bulk, then from the memo
    assert gguf_utils._gguf_parse_value is parse
    assert_same_fields(shared, own)
    assert shared.fields["t.strings"].contents() == own.fields["t.strings"].contents() == ["a", "", "ü-ünïcode", "x" * 300]
    assert np.array_equal(shared.tensors[0].data, own.tensors[0].data)


def test_the_shared_gguf_parse_serves_one_path_on_one_thread(llama, tmp_path):
    folder, _ = llama
    path = write_tiny_gguf(folder, tmp_path / "tiny.gguf")
    other = shutil.copyfile(path, tmp_path / "other.gguf")
    reader_class, name_map, llama_arch = gguf.GGUFReader, gguf.get_tensor_name_map, gguf.MODEL_ARCH.LLAMA
    with gguf_parsed_once(path), ThreadPoolExecutor(1) as pool:
        first = gguf.GGUFReader(str(path))
        assert gguf.GGUFReader(path) is first and isinstance(first, reader_class)
        assert type(first.data) is np.ndarray and type(first.tensors[0].data) is np.ndarray  # not np.memmap
        assert pool.submit(lambda: gguf.GGUFReader(path=path)).result() is not first  # gguf's keyword
        own = reader_class(path)  # gguf's own reader reads the same values and tensors
        assert list(first.fields) == list(own.fields) and [t.name for t in first.tensors] == [t.name for t in own.tensors]
        assert_same_fields(first, own)
        assert all(np.array_equal(mine.data, theirs.data) for mine, theirs in zip(first.tensors, own.tensors))
        assert gguf.GGUFReader(other) is not gguf.GGUFReader(other)  # another file: a reader per call
        assert gguf.GGUFReader(path, "c") is not first  # other arguments: a reader of its own
        assert pool.submit(gguf.GGUFReader, path).result() is not first  # another thread: its own
        # still a class for everyone: checks and subclasses made during the block work as with gguf's own
        assert pool.submit(lambda: isinstance(gguf.GGUFReader(other), gguf.GGUFReader)).result()
        assert isinstance(own, gguf.GGUFReader) and issubclass(reader_class, gguf.GGUFReader)

        class Sub(gguf.GGUFReader):
            pass

        sub = Sub(path)
        assert type(sub) is Sub and sub is not first and [t.name for t in sub.tensors] == [t.name for t in own.tensors]
        table = gguf.get_tensor_name_map(llama_arch, 2)
        assert gguf.get_tensor_name_map(llama_arch, 2) is table and isinstance(table, gguf.TensorNameMap)
        assert gguf.get_tensor_name_map(llama_arch, 3) is not table  # other blocks: a table of their own
        assert pool.submit(gguf.get_tensor_name_map, llama_arch, 2).result() is not table
    assert gguf.GGUFReader is reader_class and gguf.get_tensor_name_map is name_map


# --- item 11: one build per entry across processes ----------------------------------------------

_BUILDER = """
import logging, os, sys, time, torch.onnx
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")

def wait_for(path):  # a go-ahead from the test (the loop's bound only ends a run whose test died)
    for _ in range(6000):
        if path.exists():
            return
        time.sleep(0.02)

real = torch.onnx.export
def export(*args, **kwargs):
    print("EXPORTING", flush=True)
    wait_for(Path(sys.argv[2]))
    return real(*args, **kwargs)
torch.onnx.export = export
from QEfficient import QEFFAutoModelForCausalLM
model = QEFFAutoModelForCausalLM.from_pretrained(sys.argv[1])
wait_for(Path(sys.argv[3]))
onnx_path = model.export()
print("ONNX", onnx_path, os.stat(onnx_path).st_ino, flush=True)
"""


def test_second_process_waits_and_reuses_the_first_build(llama, home, tmp_path):
    folder, _ = llama
    finish, start = tmp_path / "finish", tmp_path / "start"
    env = {**os.environ, "QEFF_HOME": str(home), "PYTHONPATH": str(Path(__file__).parents[1])}
    first = subprocess.Popen(
        [sys.executable, "-c", _BUILDER, str(folder), str(finish), str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )
    second = subprocess.Popen(  # starts (imports, loads) alongside the first; exports once the first holds the lock
        [sys.executable, "-c", _BUILDER, str(folder), str(finish), str(start)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout.readline().strip() == "EXPORTING"  # the first holds the lock, mid-export
        start.touch()
        log = []
        for line in second.stderr:  # the second blocks on the lock: only then may the first finish
            log.append(line)
            if "Waiting for another process" in line:
                break
        assert log and "Waiting for another process" in log[-1], "".join(log)
        finish.touch()
        out1, _ = first.communicate(timeout=300)
        out2, err2 = second.communicate(timeout=300)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
    assert first.returncode == 0 and second.returncode == 0, err2
    assert "EXPORTING" not in out2  # the second process never exported
    assert "built by another process" in err2
    onnx1, onnx2 = (next(line for line in out.splitlines() if line.startswith("ONNX")) for out in (out1, out2))
    assert onnx1 == onnx2  # same path, same inode: the first build is the one in place
    assert len(list(home.rglob(COMPLETE_MARKER))) == 1
    assert not list(home.rglob(f"*{LOCK_SUFFIX}"))  # each builder removed its lock file


# --- item 12: generation inputs -----------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(llama):
    folder, tokenizer = llama
    return build(folder), tokenizer


@pytest.mark.parametrize("bad", [2.5, 0, -3, "8", True, float("nan")])
def test_generation_len_must_be_a_positive_whole_number(compiled, bad):
    model, tokenizer = compiled
    with pytest.raises(ValueError, match=r"generation_len must be a positive whole number.*got"):
        model.generate(tokenizer, [PROMPT], generation_len=bad, stream=False)


def test_generation_len_accepts_numpy_and_whole_floats(compiled):
    model, tokenizer = compiled
    for value in (np.int64(3), 3.0):
        info = model.generate(tokenizer, [PROMPT], generation_len=value, stream=False)
        assert info.generated_ids[0].shape[1] <= 3


@pytest.mark.parametrize("prompts, index", [(["Hi", ""], 1), (["", "Hi"], 0), (["Hi", "My", "The", ""], 3)])
def test_empty_prompt_error_names_its_index(compiled, prompts, index):
    model, tokenizer = compiled
    with pytest.raises(ValueError, match=rf"^Prompt {index} is empty"):
        model.generate(tokenizer, prompts, generation_len=2, stream=False)


def test_empty_prompt_index_in_a_batch_of_two(llama, home):
    folder, tokenizer = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=32, batch_size=2, num_cores=1)
    with pytest.raises(ValueError, match=r"^Prompt 2 is empty"):
        model.generate(tokenizer, ["Hi", "My", ""], generation_len=2, stream=False)


def test_weight_fingerprint_sees_every_byte_name_dtype_and_shape():
    """The export cache's weight key: equal weights give one key whatever holds them; any change gives another."""
    from QEfficient.utils.cache import fingerprint_state_dict

    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    base = {"a": w, "b": torch.ones(5, dtype=torch.bfloat16)}
    key = fingerprint_state_dict(base)
    assert len(key) == 32 and fingerprint_state_dict({"b": base["b"].clone(), "a": w.clone()}) == key
    assert fingerprint_state_dict({**base, "a": w.t().contiguous().t()}) == key  # non-contiguous: same values
    flipped = w.clone()
    flipped.view(-1).view(torch.uint8)[17] ^= 1  # one bit
    others = [
        {**base, "a": flipped},
        {"A": w, "b": base["b"]},
        {**base, "a": w.to(torch.float64)},
        {**base, "a": w.reshape(4, 3)},
        {**base, "c": w},  # a tied alias counts too
    ]
    keys = {fingerprint_state_dict(d) for d in others}
    assert len(keys) == len(others) and key not in keys


def test_a_qeff_home_that_is_a_file_is_named(tmp_path, monkeypatch):
    from QEfficient.utils.cache import qeff_home

    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("QEFF_HOME", str(tmp_path / "file"))
    with pytest.raises(ValueError, match="is a file: point it at a folder"):
        qeff_home()


def test_a_relative_compile_dir_gives_a_path_that_survives_a_chdir(llama, home, tmp_path, monkeypatch):
    folder, tokenizer = llama
    monkeypatch.chdir(tmp_path)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1, compile_dir="relative")
    assert model.qpc_path.is_absolute() and model.qpc_path.parent == tmp_path / "relative"
    monkeypatch.chdir(home.parent)
    assert len(completion(model, tokenizer)) == 8


def test_a_changed_end_token_of_a_folder_without_a_tokenizer_is_a_new_artifact(llama, home, tmp_path):
    """The end tokens an artifact records (execute stops at them) key it where no tokenizer digest does."""
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(llama[0] / name, bare / name)
    first = build(bare)
    settings = json.loads((bare / "generation_config.json").read_text())
    (bare / "generation_config.json").write_text(json.dumps({**settings, "eos_token_id": 33}))
    second = build(bare)
    assert second.qpc_path != first.qpc_path and read_artifact(second.qpc_path)["eos_token_id"] == 33
