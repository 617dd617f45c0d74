"""Gemma 4 image-text in both layouts: a batch of two images of different aspect ratios (different soft-token
counts, padded patch lists), statically batched and continuously batched with more prompts than cache rows.
Greedy tokens equal HF ``generate``; tiny model from tests/vlm_fixtures_mllama.py (Gemma 4 unified: the sweep)."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import hf_greedy, image
from tests.vlm_fixtures_mllama import PROMPTS, build_gemma4

IMAGES = [image(2, (30, 30)), image(3, (64, 20)), image(4, (50, 40))]
TEXTS = [PROMPTS["gemma4"], PROMPTS["gemma4"].replace("Describe", "Name"), "<|image|> What is it?"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_gemma4(tmp_path_factory.mktemp("gemma4"))


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
@pytest.mark.parametrize("continuous_batching", [False, True], ids=["static", "continuous"])
def test_greedy_tokens_match_hf(folder, kv_offload, continuous_batching):
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=continuous_batching)
    sizes = {"full_batch_size": 2} if continuous_batching else {"batch_size": 2}
    model.compile(prefill_seq_len=16, ctx_len=128, num_cores=1, **sizes)  # image tokens span chunks
    count = 3 if continuous_batching else 2
    info = model.generate(processor=processor, images=IMAGES[:count], prompts=TEXTS[:count], generation_len=6, stream=False)
    rows = info.generated_ids if continuous_batching else info.generated_ids[0]
    refs = [hf_greedy(folder, processor(images=[[img]], text=[text], return_tensors="pt"), 6) for img, text in zip(IMAGES, TEXTS[:count])]
    assert [list(row[:6]) for row in rows] == refs
