"""The families added by the image-text sweep, each in both layouts: greedy tokens equal HF ``generate``
for one image with image tokens across prefill chunks, and for a batch of two images of different sizes
(different tile grids / patch counts). Tiny random models from tests/vlm_fixtures.py."""

from __future__ import annotations

from functools import partial

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests import vlm_fixtures
from tests.image_text_sweep import hf_greedy, image

FAMILIES = {
    "llava_next": vlm_fixtures.build_llava_next,
    "granite_vision": partial(vlm_fixtures.build_llava_next, granite=True),
    "mistral3": vlm_fixtures.build_mistral3,
    "paligemma": vlm_fixtures.build_paligemma,
    "llava_onevision": vlm_fixtures.build_llava_onevision,
    "internvl": vlm_fixtures.build_internvl,
    "vipllava": vlm_fixtures.build_vipllava,
    "lighton_ocr": vlm_fixtures.build_lighton_ocr,
    "qianfan_ocr": vlm_fixtures.build_qianfan_ocr,
}
PROMPT_OF = {"granite_vision": "llava_next"}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    folder = FAMILIES[request.param](tmp_path_factory.mktemp(request.param))
    return folder, vlm_fixtures.PROMPTS[PROMPT_OF.get(request.param, request.param)]


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_a_batch_of_two_images_of_different_sizes_matches_hf(family, kv_offload):
    folder, prompt = family
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=7, ctx_len=160, batch_size=2, num_cores=1)
    images = [image(2, (30, 30)), image(3, (64, 20))]
    prompts = [prompt, prompt.replace("Describe", "Name")]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=8, stream=False)
    for img, text, row in zip(images, prompts, info.generated_ids[0]):
        inputs = processor(images=model.adapter.processor_images([img]), text=[text], return_tensors="pt")
        ref = hf_greedy(folder, inputs, 8)
        assert row[: len(ref)].tolist() == ref
