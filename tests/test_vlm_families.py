"""The families added by the image-text sweep, each in both layouts: greedy tokens equal HF ``generate``
for one image with image tokens across prefill chunks, and for a batch of two images of different sizes
(different tile grids / patch counts). Tiny random models from tests/vlm_family_fixtures.py. Continuous batching
and mxfp6 of every named family: tests/test_vlm_named_families.py."""

from __future__ import annotations

from functools import partial

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests import vlm_family_fixtures as vlm_fixtures
from tests import vlm_family_fixtures_more
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
    "deepseek_vl": vlm_fixtures.build_deepseek_vl,
    "janus": vlm_fixtures.build_janus,
    "idefics2": vlm_fixtures.build_idefics2,
    # DeepStack rows and 3-D rotary positions of two images of different grids in one batch
    "qwen3_vl": vlm_family_fixtures_more.build_qwen3_vl,
}
PROMPT_OF = {"granite_vision": "llava_next"}
PROMPTS = {**vlm_fixtures.PROMPTS, **vlm_family_fixtures_more.PROMPTS}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    folder = FAMILIES[request.param](tmp_path_factory.mktemp(request.param))
    return folder, PROMPTS[PROMPT_OF.get(request.param, request.param)]


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


@pytest.mark.parametrize("arch", ["llava_next", "llava_onevision"])
def test_mxfp6_matmul_keeps_the_greedy_tokens(tmp_path, arch):
    # 8-bit block weights: close to HF, not bit-exact; these two tiny models keep their greedy path (Mistral 3,
    # PaliGemma and InternVL tiny models leave it after 1-2 tokens: mxfp6 is an approximation)
    folder = FAMILIES[arch](tmp_path / arch)
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(images=image(1), text=vlm_fixtures.PROMPTS[arch], return_tensors="pt")
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True)
    model.compile(prefill_seq_len=7, ctx_len=128, num_cores=1, mxfp6_matmul=True)
    ref = hf_greedy(folder, inputs, 6)
    assert model.generate(inputs=inputs, generation_len=6, stream=False).generated_ids[0][0][: len(ref)].tolist() == ref
