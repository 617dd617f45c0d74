"""A SmolVLM-256M-shaped vision-language model: HF transformers (eager) vs QEfficient, side by side.

    .venv/bin/python benchmarks/bench_image_text.py [--threads 2] [--tokens 32]

No VLM weights can be downloaded here, so the model has SmolVLM-256M's shapes (Idefics3 layout:
SigLIP-B/16 at 512 px, pixel shuffle 4 -> 64 image tokens, a 30-layer SmolLM2-135M text model) and
random weights. Time to first token (vision encoder + prefill) and decode rate for one image and
prompt at batch 1, in this one process: HF generate, QEfficient with two graphs, with one graph, and
with mxfp6_matmul + mxint8_kv_cache. Ratios matter, not absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def build_model(folder: Path) -> Path:
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor, LlamaConfig

    from tests.tiny_models import build_tokenizer

    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"]})
    text = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=512, patch_size=16)
    config = Idefics3Config(
        text_config=text, vision_config=vision, scale_factor=4, image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=0
    )
    torch.manual_seed(0)
    Idefics3ForConditionalGeneration(config).save_pretrained(folder)
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": 512}, max_image_size={"longest_edge": 512}, do_image_splitting=False)
    Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=64).save_pretrained(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prefill_seq_len", type=int, default=128)
    args = ap.parse_args()
    os.environ.setdefault("QEFF_HOME", tempfile.mkdtemp(prefix="qeff-bench-vlm-"))
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor, LogitsProcessor, LogitsProcessorList

    from QEfficient import QEFFAutoModelForImageTextToText

    torch.set_num_threads(args.threads)
    folder = build_model(Path(tempfile.mkdtemp(prefix="smolvlm-shaped-")))
    processor = AutoProcessor.from_pretrained(folder)
    image = Image.fromarray((np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8))
    inputs = processor(images=[[image]], text=["<image> Describe this picture in a few words."], return_tensors="pt")
    n_prompt = inputs["input_ids"].shape[1]
    print(f"prompt: {n_prompt} tokens (64 image tokens), {args.tokens} new tokens, {args.threads} threads")
    print(f"prefill_seq_len {args.prefill_seq_len}, ctx_len 256")

    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()

    class Stamp(LogitsProcessor):
        def __init__(self):
            self.times: list[float] = []

        def __call__(self, ids, scores):
            self.times.append(time.perf_counter())
            return scores

    rows = {}
    hf_runs, hf_ids = [], None
    for rep in range(args.repeats + 1):
        stamp = Stamp()
        start = time.perf_counter()
        with torch.no_grad():
            limits = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens)
            out = hf.generate(**inputs, do_sample=False, **limits, logits_processor=LogitsProcessorList([stamp]))
        hf_ids = out[0, n_prompt:].tolist()
        if rep:  # the first run warms up
            t = stamp.times
            hf_runs.append((t[0] - start, (len(t) - 1) / (t[-1] - t[0])))
    rows["HF transformers (eager)"] = (statistics.median(r[0] for r in hf_runs), statistics.median(r[1] for r in hf_runs), None, hf_ids)

    variants = {
        "QEfficient, two graphs": dict(kv_offload=True),
        "QEfficient, one graph": dict(kv_offload=False),
        "QEfficient, two graphs, mxfp6 + mxint8": dict(kv_offload=True, mxfp6_matmul=True, mxint8_kv_cache=True),
    }
    for name, opts in variants.items():
        model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=opts.pop("kv_offload"))
        t = time.perf_counter()
        model.compile(prefill_seq_len=args.prefill_seq_len, ctx_len=256, num_cores=args.threads, **opts)
        compile_s = time.perf_counter() - t
        runs = []
        for rep in range(args.repeats + 1):
            info = model.generate(inputs=inputs, generation_len=args.tokens, stream=False)
            if rep:
                runs.append((info.perf_metrics.prefill_time, info.perf_metrics.decode_perf))
        ids = info.generated_ids[0][0].tolist()
        rows[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), compile_s, ids)

    base_ttft, base_rate = rows["HF transformers (eager)"][:2]
    print(f"\n{'engine':42s} {'TTFT s':>8s} {'x HF':>6s} {'decode tok/s':>13s} {'x HF':>6s} {'compile s':>10s} {'= HF tokens':>12s}")
    for name, (ttft, rate, compile_s, ids) in rows.items():
        same = next((i for i, (a, b) in enumerate(zip(ids, hf_ids)) if a != b), min(len(ids), len(hf_ids)))
        cs = f"{compile_s:10.1f}" if compile_s is not None else f"{'-':>10s}"
        print(f"{name:42s} {ttft:8.3f} {base_ttft / ttft:6.2f} {rate:13.1f} {rate / base_rate:6.2f} {cs} {same:>5d}/{len(hf_ids)}")


if __name__ == "__main__":
    main()
