"""Vision-language parity, architecture x layout, on the tiny random models of tests/vlm_fixtures.py.

    .venv/bin/python benchmarks/vlm_parity_table.py

For each: greedy tokens against HF ``generate(do_sample=False)`` (16 new tokens) for one prompt
whose image tokens cross prefill chunks (prefill_seq_len 5), and for a batch of two prompts with
images of two other sizes (the processor resizes them). Prints a markdown table.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QEFF_HOME", tempfile.mkdtemp(prefix="qeff-vlm-parity-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402

from QEfficient import QEFFAutoModelForImageTextToText  # noqa: E402
from tests import vlm_fixtures  # noqa: E402

ARCHS = {
    "llava": "<image>",
    "gemma3": "<start_of_image>",
    "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "idefics3": "<image>",
    "smolvlm": "<image>",
}
N = 16


def image(seed: int, size) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8))


def hf_tokens(hf, inputs) -> list[list[int]]:
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=N, pad_token_id=0)
    return out[:, inputs["input_ids"].shape[1] :].tolist()


def agree(ours, ref) -> int:
    return next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref)))


def main() -> None:
    print("| arch | layout | image tokens | single prompt (chunks of 5) | batch of two, other sizes |")
    print("|---|---|---|---|---|")
    for arch, slot in ARCHS.items():
        folder = getattr(vlm_fixtures, f"build_{arch}")(Path(tempfile.mkdtemp(prefix=arch)))
        processor = AutoProcessor.from_pretrained(folder)
        hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
        prompt = f"Look: {slot} Describe the picture in a few words"
        single = processor(images=image(1, (40, 50)), text=prompt, return_tensors="pt")
        n_image = int((single["input_ids"] == hf.config.image_token_id).sum())
        pair = [image(2, (30, 30)), image(3, (64, 20))]
        prompts = [prompt, prompt.replace("Describe", "Name")]
        ref_single = hf_tokens(hf, single)[0]
        for kv_offload in (True, False):
            model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
            model.compile(prefill_seq_len=5, ctx_len=128, num_cores=1)
            ours = model.generate(inputs=single, generation_len=N, stream=False).generated_ids[0][0].tolist()
            batch = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
            batch.compile(prefill_seq_len=5, ctx_len=128, batch_size=2, num_cores=1)
            rows = batch.generate(processor=processor, images=pair, prompts=prompts, generation_len=N, stream=False).generated_ids[0]
            scores = []
            for img, text, row in zip(pair, prompts, rows):
                ref = hf_tokens(hf, processor(images=model.adapter.processor_images([img]), text=[text], return_tensors="pt"))[0]
                scores.append(f"{agree(row.tolist(), ref)}/{len(ref)}")
            layout = "two graphs" if kv_offload else "one graph"
            print(f"| {arch} | {layout} | {n_image} | {agree(ours, ref_single)}/{len(ref_single)} | {', '.join(scores)} |")


if __name__ == "__main__":
    main()
