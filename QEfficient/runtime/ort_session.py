"""Stage 5: an ONNX Runtime session over a retained-state graph, with the KV cache kept in place.

Each ``past_*`` tensor lives in one pre-allocated OrtValue that is bound both as the graph input
and as its ``*_RetainedState`` output. Nothing reads the input after the graph's scatter, so the
scatter writes into the buffer it reads from and no step copies or re-feeds the cache (ONNX
Runtime's CPU scatter kernels skip their input copy when source and destination coincide;
tests/test_runtime.py guards that the result stays exact).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

logger = logging.getLogger(__name__)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def session_options(num_cores: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, min(int(num_cores), available_cores()))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class KVCacheSession:
    """Runs prefill chunks and decode steps of one batch layout (batch_size, ctx_len)."""

    def __init__(
        self,
        onnx_path: Path,
        *,
        batch_size: int,
        kv_shape: tuple[int, int, int, int],
        num_layers: int,
        vocab_size: int,
        num_cores: int = 16,
        kv_dtype: str = "float32",
        providers: list[str] | None = None,
    ) -> None:
        self.session = ort.InferenceSession(
            str(onnx_path), session_options(num_cores), providers=providers or ["CPUExecutionProvider"]
        )
        self.batch_size = batch_size
        self.ctx_len = kv_shape[2]
        self.io = self.session.io_binding()
        self.kv = []
        for i in range(num_layers):
            for kind in ("key", "value"):
                name = f"past_{kind}.{i}"
                buf = ort.OrtValue.ortvalue_from_numpy(np.zeros(kv_shape, dtype=kv_dtype))
                self.io.bind_ortvalue_input(name, buf)
                self.io.bind_ortvalue_output(f"{name}_RetainedState", buf)
                self.kv.append(buf)
        self.logits = ort.OrtValue.ortvalue_from_shape_and_type([batch_size, 1, vocab_size], np.float32)
        self.io.bind_ortvalue_output("logits", self.logits)
        self._inputs: tuple[np.ndarray, np.ndarray] | None = None

    def run(self, input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """One step. input_ids/position_ids int64 [B,S]; returns a view of logits [B,V] (valid until the next run)."""
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        pos = np.ascontiguousarray(position_ids, dtype=np.int64)
        self._inputs = (ids, pos)  # keep the arrays alive while ORT reads them
        self.io.bind_cpu_input("input_ids", ids)
        self.io.bind_cpu_input("position_ids", pos)
        self.session.run_with_iobinding(self.io)
        return self.logits.numpy()[:, 0]
