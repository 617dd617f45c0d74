"""Large images that the architecture's own image processor cuts into several tiles plus a global view, in both
layouts: greedy tokens equal HF's. The processors are tests/vlm_tiny_processors_tiles.py's, which do what
transformers' torchvision-only ones do (the same tiles, pixels and prompt tokens); the tiny models are
tests/vlm_family_fixtures_more.py's. Each image is passed as processor outputs (torch tensors) and as an image with
``processor=`` (the outputs generate asks the processor for)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from transformers import AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests.image_text_sweep import hf_greedy
from tests.vlm_family_fixtures_more import PROMPTS, build_cohere2_vision, build_lfm2_vl, build_llama4, llama4_greedy

# model_type -> (builder, image (height, width), marks of the tiles and the global view its prompt holds, each as often)
FAMILIES = {
    # 2 x 2 tiles of 28 px and a thumbnail, each 4 x "<|IMG_PATCH|>" and a line break
    "cohere2_vision": (build_cohere2_vision, (60, 64), ["<|IMG_LINE_BREAK|>"] * 5),
    # a 2 x 3 canvas of 28 px tiles (the image zero-padded to 56 x 84) and the global tile
    "llama4": (build_llama4, (50, 80), ["<|tile_x_separator|>"] * 4 + ["<|tile_y_separator|>"] * 2 + ["<|image|>"]),
    # 2 rows x 3 columns of 28 px tiles and a 28x42 thumbnail
    "lfm2_vl": (build_lfm2_vl, (60, 100), ["<|img_row_2_col_3|>", "<|img_thumbnail|>"]),
}
N = 6
# greedy references other than HF generate (which fails for Llama 4 in transformers 5.24: tests/image_text_sweep.py)
REFERENCES = {"llama4": llama4_greedy}


def gradient_image(height: int, width: int) -> Image.Image:
    """Red rising left to right, green top to bottom, blue noise: every tile differs (in noise alone they look
    alike to a tiny random tower, and a wrong tile order could still give HF's tokens)."""
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(11).random((height, width)) * 255
    return Image.fromarray(np.stack([x * 255 / width, y * 255 / height, noise], -1).astype(np.uint8))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """(folder, processor, image, prompt, the processor's tensors, HF's greedy tokens) of one type."""
    build, size, marks = FAMILIES[request.param]
    folder = build(tmp_path_factory.mktemp(request.param))
    processor = AutoProcessor.from_pretrained(folder)
    img, prompt = gradient_image(*size), PROMPTS[request.param]
    inputs = processor(images=[[img]], text=[prompt], return_tensors="pt")
    tokens = processor.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    assert all(tokens.count(mark) == marks.count(mark) for mark in marks), tokens  # the image was tiled so
    return folder, processor, img, prompt, inputs, REFERENCES.get(request.param, hf_greedy)(folder, inputs, N)


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_tiles_and_global_view_match_hf(family, kv_offload):
    folder, processor, img, prompt, inputs, ref = family
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=16, ctx_len=128, num_cores=1)
    from_tensors = model.generate(inputs=inputs, generation_len=N, stream=False).generated_ids[0][0][:N].tolist()
    from_images = model.generate(processor=processor, images=[img], prompts=[prompt], generation_len=N, stream=False)
    assert [from_tensors, from_images.generated_ids[0][0][:N].tolist()] == [ref, ref]
