"""CTC speech models: PyTorch (transformers) vs QEfficient, side by side in one process.

    .venv/bin/python benchmarks/bench_ctc.py [--threads 2] [--models wav2vec2-base parakeet-ctc-0.6b] [--mxfp6]
    .venv/bin/python benchmarks/bench_ctc.py --long 120     # Wav2Vec2-base over 2 min in 30 s windows, with word times

Real shapes with random weights (no weights are downloaded): Wav2Vec2-base (95M parameters, raw audio in) and
Parakeet-CTC-0.6B (a FastConformer, 600M, its processor's log-mel spectrogram in). The test recording
(tests/data/speech16k.wav, 7.8 s) at batch 1: seconds per transcription, median of 3 after a warm-up, the ratio to
PyTorch, and the largest logit difference. ``--long SECONDS``: the recording repeated to that length, transcribed
with word times in windows of 30 s by transformers' pipeline(chunk_length_s=30) and by QEFFAutoModelForCTC.transcribe
with the same arguments (their answers compared). Ratios matter, not absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench_causal_lm import cpu_model  # benchmarks/bench_causal_lm.py
from bench_seq2seq import median_seconds  # benchmarks/bench_seq2seq.py
from scratch import scratch_dir  # benchmarks/scratch.py

ROOT = Path(__file__).resolve().parents[1]


def build(name: str, folder: Path):
    """(transformers model, processor inputs for the recording) of ``name``'s shape, saved in ``folder``."""
    import torch
    from transformers import (
        ParakeetCTCConfig,
        ParakeetFeatureExtractor,
        ParakeetForCTC,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
    )

    sys.path.insert(0, str(ROOT))
    from tests.test_ctranslate2_whisper import DATA, read_wav

    audio = read_wav(DATA / "speech16k.wav")
    torch.manual_seed(0)
    if name == "wav2vec2-base":
        model = Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=32)).eval()
        inputs = Wav2Vec2FeatureExtractor()(audio, sampling_rate=16000, return_tensors="pt")
    else:
        model = ParakeetForCTC(ParakeetCTCConfig()).eval()  # parakeet-ctc-0.6b's encoder: 24 layers, 1024 wide
        inputs = ParakeetFeatureExtractor()(audio, sampling_rate=16000, return_tensors="pt")
    model.save_pretrained(folder)
    return model, dict(inputs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["wav2vec2-base", "parakeet-ctc-0.6b"], choices=["wav2vec2-base", "parakeet-ctc-0.6b"])
    ap.add_argument("--mxfp6", action="store_true", help="also compile with mxfp6_matmul=True (int8 GEMMs)")
    ap.add_argument("--long", type=float, default=None, help="seconds of audio for the windowed transcription (Wav2Vec2-base)")
    args = ap.parse_args()
    os.environ.setdefault("QEFF_HOME", scratch_dir("qeff-bench-ctc-"))
    import numpy as np
    import torch

    from QEfficient import QEFFAutoModelForCTC

    torch.set_num_threads(args.threads)
    if args.long:
        return long_audio(args.long, args.threads)
    print(f"{cpu_model()}, {args.threads} threads, the 7.8 s test recording at batch 1; seconds per transcription (ratio to PyTorch)")
    for name in args.models:
        hf, inputs = build(name, Path(scratch_dir(f"qeff-bench-{name}-")))
        folder = Path(hf.name_or_path) if hf.name_or_path else None
        torch_inputs = {k: v for k, v in inputs.items() if k in ("input_values", "input_features", "attention_mask")}

        def run_torch(hf=hf, torch_inputs=torch_inputs):
            with torch.inference_mode():
                return hf(**torch_inputs).logits

        seconds = {"PyTorch": median_seconds(run_torch)}
        model = QEFFAutoModelForCTC(hf, pretrained_model_name_or_path=str(folder) if folder else name)
        model.compile(seq_len=160000, batch_size=1, num_cores=args.threads)
        seconds["QEfficient"] = median_seconds(lambda model=model, inputs=inputs: model.logits(inputs))
        reference = run_torch().numpy()
        diff = float(np.abs(model.logits(inputs) - reference).max())
        print(
            f"  {name}: PyTorch {seconds['PyTorch']:.3f} s, QEfficient {seconds['QEfficient']:.3f} s "
            f"({seconds['PyTorch'] / seconds['QEfficient']:.2f}x); max |logit diff| {diff:.1e}",
            flush=True,
        )
        if args.mxfp6:  # int8 weights and activations: speed, and how far the logits move from float32
            int8 = QEFFAutoModelForCTC(hf, pretrained_model_name_or_path=str(folder) if folder else name)
            int8.compile(seq_len=160000, batch_size=1, num_cores=args.threads, mxfp6_matmul=True)
            took = median_seconds(lambda int8=int8, inputs=inputs: int8.logits(inputs))
            logits = int8.logits(inputs)
            same = float((logits.argmax(-1) == reference.argmax(-1)).mean())
            spread = float(reference.max(-1).mean() - reference.min(-1).mean())
            print(
                f"  {name} mxfp6_matmul (int8): {took:.3f} s ({seconds['PyTorch'] / took:.2f}x PyTorch, "
                f"{seconds['QEfficient'] / took:.2f}x float32); frames with float32's top token {same:.1%}, max |logit "
                f"diff| {float(np.abs(logits - reference).max()):.2f} (logits span {spread:.2f} per frame)",
                flush=True,
            )


def long_audio(seconds: float, threads: int) -> None:
    """transformers' pipeline and QEFFAutoModelForCTC.transcribe over long audio in 30 s windows, with word times."""
    import numpy as np
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor, pipeline

    from QEfficient import QEFFAutoModelForCTC

    folder = Path(scratch_dir("qeff-bench-wav2vec2-long-"))
    hf, inputs = build("wav2vec2-base", folder)
    letters = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONISRHDLUCMFWGYPBVKXJQZ'"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(letters)}))
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(), Wav2Vec2CTCTokenizer(str(folder / "vocab.json")))
    audio = np.resize(inputs["input_values"][0].numpy(), int(seconds * 16000)).astype(np.float32)
    asr = pipeline("automatic-speech-recognition", model=hf, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    model = QEFFAutoModelForCTC(hf, pretrained_model_name_or_path=str(folder))
    model.compile(seq_len=model.window_samples(processor), batch_size=1, num_cores=threads)
    options = dict(chunk_length_s=30, return_timestamps="word")
    theirs = median_seconds(lambda: asr(audio.copy(), **options))
    ours = median_seconds(lambda: model.transcribe(processor, audio, **options))
    same = asr(audio.copy(), **options) == model.transcribe(processor, audio, **options)
    print(f"{cpu_model()}, {threads} threads, Wav2Vec2-base (random weights), {seconds:g} s of audio in 30 s windows with word times:")
    print(
        f"  transformers' pipeline {theirs:.2f} s, QEfficient {ours:.2f} s ({theirs / ours:.2f}x); the same text and word times: {same}",
        flush=True,
    )


if __name__ == "__main__":
    main()
