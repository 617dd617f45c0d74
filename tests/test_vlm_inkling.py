"""Inkling, Inkling 2 and Inkling 2 Loop image-text models (tests/vlm_fixtures_inkling.py): batches of prompts of
different lengths (right-padded prefill chunks: each row's conv states as its last real token left them), slots
reused in continuous batching, and Inkling 2's class token per image with two images in one prompt. Greedy tokens
equal HF ``generate``; the sweep (tests/test_image_text_sweep.py) covers one prompt per type in both layouts."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests import vlm_fixtures_inkling
from tests.image_text_sweep import hf_greedy, image
from tests.vlm_fixtures_inkling import IMAGE_TOKEN, PROMPTS

TYPES = ["inkling_mm_model", "inkling2", "inkling2_loop"]


@pytest.fixture(scope="module", params=TYPES)
def built(request, tmp_path_factory):
    folder = getattr(vlm_fixtures_inkling, f"build_{request.param}")(tmp_path_factory.mktemp(request.param))
    return request.param, folder


def _reference(folder, processor, img, text: str, n: int) -> list[int]:
    return hf_greedy(folder, processor(images=[img], text=[text], return_tensors="pt"), n)


def test_a_batch_of_prompts_of_different_lengths_matches_hf(built):
    model_type, folder = built
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True)
    model.compile(prefill_seq_len=5, ctx_len=128, batch_size=2, num_cores=1)
    images = [image(2, (30, 30)), image(3, (44, 21))]
    prompts = [PROMPTS[model_type], PROMPTS[model_type].split(" Describe")[0] + " Name it"]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=6, stream=False)
    for img, text, row in zip(images, prompts, info.generated_ids[0]):
        ref = _reference(folder, processor, img, text, 6)
        assert row[: len(ref)].tolist() == ref


def _continuous_batching_matches_hf(model_type: str, folder, kv_offload: bool) -> None:
    # three prompts, two slots: the third reuses a slot whose conv states (in Inkling 2 Loop also its loop passes'
    # KV caches and conv states) another request left behind
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=True)
    model.compile(prefill_seq_len=5, ctx_len=128, full_batch_size=2, num_cores=1)
    prompt = PROMPTS[model_type]
    images = [image(2, (30, 30)), image(3, (44, 21)), image(4, (20, 35))]
    prompts = [prompt, prompt.replace("Describe", "Name"), prompt.replace("a few", "many")]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=6, stream=False)
    for img, text, row in zip(images, prompts, info.generated_ids):
        ref = _reference(folder, processor, img, text, 6)
        assert row[: len(ref)].tolist() == ref


def test_continuous_batching_reuses_slots_with_their_conv_states(built):
    _continuous_batching_matches_hf(*built, kv_offload=False)


def test_continuous_batching_of_the_loop_model_in_two_graphs(tmp_path):
    # the one-graph case of every type is above; two graphs for the type whose text model differs (the loop passes)
    _continuous_batching_matches_hf("inkling2_loop", vlm_fixtures_inkling.build_inkling2_loop(tmp_path / "loop"), kv_offload=True)


@pytest.mark.parametrize("kv_offload", [True, False])
def test_two_images_in_one_prompt_match_hf(tmp_path, kv_offload):
    # each image has its own class token and attends only within itself
    folder = vlm_fixtures_inkling.build_inkling2(tmp_path / "inkling2")
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(
        images=[image(5, (20, 30)), image(6, (30, 20))], text=f"A {IMAGE_TOKEN} and B {IMAGE_TOKEN}: compare them", return_tensors="pt"
    )
    ref = hf_greedy(folder, inputs, 8)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=5, ctx_len=96, num_cores=1)
    assert model.generate(inputs=inputs, generation_len=8, stream=False).generated_ids[0][0][: len(ref)].tolist() == ref


def test_a_padded_head_gives_the_checkpoint_vocabulary():
    # Inkling's head may be padded past its checkpoint's vocabulary and HF drops the extra logits: the artifact's
    # vocab_size (what the runtime allocates for logits) must be the graph's width, in the decoder path too
    from transformers import AutoModelForCausalLM

    from QEfficient.transform.static_kv import QEffCausalLM
    from tests.tiny_models import VOCAB, sweep_config

    config = sweep_config("inkling_text")
    config.vocab_size = VOCAB + 4
    assert QEffCausalLM(AutoModelForCausalLM.from_config(config)).vocab_size == VOCAB == config.unpadded_vocab_size
