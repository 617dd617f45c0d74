"""Image encoder-decoders (transformers' VisionEncoderDecoderModel): the tokens of transformers' ``generate``, greedy and
with beams, for TrOCR-, ViT-GPT2-, Donut- (Swin + mBART) and DeiT-BERT-shaped tiny random models, on a batch that
spans two compiled batches; transformers' spelling and the image-text auto class; the errors."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    DeiTConfig,
    DonutSwinConfig,
    GPT2Config,
    MBartConfig,
    RemBertConfig,
    RobertaConfig,
    TrOCRConfig,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
)

from QEfficient import QEFFAutoModelForImageTextToText, QEFFAutoModelForVisionEncoderDecoder
from tests.loopback import loopback_http

VOCAB = 320  # the local tokenizer's
TOKENS = dict(pad_token_id=1, bos_token_id=0, eos_token_id=2)
VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8)
PAIRS = {
    # TrOCR: a narrower decoder than the encoder (the model's projection between them), eager attention with additive masks
    "vit-trocr": lambda: (
        ViTConfig(**VIT),
        TrOCRConfig(
            vocab_size=VOCAB,
            d_model=24,
            decoder_layers=2,
            decoder_attention_heads=4,
            decoder_ffn_dim=37,
            max_position_embeddings=64,
            decoder_start_token_id=0,
            is_decoder=True,
            add_cross_attention=True,
            **TOKENS,
        ),
    ),  # fmt: skip
    "vit-gpt2": lambda: (
        ViTConfig(**VIT),
        GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, is_decoder=True, add_cross_attention=True, **TOKENS),
    ),
    # Donut: a non-square image; an mBART decoder whose config counts more (unused) encoder layers, as Donut's and Nougat's do
    "donut-mbart": lambda: (
        DonutSwinConfig(image_size=[32, 24], patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=2),
        MBartConfig(
            vocab_size=VOCAB,
            d_model=32,
            decoder_layers=2,
            encoder_layers=4,
            decoder_attention_heads=4,
            encoder_attention_heads=4,
            decoder_ffn_dim=37,
            encoder_ffn_dim=37,
            max_position_embeddings=64,
            is_decoder=True,
            add_cross_attention=True,
            **TOKENS,
        ),
    ),  # fmt: skip
    "vit-roberta": lambda: (
        ViTConfig(**VIT),
        RobertaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=70,
            is_decoder=True,
            add_cross_attention=True,
            **TOKENS,
        ),
    ),
    "deit-bert": lambda: (
        DeiTConfig(**VIT),
        BertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            is_decoder=True,
            add_cross_attention=True,
            pad_token_id=1,
        ),
    ),  # fmt: skip
}


@pytest.fixture(scope="module")
def vision_seq2seq(tmp_path_factory, tokenizer_dir):
    """Factory: pair name -> (folder, transformers model); weights drawn wide (std 0.3) so that greedy tokens vary."""

    def make(name: str):
        torch.manual_seed(0)
        config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(*PAIRS[name]())
        config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 0, 1, 2
        model = VisionEncoderDecoderModel(config).eval()
        with torch.no_grad():
            for key, weight in model.named_parameters():
                if "norm" not in key and weight.dim() > 1:
                    weight.normal_(0, 0.3)
        model.generation_config.update(decoder_start_token_id=0, pad_token_id=1, eos_token_id=2)
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
        return folder, model

    return make


def _pixels(n: int = 3, size: tuple[int, int] = (32, 32)) -> torch.Tensor:
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(7))


def _size(hf) -> tuple[int, int]:
    size = hf.config.encoder.image_size
    return (size, size) if isinstance(size, int) else tuple(size)


@pytest.mark.parametrize("name", list(PAIRS))
def test_tokens_are_transformers(vision_seq2seq, name):
    """Three images on batch_size=2: greedy and 3-beam tokens equal transformers' generate, each row to its end."""
    folder, hf = vision_seq2seq(name)
    model = QEFFAutoModelForVisionEncoderDecoder.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pixels = _pixels(3, _size(hf))
    for options in ({"num_beams": 1}, {"num_beams": 3}):
        with torch.no_grad():
            expected = hf.generate(pixel_values=pixels, max_new_tokens=12, do_sample=False, **options)
        info = model.generate(tokenizer, inputs={"pixel_values": pixels}, generation_len=12, **options)
        rows = [row for batch in info.generated_ids for row in batch]
        assert len(rows) == 3
        for row, want in zip(rows, expected.tolist()):
            ends = [i for i, t in enumerate(want) if i and t == 2]
            want = want[: ends[0] + 1] if ends else want
            assert row[: len(want)].tolist() == want, options
        assert len({tuple(r[1:6].tolist()) for r in rows}) > 1 or len(set(rows[0][1:].tolist())) > 1  # not degenerate
        assert info.texts == tokenizer.batch_decode(rows, skip_special_tokens=True)


