"""Whisper (real weights, scripts/fetch_whisper.sh): transformers eager, QEfficient and faster-whisper, real-time factor.

    .venv/bin/python benchmarks/bench_speech.py [--model DIR] [--ct2-model DIR] [--threads 2] [--runs 5]
        [--audio tests/data/speech16k.wav] [--faster-whisper-python /path/to/fw-venv/bin/python] [--beams 1]
        [--long-form SECONDS] [--word-timestamps]

Transcription (greedy, or ``--beams N`` for every engine: faster-whisper's default is 5; no temperature fallback,
no VAD, no timestamps, language="en") of the test recording, audio samples -> text (feature extraction included)
for every engine; ``--long-form SECONDS``: the recording repeated to SECONDS, transcribed window after window with
faster-whisper's defaults (temperature fallback 0.0-1.0, log-probability -1, no-speech 0.6 and compression-ratio
thresholds, the previous text before each window, timestamps; VAD off) in every engine's spelling; ``--word-timestamps``:
segment and word timestamps in every engine (transformers: token timestamps grouped into words as its pipeline does):

* transformers' eager ``generate``, float32;
* QEfficient float32 and QEfficient with ``mxfp6_matmul=True`` (8-bit MatMul weights);
* faster-whisper (CTranslate2) ``compute_type="float32"`` and ``"int8"``, on the CTranslate2 folder
  the transformers one was converted from (the same weights), run by faster-whisper's own
  interpreter in a subprocess (benchmarks/faster_whisper_peer.py): install it in its own venv,
  ``python -m venv fw && fw/bin/pip install faster-whisper==1.2.1``. Without it those rows are skipped.

The engines take turns, one transcription each per round, so a busy machine slows them alike; the
table gives the median over the rounds (after one warm-up each) and the fastest, the real-time factor (audio seconds
per second of compute), speed relative to faster-whisper (higher is faster) and each transcript.
Ratios matter, not absolute seconds: the CPU model and load average are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from scratch import scratch_dir  # benchmarks/scratch.py

ROOT = Path(__file__).resolve().parents[1]
PEER = Path(__file__).with_name("faster_whisper_peer.py")
FW_TYPES = ("float32", "int8")
PAUSE = 1.0  # seconds between two timed transcriptions
WORDS_SHOWN = 6  # --word-timestamps: the first words' times follow each transcript


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown CPU").strip()
    family, model = fields.get("CPU family", "").strip(), fields.get("Model", "").strip()
    return f"{name} (family {family}, model {model}), {os.cpu_count()} CPUs" if family else name


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


class FasterWhisperPeer:
    """faster-whisper in its own interpreter, one transcription per request (timed over there)."""

    def __init__(
        self, python: str, ct2_model: str, audio, threads: int, beams: int = 1, long_form: bool = False, words: bool = False
    ) -> None:
        import numpy as np

        self._audio = tempfile.NamedTemporaryFile(suffix=".npy", delete=False)
        np.save(self._audio, audio)
        self._audio.close()
        cmd = [python, str(PEER), "--model", ct2_model, "--audio", self._audio.name, "--threads", str(threads), "--beams", str(beams)]
        cmd += ["--long-form"] if long_form else []
        cmd += ["--word-timestamps"] if words else []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        if not ready:
            self.close()
            raise RuntimeError(f"faster-whisper did not start ({' '.join(cmd)}): see its error above.")
        self.version = json.loads(ready)["version"]

    def run(self, compute_type: str) -> tuple[float, str]:
        self.proc.stdin.write(json.dumps({"compute_type": compute_type}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer["seconds"], answer["text"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        os.unlink(self._audio.name)


def with_words(text: str, words: list[dict]) -> str:
    """The transcript, then its first words' times (as the faster-whisper peer writes them)."""
    return text + " | " + " ".join(f"{w['word']}@{w['start']:.2f}-{w['end']:.2f}" for w in words[:WORDS_SHOWN])


