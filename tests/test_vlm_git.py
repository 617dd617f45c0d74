"""GIT (GitForCausalLM) beyond the sweep's one prompt: captions from pixels alone (HF generate starts them with BOS),
batches of prompts of other lengths, one image for several prompts, prompts without an image, continuous batching,
first-step logits; video checkpoints refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, GitConfig, GitForCausalLM

from QEfficient import QEFFAutoModelForImageTextToText
from QEfficient.generation.image_text_batching import ImageTextBatchingEngine
from QEfficient.transform.adapters import UnsupportedArchitectureError
from QEfficient.transform.vision_adapters import get_vision_adapter
from tests.image_text_sweep import image
from tests.vlm_fixtures_positions import build_git


@pytest.fixture(scope="module")
def git(tmp_path_factory):
    folder = build_git(tmp_path_factory.mktemp("git") / "git")
    hf = GitForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return folder, hf, AutoProcessor.from_pretrained(folder)


def hf_tokens(hf, n: int, **inputs) -> list[list[int]]:
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=n, pad_token_id=0)
    start = inputs["input_ids"].shape[1] if "input_ids" in inputs else 1
    return out[:, start:].tolist()


def ours(model, inputs, n: int) -> list[list[int]]:
    info = model.generate(inputs=inputs, generation_len=n, stream=False)
    return [row[:n].tolist() for chunk in info.generated_ids for row in np.atleast_2d(chunk)]  # batches of rows


def trimmed(rows: list[list[int]], eos: int) -> list[list[int]]:
    return [row[: row.index(eos) + 1] if eos in row else row for row in rows]


@pytest.mark.parametrize("kv_offload", [True, False])
def test_captions_prompts_and_shared_images_equal_hf(git, kv_offload):
    folder, hf, processor = git
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    eos, n = hf.config.eos_token_id, 10
    images = [image(5), image(6, (50, 40))]

    # pixels alone: each caption starts with BOS, as HF generate(pixel_values=...) does
    captions = processor(images=images, return_tensors="pt")
    expected = hf_tokens(hf, n, pixel_values=captions["pixel_values"])
    assert expected[0] != expected[1]  # the image decides the caption
    assert trimmed(ours(model, captions, n), eos) == trimmed(expected, eos)

    # prompts of other lengths (left-padded by the processor), one image each
    prompts = ["Describe the picture", "What is in the picture in a few words"]
    inputs = processor(images=images, text=prompts, return_tensors="pt", padding=True)
    assert trimmed(ours(model, inputs, n), eos) == trimmed(hf_tokens(hf, n, **inputs), eos)

    # one image for every prompt: HF repeats its states
    shared = processor(images=images[:1], text=prompts, return_tensors="pt", padding=True)
    assert trimmed(ours(model, shared, n), eos) == trimmed(hf_tokens(hf, n, **shared), eos)

    # no image: the text alone, its positions from 0. Against each prompt alone: at decode HF widens the text's padding
    # mask by an image's tokens even when none was given, so its left-padded rows then see their padding
    text = processor(text=prompts, return_tensors="pt", padding=True)
    alone = [hf_tokens(hf, n, **processor(text=[p], return_tensors="pt"))[0] for p in prompts]
    assert trimmed(ours(model, text, n), eos) == trimmed(alone, eos)


def test_continuous_batching_and_first_step_logits(git, monkeypatch):
    folder, hf, processor = git
    first_logits: dict[tuple, np.ndarray] = {}
    prefill_request = ImageTextBatchingEngine._prefill_request

    def recording(engine, slot, request):  # each request's prefill logits, as the engine computed them
        logits = prefill_request(engine, slot, request)
        first_logits[tuple(request.tokens)] = np.array(logits, np.float32).reshape(-1)
        return logits

    monkeypatch.setattr(ImageTextBatchingEngine, "_prefill_request", recording)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True, continuous_batching=True)
    model.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_cores=1)
    images = [image(7), image(8, (30, 30)), image(9, (40, 40))]
    prompts = ["Describe the picture", "Name it", "What is in the picture in a few words"]
    # one request, the other slot idle at every decode step (its placeholder positions take GIT's one axis)
    alone = model.generate(processor=processor, images=images[:1], prompts=prompts[:1], generation_len=8, stream=False)
    ref = trimmed(hf_tokens(hf, 8, **processor(images=images[:1], text=prompts[:1], return_tensors="pt")), hf.config.eos_token_id)[0]
    assert alone.generated_ids[0][: len(ref)].tolist() == ref
    first_logits.clear()
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=8, stream=False)
    assert len(first_logits) == len(prompts)
    for img, text, row in zip(images, prompts, info.generated_ids):
        inputs = processor(images=[img], text=[text], return_tensors="pt")
        ref = trimmed(hf_tokens(hf, 8, **inputs), hf.config.eos_token_id)[0]
        assert row[: len(ref)].tolist() == ref
        with torch.no_grad():
            expected = hf(**inputs).logits[0, -1].numpy()
        text = inputs["input_ids"][0].tolist()
        (got,) = [logits for tokens, logits in first_logits.items() if list(tokens[-len(text) :]) == text]  # after the image's
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_video_checkpoints_are_refused_with_the_reason():
    config = GitConfig(num_image_with_embedding=6)
    with pytest.raises(UnsupportedArchitectureError, match="video frames"):
        get_vision_adapter(config)
