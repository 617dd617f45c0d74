"""Kosmos-2.5 beyond the sweep's one prompt: prompts of other lengths and images of other sizes in one call, continuous
batching with a slot left idle, and each prompt's first-step logits equal to HF's forward (the segment embedding over
the image's span, markers included, shows there, not in a few greedy tokens of a tiny model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, Kosmos2_5ForConditionalGeneration

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import image, record_prefill_logits
from tests.vlm_fixtures_b import build_kosmos_2_5

PROMPTS = ["Describe the picture", "What is written here, in a few words"]
IMAGES = [image(11), image(12, (30, 60))]


@pytest.fixture(scope="module")
def kosmos(tmp_path_factory):
    folder = build_kosmos_2_5(tmp_path_factory.mktemp("kosmos2_5") / "kosmos-2.5")
    hf = Kosmos2_5ForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    return folder, hf, AutoProcessor.from_pretrained(folder)


def hf_alone(hf, processor, img, text: str, n: int) -> tuple[list[int], np.ndarray]:
    """HF's greedy tokens and first-step logits for one prompt (its processor marks the image's span from the first
    column, so a left-padded batch would not line up: each prompt alone)."""
    inputs = processor(images=[img], text=[text], return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=n, pad_token_id=0)[0, inputs["input_ids"].shape[1] :].tolist()
        logits = hf(**inputs).logits[0, -1].numpy()
    eos = hf.config.text_config.eos_token_id
    return (out[: out.index(eos) + 1] if eos in out else out), logits


@pytest.mark.parametrize("kv_offload", [True, False])
def test_a_batch_of_prompts_and_images_equals_hf(kosmos, kv_offload):
    folder, hf, processor = kosmos
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=4, ctx_len=64, batch_size=2, num_cores=1)  # the image's span crosses chunks
    info = model.generate(processor=processor, images=IMAGES, prompts=PROMPTS, generation_len=8, stream=False)
    rows = [row for chunk in info.generated_ids for row in np.atleast_2d(chunk)]
    for img, text, row in zip(IMAGES, PROMPTS, rows):
        ref, _ = hf_alone(hf, processor, img, text, 8)
        assert row[: len(ref)].tolist() == ref


def test_continuous_batching_and_first_step_logits(kosmos, monkeypatch):
    folder, hf, processor = kosmos
    first_logits = record_prefill_logits(monkeypatch)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True, continuous_batching=True)
    model.compile(prefill_seq_len=4, ctx_len=64, full_batch_size=2, num_cores=1)
    for count in (1, 2):  # one request with a slot idle, then two
        first_logits.clear()
        info = model.generate(processor=processor, images=IMAGES[:count], prompts=PROMPTS[:count], generation_len=8, stream=False)
        for k, (img, text) in enumerate(zip(IMAGES[:count], PROMPTS[:count])):
            ref, logits = hf_alone(hf, processor, img, text, 8)
            assert info.generated_ids[k][: len(ref)].tolist() == ref
            np.testing.assert_allclose(first_logits[k][1], logits, atol=1e-4, rtol=0)


def test_a_prompt_without_an_image_equals_hf(kosmos, monkeypatch):
    """The processor takes no prompt without an image, but the model does (the tokenizer's ids alone): segment 0
    everywhere, as HF without ``image_embeds_position_mask`` (its first-step logits show it)."""
    folder, hf, processor = kosmos
    first_logits = record_prefill_logits(monkeypatch)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True, continuous_batching=True)
    model.compile(prefill_seq_len=4, ctx_len=64, full_batch_size=2, num_cores=1)
    inputs = processor.tokenizer(["<s>Describe the picture"], add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        ref = hf.generate(**inputs, do_sample=False, max_new_tokens=8, pad_token_id=0)[0, inputs["input_ids"].shape[1] :].tolist()
        logits = hf(**inputs).logits[0, -1].numpy()
    got = model.generate(inputs=inputs, tokenizer=processor.tokenizer, generation_len=8, stream=False).generated_ids[0]
    assert got[: len(ref)].tolist() == ref
    np.testing.assert_allclose(first_logits[0][1], logits, atol=1e-4, rtol=0)
