"""Image-text models with a sparse-attention (DSA) text model, whose indexers choose 8 keys in the graph
(tests/tiny_models.py): Dots 3 Note (a tower with routed-expert blocks; DSA beside sliding-window MLA layers), HY-V4-VL
(hyper-connected DSA layers, 3-D rotary positions with a newline column per image row) and Mistral Large 4 (tiny:
rotary and NoPE layers, KV sharing with a layer that runs its own indexer, shared indexer layers). A batch of two
prompts of different lengths and images of different sizes, prefilled in chunks, equals HF's one-prompt generate in
both layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.vlm_fixtures_b import build_mistral_large4
from tests.vlm_fixtures_dsa import build_dots3_note, build_hy_v4_vl

N = 8


BUILDERS = {"mistral_large4": build_mistral_large4, "dots3_note": build_dots3_note, "hy_v4_vl": build_hy_v4_vl}
PLACEHOLDERS = {"mistral_large4": "[IMG]", "dots3_note": "<|img|><|imgpad|><|endofimg|>", "hy_v4_vl": "<|image_pad|>"}


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


def test_hy_v4_vl_image_embeddings_equal_hf(tmp_path):
    """The vision graph's computation (position-table taps made on the host with HF's shifted scale factor, the merger
    as linears over 2x2 blocks, newline rows) equals HF's image features for several grids at once: the greedy tokens
    of the tiny model alone would not tell a slightly different resampling apart."""
    from QEfficient.transform.vision_adapters import get_vision_adapter

    folder = build_hy_v4_vl(tmp_path)
    processor = AutoProcessor.from_pretrained(folder)
    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    images = [image(1, (40, 50)), image(2, (70, 20)), image(3, (30, 60))]
    inputs = processor(images=images, text="a <|image_pad|> b <|image_pad|> c <|image_pad|>", return_tensors="pt")
    adapter = get_vision_adapter(hf.config)
    vision = adapter.vision_inputs({k: v.numpy() for k, v in inputs.items()}, 0, hf.config)
    graph = {k: torch.from_numpy(v) for k, v in adapter.graph_inputs(vision).items()}
    with torch.no_grad():
        ours = adapter.image_features(hf, **graph)[0]
        features = hf.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"], return_dict=True)
    torch.testing.assert_close(ours, torch.cat(features.pooler_output), rtol=0, atol=1e-5)
