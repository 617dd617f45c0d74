#!/bin/bash
# The GPU checks on a machine whose python3 has torch and CUDA 13's libraries but no onnxruntime-gpu: installs the
# pieces scripts/gpu_pieces.sh made (sent to /tmp/up, or in .gpu), then runs the GPU tests and the CPU/GPU benchmark.
# Output also under $OUT (tests.log, bench.log, gpu.json) where that is set.
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT" /tmp/up
cp .gpu/p[0-9] /tmp/up/ 2>/dev/null
SITE=$(python3 -c 'import site; print(site.getsitepackages()[0])')
cat /tmp/up/p[0-9] > /tmp/ort.tar.xz || exit 1
rm -rf "$SITE"/onnxruntime "$SITE"/onnxruntime-*.dist-info && tar -C "$SITE" -xJf /tmp/ort.tar.xz || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/transformers-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD QEFF_HOME=/tmp/qeff USE_HUB_KERNELS=NO PYTHONUNBUFFERED=1 QEFF_DEVICE=cuda
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
grep -m1 "model name" /proc/cpuinfo
python3 -c "import onnxruntime as ort; print(ort.__version__, ort.get_available_providers()); from QEfficient.runtime.devices import current_device; print(current_device())" || exit 1
timeout "${TEST_S:-240}" python3 -m pytest -q -p no:cacheprovider -n 8 --dist load tests/test_gpu.py tests/test_devices.py \
  tests/test_parity.py::test_onnxruntime_generation_matches_hf tests/test_continuous_batching.py tests/test_encoder.py 2>&1 | tee "$OUT/tests.log" | tail -45
timeout "${BENCH_S:-280}" python3 benchmarks/bench_gpu.py --out "$OUT" --threads "$(nproc)" --rounds 2 --shapes "${SHAPES:-smollm2-135m,qwen2.5-0.5b,qwen2.5-1.5b}" 2>&1 \
  | tee "$OUT/bench.log" | grep -v "it/s\]" | tail -30
