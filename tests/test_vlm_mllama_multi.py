"""Mllama with several images per prompt (``compile(max_num_images=2)``): greedy tokens equal HF ``generate``
(each prompt alone) in both layouts, for a batch whose prompts hold two images of different tile grids and
one image, and for continuous batching with mixed image counts (consecutive images too: HF lets the text
after a run of images see the whole run, text between two images only the first). A prompt with more images
than compiled is refused before any graph runs."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import hf_greedy, image
from tests.vlm_fixtures_mllama import build_mllama

# (30, 30): one tile and a padding tile; (64, 20): 2x1 tiles; (50, 40): 1x2 tiles
A, B, C = image(2, (30, 30)), image(3, (64, 20)), image(4, (50, 40))
CASES = [  # (images, prompt): chunks of 7 split each prompt between and around its images
    ([A, B], "Look: <|image|> and then <|image|> Describe the two"),
    ([C], "<|image|> Name the picture"),
    ([C, A], "<|image|><|image|> What do both show?"),
]
N = 6


@pytest.fixture(scope="module")
def mllama(tmp_path_factory):
    folder = build_mllama(tmp_path_factory.mktemp("mllama_multi"))
    processor = AutoProcessor.from_pretrained(folder)
    refs = [hf_greedy(folder, processor(images=[imgs], text=[text], return_tensors="pt"), N) for imgs, text in CASES]
    return folder, processor, refs


def _generate(mllama, kv_offload: bool, cases, **sizes):
    folder, processor, _ = mllama
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching="full_batch_size" in sizes)
    model.compile(prefill_seq_len=7, ctx_len=64, num_cores=1, max_num_images=2, **sizes)
    info = model.generate(processor=processor, images=[i for i, _ in cases], prompts=[t for _, t in cases], generation_len=N, stream=False)
    return model, info


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_a_batch_with_two_images_and_one_matches_hf(mllama, kv_offload):
    model, info = _generate(mllama, kv_offload, CASES[:2], batch_size=2)
    assert [list(row[:N]) for row in info.generated_ids[0]] == mllama[2][:2]
    if kv_offload:  # compiled for one image: a two-image prompt is refused, saying what to do
        model.compile(prefill_seq_len=7, ctx_len=64, num_cores=1, batch_size=2)
        with pytest.raises(ValueError, match=r"compiled for max_num_images=1: compile\(max_num_images=2\)"):
            model.generate(processor=mllama[1], images=[i for i, _ in CASES[:2]], prompts=[t for _, t in CASES[:2]], generation_len=N)


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_continuous_batching_with_mixed_image_counts_matches_hf(mllama, kv_offload):
    _, info = _generate(mllama, kv_offload, CASES, full_batch_size=2)  # three prompts, two cache rows
    assert [list(row[:N]) for row in info.generated_ids] == mllama[2]


@pytest.mark.parametrize("sizes", [{"batch_size": 2}, {"full_batch_size": 2}], ids=["batch", "continuous"])
def test_skip_vision_text_prompts_match_the_full_build(mllama, sizes):
    """compile(skip_vision=True) (the language graph alone): text prompts of a batch, or of continuous batching with
    two image slots per row, give the full two-graph build's tokens (each row's slots hold zeros, as without images)."""
    folder, processor, _ = mllama
    prompts = ["Describe the two", "Name the picture", "What do both show?"][: 2 if "batch_size" in sizes else 3]
    tokens = []
    for skip in (False, True):
        model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True, continuous_batching="full_batch_size" in sizes)
        model.compile(prefill_seq_len=7, ctx_len=64, num_cores=1, max_num_images=2, skip_vision=skip, **sizes)
        info = model.generate(processor=processor, prompts=prompts, generation_len=N, stream=False)
        rows = info.generated_ids[0] if "batch_size" in sizes else info.generated_ids
        tokens.append([list(row[:N]) for row in rows])
    assert tokens[1] == tokens[0]
