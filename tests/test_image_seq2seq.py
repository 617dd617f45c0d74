"""Pix2Struct, Florence-2, T5Gemma 2, BLIP and PP-FormulaNet, the image encoder-decoders with classes of their own:
transformers' greedy and beam tokens over a batch that spans two compiled batches, and first-step log-probabilities of
two images, on tiny models (tests/vlm_fixtures_b.py; PP-FormulaNet's built here); Pix2Struct's and BLIP's text as the
decoder's prompt; the auto classes; the errors; the server (Florence-2, BLIP, T5Gemma 2) and the CLI (Pix2Struct;
T5Gemma 2's text alone)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from QEfficient import (
    QEFFAutoModelForImageTextToText,
    QEFFBlipForConditionalGeneration,
    QEFFCommonLoader,
    QEFFFlorence2ForConditionalGeneration,
    QEFFPix2StructForConditionalGeneration,
    QEFFT5Gemma2ForConditionalGeneration,
)
from tests import vlm_fixtures_b
from tests.loopback import loopback_http

BUILDERS = {
    "pix2struct": vlm_fixtures_b.build_pix2struct,
    "florence2": vlm_fixtures_b.build_florence2,
    "t5gemma2": vlm_fixtures_b.build_t5gemma2,
    "blip": vlm_fixtures_b.build_blip,
}
CLASSES = {
    "pix2struct": QEFFPix2StructForConditionalGeneration,
    "florence2": QEFFFlorence2ForConditionalGeneration,
    "t5gemma2": QEFFT5Gemma2ForConditionalGeneration,
    "blip": QEFFBlipForConditionalGeneration,
}
TEXTS = ["Describe the picture", "What is it", "Read the words in the picture please"]


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(5)
    sizes = [(48, 40), (30, 60), (64, 64), (20, 36)]
    return [Image.fromarray(rng.integers(0, 255, (*sizes[i % 4], 3), dtype=np.uint8)) for i in range(n)]


def _processed(kind: str, processor, images, texts=None) -> dict:
    if kind == "florence2":
        return processor(text=texts or TEXTS[: len(images)], images=images, return_tensors="pt", padding=True)
    if kind == "t5gemma2":  # one image a prompt, where its <start_of_image> is
        texts = [f"{text} <start_of_image>" for text in texts or TEXTS[: len(images)]]
        return processor(text=texts, images=[[image] for image in images], return_tensors="pt", padding=True)
    return processor(images=images, text=texts, return_tensors="pt", **({"padding": True} if texts else {}))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """kind -> (folder, transformers model, processor, our model compiled for 2 images a batch, 32 decoder slots)."""
    models = {}
    for kind, build in BUILDERS.items():
        folder = build(tmp_path_factory.mktemp(kind))
        hf = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
        ours = QEFFAutoModelForImageTextToText.from_pretrained(folder)
        ours.compile(ctx_len=32, batch_size=2)
        models[kind] = (folder, hf, AutoProcessor.from_pretrained(folder), ours)
    return models


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_the_auto_classes_return_the_model_class(built, kind):
    folder, _, _, ours = built[kind]
    assert type(ours) is CLASSES[kind]
    assert QEFFCommonLoader.model_class(str(folder)) is CLASSES[kind]


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_greedy_tokens_are_transformers(built, kind):
    """Three images (the last batch padded): the tokens of transformers' generate, at least 8 of them (the tiny models
    would end at once)."""
    _, hf, processor, ours = built[kind]
    inputs = _processed(kind, processor, _images(3))
    with torch.no_grad():
        expected = hf.generate(**inputs, do_sample=False, max_new_tokens=10, min_new_tokens=8).tolist()
    info = ours.generate(processor, inputs=inputs, generation_len=10, min_new_tokens=8)
    got = [row.tolist() for batch in info.generated_ids for row in batch]
    assert [row[: len(want)] for row, want in zip(got, expected)] == expected
    assert [len(batch) for batch in info.generated_ids] == [2, 1]  # two compiled batches: two images, then one


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_first_step_logprobs_are_transformers(built, kind):
    """After a 3-token decoder prompt, each image's log-probabilities (the 5 likeliest) equal transformers' logits
    log-softmaxed, and the two images give different ones (the image reaches the decoder)."""
    _, hf, processor, ours = built[kind]
    inputs = _processed(kind, processor, _images(2))
    start = ours.decoder_start()
    prompt = torch.tensor([[start, 5, 9]] * 2)
    with torch.no_grad():  # BLIP's forward reads its decoder's tokens as input_ids
        given = {"pixel_values": inputs["pixel_values"], "input_ids": prompt} if kind == "blip" else {**inputs, "decoder_input_ids": prompt}
        expected = torch.log_softmax(hf(**given).logits[:, -1].double(), -1)
    assert (expected[0] - expected[1]).abs().max() > (0.01 if kind == "blip" else 0.1)  # far above the 1e-4 allowed
    info = ours.generate(processor, inputs=inputs, generation_len=1, decoder_input_ids=prompt, top_logprobs=5)
    for row in range(2):
        _, ids, values = info.logprobs[row][0]
        top = expected[row].topk(5)
        assert list(ids) == top.indices.tolist()
        np.testing.assert_allclose(values, top.values.numpy(), atol=1e-4)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_beam_search_is_transformers(built, kind):
    """3 beams (Florence-2's checkpoints search so): transformers' best two sequences per image. Pix2Struct's decoder
    reads one row of cross keys/values per beam, Florence-2's one per image."""
    _, hf, processor, ours = built[kind]
    inputs = _processed(kind, processor, _images(3))
    settings = dict(num_beams=3, num_return_sequences=2, min_new_tokens=4)
    with torch.no_grad():
        expected = hf.generate(**inputs, do_sample=False, max_new_tokens=8, **settings).tolist()
    info = ours.generate(processor, inputs=inputs, generation_len=8, **settings)
    got = [row.tolist() for batch in info.generated_ids for row in batch]
    assert [row[: len(want)] for row, want in zip(got, expected)] == expected
    assert len({tuple(row) for row in got}) > 1


def test_florence2_text_keeps_its_special_tokens(built):
    """Florence-2's texts keep special tokens such as its ``<loc_N>`` boxes (here the tiny tokenizer's ``<image>``),
    without the start, end and pad tokens."""
    _, _, processor, ours = built["florence2"]
    tokenizer = processor.tokenizer
    image = tokenizer.convert_tokens_to_ids("<image>")
    row = [tokenizer.eos_token_id, tokenizer.bos_token_id, 5, image, 6, tokenizer.eos_token_id, tokenizer.pad_token_id]
    assert ours.text_of(tokenizer, row) == tokenizer.decode([5, image, 6])
    assert "<image>" in ours.text_of(tokenizer, row)


def test_blip_takes_transformers_spelling_and_refuses_its_other_heads(built):
    """generate(pixel_values, max_new_tokens=...) as transformers' generate; a BLIP question-answering checkpoint
    (which loads into the captioning class with other meanings) is refused."""
    folder, hf, processor, ours = built["blip"]
    pixels = processor(images=_images(2), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = hf.generate(pixel_values=pixels, do_sample=False, max_new_tokens=5).tolist()
    got = [row.tolist() for row in ours.generate(pixels, max_new_tokens=5).generated_ids[0]]
    assert [row[: len(want)] for row, want in zip(got, expected)] == expected
    hf.config.architectures = ["BlipForQuestionAnswering"]
    try:
        with pytest.raises(NotImplementedError, match="BlipForQuestionAnswering is not run here"):
            QEFFBlipForConditionalGeneration(hf)
    finally:
        hf.config.architectures = ["BlipForConditionalGeneration"]


def test_blip_text_starts_the_caption_as_in_transformers(built):
    """BLIP's processor text: its first token becomes the decoder's start (bos), its last ([SEP]) is dropped, as
    BLIP's generate does."""
    _, hf, processor, ours = built["blip"]
    inputs = processor(images=_images(3), text=["a picture of"] * 3, return_tensors="pt")
    with torch.no_grad():
        expected = hf.generate(**inputs, do_sample=False, max_new_tokens=6, min_new_tokens=6).tolist()
    info = ours.generate(processor, inputs=inputs, generation_len=6, min_new_tokens=6)
    got = [row.tolist() for batch in info.generated_ids for row in batch]
    assert [row[: len(want)] for row, want in zip(got, expected)] == expected
    assert got[0][0] == hf.config.text_config.bos_token_id and len(got[0]) > inputs["input_ids"].shape[1]


def test_pix2struct_text_is_the_decoder_prompt_as_in_transformers(built):
    """A captioning checkpoint's processor turns text into ``decoder_input_ids``: generate() reads them from the
    inputs, as transformers' generate(**inputs) does; prompts of different lengths are refused."""
    _, hf, processor, ours = built["pix2struct"]
    inputs = _processed("pix2struct", processor, _images(2), ["a picture of"] * 2)
    assert "decoder_input_ids" in inputs
    with torch.no_grad():
        expected = hf.generate(**inputs, do_sample=False, max_new_tokens=6, min_new_tokens=6).tolist()
    info = ours.generate(processor, inputs=inputs, generation_len=6, min_new_tokens=6)
    got = [row.tolist() for row in info.generated_ids[0]]
    assert [row[: len(want)] for row, want in zip(got, expected)] == expected
    ragged = _processed("pix2struct", processor, _images(2), ["a picture of a", "the"])
    with pytest.raises(ValueError, match="decoder prompts have different lengths"):
        ours.generate(processor, inputs=ragged, generation_len=4)


def test_bad_inputs_say_what_to_pass(built):
    from QEfficient import QEFFAutoModelForVisionEncoderDecoder

    _, hf, processor, florence = built["florence2"]
    with pytest.raises(TypeError, match="load it with QEFFFlorence2ForConditionalGeneration"):
        QEFFAutoModelForVisionEncoderDecoder(hf)
    with pytest.raises(TypeError, match="is not a Pix2StructForConditionalGeneration: load it with QEFFFlorence2"):
        QEFFPix2StructForConditionalGeneration(hf)
    inputs = dict(_processed("florence2", processor, _images(1)))
    with pytest.raises(ValueError, match=r"through the processor: inputs=processor\(text=prompt, images=image"):
        florence.generate(processor, "Describe the picture")
    with pytest.raises(ValueError, match="inputs has no pixel_values"):
        florence.generate(processor, inputs={k: v for k, v in inputs.items() if k != "pixel_values"})
    with pytest.raises(ValueError, match=r"pixel_values \[prompts, 3, 64, 64\]"):
        florence.generate(processor, inputs={**inputs, "pixel_values": inputs["pixel_values"][..., :32, :32]})
    with pytest.raises(ValueError, match="placeholder tokens"):
        florence.generate(
            processor, inputs={**inputs, "input_ids": inputs["input_ids"][:, 1:], "attention_mask": inputs["attention_mask"][:, 1:]}
        )
    _, _, processor, pix2struct = built["pix2struct"]
    inputs = dict(_processed("pix2struct", processor, _images(1)))
    with pytest.raises(ValueError, match=r"flattened_patches must be \[images, patches, 149\]"):
        pix2struct.generate(processor, inputs={**inputs, "flattened_patches": inputs["flattened_patches"][..., 1:]})
    with pytest.raises(ValueError, match="inputs has no flattened_patches"):
        pix2struct.generate(processor, inputs={"pixel_values": torch.zeros(1, 3, 8, 8)})


def test_server_and_cli_answer_an_image_with_its_text(built, tmp_path, capsys):
    """``serve`` on Florence-2: the chat message's text is the task prompt the processor writes into the encoder's
    input; the answer is transformers' tokens (after the start token) with their log-probabilities, its usage counts
    the prompt's positions.
    ``infer --image_path`` on Pix2Struct: transformers' tokens for the image."""
    import base64
    import io

    from QEfficient.cloud import infer
    from QEfficient.cloud.serve import build_server
    from tests.helpers import serve_on_loopback

    folder, hf, processor, _ = built["florence2"]
    image = _images(1)[0]
    png = io.BytesIO()
    image.save(png, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    inputs = processor(text="What is it", images=image, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=6, output_logits=True, return_dict_in_generate=True)
    expected = out.sequences[0, 1:].tolist()
    logprobs = [float(torch.log_softmax(step[0].double(), -1)[t]) for step, t in zip(out.logits, expected)]
    app, _ = build_server(str(folder), None, prefill_seq_len=1, ctx_len=32, full_batch_size=1, num_cores=1)
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is it"}]
    body = {"model": str(folder), "messages": [{"role": "user", "content": content}], "max_tokens": 6, "min_tokens": None}
    body |= {"logprobs": True, "top_logprobs": 1}
    with serve_on_loopback(app) as base:
        reply = loopback_http.post(f"{base}/v1/chat/completions", json=body, timeout=60)
        content[1]["text"] = "<OD> cars"  # the processor's rule: a task token alone
        refused = loopback_http.post(f"{base}/v1/chat/completions", json=body, timeout=60)
    assert refused.status_code == 400 and "should be the only content" in refused.json()["error"]["message"]
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    tokenizer = processor.tokenizer
    entries = answer["choices"][0]["logprobs"]["content"]
    assert [tokenizer.convert_tokens_to_ids(entry["token"]) for entry in entries] == expected
    np.testing.assert_allclose([entry["logprob"] for entry in entries], logprobs, atol=1e-4)
    assert answer["usage"]["prompt_tokens"] == inputs["input_ids"].shape[1] + 1

    folder, hf, processor, _ = built["pix2struct"]
    image.save(tmp_path / "chart.png")
    pixels = processor(images=Image.open(tmp_path / "chart.png"), return_tensors="pt")
    with torch.no_grad():
        expected = hf.generate(**pixels, do_sample=False, max_new_tokens=6)[0].tolist()
    info = infer.main(model_name=str(folder), image_path=str(tmp_path / "chart.png"), ctx_len=32, generation_len=6)
    assert info.generated_ids[0][0][: len(expected)].tolist() == expected
    assert f"Output : {info.texts[0]}" in capsys.readouterr().out


def test_infer_runs_t5gemma2_text_without_an_image(built, capsys):
    """``infer --prompt`` without an image on T5Gemma 2: its text alone, as transformers' generate gives it."""
    from QEfficient.cloud import infer

    folder, hf, processor, _ = built["t5gemma2"]
    enc = processor.tokenizer(["hello world the cat"], return_tensors="pt")
    with torch.no_grad():
        expected = hf.generate(**enc, do_sample=False, max_new_tokens=6)[0].tolist()
    info = infer.main(model_name=str(folder), prompt="hello world the cat", ctx_len=32, generation_len=6)
    assert info.generated_ids[0][0][: len(expected)].tolist() == expected
    assert "Output : " in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["blip", "t5gemma2"])
def test_server_answers_blip_and_t5gemma2_with_their_text(built, kind):
    """``serve``: BLIP's message text starts the caption (its processor's ids, as BLIP's generate reads them); T5Gemma
    2's goes to the encoder with the image where ``<start_of_image>`` is, else before the text. The answer is
    transformers' tokens after the decoder's prompt, with their log-probabilities; usage counts the positions read."""
    import base64
    import io

    from QEfficient.cloud.serve import build_server
    from tests.helpers import serve_on_loopback

    folder, hf, processor, ours = built[kind]
    image = _images(2)[1]
    png = io.BytesIO()
    image.save(png, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    text = "a picture of" if kind == "blip" else "What is it"
    if kind == "blip":
        inputs = processor(images=image, text=text, return_tensors="pt")
        width = inputs["input_ids"].shape[1] - 1  # bos, then the text less its last token
        prompt_tokens = ours.image_positions() + width
    else:
        inputs = processor(text=f"{processor.boi_token} {text}", images=[[image]], return_tensors="pt")
        width, prompt_tokens = 1, inputs["input_ids"].shape[1] + 1
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=6, output_logits=True, return_dict_in_generate=True)
    expected = out.sequences[0, width:].tolist()
    logprobs = [float(torch.log_softmax(step[0].double(), -1)[t]) for step, t in zip(out.logits, expected)]
    app, _ = build_server(str(folder), None, prefill_seq_len=1, ctx_len=32, full_batch_size=1, num_cores=1)
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]
    body = {"model": str(folder), "messages": [{"role": "user", "content": content}], "max_tokens": 6, "logprobs": True}
    with serve_on_loopback(app) as base:
        reply = loopback_http.post(f"{base}/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    entries = answer["choices"][0]["logprobs"]["content"]
    assert answer["choices"][0]["message"]["content"] == processor.tokenizer.decode(expected, skip_special_tokens=True)
    np.testing.assert_allclose([entry["logprob"] for entry in entries], logprobs, atol=1e-4)
    assert answer["usage"]["prompt_tokens"] == prompt_tokens and answer["usage"]["completion_tokens"] == len(expected)


def test_pp_formulanet_tokens_and_logits_are_transformers(tmp_path):
    """PP-FormulaNet (a SAM-style tower, its projected features read by an MBart-style decoder): transformers'
    greedy and 3-beam tokens for three images (two compiled batches), its first-step logits for two, and the class
    the image-text auto class returns; transformers' spelling ``generate(pixel_values, max_new_tokens=...)``."""
    from transformers import PPFormulaNetConfig, PPFormulaNetForConditionalGeneration

    from QEfficient import QEFFPPFormulaNetForConditionalGeneration

    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=16, window_size=2)
    vision.update(global_attn_indexes=[1], mlp_dim=37, output_channels=16, post_conv_in_channels=16, post_conv_mid_channels=16)
    vision.update(post_conv_out_channels=32, decoder_hidden_size=32, initializer_range=0.02)  # 1e-10 would give a constant map
    text = dict(vocab_size=320, d_model=32, decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=37, max_position_embeddings=64)
    torch.manual_seed(0)
    hf = PPFormulaNetForConditionalGeneration(PPFormulaNetConfig(vision_config=vision, text_config=text)).eval()
    with torch.no_grad():  # widened, as the other tiny models are: the image moves the logits far from ties
        for weight in hf.parameters():
            if weight.dim() > 1:
                weight.normal_(0.0, 0.3)
    hf.save_pretrained(tmp_path)
    ours = QEFFAutoModelForImageTextToText.from_pretrained(tmp_path)
    assert type(ours) is QEFFPPFormulaNetForConditionalGeneration
    ours.compile(ctx_len=32, batch_size=2)
    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    for settings in ({}, {"num_beams": 3, "num_return_sequences": 2}):
        with torch.no_grad():
            expected = hf.generate(pixel_values=pixels, do_sample=False, max_new_tokens=8, min_new_tokens=4, **settings).tolist()
        info = ours.generate(pixels, max_new_tokens=8, min_new_tokens=4, **settings)
        got = [row.tolist() for batch in info.generated_ids for row in batch]
        assert [row[: len(want)] for row, want in zip(got, expected)] == expected
    prompt = torch.tensor([[2, 5, 9]] * 2)
    with torch.no_grad():
        logits = torch.log_softmax(hf(pixel_values=pixels[:2], decoder_input_ids=prompt).logits[:, -1].double(), -1)
    assert (logits[0] - logits[1]).abs().max() > 0.01  # the image reaches the decoder
    info = ours.generate(pixels[:2], generation_len=1, decoder_input_ids=prompt, top_logprobs=5)
    for row in range(2):
        _, ids, values = info.logprobs[row][0]
        top = logits[row].topk(5)
        assert list(ids) == top.indices.tolist()
        np.testing.assert_allclose(values, top.values.numpy(), atol=1e-4)
