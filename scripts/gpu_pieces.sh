#!/bin/bash
# Prepares .gpu/ (git-ignored through .git/info/exclude) for the GPU checks on a lent device machine that reaches no
# package index: onnxruntime-gpu (CUDA 13; its wheel is over one call's 64 MiB carry) stripped to what runs, packed and
# cut into pieces p0..pN of 60 MB, and transformers' wheel (the device's is older than ours). Then, in consecutive
# calls while the machine stays warm, carry one piece each (.gpu/p0, then .gpu/p1, ...) with the command
# `mkdir -p /tmp/up && cp .gpu/p* /tmp/up/`, and last carry only .gpu/transformers-*.whl with
# `bash scripts/gpu_check.sh` (docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ORT=${ORT:-onnxruntime-gpu==1.31.1}
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms -d "$work" "$ORT"
python3 -m pip download -q --no-deps --only-binary=:all: -d "$work" "transformers==$(.venv/bin/python -c 'import transformers; print(transformers.__version__)')"
(cd "$work" && mkdir x && cd x && unzip -q ../onnxruntime_gpu-*.whl \
  && rm -rf onnxruntime/capi/libonnxruntime.so.* onnxruntime/capi/libonnxruntime_providers_tensorrt.so \
     onnxruntime/tools onnxruntime/transformers onnxruntime/quantization \
  && tar cf - onnxruntime onnxruntime_gpu-*.dist-info | xz -6 -T0 > ../ort.tar.xz)
rm -rf .gpu && mkdir .gpu
split -b 60000000 -d -a 1 "$work/ort.tar.xz" .gpu/p
cp "$work"/transformers-*.whl .gpu/
ls -la .gpu