def test_transformers_spelling_and_the_image_text_class(vision_seq2seq):
    """``generate(pixel_values, max_new_tokens=...)`` as transformers' generate; QEFFAutoModelForImageTextToText loads
    such a checkpoint as this class."""
    folder, hf = vision_seq2seq("vit-gpt2")
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder)
    assert isinstance(model, QEFFAutoModelForVisionEncoderDecoder)
    model.compile(ctx_len=32, num_cores=1)
    pixels = _pixels(1)
    with torch.no_grad():
        expected = hf.generate(pixel_values=pixels, max_new_tokens=8, do_sample=False)
    assert model.generate(pixels, max_new_tokens=8).generated_ids[0][0].tolist() == expected[0].tolist()


@pytest.mark.parametrize("name", ["donut-mbart", "vit-trocr"])
def test_a_decoder_prompt_starts_the_sequence_as_in_transformers(vision_seq2seq, name):
    """``decoder_input_ids`` (a Donut task prompt): taken as it is for Donut, after the start token for the others (as
    transformers' generate puts it), greedy and with beams; the outputs begin with the prompt."""
    folder, hf = vision_seq2seq(name)
    model = QEFFAutoModelForVisionEncoderDecoder.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=2, num_cores=1)
    pixels, prompt = _pixels(2, _size(hf)), torch.tensor([[5, 17, 42]] * 2)
    for options in ({"num_beams": 1}, {"num_beams": 2}):
        with torch.no_grad():
            expected = hf.generate(pixel_values=pixels, decoder_input_ids=prompt, max_new_tokens=8, do_sample=False, **options)
        info = model.generate(pixels, decoder_input_ids=prompt, max_new_tokens=8, **options)
        rows = [row.tolist() for batch in info.generated_ids for row in batch]
        assert [r[: expected.shape[1]] for r in rows] == expected.tolist(), options
        assert rows[0][:4] == ([5, 17, 42, rows[0][3]] if name == "donut-mbart" else [0, 5, 17, 42])
    tok = AutoTokenizer.from_pretrained(folder)  # Donut's text keeps its special tokens (its tags), less end and pad
    ids = [tok.bos_token_id, 5, tok.eos_token_id, tok.pad_token_id]
    donut = name == "donut-mbart"
    assert model.text_of(tok, ids) == (tok.decode(ids[:2]) if donut else tok.decode(ids, skip_special_tokens=True))
    with pytest.raises(ValueError, match="needs ctx_len >= 3[34]"):
        model.generate(pixels, decoder_input_ids=prompt, max_new_tokens=31)


def test_bad_inputs_say_what_to_pass(vision_seq2seq):
    folder, _ = vision_seq2seq("vit-gpt2")
    model = QEFFAutoModelForVisionEncoderDecoder.from_pretrained(folder)
    with pytest.raises(ValueError, match="ctx_len .* exceeds the model's max_position_embeddings"):
        model.compile(ctx_len=65, num_cores=1)
    model.compile(ctx_len=32, num_cores=1)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with pytest.raises(ValueError, match="reads images, not prompts"):
        model.generate(tokenizer, ["a caption"])
    for shape in ((1, 1, 32, 32), (1, 3, 32, 24)):
        with pytest.raises(ValueError, match=r"pixel_values must be \[images, 3, 32, 32\] \(the encoder's image size"):
            model.generate(tokenizer, inputs={"pixel_values": np.zeros(shape, np.float32)})
    with pytest.raises(TypeError, match="is not a VisionEncoderDecoderModel"):
        QEFFAutoModelForVisionEncoderDecoder(torch.nn.Module())


def test_an_unproven_decoder_is_refused_with_the_switch():
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(
        ViTConfig(**VIT),
        RemBertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            input_embedding_size=16,
            output_embedding_size=16,
            is_decoder=True,
            add_cross_attention=True,
        ),
    )
    with pytest.raises(NotImplementedError, match="'rembert' decoder is not proven here .* QEFF_ALLOW_ANY_ARCHITECTURE=1"):
        QEFFAutoModelForVisionEncoderDecoder(VisionEncoderDecoderModel(config))


