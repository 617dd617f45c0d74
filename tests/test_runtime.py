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
        out = plain.run(
            None, {"input_ids": ids.astype(np.int64), "position_ids": pos.astype(np.int64), **dict(zip(io.past_names, cache))}
        )
        cache = out[1:]
        np.testing.assert_array_equal(ours, out[0][:, 0])
    for buf, ref in zip(in_place.kv, cache):
        np.testing.assert_array_equal(buf.numpy(), ref)
