"""Whether ONNX Runtime's int8 GEMMs on this CPU add pairs of uint8 x int8 products in 16 bits.

The int8 graphs (``mxfp6_matmul=True``: a decoder's projections, an encoder's MatMuls) multiply
uint8 activations by int8 weights. On x86 without VNNI (AVX2 and early AVX-512 CPUs, AMD before
Zen 4) ONNX Runtime's kernel sums each pair of neighbouring products with ``VPMADDUBSW``, in
saturating 16-bit arithmetic, and 2 x 255 x 127 does not fit. A quantized activation near zero
sits at its zero point, well above 128 for a decoder's skewed hidden states, so the clamp is
frequent, not a corner case (docs/performance.md measures what it would do). VNNI and AMX sum in
32 bits; ARM's dot products too.

ONNX Runtime's own remedy is the session entry ``session.x64quantprecision``: at session creation
the int8 weights become uint8 around 128 and the uint8 x uint8 kernel, which widens before
multiplying, runs them exactly. Where VNNI is present it would only be slower (the results are the
same), so it is set where this module finds no VNNI or AMX. The features come from ``/proc/cpuinfo``
(Linux), ``sysctl`` (macOS), else numpy's CPU dispatch table, which knows AVX-512 VNNI but not
AVX-VNNI; an x86 CPU whose features cannot be read gets the entry (exact first).
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys

X64_QUANT_PRECISION = "session.x64quantprecision"  # ONNX Runtime's kOrtSessionOptionsAvx2PrecisionMode
_X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})
# Linux /proc/cpuinfo spells them avx512_vnni, avx_vnni, amx_int8; macOS sysctl and numpy AVX512VNNI
_EXACT_INT8_FEATURES = frozenset({"avx512vnni", "avxvnni", "amxint8"})


def has_exact_int8_sums(cpu_flags: str) -> bool:
    """Whether a CPU's feature list (``/proc/cpuinfo`` flags, or macOS ``machdep.cpu.leaf7_features``)
    names VNNI or AMX, whose int8 dot products add in 32 bits."""
    return any(flag.lower().replace("_", "") in _EXACT_INT8_FEATURES for flag in cpu_flags.split())


@functools.cache
def _cpu_flags() -> str | None:
    """This CPU's feature names, or None where the platform does not say."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
                found = next((line.partition(":")[2] for line in cpuinfo if line.startswith("flags")), None)
            if found is not None:
                return found
        except OSError:
            pass
    elif sys.platform == "darwin":
        try:
            found = subprocess.run(
                ["/usr/sbin/sysctl", "-n", "machdep.cpu.leaf7_features"], capture_output=True, text=True, timeout=5, check=False
            )
            if found.returncode == 0:
                return found.stdout
        except (OSError, subprocess.SubprocessError):
            pass
    return _numpy_cpu_flags()


def _numpy_cpu_flags() -> str | None:
    """The features numpy detected for its own dispatch (Windows has no file to read them from)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:  # numpy 1.x
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return None
    return " ".join(name for name, present in __cpu_features__.items() if present)


def int8_pair_sums_saturate() -> bool:
    """True on an x86 CPU without VNNI or AMX (or one whose features cannot be read): sessions there
    set X64_QUANT_PRECISION."""
    if platform.machine().lower() not in _X86:
        return False
    flags = _cpu_flags()
    return flags is None or not has_exact_int8_sums(flags)