def test_server_answers_an_image_in_chat(vision_seq2seq):
    """``serve`` on an image encoder-decoder: /v1/chat/completions with one image (a data: URL) gives transformers'
    tokens after the start token, or after a text prompt (the decoder's), streamed or not, with each token's logprob
    (transformers' logits log-softmaxed); what it cannot take is refused with what to send."""
    import base64
    import io
    import json

    from PIL import Image
    from transformers import ViTImageProcessor

    from QEfficient.cloud.serve import build_server
    from tests.helpers import serve_on_loopback

    folder, hf = vision_seq2seq("vit-gpt2")
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    processor.save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (40, 48, 3), dtype=np.uint8))
    png = io.BytesIO()
    image.save(png, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    prompt = tok("hello world", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = hf.generate(pixel_values=pixels, max_new_tokens=8, do_sample=False, output_logits=True, return_dict_in_generate=True)
    plain = out.sequences[0, 1:].tolist()
    plain_logprobs = [float(torch.log_softmax(step[0].double(), -1)[t]) for step, t in zip(out.logits, plain)]
    with torch.no_grad():
        prompted = hf.generate(pixel_values=pixels, decoder_input_ids=torch.tensor([[0, *prompt]]), max_new_tokens=8, do_sample=False)
    prompted = prompted[0, 1 + len(prompt) :].tolist()
    app, runner = build_server(str(folder), None, prefill_seq_len=1, ctx_len=32, full_batch_size=1, num_cores=1)

    def message(text: str | None = None) -> list[dict]:
        parts = [{"type": "image_url", "image_url": {"url": url}}] + ([{"type": "text", "text": text}] if text else [])
        return [{"role": "user", "content": parts}]

    try:
        with serve_on_loopback(app) as base:

            def post(path="/v1/chat/completions", **body) -> httpx.Response:
                return loopback_http.post(f"{base}{path}", json=body, timeout=120)

            for text, expected in ((None, plain), ("hello world", prompted)):
                r = post(messages=message(text), max_tokens=8, temperature=0, logprobs=True, top_logprobs=2)
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["choices"][0]["message"]["content"] == tok.decode(expected, skip_special_tokens=True)
                logprobs = body["choices"][0]["logprobs"]["content"]
                assert [e["token"] for e in logprobs] == [tok.decode([t]) for t in expected]
                assert all(len(e["top_logprobs"]) == 2 and e["top_logprobs"][0]["logprob"] >= e["logprob"] for e in logprobs)
                if text is None:
                    np.testing.assert_allclose([e["logprob"] for e in logprobs], plain_logprobs, atol=1e-4)
                assert body["usage"]["completion_tokens"] == len(expected) and body["object"] == "chat.completion"
                streamed = post(messages=message(text), max_tokens=8, temperature=0, stream=True, logprobs=True, top_logprobs=2)
                chunks = [json.loads(line[6:]) for line in streamed.text.split("\n\n") if line.startswith("data: {")]
                assert [e for c in chunks for e in ((c["choices"][0]["logprobs"] or {}).get("content") or [])] == logprobs
                content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
                assert content == body["choices"][0]["message"]["content"] and streamed.text.endswith("data: [DONE]\n\n")
                assert chunks[-1]["choices"][0]["finish_reason"] == body["choices"][0]["finish_reason"]
            plain_chat = post(messages=message(), max_tokens=8, temperature=0, add_special_tokens=False)  # vLLM's chat default
            assert plain_chat.status_code == 200 and plain_chat.json()["choices"][0]["message"]["content"] == tok.decode(
                plain, skip_special_tokens=True
            )
            full = tok.decode(plain, skip_special_tokens=True)
            stop = full[len(full) // 2 : len(full) // 2 + 2]  # vLLM's stop strings: the answer ends before the first
            assert len(stop) == 2, full
            for streaming in (False, True):
                r = post(messages=message(), max_tokens=8, temperature=0, stop=stop, stream=streaming)
                if streaming:
                    chunks = [json.loads(line[6:]) for line in r.text.split("\n\n") if line.startswith("data: {")]
                    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
                    choice = chunks[-1]["choices"][0]
                else:
                    choice = r.json()["choices"][0]
                    content = choice["message"]["content"]
                assert content == full[: full.index(stop)]
                assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", stop)
            # n samples of the one image, as generate(num_return_sequences=n) writes them (no top-k: vLLM's default where
            # the checkpoint sets none); streamed, the same
            sampled = dict(messages=message(), max_tokens=8, temperature=1.0, seed=3, n=3, logprobs=True)
            whole = post(**sampled).json()
            vision_model = QEFFAutoModelForVisionEncoderDecoder.from_pretrained(folder)
            vision_model.compile(ctx_len=32, num_cores=1)  # the server's artifact, from the cache
            with_seed = vision_model.generate(
                tok,
                inputs={"pixel_values": pixels.numpy()},
                generation_len=8,
                do_sample=True,
                temperature=1.0,
                seed=3,
                num_return_sequences=3,
                top_k=0,
            )
            texts = [text for batch in with_seed.generated_texts for text in batch]
            assert [c["message"]["content"] for c in whole["choices"]] == texts and len(set(texts)) > 1
            assert [c["index"] for c in whole["choices"]] == [0, 1, 2]
            assert whole["usage"]["completion_tokens"] == sum(len(c["logprobs"]["content"]) for c in whole["choices"])
            streamed = post(**sampled, stream=True, stream_options={"include_usage": True})
            chunks = [json.loads(line[6:]) for line in streamed.text.split("\n\n") if line.startswith("data: {")]
            for i, text in enumerate(texts):
                mine = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == i]
                assert "".join(c["delta"].get("content", "") for c in mine) == text
                assert mine[0]["delta"]["role"] == "assistant" and mine[-1]["finish_reason"] == whole["choices"][i]["finish_reason"]
            assert chunks[-1]["usage"] == whole["usage"]
            usage = {"include_usage": True, "continuous_usage_stats": True}
            streamed = post(messages=message(), max_tokens=8, temperature=0, stream=True, stream_options=usage)
            chunks = [json.loads(line[6:]) for line in streamed.text.split("\n\n") if line.startswith("data: {")]
            generated = [c["usage"]["completion_tokens"] for c in chunks]
            assert generated == sorted(generated) and generated[-1] == len(plain) and chunks[-1]["choices"] == []
            assert chunks[-1]["usage"]["prompt_tokens"] == chunks[0]["usage"]["prompt_tokens"] > 1
            for bad, words in (
                ({"messages": message(), "tools": [{"type": "function", "function": {"name": "f"}}]}, "'tools' is not applied"),
                ({"messages": message("hello"), "max_tokens": 32, "stream": True}, "need more than the decoder's 32 slots"),
                ({"messages": [{"role": "user", "content": message()[0]["content"] + [{"type": "text", "text": 3}]}]}, "must be a string"),
                ({"messages": [{"role": "user", "content": "no image"}]}, "exactly one image_url part"),
                ({"messages": message() * 2}, "one user message"),
                ({"messages": message(), "top_logprobs": 2}, 'needs "logprobs": true'),
            ):
                r = post(**bad)
                assert r.status_code == 400 and words in r.json()["error"]["message"], r.text
            r = post("/v1/completions", prompt="x")
            assert r.status_code == 400 and "/v1/chat/completions" in r.json()["error"]["message"]
    finally:
        runner.stop()


def test_infer_reads_an_image_file(vision_seq2seq, tmp_path, capsys):
    """``infer --image_path`` on an image encoder-decoder: transformers' tokens, after ``--prompt`` as the decoder's
    prompt where given; without an image it says what to pass."""
    from PIL import Image
    from transformers import ViTImageProcessor

    from QEfficient.cloud import infer

    folder, hf = vision_seq2seq("vit-trocr")
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    processor.save_pretrained(folder)
    image = Image.fromarray(np.random.default_rng(4).integers(0, 255, (36, 30, 3), dtype=np.uint8))
    image.save(tmp_path / "page.png")
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    prompt = AutoTokenizer.from_pretrained(folder)("hello", add_special_tokens=False)["input_ids"]
    for text, decoder in ((None, None), ("hello", torch.tensor([[0, *prompt]]))):
        with torch.no_grad():
            expected = hf.generate(pixel_values=pixels, decoder_input_ids=decoder, max_new_tokens=6, do_sample=False)[0].tolist()
        info = infer.main(model_name=str(folder), image_path=str(tmp_path / "page.png"), prompt=text, ctx_len=32, generation_len=6)
        assert info.generated_ids[0][0][: len(expected)].tolist() == expected
        assert f"Output : {info.texts[0]}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="reads images: pass --image_path or --image_url"):
        infer.main(model_name=str(folder), ctx_len=32)
