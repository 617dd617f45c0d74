"""QEFFAutoModelForImageTextToText on a tiny random Llava, in both layouts: parity with HF, errors, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

from QEfficient import QEFFAutoModelForImageTextToText
from tests.helpers import infer_cli_in_process
from tests.vlm_fixtures import build_llava


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return build_llava(tmp_path_factory.mktemp("llava"))


def image(seed: int, size=(40, 50)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8))


def hf_reference(folder, processor, img, prompt, n):
    hf = LlavaForConditionalGeneration.from_pretrained(folder).eval()
    inputs = processor(images=img, text=prompt, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=n, pad_token_id=0)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.mark.parametrize("kv_offload", [True, False])
def test_llava_matches_hf_with_image_tokens_across_chunks(llava_dir, kv_offload):
    processor = AutoProcessor.from_pretrained(llava_dir)
    model = QEFFAutoModelForImageTextToText.from_pretrained(llava_dir, kv_offload=kv_offload)
    paths = model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)  # 16 image tokens: they span three chunks
    if kv_offload:
        assert set(paths) == {"vision_qpc_path", "lang_qpc_path"}
    else:
        assert (paths / "model.onnx").is_file()
    prompt = "Describe <image> in a few words"
    inputs = processor(images=image(1), text=prompt, return_tensors="pt")
    info = model.generate(inputs=inputs, generation_len=12, stream=False)
    ref = hf_reference(llava_dir, processor, image(1), prompt, 12)
    assert info.generated_ids[0][0][: len(ref)].tolist() == ref


@pytest.mark.parametrize("kv_offload", [True, False])
def test_a_batch_of_two_images(llava_dir, kv_offload):
    processor = AutoProcessor.from_pretrained(llava_dir)
    model = QEFFAutoModelForImageTextToText.from_pretrained(llava_dir, kv_offload=kv_offload)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    prompts = ["<image> My name is", "What is in <image> here?"]
    images = [image(2, (30, 30)), image(3, (64, 20))]  # other sizes than img_size: the processor resizes
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=10, stream=False)
    refs = [hf_reference(llava_dir, processor, img, prompt, 10) for img, prompt in zip(images, prompts)]
    for ref, row in zip(refs, info.generated_ids[0]):
        assert row[: len(ref)].tolist() == ref
    # the processor's padded batch without its attention mask: the padding told apart as transformers' generate() does
    padded = dict(processor(images=images, text=prompts, return_tensors="pt", padding=True))
    assert (padded.pop("attention_mask") == 0).any()
    with pytest.warns(UserWarning, match="streamer is fed at batch size 1 only"):
        info = model.generate(inputs=padded, generation_len=10, stream=False, streamer=object())
    for ref, row in zip(refs, info.generated_ids[0]):
        assert row[: len(ref)].tolist() == ref


def test_errors(llava_dir):
    model = QEFFAutoModelForImageTextToText.from_pretrained(llava_dir)
    with pytest.raises(TypeError, match="compile"):
        model.generate(inputs={})
    model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    processor = AutoProcessor.from_pretrained(llava_dir)
    inputs = dict(processor(images=image(1), text="<image> hi", return_tensors="np"))
    inputs["pixel_values"] = np.zeros((1, 3, 56, 56), np.float32)
    with pytest.raises(ValueError, match="img_size=28"):
        model.generate(inputs=inputs)
    for bad in ("hello", {"ids": inputs["input_ids"]}):
        with pytest.raises(ValueError, match="inputs must be the processor's output"):
            model.generate(inputs=bad)
    with pytest.raises(ValueError, match="processor must be the model's processor"):
        model.generate(processor="x", images=[image(1)], prompts=["<image> hi"])
    # NaN pixels are refused: they would also reach the cache rows the next call reads past its own length
    clean = dict(processor(images=image(1), text="<image> hi", return_tensors="np"))
    expected = model.generate(inputs=clean, generation_len=4, stream=False).generated_ids
    with pytest.raises(ValueError, match="pixel_values hold NaN or infinity"):
        model.generate(inputs={**clean, "pixel_values": np.full_like(clean["pixel_values"], np.nan)}, generation_len=4, stream=False)
    assert np.array_equal(model.generate(inputs=clean, generation_len=4, stream=False).generated_ids, expected)
    rows = model.hf.get_input_embeddings().num_embeddings  # ids another model's processor made: past the table, or negative
    with pytest.raises(ValueError, match="inputs hold no input_ids: pass the processor's whole output"):
        model.generate(inputs={"pixel_values": clean["pixel_values"]}, generation_len=4, stream=False)
    for bad_id in (rows, -1):
        ids = clean["input_ids"].copy()
        ids[0, -1] = bad_id
        with pytest.raises(ValueError, match=rf"token id {bad_id}, outside this model's embedding table \[0, {rows}\)"):
            model.generate(inputs={**clean, "input_ids": ids}, generation_len=4, stream=False)
    one = model.generate(processor=processor, images=image(1), prompts="<image> hi", generation_len=4, stream=False)  # not lists
    assert np.array_equal(one.generated_ids, expected)


def test_an_img_size_the_vision_encoder_does_not_take(llava_dir, qeff_home):
    """Said plainly, before anything is allocated for a huge one; a failed export leaves nothing in the cache."""
    model = QEFFAutoModelForImageTextToText.from_pretrained(llava_dir)
    with pytest.raises(ValueError, match="img_size=100000 is larger than any vision encoder takes.*own image size is 28"):
        model.compile(img_size=100000, prefill_seq_len=8, ctx_len=64, num_cores=1)
    before = sorted(qeff_home.rglob("*"))
    with pytest.raises(ValueError, match=r"could not be traced at img_size=56 .*own image size is 28: leave img_size out"):
        model.compile(img_size=56, prefill_seq_len=8, ctx_len=64, num_cores=1)
    assert sorted(qeff_home.rglob("*")) == before


def test_cli_runs_a_tiny_vlm(llava_dir, tmp_path, qeff_home, capsys, monkeypatch):
    import os
    import subprocess
    import sys

    path = tmp_path / "cat.png"
    image(5).save(path)
    env = {**os.environ, "QEFF_HOME": str(qeff_home)}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "QEfficient.cloud.infer",
            "--model_name",
            str(llava_dir),
            "--image_path",
            str(path),
            "--prompt",
            "<image> What is this?",
            "--prompt_len",
            "8",
            "--ctx_len",
            "64",
            "--generation_len",
            "6",
            "--num_cores",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert "Vision encoder time is=" in res.stdout and "Completion :" in res.stdout
    # without an image the same command runs the prompt alone, as HF does (tests/test_vlm_text_only.py: its tokens)
    args = ["--model_name", str(llava_dir), "--prompt", "What is this?", "--prompt_len", "8", "--ctx_len", "64"]
    out = infer_cli_in_process([*args, "--generation_len", "6", "--num_cores", "1"], capsys, monkeypatch)
    assert "Prompt : What is this?" in out and "<image>" not in out and "Completion :" in out


def test_the_cli_prompt_of_a_vlm_follows_chat_and_no_chat(llava_dir):
    from QEfficient.cloud.infer import image_prompt

    processor = AutoProcessor.from_pretrained(llava_dir)
    adapter = QEFFAutoModelForImageTextToText.from_pretrained(llava_dir).adapter
    with pytest.raises(ValueError, match="--chat needs a processor with a chat template"):
        image_prompt(processor, adapter, "hi", chat=True)
    processor.chat_template = "{% for m in messages %}[{% for c in m.content %}{{ c.type }}:{{ c.text or '' }};{% endfor %}]{% endfor %}"
    assert image_prompt(processor, adapter, "hi") == "[image:;text:hi;]"  # the template by default, as before
    assert image_prompt(processor, adapter, "hi", with_image=False) == "[text:hi;]"
    assert image_prompt(processor, adapter, "hi", chat=False) == "<image> hi"
    assert image_prompt(processor, adapter, "hi", with_image=False, chat=False) == "hi"
    assert image_prompt(processor, adapter, "<image> hi") == "<image> hi"  # laid out by the user: as given
    with pytest.raises(ValueError, match="already holds it: leave out --chat or the placeholder"):
        image_prompt(processor, adapter, "<image> hi", chat=True)


def test_two_images_in_one_prompt(llava_dir):
    processor = AutoProcessor.from_pretrained(llava_dir)
    model = QEFFAutoModelForImageTextToText.from_pretrained(llava_dir)
    model.compile(prefill_seq_len=8, ctx_len=96, num_cores=1)
    prompt = "<image> and <image> are"
    images = [image(7), image(8, (20, 60))]
    inputs = processor(images=images, text=prompt, return_tensors="pt")
    info = model.generate(inputs=inputs, generation_len=8, stream=False)
    hf = LlavaForConditionalGeneration.from_pretrained(llava_dir).eval()
    with torch.no_grad():
        ref = hf.generate(**inputs, do_sample=False, max_new_tokens=8, pad_token_id=0)[0, inputs["input_ids"].shape[1] :].tolist()
    assert info.generated_ids[0][0][: len(ref)].tolist() == ref


@pytest.mark.parametrize("kv_offload", [True, False])
def test_a_prompt_that_fills_the_context(llava_dir, kv_offload):
    # the last slot holds an image token, in a chunk narrower than prefill_seq_len
    processor = AutoProcessor.from_pretrained(llava_dir)
    prompt = "Describe <image>"
    inputs = processor(images=image(9), text=prompt, return_tensors="pt")
    length = inputs["input_ids"].shape[1]
    chunk = next(c for c in (5, 6, 7) if length % c)
    model = QEFFAutoModelForImageTextToText.from_pretrained(llava_dir, kv_offload=kv_offload)
    model.compile(prefill_seq_len=chunk, ctx_len=length, num_cores=1)
    info = model.generate(inputs=inputs, generation_len=4, stream=False)
    ref = hf_reference(llava_dir, processor, image(9), prompt, 1)
    assert info.generated_ids[0][0][:1].tolist() == ref


def test_infer_refuses_a_decompression_bomb_with_a_clear_error(tmp_path):
    from QEfficient.cloud.infer import load_image

    path = tmp_path / "bomb.png"
    Image.new("1", (15000, 15000)).save(path)  # 27 KB that would decode to 675 MB of RGB
    with pytest.raises(ValueError, match="cannot read the image .*decompression bomb"):
        load_image(image_path=str(path))


def test_images_are_read_upright_and_transparent_pixels_on_white():
    """A JPEG with an EXIF orientation is turned as transformers' load_image turns it (a phone's photo is not read
    sideways); an image with transparency is put on white, as transformers' convert_to_rgb and vLLM's loader put it:
    the server's data URLs and infer's files alike."""
    import base64
    import io

    from transformers.image_transforms import convert_to_rgb
    from transformers.image_utils import load_image

    from QEfficient.cloud.infer import load_image as infer_load_image
    from QEfficient.serving.vision_language import read_image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the camera was held upright
    buffer = io.BytesIO()
    image(4, (60, 30)).save(buffer, "JPEG", exif=exif)
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    upright = np.asarray(load_image(url))
    assert upright.shape[:2] == (30, 60)
    read = read_image(url, "image 0")
    np.testing.assert_array_equal(np.asarray(read), upright)
    np.testing.assert_array_equal(np.asarray(load_image(read)), upright)  # a processor's load_image does not turn it again
    rgba = Image.fromarray(np.random.default_rng(5).integers(0, 256, (20, 24, 4), dtype=np.uint8), "RGBA")
    for kind in ("RGBA", "LA"):
        buffer = io.BytesIO()
        rgba.convert(kind).save(buffer, "PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        np.testing.assert_array_equal(np.asarray(read_image(url, "image 0")), np.asarray(convert_to_rgb(rgba.convert(kind))))
    keyed = io.BytesIO()  # a grey image whose colour 10 is transparent (PNG's tRNS): on white too
    Image.fromarray(np.arange(100, dtype=np.uint8).reshape(10, 10), "L").save(keyed, "PNG", transparency=10)
    url = "data:image/png;base64," + base64.b64encode(keyed.getvalue()).decode()
    reference = np.asarray(convert_to_rgb(Image.open(io.BytesIO(keyed.getvalue()))))
    assert (reference[1, 0] == 255).all()
    np.testing.assert_array_equal(np.asarray(read_image(url, "image 0")), reference)
    file = io.BytesIO(buffer.getvalue())
    file.name = "la.png"
    np.testing.assert_array_equal(np.asarray(infer_load_image(file)), np.asarray(convert_to_rgb(rgba.convert("LA"))))
