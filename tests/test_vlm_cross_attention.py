"""Mllama (cross-attention over keys/values computed once per image) in both layouts: a batch of two images of
different tile grids (one with a padding tile), continuous batching with more prompts than cache rows, and the
one-image-per-prompt rule. Greedy tokens equal HF ``generate``; tiny model from tests/vlm_fixtures_mllama.py."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import hf_greedy, image
from tests.vlm_fixtures_mllama import PROMPTS, build_mllama

PROMPT = PROMPTS["mllama"]
# (30, 30): one tile and a padding tile; (64, 20): 2x1 tiles; (50, 40): 1x2 tiles
IMAGES = [image(2, (30, 30)), image(3, (64, 20)), image(4, (50, 40))]
TEXTS = [PROMPT, "<|image|> Name the picture", PROMPT.replace("a few", "many")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_mllama(tmp_path_factory.mktemp("mllama"))


def hf_rows(folder, processor, n: int, count: int) -> list[list[int]]:
    return [hf_greedy(folder, processor(images=[[img]], text=[text], return_tensors="pt"), n) for img, text in zip(IMAGES[:count], TEXTS)]


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
@pytest.mark.parametrize("continuous_batching", [False, True], ids=["static", "continuous"])
def test_greedy_tokens_match_hf(folder, kv_offload, continuous_batching):
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=continuous_batching)
    # chunks of 7: the image token and the tokens before it in different chunks; three prompts, two cache rows
    sizes = {"full_batch_size": 2} if continuous_batching else {"batch_size": 2}
    model.compile(prefill_seq_len=7, ctx_len=64, num_cores=1, **sizes)
    count = 3 if continuous_batching else 2
    info = model.generate(processor=processor, images=IMAGES[:count], prompts=TEXTS[:count], generation_len=6, stream=False)
    rows = info.generated_ids if continuous_batching else info.generated_ids[0]
    assert [list(row[:6]) for row in rows] == hf_rows(folder, processor, 6, count)


def test_a_prompt_needs_exactly_one_image(folder):
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True)
    model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    inputs = processor(images=[[IMAGES[0], IMAGES[1]]], text=["<|image|><|image|> Two pictures"], return_tensors="np")
    with pytest.raises(ValueError, match="one image per prompt"):
        model.generate(inputs=inputs, generation_len=2, stream=False)
