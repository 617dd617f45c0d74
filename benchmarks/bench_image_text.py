"""A SmolVLM-256M-, Qwen2.5-VL-3B- or GIT-base-shaped vision-language model: HF transformers (eager) vs
QEfficient, side by side.

    .venv/bin/python benchmarks/bench_image_text.py [--shape smolvlm|qwen2_5_vl|git_base] [--threads 2] [--tokens 32]

No VLM weights can be downloaded here, so the models have real shapes and random weights. smolvlm:
SmolVLM-256M's (Idefics3 layout: SigLIP-B/16 at 512 px, pixel shuffle 4 -> 64 image tokens, a 30-layer
SmolLM2-135M text model). qwen2_5_vl: Qwen2.5-VL-3B's vision tower (32 blocks, 1280 wide, 112 px windows,
full attention in 4 blocks) at 224x224 px (64 image tokens) and its text model's widths (2048 hidden,
16 / 2 heads, 11008 MLP, 151936 vocabulary) with 2 of its 36 layers, so that the PyTorch and ONNX Runtime
copies fit in this machine's memory together. git_base: GIT-base's (microsoft/git-base-coco: CLIP ViT-B/16 at 224 px,
197 image states before the text, a 6-layer BERT-style text model 768 wide, 30522 tokens). Time to first token (vision
encoder + prefill) and decode rate for one image and prompt at batch 1, in this one process: HF generate, QEfficient
with two graphs, with one graph, and with mxfp6_matmul + mxint8_kv_cache. Ratios matter, not absolute seconds.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
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


def build_qwen2_5_vl(folder: Path) -> Path:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from tests.vlm_fixtures import TinyQwen2VLProcessor, _tokenizer

    tok = _tokenizer(
        ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
        {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )
    ids = tok.convert_tokens_to_ids
    text = dict(
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=2,
        num_attention_heads=16,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    vision = dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=2048,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=224 * 224, max_pixels=224 * 224, patch_size=14, merge_size=2)
    TinyQwen2VLProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(folder)
    return folder


def build_git_base(folder: Path) -> Path:
    import torch
    from transformers import CLIPImageProcessorPil, GitConfig, GitForCausalLM, GitProcessor

    from tests.tiny_models import build_tokenizer

    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224, patch_size=16)
    config = GitConfig(vision_config=vision, vocab_size=30522, hidden_size=768, num_hidden_layers=6, num_attention_heads=12)
    torch.manual_seed(0)
    GitForCausalLM(config).eval().save_pretrained(folder)
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    GitProcessor(image_processor=image_processor, tokenizer=build_tokenizer()).save_pretrained(folder)
    return folder


SHAPES = {
    "smolvlm": (build_model, "<image> Describe this picture in a few words."),
    "git_base": (build_git_base, "a picture of"),
    "qwen2_5_vl": (build_qwen2_5_vl, "<|vision_start|><|image_pad|><|vision_end|> Describe this picture in a few words."),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smolvlm")
    ap.add_argument("--no_mxfp6", action="store_true", help="skip the 8-bit variant")
    ap.add_argument("--two_graphs_only", action="store_true", help="skip the one-graph variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prefill_seq_len", type=int, default=128)
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="qeff-bench-vlm-"))  # model, exports, artifacts: removed at the end
    os.environ.setdefault("QEFF_HOME", str(scratch / "qeff_home"))
    try:
        run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(args, scratch: Path) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor, LogitsProcessor, LogitsProcessorList

    from QEfficient import QEFFAutoModelForImageTextToText

    torch.set_num_threads(args.threads)
    build, prompt = SHAPES[args.shape]
    folder = build(scratch / f"{args.shape}-shaped")
    processor = AutoProcessor.from_pretrained(folder)
    image = Image.fromarray((np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8))
    images = [[image]] if args.shape == "smolvlm" else [image]
    inputs = processor(images=images, text=[prompt], return_tensors="pt")
    n_prompt = inputs["input_ids"].shape[1]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    image_tokens = 197 if args.shape == "git_base" else 64
    print(f"{args.shape}: prompt {n_prompt} tokens ({image_tokens} image tokens), {args.tokens} new tokens, {args.threads} threads")
    print(f"load {load}")
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
    if args.no_mxfp6:
        variants.pop("QEfficient, two graphs, mxfp6 + mxint8")
    if args.two_graphs_only:
        variants.pop("QEfficient, one graph")
    for name, opts in variants.items():
        # the HF model measured above, wrapped (its weights shared, not loaded again: memory), after its own runs
        model = QEFFAutoModelForImageTextToText(hf, kv_offload=opts.pop("kv_offload"), pretrained_model_name_or_path=str(folder))
        t = time.perf_counter()
        model.compile(prefill_seq_len=args.prefill_seq_len, ctx_len=256, num_cores=args.threads, **opts)
        compile_s = time.perf_counter() - t
        runs = []
        for rep in range(args.repeats + 1):
            info = model.generate(inputs=inputs, tokenizer=processor.tokenizer, generation_len=args.tokens, stream=False)
            if rep:
                runs.append((info.perf_metrics.prefill_time, info.perf_metrics.decode_perf))
        ids = info.generated_ids[0][0].tolist()
        rows[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), compile_s, ids)
        del model
        gc.collect()

    base_ttft, base_rate = rows["HF transformers (eager)"][:2]
    print(f"\n{'engine':42s} {'TTFT s':>8s} {'x HF':>6s} {'decode tok/s':>13s} {'x HF':>6s} {'compile s':>10s} {'= HF tokens':>12s}")
    for name, (ttft, rate, compile_s, ids) in rows.items():
        same = next((i for i, (a, b) in enumerate(zip(ids, hf_ids)) if a != b), min(len(ids), len(hf_ids)))
        cs = f"{compile_s:10.1f}" if compile_s is not None else f"{'-':>10s}"
        print(f"{name:42s} {ttft:8.3f} {base_ttft / ttft:6.2f} {rate:13.1f} {rate / base_rate:6.2f} {cs} {same:>5d}/{len(hf_ids)}")


if __name__ == "__main__":
    main()
