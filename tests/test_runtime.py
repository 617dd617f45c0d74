"""The session's KV cache handling gives what plain ``session.run`` with copied, full-length feeds
gives. In place: one buffer is bound as past_* input and *_RetainedState output, an aliasing ONNX
Runtime does not document, so this guards it on every upgrade. Window: the session binds only the
prefix of slots the sequence has reached, and moves the rows when it grows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.compile.ort_cpu import ARTIFACT_GRAPH, read_artifact
from QEfficient.export.onnx_export import KVGraphIO
from QEfficient.generation.exec_kv import open_session


def replay(folder, steps, *, prefill_seq_len: int, ctx_len: int, atol: float, fuse: bool | None = None):
    """Run ``steps`` through our session and through a plain session; compare logits at every step."""
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    qpc = model.compile(prefill_seq_len=prefill_seq_len, ctx_len=ctx_len, batch_size=2, num_cores=1, fuse=fuse)
    qconfig = read_artifact(qpc)
    ours = open_session(qpc, num_cores=1)
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


def test_in_place_cache_matches_copied_feeds(tiny_model_dir):
    rng = np.random.default_rng(0)
    steps = [(rng.integers(3, 300, (2, 8)), np.array([np.arange(8), [0, 1, 2, 3, 4, -1, -1, -1]]))]
    steps.append((rng.integers(3, 300, (2, 8)), np.array([np.arange(8, 16), [-1] * 8])))
    steps += decode_steps(rng, np.array([16, 5]), 12)
    # The unfused graph: a session fed copies cannot replay GroupQueryAttention's idle row (with separate past
    # and present buffers it copies each row's own length, none for an idle row); the fused graph's idle rows
    # are checked against HF in tests/test_fusion.py.
    session, cache, _ = replay(tiny_model_dir("qwen3"), steps, prefill_seq_len=8, ctx_len=32, atol=0, fuse=False)
    for i, ref in enumerate(cache):
        np.testing.assert_array_equal(session.cache_view(i), ref)


def test_window_ladder_gives_the_full_window_result(tiny_model_dir):
    """ctx_len 512: the session binds 128, then 256, then 512 slots as the sequence grows."""
    rng = np.random.default_rng(1)
    steps = []
    for start in range(0, 256, 64):  # row 1 is shorter: padding inside the chunks
        cols = np.arange(start, start + 64)
        steps.append((rng.integers(3, 300, (2, 64)), np.stack([cols, np.where(cols < 200, cols, -1)])))
    steps += decode_steps(rng, np.array([256, 200]), 200)
    session, cache, windows = replay(tiny_model_dir("qwen2"), steps, prefill_seq_len=64, ctx_len=512, atol=2e-5)
    assert windows == {128, 256, 512}
    for i, ref in enumerate(cache):
        np.testing.assert_array_equal(session.cache_view(i)[:, :, :456], ref[:, :, :456])
