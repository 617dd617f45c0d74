"""Image encoder-decoders: transformers (PyTorch) vs QEfficient, side by side in one process.

    .venv/bin/python benchmarks/bench_vision_seq2seq.py [--threads 2] [--new-tokens 32] [--batch 1 4] [--beams 1]

The shapes of real checkpoints with random weights (no weights are downloaded): TrOCR-small (a DeiT-small encoder at
384x384, a 6-layer TrOCR decoder of width 256; 62M parameters), a ViT-GPT2 captioner (ViT-base at 224x224, GPT-2 small
with cross-attention; 239M), BLIP-base captioning (ViT-base at 384x384, a 12-layer BERT-base decoder with cross-attention;
247M) and Florence-2-base (a DaViT tower at 768x768 whose 577 features join a 10-token task prompt, BART-base; 232M).
For each batch size: images to ``--new-tokens`` tokens (min_new_tokens holds every row to that length), the image
encoder included; seconds per call, median of 3 after a warm-up, and the ratio to
transformers' ``generate`` for QEfficient float32 and ``mxfp6_matmul`` (8-bit decoder weights); "same" says whether
float32's tokens equal transformers'. ``--beams K``: beam search with K beams for every engine. Ratios matter, not
absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench_causal_lm import cpu_model  # benchmarks/bench_causal_lm.py
from bench_seq2seq import median_seconds  # benchmarks/bench_seq2seq.py
from scratch import scratch_dir  # benchmarks/scratch.py


def shapes():
    from transformers import DeiTConfig, GPT2Config, TrOCRConfig, ViTConfig

    trocr = TrOCRConfig(
        vocab_size=64044, d_model=256, decoder_layers=6, decoder_attention_heads=8, decoder_ffn_dim=1024,
        max_position_embeddings=512, use_learned_position_embeddings=True, layernorm_embedding=True,
        decoder_start_token_id=2, pad_token_id=1, bos_token_id=0, eos_token_id=2, is_decoder=True, add_cross_attention=True,
    )  # fmt: skip
    gpt2 = GPT2Config(n_layer=12, n_embd=768, n_head=12, is_decoder=True, add_cross_attention=True, pad_token_id=50256)
    return {
        "trocr-small": (DeiTConfig(image_size=384, patch_size=16, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                   intermediate_size=1536), trocr),
        "vit-gpt2": (ViTConfig(image_size=224), gpt2),
    }  # fmt: skip


def vision_encoder_decoder(name: str):
    """(a VisionEncoderDecoderModel of ``name``'s shape, its generate inputs for a batch size)."""
    import torch
    from transformers import VisionEncoderDecoderConfig, VisionEncoderDecoderModel

    encoder, decoder = shapes()[name]
    hf = VisionEncoderDecoderModel(VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)).eval()
    start = getattr(decoder, "decoder_start_token_id", None)
    start = start if start is not None else decoder.bos_token_id
    hf.generation_config.update(decoder_start_token_id=start, pad_token_id=decoder.pad_token_id, eos_token_id=decoder.eos_token_id)
    size = encoder.image_size
    return hf, lambda batch: {"pixel_values": torch.randn(batch, 3, size, size)}


def extra_models(name: str):
    """(transformers model, its generate inputs) for the shapes with classes of their own (models/image_seq2seq.py)."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, Florence2Config, Florence2ForConditionalGeneration

    if name == "blip-base":
        config = BlipConfig(vision_config={"image_size": 384, "initializer_range": 0.02}, text_config={"sep_token_id": 102})
        return BlipForConditionalGeneration(config).eval(), lambda batch: {"pixel_values": torch.randn(batch, 3, 384, 384)}
    vision = dict(depths=[1, 1, 9, 1], embed_dim=[128, 256, 512, 1024], num_heads=[4, 8, 16, 32], num_groups=[4, 8, 16, 32])
    vision.update(window_size=12, projection_dim=768)
    bart = dict(vocab_size=51289, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12)
    bart.update(decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024)
    bart.update(pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    model = Florence2ForConditionalGeneration(Florence2Config(vision_config=vision, text_config=bart, image_token_id=51288)).eval()

    def inputs(batch: int) -> dict:
        ids = torch.cat([torch.full((batch, 577), 51288), torch.randint(3, 50000, (batch, 10))], 1)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": torch.randn(batch, 3, 768, 768)}

    return model, inputs


EXTRA_SHAPES = ("blip-base", "florence2-base")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--shapes", nargs="+", default=None, help="which shapes (default: all)")
    args = ap.parse_args()
    os.environ.setdefault("QEFF_HOME", scratch_dir("qeff-bench-vision-seq2seq-"))
    import torch

    from QEfficient import QEFFAutoModelForImageTextToText

    torch.set_num_threads(args.threads)
    setting = f"{args.threads} threads; load average {os.getloadavg()[0]:.1f}; {args.new_tokens} new tokens, {args.beams} beam(s)"
    print(f"CPU: {cpu_model()}; {setting}")
    print(f"{'shape':14} {'batch':>5} {'engine':26} {'s/call':>8} {'x transformers':>15} {'same':>5}")
    for name in [*shapes(), *EXTRA_SHAPES]:
        if args.shapes and name not in args.shapes:
            continue
        torch.manual_seed(0)
        hf, make_inputs = extra_models(name) if name in EXTRA_SHAPES else vision_encoder_decoder(name)
        folder = Path(scratch_dir()) / name
        hf.save_pretrained(folder)
        options = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, num_beams=args.beams)
        for batch in args.batch:
            torch.manual_seed(batch)
            inputs = make_inputs(batch)

            def hf_run(hf=hf, inputs=inputs, options=options):
                with torch.no_grad():
                    return hf.generate(**inputs, do_sample=False, **options)

            reference = hf_run()
            base = median_seconds(hf_run)
            print(f"{name:14} {batch:5} {'transformers eager fp32':26} {base:8.3f} {1.0:14.2f}x {'':>5}")
            for label, mxfp6 in (("QEfficient fp32", False), ("QEfficient 8-bit (mxfp6)", True)):
                model = QEFFAutoModelForImageTextToText.from_pretrained(folder)  # its class; compiled for this batch size
                model.compile(ctx_len=args.new_tokens + 8, num_cores=args.threads, batch_size=batch, mxfp6_matmul=mxfp6)
                rows = [row for b in model.generate(inputs=inputs, **options).generated_ids for row in b]
                same = all(r[: reference.shape[1]].tolist() == e.tolist() for r, e in zip(rows, reference))
                seconds = median_seconds(lambda model=model, inputs=inputs, options=options: model.generate(inputs=inputs, **options))
                print(f"{name:14} {batch:5} {label:26} {seconds:8.3f} {base / seconds:14.2f}x {('yes' if same else 'no'):>5}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
