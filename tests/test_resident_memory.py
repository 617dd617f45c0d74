"""Weights mapped from the file: large initializers page aligned on disk (ONNX Runtime maps them
instead of copying), and the pages a session's construction read dropped without losing a write."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from QEfficient.runtime import resident_memory
from QEfficient.runtime.ort_session import open_inference_session, session_options
from QEfficient.runtime.resident_memory import reclaiming_mapped_pages, release_mapped_pages
from QEfficient.utils.onnx_files import (
    ALIGN_ABOVE,
    PAGE,
    load_graph_and_weights,
    save_copy_with_external_weights,
    save_with_external_weights,
)


def _mapping_kb(path: Path, field: str) -> int:
    """``field`` (Rss, Anonymous, ...) summed over this process's mappings of ``path``, in kB."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            inside = len(head) > 5 and head[5] == str(path.resolve())
        elif inside and line.startswith(f"{field}:"):
            total += int(line.split()[1])
    return total


def _cached_pages(path: Path, offset: int, length: int) -> int:
    """How many pages of ``path`` in [offset, offset + length) the page cache holds (mincore(2))."""
    with open(path, "rb") as f:
        view = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # nothing is read: mincore faults nothing in
    try:
        start = ctypes.addressof(ctypes.c_char.from_buffer(view))  # the buffer export ends with the temporary
        resident = (ctypes.c_ubyte * -(-length // PAGE))()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        assert libc.mincore(start + offset, length, resident) == 0, ctypes.get_errno()
        return sum(page & 1 for page in resident)
    finally:
        view.close()


def _page_cache_can_drop(folder: Path) -> bool:
    """Whether this file system drops a written file's pages when asked (tmpfs keeps them)."""
    probe = folder / "probe"
    with open(probe, "wb") as f:
        f.write(bytes(16 * PAGE))
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return _cached_pages(probe, 0, 16 * PAGE) == 0


def _save_gather_matmul(path: Path, megabytes: int) -> tuple[np.ndarray, np.ndarray]:
    """A graph ``y = table[ids] @ w`` saved with external weights: a table read by rows and a weight read in
    full (pre-packed), ``megabytes`` each; returns (table, w)."""
    rng = np.random.default_rng(0)
    rows = ALIGN_ABOVE // 4 // 64 * megabytes
    table = rng.standard_normal((rows, 64)).astype(np.float32)
    w = rng.standard_normal((64, rows)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"]), helper.make_node("MatMul", ["rows", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, rows])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(w, "w")],
    )
    save_with_external_weights(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return table, w


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the page cache calls are Linux's")
def test_saved_gather_tables_leave_the_page_cache(tmp_path):
    """A table a Gather reads rows of is written out and dropped from the page cache when saved (freshly
    written pages sit in large folios, and a mapping of one maps all of it); other weights stay cached."""
    if not _page_cache_can_drop(tmp_path):
        pytest.skip("this file system keeps a file's pages in memory")
    table, w = _save_gather_matmul(tmp_path / "m.onnx", megabytes=2)

    saved = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    spans = {t.name: [int({e.key: e.value for e in t.external_data}[k]) for k in ("offset", "length")] for t in saved.graph.initializer}
    data = tmp_path / "m.onnx.data"
    assert _cached_pages(data, *spans["table"]) == 0
    assert _cached_pages(data, *spans["w"]) == spans["w"][1] // PAGE  # written, still cached
    ids = np.array([1, 700, len(table) - 1])
    y = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    np.testing.assert_allclose(y, table[ids] @ w, rtol=1e-4)


def test_large_weights_are_page_aligned_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.standard_normal((8, 100)).astype(np.float32)  # 3.2 kB (w: 2 kB): external, not aligned
    large = rng.standard_normal((ALIGN_ABOVE // 4 // 64 + 1, 64)).astype(np.float32)  # just over 1 MB
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"]), helper.make_node("MatMul", ["rows", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])],
        [numpy_helper.from_array(large, "table"), numpy_helper.from_array(np.ascontiguousarray(small[:, :64].T), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.graph.initializer.insert(0, numpy_helper.from_array(small, "unused_first"))  # pushes the next offset off a page
    save_with_external_weights(model, tmp_path / "m.onnx")

    saved = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    offsets = {t.name: int({e.key: e.value for e in t.external_data}.get("offset", 0)) for t in saved.graph.initializer}
    assert offsets["unused_first"] == 0 and offsets["w"] % PAGE != 0 and offsets["table"] % PAGE == 0
    back = {t.name: numpy_helper.to_array(t) for t in load_graph_and_weights(tmp_path / "m.onnx").graph.initializer}
    np.testing.assert_array_equal(back["table"], large)
    ids = np.array([0, 5, len(large) - 1])
    y = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    np.testing.assert_allclose(y, large[ids] @ small[:, :64].T, rtol=1e-5)


def test_released_pages_read_back_and_written_mappings_are_kept(tmp_path, monkeypatch):
    data = tmp_path / "w.onnx.data"
    data.write_bytes(np.arange(64 * PAGE, dtype=np.uint8).tobytes())
    with open(data, "rb") as f:
        clean = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private and writable, as ONNX Runtime maps
        written = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    assert sum(clean[::PAGE]) + sum(written[::PAGE]) >= 0  # read every page of both
    written[0] = 255  # one private (copy-on-write) page: this mapping must keep its pages
    assert _mapping_kb(data, "Rss") >= 2 * 64 * PAGE // 1024

    assert release_mapped_pages(data) == 0  # a file under RELEASE_ABOVE is left alone
    assert _mapping_kb(data, "Rss") >= 2 * 64 * PAGE // 1024
    monkeypatch.setattr(resident_memory, "RELEASE_ABOVE", 0)  # a small file, to keep the test quick
    assert release_mapped_pages(data) == 64 * PAGE  # the clean mapping only
    assert _mapping_kb(data, "Rss") < (64 + 8) * PAGE // 1024
    assert written[0] == 255 and written[1:PAGE] == data.read_bytes()[1:PAGE]
    assert clean[:] == data.read_bytes()  # dropped pages read back from the file
    clean.close()
    written.close()
    assert release_mapped_pages(data) == 0  # no longer mapped: nothing to advise (smaps not read)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")
def test_pages_reclaimed_while_a_block_runs_read_back_and_keep_writes(tmp_path, monkeypatch):
    """reclaiming_mapped_pages: a thread reclaims the mapped pages while the block runs (a session's build);
    what was read reads back from the file, and a written (copy-on-write) page keeps its write."""
    data, other = tmp_path / "w.onnx.data", tmp_path / "other.onnx.data"
    for path in (data, other):  # two files: a page mapped twice is not reclaimed
        with open(path, "wb") as f:
            f.write(np.arange(64 * PAGE, dtype=np.uint8).tobytes())
            f.flush()
            os.fsync(f.fileno())  # clean pages: reclaiming them never waits on a writeback behind other tests' I/O
    with open(data, "rb") as f:
        clean = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private and writable, as ONNX Runtime maps
    with open(other, "rb") as f:
        written = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    assert sum(clean[::PAGE]) + sum(written[::PAGE]) >= 0  # read every page of both
    written[0] = 255
    drops = _page_cache_can_drop(tmp_path)
    monkeypatch.setattr(resident_memory, "RECLAIM_ABOVE", 0)  # a small file, to keep the test quick
    for path in (data, other):
        with reclaiming_mapped_pages(path, interval_s=0.001) as advised:
            deadline = time.monotonic() + 5
            # two passes at least; and for the clean file, passes until its pages are gone: MADV_PAGEOUT skips a
            # page it cannot take yet (under writeback, or in another core's LRU batch)
            while time.monotonic() < deadline and (
                advised[0] < 2 * 64 * PAGE or (path == data and drops and _mapping_kb(data, "Rss") >= 8 * PAGE // 1024)
            ):
                time.sleep(0.005)
        assert not any(t.name == "qeff-reclaim-pages" for t in threading.enumerate())
    if advised[0] and drops:  # a kernel with MADV_PAGEOUT, a file system whose pages can leave memory
        assert _mapping_kb(data, "Rss") < 8 * PAGE // 1024
    assert written[0] == 255 and written[1:] == other.read_bytes()[1:]
    assert clean[:] == data.read_bytes()
    clean.close()
    written.close()


def test_a_session_built_while_its_pages_are_reclaimed_computes_the_same(tmp_path, monkeypatch):
    """open_inference_session reclaims the weight file's pages while ONNX Runtime builds the session (it
    reads them to pre-pack the MatMul weight and the Gather table's neighbour); the outputs are a plain
    session's, and the thread is gone afterwards. Files under RECLAIM_ABOVE are left alone."""
    table, _ = _save_gather_matmul(tmp_path / "m.onnx", megabytes=4)
    ids = np.array([0, 9, len(table) - 1])
    passes = []
    reclaim = resident_memory._reclaim_until
    monkeypatch.setattr(resident_memory, "_reclaim_until", lambda *args: passes.append(args[0]) or reclaim(*args))
    open_inference_session(tmp_path / "m.onnx", session_options(1))
    assert passes == []  # 8 MB: under RECLAIM_ABOVE
    monkeypatch.setattr(resident_memory, "RECLAIM_ABOVE", 1 << 20)
    ours = open_inference_session(tmp_path / "m.onnx", session_options(1)).run(None, {"ids": ids})[0]
    assert passes == [str((tmp_path / "m.onnx.data").resolve())] or not sys.platform.startswith("linux")
    plain = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]
    np.testing.assert_array_equal(ours, plain)
    assert not any(t.name == "qeff-reclaim-pages" for t in threading.enumerate())


def test_subgraph_weights_are_read_back(tmp_path):
    """save_with_external_weights moves the initializers of If / Loop bodies out as well; reading back restores them."""
    rng = np.random.default_rng(0)
    w_then, w_else = (rng.standard_normal((8, 64)).astype(np.float32) for _ in range(2))  # 2 kB each: external

    def branch(name: str, w: np.ndarray) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("MatMul", ["x", f"{name}_w"], [f"{name}_y"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [None, 64])],
            [numpy_helper.from_array(w, f"{name}_w")],
        )

    graph = helper.make_graph(
        [helper.make_node("If", ["flag"], ["y"], then_branch=branch("then", w_then), else_branch=branch("else", w_else))],
        "g",
        [helper.make_tensor_value_info("flag", TensorProto.BOOL, []), helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 64])],
    )
    save_with_external_weights(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    back = load_graph_and_weights(tmp_path / "m.onnx")
    onnx.save(back, str(tmp_path / "inline.onnx"))  # everything inline again: the file alone must run
    (tmp_path / "m.onnx.data").unlink()
    session = ort.InferenceSession(str(tmp_path / "inline.onnx"), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((3, 8)).astype(np.float32)
    for flag, w in ((True, w_then), (False, w_else)):
        np.testing.assert_allclose(session.run(None, {"flag": np.array(flag), "x": x})[0], x @ w, rtol=1e-5)


def test_a_saved_copy_leaves_the_model_as_it_was_and_equals_a_save(tmp_path, monkeypatch):
    """save_copy_with_external_weights (calibration saves the graph it goes on rewriting): the model keeps
    its bytes, and the files are those save_with_external_weights writes from a full copy."""
    rng = np.random.default_rng(0)
    large = rng.standard_normal((ALIGN_ABOVE // 4 // 64 + 1, 64)).astype(np.float32)
    small = rng.standard_normal((8, 64)).astype(np.float32)
    then = helper.make_graph(
        [helper.make_node("MatMul", ["x", "then_w"], ["then_y"])],
        "then",
        [],
        [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, [None, 64])],
        [numpy_helper.from_array(small, "then_w")],  # a subgraph's weight: moved out of the copy too
    )
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["rows"]),
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("If", ["flag"], ["y"], then_branch=then, else_branch=then),
        ],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None]), helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [None, 64]), helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(large, "table"),
            numpy_helper.from_array(small, "w"),
            helper.make_tensor("flag", TensorProto.BOOL, [], [True]),  # a typed field, not raw_data
            helper.make_tensor("steps", TensorProto.INT64, [300], list(range(300))),
        ],
        doc_string="a graph",
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="test")
    onnx.helper.set_model_props(model, {"key": "value"})
    before = model.SerializeToString()

    (tmp_path / "copy").mkdir()
    from QEfficient.utils import onnx_files

    reads = []
    read = onnx_files._RawBytesOf.__getitem__
    monkeypatch.setattr(onnx_files._RawBytesOf, "__getitem__", lambda self, name: reads.append(name) or read(self, name))
    save_copy_with_external_weights(model, tmp_path / "copy" / "m.onnx")
    assert sorted(reads) == ["table", "w"]  # each weight's bytes read (copied out of protobuf) once
    assert model.SerializeToString() == before
    full = onnx.ModelProto()
    full.CopyFrom(model)
    (tmp_path / "full").mkdir()
    save_with_external_weights(full, tmp_path / "full" / "m.onnx")
    for name in ("m.onnx", "m.onnx.data"):
        assert (tmp_path / "copy" / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
