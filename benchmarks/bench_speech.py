"""Whisper (real weights, scripts/fetch_whisper.sh): transformers eager vs QEfficient, real-time factor.

    .venv/bin/python benchmarks/bench_speech.py [--model DIR] [--threads 2] [--audio tests/data/speech16k.wav]

Greedy transcription of the test recording with language="en": seconds per transcription (median
of a few runs after a warm-up), the real-time factor (audio seconds per second of compute) and the
transcript of each engine, for transformers' eager ``generate``, QEfficient float32 and QEfficient
with ``mxfp6_matmul=True`` (MatMul weights in 8-bit blocks). Ratios matter, not absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, runs: int = 3) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(os.environ.get("QEFF_WHISPER_DIR", Path(sys.prefix) / "share" / "whisper")) / "whisper-base"
    ap.add_argument("--model", default=str(default))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--audio", default=str(ROOT / "tests" / "data" / "speech16k.wav"))
    args = ap.parse_args()
    os.environ.setdefault("QEFF_HOME", tempfile.mkdtemp(prefix="qeff-bench-speech-"))
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from QEfficient import QEFFAutoModelForSpeechSeq2Seq
    from QEfficient.utils.audio import read_wav

    torch.set_num_threads(args.threads)
    if not Path(args.model, "config.json").is_file():
        sys.exit(f"{args.model} is missing: run scripts/fetch_whisper.sh (or pass --model).")
    audio = read_wav(args.audio)
    seconds = len(audio) / 16000
    processor = WhisperProcessor.from_pretrained(args.model)
    inputs = processor(audio, sampling_rate=16000, return_tensors="pt")
    hf = WhisperForConditionalGeneration.from_pretrained(args.model).eval()

    def hf_run():
        with torch.no_grad():
            ids = hf.generate(inputs.input_features, language="en", max_new_tokens=100)
        return processor.batch_decode(ids, skip_special_tokens=True)[0]

    rows = [("transformers eager fp32", *timed(hf_run))]
    for label, mxfp6 in (("QEfficient fp32", False), ("QEfficient 8-bit (mxfp6_matmul)", True)):
        model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(args.model)
        model.compile(ctx_len=128, num_cores=args.threads, mxfp6_matmul=mxfp6)

        def run(m=model) -> str:
            return m.generate(inputs=inputs, generation_len=100, processor=processor, language="en").texts[0]

        rows.append((label, *timed(run)))
    print(f"{Path(args.model).name}, {seconds:.1f} s of audio, {args.threads} threads")
    print(f"{'engine':34} {'s/transcription':>16} {'RTF (x real time)':>18} {'vs transformers':>16}  transcript")
    for label, t, text in rows:
        print(f"{label:34} {t:16.3f} {seconds / t:18.1f} {rows[0][1] / t:15.1f}x  {text!r}")


if __name__ == "__main__":
    main()
