"""QEFF_DEVICE: which provider sessions open on, and the errors a machine without a GPU gives when one is asked for.
(What runs on a GPU is checked on one: docs/gpu.md.)"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.runtime.devices import CPU, CUDA_PROVIDER, Device, DeviceUnavailableError, cuda_runs, current_device, parse_device
from QEfficient.runtime.kv_storage import DeviceKVStorage
from QEfficient.runtime.ort_session import open_kv_session

NO_GPU = not cuda_runs(0)


@pytest.mark.parametrize(
    ("spec", "device"),
    [("auto", None), ("", None), ("cpu", CPU), ("CUDA", Device("cuda", 0)), ("cuda:1", Device("cuda", 1)), (" cuda:0 ", Device("cuda", 0))],
)
def test_parse_device(spec, device):
    assert parse_device(spec) == device


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:-1", "npu:0"])
def test_parse_device_names_the_choices(spec):
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
        parse_device(spec)


def test_providers_put_cuda_first_and_keep_the_cpu():
    assert CPU.providers() == ["CPUExecutionProvider"]
    assert Device("cuda", 1).providers() == [(CUDA_PROVIDER, {"device_id": "1", "use_tf32": "0"}), "CPUExecutionProvider"]


def test_cpu_by_default_and_auto(monkeypatch):
    monkeypatch.delenv("QEFF_DEVICE", raising=False)
    assert current_device() == CPU
    monkeypatch.setenv("QEFF_DEVICE", "auto")
    assert current_device() == (CPU if NO_GPU else Device("cuda", 0))


@pytest.mark.skipif(not NO_GPU, reason="this machine's ONNX Runtime runs on a GPU")
def test_asking_for_cuda_without_one_says_what_to_do(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("QEFF_DEVICE", "cuda")
    hint = "onnxruntime-gpu" if CUDA_PROVIDER not in ort.get_available_providers() else "cannot run on GPU 0"
    with pytest.raises(DeviceUnavailableError, match=f"{hint}.*QEFF_DEVICE=cpu"):
        current_device()
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"))
    with pytest.raises(DeviceUnavailableError, match="QEFF_DEVICE=cpu"):
        model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1)
    monkeypatch.setenv("QEFF_DEVICE", "cpu")
    qpc = model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1)
    monkeypatch.setenv("QEFF_DEVICE", "cuda:0")
    with pytest.raises(DeviceUnavailableError):  # a session asked to open on a GPU this machine lacks
        open_kv_session(qpc, 1)


def test_resident_cache_is_zeroed_relaid_and_grown():
    """The resident cache (a GPU's) starts at zero: attention multiplies unused slots by zero, and NaN in them would spread."""
    storage = DeviceKVStorage(2, 24, "float16", "cpu", 0)
    assert storage.size == 24 and storage.nbytes == 2 * 24 * 2
    assert not storage.read(1, 24).any()
    host = np.arange(24, dtype=np.float16)
    storage.values[0].update_inplace(host)
    storage.relay(rows=2, old_stride=6, new_stride=12)  # rows of 6 laid out at stride 12
    np.testing.assert_array_equal(storage.read(0, 24)[[0, 5, 12, 17]], [0, 5, 6, 11])
    storage.grow(48, rows=2, old_stride=12, new_stride=24)
    assert storage.size == 48
    grown = storage.read(0, 48)
    np.testing.assert_array_equal(grown[[0, 5, 24, 29]], [0, 5, 6, 11])
    assert not grown[36:].any()  # the new slots start at zero