def timed(fn: Callable[[], str]) -> Callable[[], tuple[float, str]]:
    def run() -> tuple[float, str]:
        start = time.perf_counter()
        text = fn()
        return time.perf_counter() - start, text

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    share = Path(os.environ.get("QEFF_WHISPER_DIR", Path(sys.prefix) / "share" / "whisper"))
    ap.add_argument("--model", default=str(share / "whisper-base"), help="a transformers Whisper folder")
    ap.add_argument("--ct2-model", help="the CTranslate2 folder it came from (default: ct2/<name> beside it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5, help="timed rounds (each engine once per round)")
    ap.add_argument("--audio", default=str(ROOT / "tests" / "data" / "speech16k.wav"))
    ap.add_argument("--beams", type=int, default=1, help="beams for every engine (faster-whisper's default: 5)")
    ap.add_argument(
        "--long-form",
        type=float,
        metavar="SECONDS",
        help="the recording repeated to SECONDS, with faster-whisper's long-form defaults for every engine (with --beams 5, its default)",
    )
    ap.add_argument(
        "--word-timestamps",
        action="store_true",
        help="segment and word timestamps in every engine (the first words' times follow each transcript)",
    )
    ap.add_argument(
        "--faster-whisper-python",
        default=os.environ.get("FASTER_WHISPER_PYTHON"),
        help="the interpreter of a venv with faster-whisper (default: $FASTER_WHISPER_PYTHON; none: rows skipped)",
    )
    args = ap.parse_args()
    os.environ.setdefault("QEFF_HOME", scratch_dir("qeff-bench-speech-"))
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from QEfficient import QEFFAutoModelForSpeechSeq2Seq
    from QEfficient.utils.audio import read_wav

    torch.set_num_threads(args.threads)
    if not Path(args.model, "config.json").is_file():
        sys.exit(f"{args.model} is missing: run scripts/fetch_whisper.sh (or pass --model).")
    ct2_model = args.ct2_model or str(Path(args.model).parent / "ct2" / Path(args.model).name)
    audio = read_wav(args.audio)
    if args.long_form:
        import numpy as np

        audio = np.tile(audio, int(args.long_form * 16000 / len(audio)) + 1)[: int(args.long_form * 16000)]
    seconds = len(audio) / 16000
    # --long-form: transformers' spelling of faster-whisper's defaults (its compression ratio is of token bytes, where
    # faster-whisper's is of the text: 1.35 is transformers' documented value for 2.4)
    long_form = (
        dict(
            temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
            compression_ratio_threshold=1.35,
            logprob_threshold=-1.0,
            no_speech_threshold=0.6,
            condition_on_prev_tokens=True,
            return_timestamps=True,
        )
        if args.long_form
        else {}
    )
    if args.word_timestamps:
        long_form["return_timestamps"] = True
    new_tokens = 200 if args.long_form else 100
    processor = WhisperProcessor.from_pretrained(args.model)
    hf = WhisperForConditionalGeneration.from_pretrained(args.model).eval()

    def hf_run() -> str:
        with torch.no_grad():
            extra = dict(truncation=False, padding="longest") if args.long_form else {}
            inputs = processor(audio, sampling_rate=16000, return_tensors="pt", return_attention_mask=True, **extra)
            timed_words = dict(return_token_timestamps=True, return_segments=True) if args.word_timestamps else {}
            out = hf.generate(
                inputs.input_features,
                attention_mask=inputs.attention_mask if args.word_timestamps else None,  # for the timestamps' frames
                language="en",
                max_new_tokens=new_tokens,
                num_beams=args.beams,
                **long_form,
                **timed_words,
            )
        if not args.word_timestamps:
            return processor.batch_decode(out, skip_special_tokens=True)[0]
        # as transformers' pipeline does for return_timestamps="word"
        times = torch.cat([s["token_timestamps"] for s in out["segments"][0]]).numpy()
        tokens = out["sequences"][:, : len(times)].numpy()
        chunks = processor.tokenizer._decode_asr(
            [{"tokens": tokens, "token_timestamps": times[None]}], return_timestamps="word", return_language=False, time_precision=0.02
        )[1]["chunks"]
        words = [{"word": c["text"].strip(), "start": c["timestamp"][0], "end": c["timestamp"][1]} for c in chunks]
        return with_words(processor.batch_decode(tokens, skip_special_tokens=True)[0], words)

    def qeff_run(model, options) -> str:
        info = model.transcribe(audio, processor, word_timestamps=args.word_timestamps, **options)
        return with_words(info.texts[0], info.words[0]) if args.word_timestamps else info.texts[0]

    engines: dict[str, Callable[[], tuple[float, str]]] = {"transformers eager fp32": timed(hf_run)}
    for label, mxfp6 in (("QEfficient fp32", False), ("QEfficient 8-bit (mxfp6_matmul)", True)):
        model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(args.model)
        model.compile(ctx_len=448 if args.long_form else 128, num_cores=args.threads, mxfp6_matmul=mxfp6)
        options = dict(generation_len=new_tokens, language="en", num_beams=args.beams, **long_form)
        engines[label] = timed(lambda m=model, o=options: qeff_run(m, o))
    notes, peer = [], None
    if not args.faster_whisper_python:
        notes.append("faster-whisper rows skipped: pass --faster-whisper-python (a venv with faster-whisper installed).")
    elif not Path(ct2_model, "model.bin").is_file():
        notes.append(f"faster-whisper rows skipped: no CTranslate2 model at {ct2_model} (pass --ct2-model).")
    else:
        peer = FasterWhisperPeer(
            args.faster_whisper_python, ct2_model, audio, args.threads, args.beams, bool(args.long_form), args.word_timestamps
        )
        for ct in FW_TYPES:
            engines[f"faster-whisper {peer.version} {ct}"] = lambda ct=ct: peer.run(ct)

    load_before = load()
    times: dict[str, list[float]] = {label: [] for label in engines}
    texts: dict[str, str] = {}
    try:
        for label, run in engines.items():  # warm-up
            texts[label] = run()[1]
        for _ in range(args.runs):
            for label, run in engines.items():
                time.sleep(PAUSE)  # the previous engine's worker threads stop spinning (OpenMP, ORT) before this one starts
                t, texts[label] = run()
                times[label].append(t)
    finally:
        if peer is not None:
            peer.close()
    median = {label: statistics.median(ts) for label, ts in times.items()}
    fw = {ct: next((median[k] for k in median if k.startswith("faster-whisper") and k.endswith(ct)), None) for ct in FW_TYPES}

    words = ", word timestamps" if args.word_timestamps else ""
    setting = f"{args.threads} threads, {args.beams} beam(s){words}, median of {args.runs} rounds"
    print(f"{Path(args.model).name}, {seconds:.1f} s of audio, {setting}")
    print(f"CPU: {cpu_model()}; shared machine, {load_before} before, {load()} after")
    head = f"{'engine':38} {'s/transcr.':>10} {'(min)':>6} {'RTF':>6} {'vs transformers':>15} {'vs fw fp32':>10} {'vs fw int8':>10}"
    print(head + "  transcript")
    reference = texts["QEfficient fp32"]
    for label, t in median.items():
        ratio = ["-" if fw[ct] is None else f"{fw[ct] / t:.2f}x" for ct in FW_TYPES]
        same = "=" if texts[label] == reference else "≠"
        vs_hf = median["transformers eager fp32"] / t
        row = f"{label:38} {t:10.3f} {min(times[label]):6.3f} {seconds / t:6.1f} {vs_hf:14.1f}x {ratio[0]:>10} {ratio[1]:>10}"
        print(f"{row}  {same} {texts[label]!r}")
    distinct = sorted(set(texts.values()))
    print("transcripts: all equal" if len(distinct) == 1 else f"transcripts: {len(distinct)} different (= / ≠: as QEfficient fp32's)")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
