"""IDEFICS with several images per prompt (``compile(max_num_images=2)``): greedy tokens equal HF ``generate`` (each
prompt alone) for interleaved prompts (``processor(text=[[text, image, text, ...]])``: a token attends the last image
before it, none after an end-of-sequence token until the next image), batched and under continuous batching, in both
layouts. A prompt with more images than compiled is refused before any graph runs."""

from __future__ import annotations

import pytest
from PIL import Image
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import hf_greedy, image
from tests.vlm_fixtures_late import build_idefics

A, C = image(2, (30, 30)), image(4, (50, 40))
B = Image.new("RGB", (64, 20), (250, 250, 250))  # far from the noise images: attending A as well changes the tokens
PROMPTS = [  # chunks of 7 split each prompt between and around its images
    ["User:", A, "Describe this", B, "and compare the two"],
    [C, "Name the picture"],
    ["User:", B, "A picture.</s>Then some text without it"],  # after "</s>" HF's mask sees no image
]
N = 6


@pytest.fixture(scope="module")
def idefics(tmp_path_factory):
    folder = build_idefics(tmp_path_factory.mktemp("idefics_multi"))
    processor = AutoProcessor.from_pretrained(folder)
    refs = [hf_greedy(folder, processor(text=[p], return_tensors="pt"), N) for p in PROMPTS]
    return folder, processor, refs


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_interleaved_images_match_hf_batched_and_continuous(idefics, kv_offload):
    folder, processor, refs = idefics
    inputs = processor(text=PROMPTS, return_tensors="pt")
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=7, ctx_len=64, num_cores=1, max_num_images=2, batch_size=3)
    info = model.generate(inputs=inputs, processor=processor, generation_len=N, stream=False)
    assert [list(row[:N]) for row in info.generated_ids[0]] == refs
    batching = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=True)
    batching.compile(prefill_seq_len=7, ctx_len=64, num_cores=1, max_num_images=2, full_batch_size=2)
    info = batching.generate(inputs=inputs, processor=processor, generation_len=N, stream=False)
    assert [list(row[:N]) for row in info.generated_ids] == refs
    if kv_offload:  # compiled for one image: a two-image prompt is refused, saying what to do
        model.compile(prefill_seq_len=7, ctx_len=64, num_cores=1, batch_size=3)
        with pytest.raises(ValueError, match=r"compiled for max_num_images=1: compile\(max_num_images=2\)"):
            model.generate(inputs=inputs, processor=processor, generation_len=N, stream=False)
