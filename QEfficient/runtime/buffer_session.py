"""QEfficient's ``QAICInferenceSession`` on ONNX Runtime: a compiled artifact run by named buffers, as QEfficient's
low-level scripts drive a QPC (prefill and decode on separate artifacts, hand-written decode loops).

Its semantics are the device's: an input set once (``run(inputs)`` or ``set_buffers``) stays set for later runs; a
retained-state input (``past_key.0``, a recurrent state) that is skipped (``skip_buffers``), or never given, reads
the state the previous run left (zeros before the first), so a decode loop passes only ``input_ids`` and
``position_ids``; a skipped output is not returned. Each run hands ONNX Runtime the whole cache and takes the whole
new one back (a copy per step): the library's own generation (runtime/ort_session.KVCacheSession) updates the cache
in place instead.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from QEfficient.compile.ort_cpu import read_artifact
from QEfficient.export.graph_names import RETAINED_SUFFIX, past_names
from QEfficient.runtime.ort_session import available_cores, open_artifact_session


class BufferSession:
    def __init__(
        self,
        qpc_path: str | os.PathLike,
        device_ids: list[int] | None = None,
        activate: bool = True,
        enable_debug_logs: bool = False,
        data_path_timeout_ms: int = 60_000,
        num_cores: int | None = None,
    ) -> None:
        """QEfficient's arguments; ``device_ids``, ``enable_debug_logs`` and ``data_path_timeout_ms`` name Cloud AI 100
        devices and their host API, and have nothing to act on here."""
        qconfig = read_artifact(Path(qpc_path))
        self.session = open_artifact_session(qpc_path, num_cores or qconfig.get("num_cores") or available_cores())
        self.is_active = activate
        # the zeros a retained state starts from: the cache as compiled, the recurrent states as recorded
        zeros: dict[str, tuple[list[int], str]] = {}
        if qconfig.get("kv_shape") and qconfig.get("num_layers"):
            zeros |= {name: (qconfig["kv_shape"], qconfig.get("kv_dtype", "float32")) for name in past_names(qconfig["num_layers"])}
        zeros |= {name: (shape, qconfig.get("state_dtype", "float32")) for name, shape in (qconfig.get("states") or {}).items()}
        self._zeros = zeros
        self._buffers: dict[str, np.ndarray] = {}  # the inputs set, for every later run
        self._retained: dict[str, np.ndarray] = {}  # each retained-state input's latest state
        self._skipped: set[str] = set()

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def activate(self) -> None:
        self.is_active = True

    def deactivate(self) -> None:
        self.is_active = False

    def set_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        """Inputs to use from now on (an output's placeholder is taken and not needed: ONNX Runtime sizes outputs)."""
        inputs, outputs = set(self.input_names), set(self.output_names)
        for name, value in buffers.items():
            if name in inputs:
                self._buffers[name] = np.asarray(value)
            elif name not in outputs:
                warnings.warn(f'Buffer: "{name}" not found', stacklevel=2)  # QEfficient's words, once per place
                continue
            self._skipped.discard(name)  # a skipped output set again is returned again, as on the device

    def skip_buffers(self, skipped_buffer_names: list[str]) -> None:
        """Inputs that read the state the previous run left, and outputs not to return."""
        self._skipped.update(skipped_buffer_names)
        for name in skipped_buffer_names:
            self._buffers.pop(name, None)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.is_active:
            raise RuntimeError("The session is deactivated; call activate() first.")
        self.set_buffers(inputs)
        outputs = set(self.output_names)
        feed = {}
        for name in self.input_names:
            if name in self._buffers:
                feed[name] = self._buffers[name]
            elif name + RETAINED_SUFFIX in outputs and (name in self._retained or name in self._zeros):
                shape, dtype = self._zeros.get(name, (None, None))
                feed[name] = self._retained[name] if name in self._retained else np.zeros(shape, dtype=dtype)
            else:
                raise ValueError(f"Input '{name}' was never given: pass it to run() or set_buffers().")
        results = dict(zip(self.output_names, self.session.run(None, feed)))
        for name, value in results.items():
            if name.endswith(RETAINED_SUFFIX):
                self._retained[name[: -len(RETAINED_SUFFIX)]] = value
        return {name: value for name, value in results.items() if name not in self._skipped}
