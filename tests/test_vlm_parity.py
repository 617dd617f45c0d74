"""Vision-language parity, architecture x layout: greedy tokens equal HF ``generate(do_sample=False)``
on tiny random models (tests/vlm_fixtures.py), with image tokens crossing prefill chunks, a batch of
two different images, and images of other sizes than the compiled one (the processor resizes).
Llava has its own file (tests/test_image_text.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests import vlm_fixtures

# arch -> (builder, prompt with the image placeholder, prefill_seq_len that puts image tokens across a chunk boundary)
ARCHS = {
    "gemma3": (vlm_fixtures.build_gemma3, "Look: <start_of_image> Describe the picture in a few words", 5),
    "qwen2_vl": (vlm_fixtures.build_qwen2_vl, "Look: <|vision_start|><|image_pad|><|vision_end|> Describe the picture in a few words", 5),
}


@pytest.fixture(scope="module", params=sorted(ARCHS))
def vlm(request, tmp_path_factory):
    builder, prompt, chunk = ARCHS[request.param]
    folder = builder(tmp_path_factory.mktemp(request.param))
    return request.param, folder, prompt, chunk


def image(seed: int, size=(40, 50)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8))


def hf_tokens(folder, inputs, n: int) -> list[list[int]]:
    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=n, pad_token_id=0)
    return out[:, inputs["input_ids"].shape[1] :].tolist()


def trim(row: np.ndarray, ref: list[int]) -> list[int]:
    return row[: len(ref)].tolist()


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_greedy_tokens_match_hf(vlm, kv_offload):
    arch, folder, prompt, chunk = vlm
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=chunk, ctx_len=96, num_cores=1)
    inputs = processor(images=image(1), text=prompt, return_tensors="pt")
    info = model.generate(inputs=inputs, generation_len=12, stream=False)
    ref = hf_tokens(folder, inputs, 12)[0]
    assert trim(info.generated_ids[0][0], ref) == ref


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_a_batch_of_two_images_of_other_sizes(vlm, kv_offload):
    arch, folder, prompt, chunk = vlm
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=chunk, ctx_len=96, batch_size=2, num_cores=1)
    images = [image(2, (30, 30)), image(3, (64, 20))]
    prompts = [prompt, prompt.replace("Describe", "Name")]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=10, stream=False)
    for img, text, row in zip(images, prompts, info.generated_ids[0]):
        ref = hf_tokens(folder, processor(images=model.adapter.processor_images([img]), text=[text], return_tensors="pt"), 10)[0]
        assert trim(row, ref) == ref
