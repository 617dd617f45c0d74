"""faster-whisper side of benchmarks/bench_speech.py, run by faster-whisper's own interpreter.

    FW_PYTHON benchmarks/faster_whisper_peer.py --model CT2_DIR --audio SAMPLES.npy --threads 2 --compute-types float32,int8 [--beams 1]

Standalone on purpose (it imports neither QEfficient nor transformers: faster-whisper lives in its
own venv). It loads one ``WhisperModel`` per compute type, prints one JSON line ``{"ready": ...}``,
then answers each JSON line read on stdin, ``{"compute_type": "int8"}``, with one transcription
timed here (audio -> text, feature extraction included): ``{"seconds": s, "text": "..."}``.
Decoding is plain, as QEfficient's: ``--beams`` beams (1: greedy), one temperature (no fallback), no VAD,
no timestamps, English given, and no quality thresholds that could drop a segment; ``--long-form``: faster-whisper's
own defaults instead (temperature fallback, its thresholds, the previous text, timestamps), VAD still off;
``--word-timestamps``: segment and word timestamps (the first words' times are appended to the text).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

WORDS_SHOWN = 6  # --word-timestamps: the first words' times follow the transcript


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json)")
    ap.add_argument("--audio", required=True, help="16 kHz float32 samples saved with numpy.save")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compute-types", default="float32,int8")
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--long-form", action="store_true", help="faster-whisper's own defaults: fallback, thresholds, previous text")
    ap.add_argument("--word-timestamps", action="store_true", help="word times too (segment timestamps on)")
    args = ap.parse_args()
    import faster_whisper
    from faster_whisper import WhisperModel

    audio = np.load(args.audio).astype(np.float32)
    models = {
        ct: WhisperModel(args.model, device="cpu", compute_type=ct, cpu_threads=args.threads, num_workers=1)
        for ct in args.compute_types.split(",")
    }
    options = dict(
        language="en",
        task="transcribe",
        beam_size=args.beams,
        best_of=1,
        temperature=0.0,
        vad_filter=False,
        without_timestamps=True,
        condition_on_previous_text=False,
        compression_ratio_threshold=None,
        log_prob_threshold=None,
        no_speech_threshold=None,
    )
    if args.long_form:  # transcribe()'s defaults (temperatures 0.0-1.0, thresholds, previous text, timestamps)
        options = dict(language="en", task="transcribe", beam_size=args.beams, vad_filter=False)
    if args.word_timestamps:
        options.update(word_timestamps=True, without_timestamps=False)
    print(json.dumps({"ready": True, "version": faster_whisper.__version__}), flush=True)
    for line in sys.stdin:
        compute_type = json.loads(line)["compute_type"]
        start = time.perf_counter()
        segments, _ = models[compute_type].transcribe(audio, **options)
        segments = list(segments)  # a generator: decoding happens here
        text = "".join(s.text for s in segments)
        if args.word_timestamps:
            words = [w for s in segments for w in s.words][:WORDS_SHOWN]
            text += " | " + " ".join(f"{w.word.strip()}@{w.start:.2f}-{w.end:.2f}" for w in words)
        print(json.dumps({"seconds": time.perf_counter() - start, "text": text}), flush=True)


if __name__ == "__main__":
    main()
