"""ERNIE-4.5-VL (tiny): its MoE text model sends the image tokens and their start/end tokens to vision experts, the
language graph derives which rows those are from its ids. A batch of two prompts of different lengths and images of
different sizes, prefilled in chunks that split the image runs, equals HF's one-prompt generate in both layouts; the
fixture's tokens depend on the start/end tokens' experts (else parity would not prove the mask)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.vlm_fixtures_ernie import build_ernie4_5_vl_moe

N = 8
PLACEHOLDER = "<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_ernie4_5_vl_moe(tmp_path_factory.mktemp("ernie4_5_vl_moe"))


def image(seed: int, size) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8))


def hf_greedy(folder, processor, img, prompt, moe_types=None) -> list[int]:
    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    inputs = processor(images=img, text=prompt, return_tensors="pt")
    if moe_types is not None:
        inputs["moe_mm_token_type_ids"] = moe_types(inputs)
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=N, pad_token_id=0)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.mark.parametrize("kv_offload", [True, False])
def test_a_batch_of_two_equals_hf(folder, kv_offload):
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=4, ctx_len=64, batch_size=2, num_cores=1)
    prompts = [f"{PLACEHOLDER} My name is", f"What is in {PLACEHOLDER} here, in a few words?"]
    images = [image(2, (30, 30)), image(3, (64, 20))]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=N, stream=False)
    for img, prompt, row in zip(images, prompts, info.generated_ids[0]):
        ref = hf_greedy(folder, processor, img, prompt)
        assert row[: len(ref)].tolist() == ref


def test_start_end_experts_change_the_tokens(folder):
    processor = AutoProcessor.from_pretrained(folder)
    img, prompt = image(1, (40, 50)), f"Look: {PLACEHOLDER} Describe the picture in a few words"
    given = hf_greedy(folder, processor, img, prompt)
    assert given != hf_greedy(folder, processor, img, prompt, lambda inputs: inputs["mm_token_type_ids"])
    assert given != hf_greedy(folder, processor, img, prompt, lambda inputs: torch.zeros_like(inputs["mm_token_type_ids"]))
