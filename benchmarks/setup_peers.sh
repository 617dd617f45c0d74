#!/usr/bin/env bash
# The peer engines of benchmarks/bench_causal_lm.py, each in its own virtualenv under $PEERS (default
# ./peers), and their models built from the same SmolLM2 weights as ours (the GGUF file de-quantized
# to safetensors by QEfficient); llama.cpp runs the GGUF files themselves. Then:
# QEFF_PEERS_DIR=$PEERS .venv/bin/python benchmarks/bench_causal_lm.py [--vs-llamacpp 2 [--gguf FILE]]
#
# ONNX Runtime GenAI's model builder and optimum-intel's exporter need torch and transformers; PyPI's
# Linux torch is a multi-GB CUDA build, so they run with the project venv's CPU torch: the builder with
# the project's python, the exporter from a venv whose .pth file appends the project's site-packages
# (optimum-intel 2.2 wants transformers < 5.6, which that venv pins for itself).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
PEERS="${PEERS:-$ROOT/peers}"
mkdir -p "$PEERS/models"
HF="$(PYTHONPATH="$ROOT" "$PY" -c 'from QEfficient.loading.hf_loader import _convert_gguf, default_model_path as d; p = d(); print(_convert_gguf(p.parent, p.name))')"
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

# llama.cpp: llama-cpp-python compiles it (~10 min on 2 cores). AVX2 build, not -DGGML_NATIVE: on
# AVX-512 machines the native build crashed (docs/performance.md); GGML_NATIVE=OFF keeps it portable.
python3 -m venv "$PEERS/llamacpp"
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" "$PEERS/llamacpp/bin/pip" install -q --no-cache-dir "llama-cpp-python==0.3.36"
python3 -m venv "$PEERS/ortgenai" && "$PEERS/ortgenai/bin/pip" install -q onnxruntime-genai
python3 -m venv "$PEERS/openvino" && "$PEERS/openvino/bin/pip" install -q openvino-genai
python3 -m venv "$PEERS/ovexport"
"$PEERS/ovexport/bin/pip" install -q --no-deps optimum-intel==2.2.0 optimum==2.3.0
"$PEERS/ovexport/bin/pip" install -q "transformers>=5.5,<5.6" "huggingface-hub<1.22" nncf openvino openvino-tokenizers setuptools requests packaging
echo "$SITE" > "$PEERS/ovexport/lib/python3.11/site-packages/zz_project_torch.pth"  # torch last on sys.path

BUILDER="$("$PEERS/ortgenai/bin/python" -c 'import onnxruntime_genai, os; print(os.path.dirname(onnxruntime_genai.__file__))')/models"
for p in int8 int4 fp32; do  # int8/int4: MatMulNBits, symmetric blocks of 32, accuracy level 4 (the builder's CPU defaults)
  (cd "$BUILDER" && "$PY" builder.py -i "$HF" -o "$PEERS/models/ortgenai-$p" -p "$p" -e cpu -c "$PEERS/models/cache_dir")
done
"$PEERS/ovexport/bin/optimum-cli" export openvino -m "$HF" --task text-generation-with-past --weight-format fp32 "$PEERS/models/openvino-fp32"
# int8 / int4 by NNCF from the fp32 IR (what --weight-format does after tracing; tracing again took > 15 min on a busy machine)
"$PEERS/ovexport/bin/python" - "$PEERS/models/openvino-fp32" <<'PYEOF'
import shutil, sys
from pathlib import Path
import nncf, openvino as ov
src = Path(sys.argv[1])
for name, kwargs in (("int8", {"mode": nncf.CompressWeightsMode.INT8_ASYM}),
                     ("int4", {"mode": nncf.CompressWeightsMode.INT4_SYM, "group_size": 64, "ratio": 1.0})):
    dst = src.parent / f"openvino-{name}"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("openvino_model.*"))
    ov.save_model(nncf.compress_weights(ov.Core().read_model(src / "openvino_model.xml"), **kwargs), dst / "openvino_model.xml", compress_to_fp16=False)
PYEOF
