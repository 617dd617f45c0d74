"""Image-text models with a sparse-attention (DSA) text model, exact while the indexer selects every key (up to
index_topk): Mistral Large 4 (tiny: rotary and NoPE layers, KV sharing, shared indexer layers) and Dots 3 Note (a
tower with routed-expert blocks; DSA beside sliding-window MLA layers). A batch of two prompts of different lengths
and images of different sizes, prefilled in chunks, equals HF's one-prompt generate in both layouts; a ctx_len past
index_topk is refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.vlm_fixtures_b import build_mistral_large4
from tests.vlm_fixtures_dsa import build_dots3_note

N = 8


BUILDERS = {"mistral_large4": build_mistral_large4, "dots3_note": build_dots3_note}
PLACEHOLDERS = {"mistral_large4": "[IMG]", "dots3_note": "<|img|><|imgpad|><|endofimg|>"}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def tiny(request, tmp_path_factory):
    return request.param, BUILDERS[request.param](tmp_path_factory.mktemp(request.param))


def image(seed: int, size) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8))


def hf_greedy(folder, processor, img, prompt) -> list[int]:
    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    inputs = processor(images=img, text=prompt, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=N, pad_token_id=0)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.mark.parametrize("kv_offload", [True, False])
def test_a_batch_of_two_equals_hf(tiny, kv_offload):
    model_type, folder = tiny
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=4, ctx_len=64, batch_size=2, num_cores=1)
    img = PLACEHOLDERS[model_type]
    prompts = [f"{img} My name is", f"What is in {img} here, in a few words?"]
    images = [image(2, (30, 30)), image(3, (64, 20))]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=N, stream=False)
    for img, prompt, row in zip(images, prompts, info.generated_ids[0]):
        ref = hf_greedy(folder, processor, img, prompt)
        assert row[: len(ref)].tolist() == ref


def test_context_past_index_topk_is_refused(tiny):
    model_type, folder = tiny
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder)
    model.lang_model.config.index_topk = 32  # the tiny models' own (2048) is past its max_position_embeddings
    with pytest.raises(ValueError, match=r"ctx_len \(64\) exceeds 32: past index_topk .* ctx_len <= 32"):
        model.compile(prefill_seq_len=4, ctx_len=64, num_cores=1)
