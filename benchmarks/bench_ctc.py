"""CTC speech models: PyTorch (transformers) vs QEfficient, side by side in one process.

    .venv/bin/python benchmarks/bench_ctc.py [--threads 2] [--models wav2vec2-base parakeet-ctc-0.6b] [--mxfp6]

Real shapes with random weights (no weights are downloaded): Wav2Vec2-base (95M parameters, raw audio in) and
Parakeet-CTC-0.6B (a FastConformer, 600M, its processor's log-mel spectrogram in). The test recording
(tests/data/speech16k.wav, 7.8 s) at batch 1: seconds per transcription, median of 3 after a warm-up, the ratio to
PyTorch, and the largest logit difference. Ratios matter, not absolute seconds.
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args()
    os.environ.setdefault("QEFF_HOME", scratch_dir("qeff-bench-ctc-"))
    import numpy as np
    import torch

    from QEfficient import QEFFAutoModelForCTC

    torch.set_num_threads(args.threads)
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


if __name__ == "__main__":
    main()
