"""runtime/cpu_features.py: the int8 GEMMs of every session are exact on this CPU, whatever its kernel.

The graph below is built to make VPMADDUBSW clip (activations at a zero point of 237, weights
of +-127 in neighbouring pairs): on an x86 CPU without VNNI only the session entry the runtime sets
keeps it exact; on this one the entry, forced, must change nothing."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from QEfficient.runtime import cpu_features
from QEfficient.runtime.cpu_features import X64_QUANT_PRECISION, has_exact_int8_sums, int8_pair_sums_saturate
from QEfficient.runtime.ort_session import session_options

K, N = 64, 16


def _entry(options: ort.SessionOptions) -> str | None:
    """The session's X64_QUANT_PRECISION entry, None when it is not set (ONNX Runtime raises then)."""
    try:
        return options.get_session_config_entry(X64_QUANT_PRECISION)
    except RuntimeError:
        return None


@pytest.mark.parametrize(
    "cpu, flags, exact",
    [
        ("AMD EPYC 7763 (Zen 3)", "fpu sse4_2 avx f16c rdrand avx2 sha_ni vaes vpclmulqdq rdpid", False),
        ("Xeon Platinum 8175M (Skylake-SP)", "avx2 avx512f avx512dq avx512cd avx512bw avx512vl", False),
        ("Xeon @ 2.60GHz (Ice Lake)", "avx2 avx512f avx512bw avx512vl avx512_vbmi2 gfni avx512_vnni", True),
        ("Core i7-12700 (Alder Lake)", "avx2 sha_ni avx_vnni serialize", True),
        ("Xeon Platinum 8480+ (Sapphire Rapids)", "avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8", True),
        ("macOS leaf7_features", "RDWRFSGS TSC_THREAD_OFFSET BMI1 AVX2 SMEP BMI2 AVX512F AVX512VNNI", True),
        ("Xeon Phi 7295 (Knights Mill: 4VNNIW is not VNNI)", "avx2 avx512f avx512_4vnniw avx512_4fmaps", False),
        ("numpy's dispatch table (Windows)", "SSE42 AVX2 FMA3 AVX512F AVX512VNNI AVX512_ICL", True),
    ],
)
def test_exact_int8_sums_are_named_by_the_cpu_features(cpu, flags, exact):
    assert has_exact_int8_sums(flags) is exact, cpu


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 only: elsewhere nothing is set")
def test_sessions_set_the_entry_exactly_where_this_cpu_lacks_vnni():
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # Linux: the runtime's reading agrees with the file
        flags = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags"))
        assert int8_pair_sums_saturate() is not has_exact_int8_sums(flags.partition(":")[2])
    assert _entry(session_options(1)) == ("1" if int8_pair_sums_saturate() else None)


@pytest.mark.parametrize(
    "machine, flags, entry",
    [
        ("arm64", None, False),
        ("aarch64", "fp asimd", False),
        ("x86_64", "avx2 fma", True),
        ("AMD64", None, True),
        ("x86_64", "avx2 avx_vnni", False),
    ],
)
def test_the_entry_follows_the_cpu(machine, flags, entry, monkeypatch):
    """Set on x86 without VNNI or AMX, or whose features cannot be read; never elsewhere."""
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(cpu_features, "_cpu_flags", lambda: flags)
    assert cpu_features.int8_pair_sums_saturate() is entry
    assert _entry(session_options(1)) == ("1" if entry else None)


def _clipping_graph() -> tuple[bytes, np.ndarray, np.ndarray, np.float32]:
    """A DynamicQuantizeMatMul whose weight pairs are +-127 side by side, and activations whose one
    large negative value puts the zero point at 237 (every other value lands at or above it)."""
    rng = np.random.default_rng(0)
    codes = np.repeat(rng.choice([-127, 127], size=(K // 2, N)), 2, axis=0).astype(np.int8)
    scale = np.float32(0.01)
    graph = helper.make_graph(
        [helper.make_node("DynamicQuantizeMatMul", ["x", "w", "w_scale"], ["y"], domain="com.microsoft")],
        "clip",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(codes, "w"), numpy_helper.from_array(np.full(N, scale, np.float32), "w_scale")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    x = rng.uniform(0.0, 0.3, size=(4, K)).astype(np.float32)
    x[:, 0] = -4.0
    return model.SerializeToString(), x, codes, scale


def _int8_products(x: np.ndarray, codes: np.ndarray, saturate: bool) -> np.ndarray:
    """Integer sums over x quantized as DynamicQuantizeLinear does; ``saturate`` clips each pair as
    VPMADDUBSW would."""
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    x_scale = (high - low) / 255
    zero = np.clip(np.rint(-low / x_scale), 0, 255)
    xq = np.clip(np.rint(x / x_scale) + zero, 0, 255).astype(np.int64)
    w = codes.astype(np.int64)
    pairs = xq[:, 0::2, None] * w[None, 0::2] + xq[:, 1::2, None] * w[None, 1::2]
    if saturate:
        pairs = np.clip(pairs, -32768, 32767)
    return (pairs.sum(axis=1) - zero * w.sum(axis=0)) * x_scale


def test_int8_matmul_sessions_are_exact_even_where_pair_sums_would_clip():
    model, x, codes, scale = _clipping_graph()
    exact = _int8_products(x, codes, saturate=False) * scale
    clipped = _int8_products(x, codes, saturate=True) * scale
    assert np.abs(clipped - exact).max() > 0.1 * np.abs(exact).max()  # the graph would show a clipping kernel
    forced = session_options(1)
    forced.add_session_config_entry(X64_QUANT_PRECISION, "1")
    for options in (session_options(1), forced):  # as the runtime opens it; ONNX Runtime's exact kernel forced
        y = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        np.testing.assert_allclose(y, exact, rtol=1e-5, atol=1e-5 * np.abs(exact).max())
