"""Where sessions run: ONNX Runtime's CPU provider, or its CUDA provider where a GPU and ``onnxruntime-gpu`` exist.

``QEFF_DEVICE`` chooses, read each time a session opens or an artifact is built:

* ``cpu`` (the default): the CPU;
* ``cuda`` or ``cuda:N``: CUDA device N (0 by default); an error that says what to install when it cannot run;
* ``auto``: CUDA device 0 when ONNX Runtime's CUDA provider can run there, else the CPU.

The CPU stays the default until the GPU checks (tests/test_gpu.py, benchmarks/bench_gpu.py) have passed on a GPU
(docs/gpu.md). On CUDA a decoder's KV cache lives in the GPU's memory and is updated there in place
(kv_storage.DeviceKVStorage); token ids go in and the last position's logits come back each step. Nodes without a
CUDA kernel run on the CPU (ONNX Runtime places them and copies their tensors).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

logger = logging.getLogger(__name__)

DEVICE_ENV = "QEFF_DEVICE"
DEFAULT_DEVICE = "cpu"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


class DeviceUnavailableError(RuntimeError):
    """QEFF_DEVICE names a device ONNX Runtime cannot run on here."""


@dataclass(frozen=True)
class Device:
    kind: str = "cpu"  # "cpu" or "cuda"
    index: int = 0

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def providers(self) -> list:
        """ONNX Runtime's ``providers`` argument: CUDA first (the CPU takes the nodes CUDA has no kernel for), its
        float32 MatMuls in float32 (TF32 would round their inputs to 10-bit mantissas: not transformers' answers)."""
        if self.is_cuda:
            return [(CUDA_PROVIDER, {"device_id": str(self.index), "use_tf32": "0"}), CPU_PROVIDER]
        return [CPU_PROVIDER]


CPU = Device()


def parse_device(spec: str) -> Device | None:
    """``cpu`` / ``cuda`` / ``cuda:N`` as a Device; ``auto`` (or empty) as None. Anything else is an error that lists them."""
    text = spec.strip().lower()
    if text in ("", "auto"):
        return None
    if text == "cpu":
        return CPU
    kind, _, index = text.partition(":")
    if kind == "cuda" and (not index or index.isdigit()):
        return Device("cuda", int(index or 0))
    raise ValueError(f"{DEVICE_ENV}={spec!r} is not a device: use auto, cpu, cuda or cuda:N (N a GPU's index).")


@functools.cache
def load_cuda_libraries() -> None:
    """CUDA's and cuDNN's libraries from the nvidia-* wheels ``onnxruntime-gpu[cuda,cudnn]`` installs, which ONNX
    Runtime does not find by itself (``onnxruntime.preload_dlls``); what it prints goes to this module's log."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    with contextlib.redirect_stdout(io.StringIO()) as said:
        try:
            preload()
        except Exception as err:  # the CUDA provider's own loading then says what is missing
            print(err)
    if said.getvalue().strip():
        logger.info("onnxruntime.preload_dlls: %s", said.getvalue().strip())


@functools.cache
def cuda_runs(index: int = 0) -> bool:
    """Whether ONNX Runtime's CUDA provider runs on GPU ``index``: it is built in (``onnxruntime-gpu``) and a session
    on a one-node graph keeps it (ONNX Runtime falls back to the CPU when the GPU or CUDA's libraries are missing)."""
    if CUDA_PROVIDER not in ort.get_available_providers():
        return False
    load_cuda_libraries()
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)  # any ONNX Runtime reads 8
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the fallback's own warning: this probe reports it
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=Device("cuda", index).providers())
        session.run(None, {"x": np.zeros(1, np.float32)})
    except Exception as err:  # a broken CUDA installation raises its own types
        logger.info("ONNX Runtime's CUDA provider cannot run on GPU %d: %s", index, err)
        return False
    return CUDA_PROVIDER in session.get_providers()


def current_device() -> Device:
    """The device sessions open on now (``QEFF_DEVICE``, see the module's docstring)."""
    chosen = parse_device(os.environ.get(DEVICE_ENV, DEFAULT_DEVICE))
    if chosen is None:
        return Device("cuda", 0) if cuda_runs(0) else CPU
    if chosen.is_cuda and not cuda_runs(chosen.index):
        built = CUDA_PROVIDER in ort.get_available_providers()
        raise DeviceUnavailableError(
            f"{DEVICE_ENV}={os.environ[DEVICE_ENV]}, but "
            + (
                f"ONNX Runtime's CUDA provider cannot run on GPU {chosen.index} (no such GPU, or CUDA 13 / cuDNN 9 libraries "
                "missing: pip install 'onnxruntime-gpu[cuda,cudnn]')"
                if built
                else "this ONNX Runtime has no CUDA provider: pip uninstall onnxruntime && pip install 'onnxruntime-gpu[cuda,cudnn]'"
            )
            + f"; or set {DEVICE_ENV}=cpu."
        )
    return chosen
