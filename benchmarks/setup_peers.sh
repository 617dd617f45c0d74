#!/usr/bin/env bash
# The peer engines of benchmarks/bench_causal_lm.py, each in its own virtualenv under $PEERS (default
# ./peers), and their models built from the same SmolLM2 weights as ours (the GGUF file de-quantized
# to safetensors by QEfficient). Then: QEFF_PEERS_DIR=$PEERS .venv/bin/python benchmarks/bench_causal_lm.py
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
for wf in fp32 int8 int4; do  # int4: symmetric groups of 64 for every layer (NNCF keeps the embedding in 8 bits)
  extra=(); [ "$wf" = int4 ] && extra=(--group-size 64 --ratio 1.0 --sym)
  "$PEERS/ovexport/bin/optimum-cli" export openvino -m "$HF" --task text-generation-with-past --weight-format "$wf" "${extra[@]}" "$PEERS/models/openvino-$wf"
done
