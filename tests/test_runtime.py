"""The in-place KV cache (one buffer bound as past_* input and *_RetainedState output) gives
exactly what plain ``session.run`` with copied feeds gives. ONNX Runtime does not document that
aliasing, so this guards it on every upgrade."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.compile.ort_cpu import read_artifact
from QEfficient.export.onnx_export import KVGraphIO
from QEfficient.generation.exec_kv import open_session


def test_in_place_cache_matches_copied_feeds(tiny_model_dir):
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("qwen3"))
    qpc = model.compile(prefill_seq_len=8, ctx_len=32, batch_size=2, num_cores=1)
    qconfig = read_artifact(qpc)
    in_place = open_session(qpc, num_cores=1)
    plain = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    io = KVGraphIO(qconfig["num_layers"])
    cache = [np.zeros(qconfig["kv_shape"], np.float32) for _ in io.past_names]

    rng = np.random.default_rng(0)
    steps = [(rng.integers(3, 300, (2, 8)), np.array([np.arange(8), [0, 1, 2, 3, 4, -1, -1, -1]]))]
    steps.append((rng.integers(3, 300, (2, 8)), np.array([np.arange(8, 16), [-1] * 8])))
    position = np.array([16, 5])
    for _ in range(12):
        steps.append((rng.integers(3, 300, (2, 1)), position[:, None].copy()))
        position += 1
    for ids, pos in steps:
        ours = in_place.run(ids, pos).copy()
        out = plain.run(None, {"input_ids": ids.astype(np.int64), "position_ids": pos.astype(np.int64), **dict(zip(io.past_names, cache))})
        cache = out[1:]
        np.testing.assert_array_equal(ours, out[0][:, 0])
    for i, ref in enumerate(cache):
        np.testing.assert_array_equal(in_place.cache_view(i), ref)


def test_window_ladder_gives_the_full_window_result(tiny_model_dir):
    """ctx_len 512: the session binds 128, then 256, then 512 slots as the sequence grows, moving
    the cache rows each time; logits stay those of a plain full-length run."""
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("qwen2"))
    qpc = model.compile(prefill_seq_len=64, ctx_len=512, batch_size=2, num_cores=1)
    qconfig = read_artifact(qpc)
    windowed = open_session(qpc, num_cores=1)
    plain = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    io = KVGraphIO(qconfig["num_layers"])
    cache = [np.zeros(qconfig["kv_shape"], np.float32) for _ in io.past_names]
    rng = np.random.default_rng(1)
    steps = []
    for start in range(0, 256, 64):  # row 1 is shorter: padding inside the chunks
        pos = np.stack([np.arange(start, start + 64), np.where(np.arange(start, start + 64) < 200, np.arange(start, start + 64), -1)])
        steps.append((rng.integers(3, 300, (2, 64)), pos))
    position = np.array([256, 200])
    for _ in range(200):
        steps.append((rng.integers(3, 300, (2, 1)), position[:, None].copy()))
        position += 1
    seen = set()
    for ids, pos in steps:
        ours = windowed.run(ids, pos).copy()
        seen.add(windowed.window)
        out = plain.run(None, {"input_ids": ids.astype(np.int64), "position_ids": pos.astype(np.int64), **dict(zip(io.past_names, cache))})
        cache = out[1:]
        np.testing.assert_allclose(ours, out[0][:, 0], rtol=0, atol=2e-5)
    assert seen == {128, 256, 512}
    for i, ref in enumerate(cache):
        np.testing.assert_array_equal(windowed.cache_view(i)[:, :, :456], ref[:, :, :456])
