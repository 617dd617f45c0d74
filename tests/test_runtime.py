"""The session's KV cache handling gives what plain ``session.run`` with copied, full-length feeds
gives. In place: one buffer is bound as past_* input and *_RetainedState output, an aliasing ONNX
Runtime does not document, so this guards it on every upgrade. Window: the session binds only the
prefix of slots the sequence has reached, and moves the rows when it grows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.compile.ort_cpu import ARTIFACT_GRAPH, read_artifact
from QEfficient.export.onnx_export import KVGraphIO
from QEfficient.runtime.kv_storage import DeviceKVStorage
from QEfficient.runtime.ort_session import open_kv_session

# The cache in numpy arrays (the CPU's), and in ONNX Runtime's own allocations, as it is kept on a GPU
# (runtime/kv_storage.py): the same code runs here on the CPU.
STORAGES = pytest.mark.parametrize("resident", [False, True], ids=["host", "resident"])


def replay(folder, steps, *, prefill_seq_len: int, ctx_len: int, atol: float, fuse: bool | None = None, resident: bool = False):
    """Run ``steps`` through our session and through a plain session; compare logits at every step."""
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    qpc = model.compile(prefill_seq_len=prefill_seq_len, ctx_len=ctx_len, batch_size=2, num_cores=1, fuse=fuse)
    qconfig = read_artifact(qpc)
    ours = open_kv_session(qpc, num_cores=1, resident=resident)
    assert isinstance(ours.storage, DeviceKVStorage) == resident
    # the artifact's own graph (fused or not), fed copies: only the cache handling differs
    plain = ort.InferenceSession(str(Path(qpc) / ARTIFACT_GRAPH), providers=["CPUExecutionProvider"])
    names = KVGraphIO(qconfig["num_layers"]).past_names
    cache = [np.zeros(qconfig["kv_shape"], np.float32) for _ in names]
    windows = set()
    for ids, pos in steps:
        logits = ours.run(ids, pos).copy()
        windows.add(ours.window)
        out = plain.run(None, {"input_ids": ids.astype(np.int64), "position_ids": pos.astype(np.int64), **dict(zip(names, cache))})
        cache = out[1:]
        np.testing.assert_allclose(logits, out[0][:, 0], rtol=0, atol=atol)
    return ours, cache, windows


def decode_steps(rng, position, n):
    steps = []
    for _ in range(n):
        steps.append((rng.integers(3, 300, (2, 1)), position[:, None].copy()))
        position = position + 1
    return steps


@STORAGES
def test_in_place_cache_matches_copied_feeds(tiny_model_dir, resident):
    rng = np.random.default_rng(0)
    steps = [(rng.integers(3, 300, (2, 8)), np.array([np.arange(8), [0, 1, 2, 3, 4, -1, -1, -1]]))]
    steps.append((rng.integers(3, 300, (2, 8)), np.array([np.arange(8, 16), [-1] * 8])))
    steps += decode_steps(rng, np.array([16, 5]), 12)
    # The unfused graph: a session fed copies cannot replay GroupQueryAttention's idle row (with separate past
    # and present buffers it copies each row's own length, none for an idle row); the fused graph's idle rows
    # are checked against HF in tests/test_fusion.py.
    session, cache, _ = replay(tiny_model_dir("qwen3"), steps, prefill_seq_len=8, ctx_len=32, atol=0, fuse=False, resident=resident)
    for i, ref in enumerate(cache):
        np.testing.assert_array_equal(session.cache_view(i), ref)


@STORAGES
def test_window_ladder_gives_the_full_window_result(tiny_model_dir, resident):
    """ctx_len 512: the session binds 128, then 256, then 512 slots as the sequence grows."""
    rng = np.random.default_rng(1)
    steps = []
    for start in range(0, 256, 64):  # row 1 is shorter: padding inside the chunks
        cols = np.arange(start, start + 64)
        steps.append((rng.integers(3, 300, (2, 64)), np.stack([cols, np.where(cols < 200, cols, -1)])))
    steps += decode_steps(rng, np.array([256, 200]), 200)
    session, cache, windows = replay(tiny_model_dir("qwen2"), steps, prefill_seq_len=64, ctx_len=512, atol=2e-5, resident=resident)
    assert windows == {128, 256, 512}
    for i, ref in enumerate(cache):
        np.testing.assert_array_equal(session.cache_view(i)[:, :, :456], ref[:, :, :456])


def test_resident_cache_runs_rows_and_grows_as_the_host_cache(tiny_model_dir):
    """One cache row at a time (continuous batching's prefill), whole-batch steps, window growth and a chunk
    that runs past ctx_len (the fused graph's placement): the resident cache gives the host cache's logits."""
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("qwen2"))
    qpc = model.compile(prefill_seq_len=8, ctx_len=160, batch_size=2, num_cores=1, fuse=True)
    sessions = [open_kv_session(qpc, num_cores=1, resident=resident) for resident in (False, True)]
    rng = np.random.default_rng(2)
    calls = [(1, rng.integers(3, 300, (1, 8)), np.arange(8)[None])]
    calls += [(0, rng.integers(3, 300, (1, 8)), np.arange(start, start + 8)[None]) for start in range(0, 152, 8)]
    calls += [(None, rng.integers(3, 300, (2, 1)), np.array([[152 + i], [8 + i]])) for i in range(4)]
    tail = np.array([[156, 157, 158, 159, -1, -1, -1, -1]])  # row 0's last chunk: 4 tokens, placed at 156..163
    calls.append((0, rng.integers(3, 300, (1, 8)), tail))
    for slot, ids, pos in calls:
        logits = [(s.run(ids, pos) if slot is None else s.run_slot(slot, ids, pos)).copy() for s in sessions]
        np.testing.assert_array_equal(logits[1], logits[0])
    assert sessions[0].window == sessions[1].window > 160
    assert sessions[0].cache_bytes == sessions[1].cache_bytes
    for i in range(len(sessions[0].names)):
        np.testing.assert_array_equal(sessions[1].cache_view(i), sessions[0].cache_view(i))
