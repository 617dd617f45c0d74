"""Vision-language parity, architecture x layout: greedy tokens equal HF ``generate(do_sample=False)``
on tiny random models (tests/vlm_fixtures.py), with image tokens crossing prefill chunks, a batch of
two different images, and images of other sizes than the compiled one (the processor resizes).
Llava has its own file (tests/test_image_text.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from QEfficient import QEFFAutoModelForImageTextToText
from tests import vlm_fixtures
from tests.helpers import infer_cli_in_process

# arch -> (builder, prompt with the image placeholder, prefill_seq_len that puts image tokens across a chunk boundary)
ARCHS = {
    "gemma3": (vlm_fixtures.build_gemma3, "Look: <start_of_image> Describe the picture in a few words", 5),
    "idefics3": (vlm_fixtures.build_idefics3, "Look: <image> Describe the picture in a few words", 5),
    "smolvlm": (vlm_fixtures.build_smolvlm, "Look: <image> Describe the picture in a few words", 5),
    "qwen2_5_vl": (
        vlm_fixtures.build_qwen2_5_vl,
        "Look: <|vision_start|><|image_pad|><|vision_end|> Describe the picture in a few words",
        5,
    ),
    "qwen2_vl": (vlm_fixtures.build_qwen2_vl, "Look: <|vision_start|><|image_pad|><|vision_end|> Describe the picture in a few words", 5),
}


@pytest.fixture(scope="module", params=sorted(ARCHS))
def vlm(request, tmp_path_factory):
    builder, prompt, chunk = ARCHS[request.param]
    folder = builder(tmp_path_factory.mktemp(request.param))
    return request.param, folder, prompt, chunk


def image(seed: int, size=(40, 50)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8))


def hf_tokens(folder, inputs, n: int) -> list[list[int]]:
    hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=n, pad_token_id=0)
    return out[:, inputs["input_ids"].shape[1] :].tolist()


def trim(row: np.ndarray, ref: list[int]) -> list[int]:
    return row[: len(ref)].tolist()


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_greedy_tokens_match_hf(vlm, kv_offload):
    arch, folder, prompt, chunk = vlm
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=chunk, ctx_len=96, num_cores=1)
    inputs = processor(images=image(1), text=prompt, return_tensors="pt")
    info = model.generate(inputs=inputs, generation_len=12, stream=False)
    ref = hf_tokens(folder, inputs, 12)[0]
    assert trim(info.generated_ids[0][0], ref) == ref


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_a_batch_of_two_images_of_other_sizes(vlm, kv_offload):
    arch, folder, prompt, chunk = vlm
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=chunk, ctx_len=96, batch_size=2, num_cores=1)
    images = [image(2, (30, 30)), image(3, (64, 20))]
    prompts = [prompt, prompt.replace("Describe", "Name")]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=10, stream=False)
    for img, text, row in zip(images, prompts, info.generated_ids[0]):
        ref = hf_tokens(folder, processor(images=model.adapter.processor_images([img]), text=[text], return_tensors="pt"), 10)[0]
        assert trim(row, ref) == ref


def test_gemma3_image_block_longer_than_a_chunk(tmp_path):
    # 4 image tokens that attend to each other both ways, prefill_seq_len 3: the chunk holding them is widened
    folder = vlm_fixtures.build_gemma3(tmp_path / "gemma3")
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=False)
    model.compile(prefill_seq_len=3, ctx_len=64, num_cores=1)
    inputs = processor(images=image(4), text="A <start_of_image> B", return_tensors="pt")
    ref = hf_tokens(folder, inputs, 10)[0]
    assert trim(model.generate(inputs=inputs, generation_len=10, stream=False).generated_ids[0][0], ref) == ref


def test_qwen2_vl_two_images_of_different_sizes_in_one_prompt(tmp_path):
    folder = vlm_fixtures.build_qwen2_vl(tmp_path / "qwen")
    processor = AutoProcessor.from_pretrained(folder)
    slot = "<|vision_start|><|image_pad|><|vision_end|>"
    inputs = processor(images=[image(5, (100, 100)), image(6, (64, 20))], text=f"{slot} then {slot} compared", return_tensors="pt")
    assert inputs["image_grid_thw"][0].tolist() != inputs["image_grid_thw"][1].tolist()
    ref = hf_tokens(folder, inputs, 10)[0]
    for kv_offload in (True, False):
        model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
        model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
        assert trim(model.generate(inputs=inputs, generation_len=10, stream=False).generated_ids[0][0], ref) == ref


def test_streamer_gets_the_tokens(tmp_path):
    folder = vlm_fixtures.build_idefics3(tmp_path / "idefics3", split=False)
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(images=image(7), text="<image> Describe", return_tensors="pt")

    class Collect:
        def __init__(self):
            self.ids, self.ended = [], False

        def put(self, value):
            self.ids.extend(np.asarray(value).reshape(-1).tolist())

        def end(self):
            self.ended = True

    streamer = Collect()
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    info = model.generate(inputs=inputs, generation_len=6, streamer=streamer, stream=False)
    assert streamer.ended and streamer.ids[-6:] == info.generated_ids[0][0][:6].tolist()
    assert streamer.ids[-6:] == hf_tokens(folder, inputs, 6)[0]
    assert streamer.ids[:-6] == inputs["input_ids"][0].tolist()  # the prompt first, as transformers feeds it (skip_prompt)


def test_cli_adds_the_image_placeholder(tmp_path, capsys, monkeypatch):
    folder = vlm_fixtures.build_gemma3(tmp_path / "gemma3")
    path = tmp_path / "cat.png"
    image(8).save(path)
    args = ["--model_name", str(folder), "--image_path", str(path), "--prompt", "What is this?", "--prompt_len", "8"]
    out = infer_cli_in_process([*args, "--ctx_len", "64", "--generation_len", "5", "--num_cores", "1"], capsys, monkeypatch)
    assert "Prompt : <start_of_image> What is this?" in out and "Completion :" in out


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_mxfp6_and_mxint8_compile_and_generate(tmp_path, kv_offload):
    # 8-bit block weights and a float16 cache: close to HF, not bit-exact (this tiny model keeps its greedy path)
    folder = vlm_fixtures.build_gemma3(tmp_path / "gemma3")
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(images=image(1), text="Look: <start_of_image> Describe the picture", return_tensors="pt")
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    paths = model.compile(prefill_seq_len=5, ctx_len=64, num_cores=1, mxfp6_matmul=True, mxint8_kv_cache=True)
    lang = paths["lang_qpc_path"] if kv_offload else paths
    assert "MatMulNBits" in {n.op_type for n in onnx.load(str(lang / "model.onnx"), load_external_data=False).graph.node}
    ref = hf_tokens(folder, inputs, 6)[0]
    assert trim(model.generate(inputs=inputs, generation_len=6, stream=False).generated_ids[0][0], ref) == ref


def test_image_blocks_start_on_chunk_boundaries_and_padding_never_meets_the_last_slot():
    from QEfficient.generation.image_text_generation import image_block_columns
    from QEfficient.generation.text_generation import PromptTooLongError, prefill

    image_id = 9
    cols = image_block_columns([5, image_id, image_id, image_id, image_id, 6, 7, 8, 4], image_id, 4)
    assert cols.tolist() == [0, 4, 5, 6, 7, 8, 9, 10, 11]  # the block would cross column 4: it starts there
    seen = []

    def run(ids, pos):
        seen.append(pos.copy())
        return np.zeros((ids.shape[0], 3), np.float32)

    # row 0 fills ctx_len=10; row 1's moved block widens the grid, so row 0 would get padding next to its last slot
    rows = [list(range(10)), [5, image_id, image_id, image_id, image_id, 6, 7, 8, 4]]
    layout = [np.arange(10), image_block_columns(rows[1], image_id, 4)]
    with pytest.raises(PromptTooLongError, match="fills ctx_len=10"):
        prefill(run, rows, 2, 4, 10, 0, layout)
    seen.clear()
    prefill(run, [list(range(10))], 1, 4, 10, 0)  # alone it is fine: the last chunk ends on its last token
    assert [p.shape[1] for p in seen] == [4, 4, 2]


def test_more_images_than_placeholders_is_a_clear_error(tmp_path):
    folder = vlm_fixtures.build_llava(tmp_path / "llava")
    processor = AutoProcessor.from_pretrained(folder)
    inputs = dict(processor(images=image(1), text="<image> one", return_tensors="np"))
    inputs["pixel_values"] = np.concatenate([inputs["pixel_values"]] * 2)  # two images, one placeholder
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    with pytest.raises(ValueError, match="image tokens but the images give"):
        model.generate(inputs=inputs, generation_len=2, stream=False)


def test_unsupported_or_text_only_models_get_a_clear_error(tiny_model_dir, tmp_path):
    from QEfficient.transform.adapters import UnsupportedArchitectureError

    with pytest.raises(UnsupportedArchitectureError, match="not supported by QEFFAutoModelForImageTextToText.*gemma3.*llava"):
        QEFFAutoModelForImageTextToText.from_pretrained(tiny_model_dir("llama"))
    model = QEFFAutoModelForImageTextToText.from_pretrained(vlm_fixtures.build_gemma3(tmp_path / "g3"), continuous_batching=True)
    with pytest.raises(TypeError, match="full_batch_size"):
        model.compile(prefill_seq_len=8, ctx_len=64)


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "gemma3", "idefics3"])
@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
def test_continuous_batching_matches_hf(tmp_path, arch, kv_offload):
    # three prompts with images of different sizes, two cache slots: the third waits for a free slot;
    # the two running side by side have different rotary offsets (Qwen2-VL) and image blocks (Gemma3)
    builder, prompt, _ = ARCHS[arch]
    folder = builder(tmp_path / arch)
    processor = AutoProcessor.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=True)
    model.compile(prefill_seq_len=5, ctx_len=96, full_batch_size=2, num_cores=1)
    images = [image(2, (30, 30)), image(3, (64, 20)), image(4, (50, 40))]
    prompts = [prompt, prompt.replace("Describe", "Name"), prompt.replace("a few", "many")]
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=9, stream=False)
    assert len(info.generated_ids) == 3  # flat, in prompt order, as QEfficient's continuous batching
    for img, text, row in zip(images, prompts, info.generated_ids):
        ref = hf_tokens(folder, processor(images=model.adapter.processor_images([img]), text=[text], return_tensors="pt"), 9)[0]
        assert trim(row, ref) == ref


@pytest.mark.parametrize("kv_offload", [True, False], ids=["two_graphs", "one_graph"])
@pytest.mark.parametrize("continuous_batching", [False, True], ids=["static", "continuous"])
def test_a_prompt_without_an_image_next_to_one_with(tmp_path, kv_offload, continuous_batching):
    folder = vlm_fixtures.build_qwen2_5_vl(tmp_path / "qwen2_5")
    processor = AutoProcessor.from_pretrained(folder)
    prompts = ["Look: <|vision_start|><|image_pad|><|vision_end|> Describe it", "My name is"]
    inputs = processor(images=[image(1)], text=prompts, return_tensors="pt", padding=True)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload, continuous_batching=continuous_batching)
    sizes = {"full_batch_size": 2} if continuous_batching else {"batch_size": 1}
    model.compile(prefill_seq_len=5, ctx_len=64, num_cores=1, **sizes)
    info = model.generate(inputs=inputs, generation_len=8, stream=False)
    rows = info.generated_ids if continuous_batching else [b[0] for b in info.generated_ids]
    refs = [
        hf_tokens(folder, processor(images=[image(1)], text=[prompts[0]], return_tensors="pt"), 8)[0],
        hf_tokens(folder, processor(text=[prompts[1]], return_tensors="pt"), 8)[0],
    ]
    for row, ref in zip(rows, refs):
        assert trim(row, ref) == ref
