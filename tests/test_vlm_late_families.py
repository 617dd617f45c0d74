"""Mllama (cross-attention over keys/values computed once per image) and Gemma 4 (padded patch lists, per-layer
inputs) in both layouts: a batch of two images of different tile grids / soft-token counts (Mllama: one with a
padding tile; Gemma 4: different aspect ratios), continuous batching with more prompts than cache rows, and
Mllama's rule that a prompt has an image (several: tests/test_vlm_mllama_multi.py). Greedy tokens equal HF ``generate``; tiny models from
tests/vlm_fixtures_mllama.py (Gemma 4 unified: the sweep)."""

from __future__ import annotations

import pytest
from transformers import AutoConfig, AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from QEfficient.transform.vision_adapters import get_vision_adapter
from tests.image_text_sweep import hf_greedy, image
from tests.vlm_fixtures_mllama import PROMPTS, build_gemma4, build_mllama

# (30, 30): Mllama's one tile and a padding tile; (64, 20): 2x1 tiles; (50, 40): 1x2 tiles
IMAGES = [image(2, (30, 30)), image(3, (64, 20)), image(4, (50, 40))]
# (builder, prompts, compile sizes): Mllama's chunks of 7 put the image token and the tokens before it in
# different chunks; Gemma 4's 70-token image blocks span chunks of 16
FAMILIES = {
    "mllama": (build_mllama, [PROMPTS["mllama"], "<|image|> Name the picture", PROMPTS["mllama"].replace("a few", "many")], 7, 64),
    "gemma4": (build_gemma4, [PROMPTS["gemma4"], PROMPTS["gemma4"].replace("Describe", "Name"), "<|image|> What is it?"], 16, 128),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    build, texts, chunk, ctx_len = FAMILIES[request.param]
    return build(tmp_path_factory.mktemp(request.param)), texts, chunk, ctx_len


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
@pytest.mark.parametrize("continuous_batching", [False, True], ids=["static", "continuous"])
def test_greedy_tokens_match_hf(family, kv_offload, continuous_batching):
    folder, texts, chunk, ctx_len = family
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=continuous_batching)
    sizes = {"full_batch_size": 2} if continuous_batching else {"batch_size": 2}  # three prompts, two cache rows
    model.compile(prefill_seq_len=chunk, ctx_len=ctx_len, num_cores=1, **sizes)
    count = 3 if continuous_batching else 2
    info = model.generate(processor=processor, images=IMAGES[:count], prompts=texts[:count], generation_len=6, stream=False)
    rows = info.generated_ids if continuous_batching else info.generated_ids[0]
    refs = [hf_greedy(folder, processor(images=[[img]], text=[text], return_tensors="pt"), 6) for img, text in zip(IMAGES, texts[:count])]
    assert [list(row[:6]) for row in rows] == refs


def test_a_mllama_prompt_needs_an_image(tmp_path):
    folder = build_mllama(tmp_path / "mllama")
    processor = AutoProcessor.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    inputs = processor(
        images=[[IMAGES[0]], [IMAGES[1]]], text=["<|image|> A picture", "<|image|> Another"], return_tensors="np", padding=True
    )
    ids = inputs["input_ids"]
    ids[1][ids[1] == config.image_token_id] = processor.tokenizer.convert_tokens_to_ids("<|python_tag|>")  # no <|image|> left
    with pytest.raises(ValueError, match="at least one image per prompt"):  # what generate() checks before any graph runs
        get_vision_adapter(config).vision_inputs(inputs, config.vision_config.image_size, config)
