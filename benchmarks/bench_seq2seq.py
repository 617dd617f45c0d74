"""Text encoder-decoders: transformers (PyTorch) vs QEfficient, side by side in one process.

    .venv/bin/python benchmarks/bench_seq2seq.py [--threads 2] [--new-tokens 64] [--batch 1 4] [--beams 1] [--ct2 PEERS/ct2]
        [--models t5-small opus-mt] [--input-len 24]

Two shapes of real checkpoints with random weights (no weights are downloaded): T5-small (60M parameters, relative
position bias) and Opus-MT (Marian, 74M, sinusoidal positions). For each batch size, a 24-token input per row and
``--new-tokens`` greedy tokens (min_new_tokens holds every row to that length): decoded tokens per second, median of
3 after a warm-up, and the ratio to transformers' ``generate``, for QEfficient float32 and ``mxfp6_matmul`` (8-bit
decoder weights); "same" says whether float32's tokens equal transformers'. ``--beams K``: beam search with K beams
for every engine (each input's best hypothesis counts its tokens once). Ratios matter, not absolute seconds.
``--models led-base --input-len 4096``: LED-base's shape (Longformer attention, windows of 1024), its first token
global as its model card sets it.

``--ct2 VENV``: CTranslate2 too (``python3 -m venv VENV && VENV/bin/pip install ctranslate2``), float32 and int8, the
engine usually picked for these models on CPUs; its converter runs here, with this venv's transformers, on the same
weights (with a word-level vocabulary of the model's size, since the weights are random).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from bench_causal_lm import cpu_model  # benchmarks/bench_causal_lm.py
from scratch import scratch_dir  # benchmarks/scratch.py

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
SHAPES = {
    "t5-small": ("t5", dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8, decoder_start_token_id=0)),
    "opus-mt": (
        "marian",
        dict(
            vocab_size=58101, d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8, decoder_attention_heads=8,
            encoder_ffn_dim=2048, decoder_ffn_dim=2048, max_position_embeddings=512, pad_token_id=58100, eos_token_id=0,
            decoder_start_token_id=58100,
        ),
    ),
    "led-base": (
        "led",
        dict(
            vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12, decoder_attention_heads=12,
            encoder_ffn_dim=3072, decoder_ffn_dim=3072, attention_window=1024, max_encoder_position_embeddings=16384,
            max_decoder_position_embeddings=1024, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2,
        ),
    ),
}  # fmt: skip


def median_seconds(fn, runs: int = 3) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ct2_translators(folder: Path, options: dict, threads: int) -> dict:
    """CTranslate2 float32 and int8 translators of the model in ``folder`` (converted beside it)."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pad, eos = options.get("pad_token_id", 0), options.get("eos_token_id", 1)
    # Marian's pad is its last token, which the converter drops by its name
    names = {i: ("<pad>" if i == pad == options["vocab_size"] - 1 else f"t{i}") for i in range(options["vocab_size"])}
    vocab = Tokenizer(models.WordLevel({name: i for i, name in names.items()}, unk_token="t2"))
    vocab.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=vocab, unk_token="t2", pad_token=names[pad], eos_token=names[eos]).save_pretrained(folder)
    converted = folder.parent / f"{folder.name}-ct2"
    TransformersConverter(str(folder)).convert(str(converted), force=True)
    return {
        ct: ctranslate2.Translator(str(converted), device="cpu", compute_type=ct, inter_threads=1, intra_threads=threads)
        for ct in ("float32", "int8")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--ct2", type=Path, default=None, help="a virtualenv with ctranslate2 installed")
    ap.add_argument("--models", nargs="+", default=["t5-small", "opus-mt"], choices=sorted(SHAPES))
    ap.add_argument("--input-len", type=int, default=24, help="tokens per input row")
    args = ap.parse_args()
    if args.ct2 is not None:
        sys.path.append(str(next(args.ct2.glob("lib/python3*/site-packages"))))
    os.environ.setdefault("QEFF_HOME", scratch_dir("qeff-bench-s2s-"))
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    from QEfficient import QEFFAutoModelForSeq2SeqLM

    torch.set_num_threads(args.threads)
    new = args.new_tokens
    rows = []
    beams = args.beams
    print(
        f"{cpu_model()}, {args.threads} threads, {args.input_len}-token inputs, {new} new tokens, {beams} beam(s); "
        "decoded tokens/s (ratio to transformers)"
    )
    print(f"{'model':>9s} {'batch':>5s} {'transformers':>12s} {'QEff fp32':>16s} {'QEff mxfp6':>16s} {'same':>5s}")
    for name in args.models:
        kind, options = SHAPES[name]
        torch.manual_seed(0)
        folder = Path(scratch_dir(f"qeff-bench-{name}-"))
        hf = AutoModelForSeq2SeqLM.from_config(AutoConfig.for_model(kind, **options)).eval()
        hf.generation_config.max_length = None  # the checkpoint's own limits stay out of the way
        hf.save_pretrained(folder)
        engines = {precision: QEFFAutoModelForSeq2SeqLM.from_pretrained(folder) for precision in ("fp32", "mxfp6")}
        translators = ct2_translators(folder, options, args.threads) if args.ct2 is not None else {}
        for batch in args.batch:
            rng = np.random.default_rng(batch)
            ids = rng.integers(5, 30000, (batch, args.input_len)).astype(np.int64)
            inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if kind == "led":  # the first token attends globally, as LED's model cards set it
                inputs["global_attention_mask"] = (np.arange(args.input_len) == 0).astype(np.int64)[None].repeat(batch, 0)
            pt = {k: torch.from_numpy(v) for k, v in inputs.items()}

            def run_hf(pt=pt, hf=hf):
                with torch.inference_mode():
                    return hf.generate(**pt, max_new_tokens=new, min_new_tokens=new, do_sample=False, num_beams=beams)

            seconds = {"transformers": median_seconds(run_hf)}
            outputs = {}
            for precision, model in engines.items():
                model.compile(ctx_len=new + 8, batch_size=batch, num_cores=args.threads, mxfp6_matmul=precision == "mxfp6")

                def generate(model=model, inputs=inputs):
                    return model.generate(inputs=inputs, generation_len=new, min_new_tokens=new, num_beams=beams)

                seconds[precision] = median_seconds(generate)
                outputs[precision] = generate().generated_ids[0]
            same = outputs["fp32"].tolist() == run_hf().tolist()
            source = [[f"t{i}" for i in row] for row in ids]
            for precision, translator in translators.items():
                translate = lambda t=translator, source=source, batch=batch: t.translate_batch(  # noqa: E731
                    source, beam_size=beams, max_decoding_length=new, min_decoding_length=new, max_batch_size=batch
                )
                seconds[f"ct2_{precision}"] = median_seconds(translate)
                if precision == "float32":
                    ct2_ids = [[int(t[1:]) for t in r.hypotheses[0]] for r in translate()]
                    rows_same = [a == b.tolist()[1 : 1 + len(a)] for a, b in zip(ct2_ids, run_hf())]
                    print(f"  CTranslate2 float32 tokens equal transformers': {all(rows_same)}")
            rate = {k: batch * new / v for k, v in seconds.items()}
            rows.append({"model": name, "batch": batch, **{f"{k}_tokens_per_s": v for k, v in rate.items()}, "fp32_tokens_equal": same})
            peers = "".join(
                f" {k}: {v:.1f} ({rate['fp32'] / v:.2f}x / {rate['mxfp6'] / v:.2f}x)" for k, v in rate.items() if k.startswith("ct2")
            )
            print(
                f"{name:>9s} {batch:5d} {rate['transformers']:12.1f} {rate['fp32']:9.1f} ({rate['fp32'] / rate['transformers']:.2f}x)"
                f" {rate['mxfp6']:9.1f} ({rate['mxfp6'] / rate['transformers']:.2f}x) {str(same):>5s}{peers}",
                flush=True,
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "seq2seq.json" if beams == 1 else f"seq2seq_beams{beams}.json"
    (RESULTS / name).write_text(json.dumps({"cpu": cpu_model(), "threads": args.threads, "beams": beams, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
