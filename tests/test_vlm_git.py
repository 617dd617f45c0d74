"""GIT (GitForCausalLM) beyond the sweep's one prompt: captions from pixels alone (HF generate starts them with BOS),
batches of prompts of other lengths, one image for several prompts, prompts without an image, continuous batching,
first-step logits; video checkpoints refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, GitConfig, GitForCausalLM

from QEfficient import QEFFAutoModelForImageTextToText
from QEfficient.transform.adapters import UnsupportedArchitectureError
from QEfficient.transform.vision_adapters import get_vision_adapter
from tests.image_text_sweep import image, record_prefill_logits
from tests.vlm_fixtures_positions import build_git


@pytest.fixture(scope="module")
def git(tmp_path_factory):
    folder = build_git(tmp_path_factory.mktemp("git") / "git")
    hf = GitForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return folder, hf, AutoProcessor.from_pretrained(folder)


def hf_tokens(hf, n: int, **inputs) -> list[list[int]]:
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=n, pad_token_id=0)
    start = inputs["input_ids"].shape[1] if "input_ids" in inputs else 1
    return out[:, start:].tolist()


def ours(model, inputs, n: int) -> list[list[int]]:
    info = model.generate(inputs=inputs, generation_len=n, stream=False)
    return [row[:n].tolist() for chunk in info.generated_ids for row in np.atleast_2d(chunk)]  # batches of rows


def trimmed(rows: list[list[int]], eos: int) -> list[list[int]]:
    return [row[: row.index(eos) + 1] if eos in row else row for row in rows]


@pytest.mark.parametrize("kv_offload", [True, False])
def test_captions_prompts_and_shared_images_equal_hf(git, kv_offload):
    folder, hf, processor = git
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=kv_offload)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    eos, n = hf.config.eos_token_id, 10
    images = [image(5), image(6, (50, 40))]

    # pixels alone: each caption starts with BOS, as HF generate(pixel_values=...) does
    captions = processor(images=images, return_tensors="pt")
    expected = hf_tokens(hf, n, pixel_values=captions["pixel_values"])
    assert expected[0] != expected[1]  # the image decides the caption
    assert trimmed(ours(model, captions, n), eos) == trimmed(expected, eos)

    # prompts of other lengths (left-padded by the processor), one image each
    prompts = ["Describe the picture", "What is in the picture in a few words"]
    inputs = processor(images=images, text=prompts, return_tensors="pt", padding=True)
    assert trimmed(ours(model, inputs, n), eos) == trimmed(hf_tokens(hf, n, **inputs), eos)

    # one image for every prompt: HF repeats its states
    shared = processor(images=images[:1], text=prompts, return_tensors="pt", padding=True)
    assert trimmed(ours(model, shared, n), eos) == trimmed(hf_tokens(hf, n, **shared), eos)

    # no image: the text alone, its positions from 0. Against each prompt alone: at decode HF widens the text's padding
    # mask by an image's tokens even when none was given, so its left-padded rows then see their padding
    text = processor(text=prompts, return_tensors="pt", padding=True)
    alone = [hf_tokens(hf, n, **processor(text=[p], return_tensors="pt"))[0] for p in prompts]
    assert trimmed(ours(model, text, n), eos) == trimmed(alone, eos)


def test_continuous_batching_and_first_step_logits(git, monkeypatch):
    folder, hf, processor = git
    recorded = record_prefill_logits(monkeypatch)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, kv_offload=True, continuous_batching=True)
    model.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_cores=1)
    images = [image(7), image(8, (30, 30)), image(9, (40, 40))]
    prompts = ["Describe the picture", "Name it", "What is in the picture in a few words"]
    # one request, the other slot idle at every decode step (its placeholder positions take GIT's one axis)
    alone = model.generate(processor=processor, images=images[:1], prompts=prompts[:1], generation_len=8, stream=False)
    ref = trimmed(hf_tokens(hf, 8, **processor(images=images[:1], text=prompts[:1], return_tensors="pt")), hf.config.eos_token_id)[0]
    assert alone.generated_ids[0][: len(ref)].tolist() == ref
    recorded.clear()
    info = model.generate(processor=processor, images=images, prompts=prompts, generation_len=8, stream=False)
    first_logits = dict(recorded)
    assert len(first_logits) == len(prompts)
    for img, text, row in zip(images, prompts, info.generated_ids):
        inputs = processor(images=[img], text=[text], return_tensors="pt")
        ref = trimmed(hf_tokens(hf, 8, **inputs), hf.config.eos_token_id)[0]
        assert row[: len(ref)].tolist() == ref
        with torch.no_grad():
            expected = hf(**inputs).logits[0, -1].numpy()
        text = inputs["input_ids"][0].tolist()
        (got,) = [logits for tokens, logits in first_logits.items() if list(tokens[-len(text) :]) == text]  # after the image's
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_a_bert_tokenizer_s_layouts_equal_hf(tmp_path):
    """A real GIT checkpoint's tokenizer is BERT's ([CLS] 101 = BOS, [SEP] 102 = EOS, [PAD] 0): the processor's
    [CLS] text [SEP], HF's documented question recipe ([CLS] + the question without special tokens) and captions from
    pixels alone give HF's tokens."""
    from transformers import BertTokenizer, CLIPImageProcessorPil, GitProcessor

    words = ["what", "is", "in", "the", "picture", "a", "of", "cat", "dog", "on"]
    vocab = ["[PAD]", *[f"[unused{i}]" for i in range(99)], "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    vocab += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    # as git-base's tokenizer config: no token type ids (GIT's generate takes none)
    tok = BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}, model_input_names=["input_ids", "attention_mask"])
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, max_position_embeddings=128)
    torch.manual_seed(1)
    hf = GitForCausalLM(GitConfig(vision_config=vision, vocab_size=len(vocab), **shape)).eval()  # bos 101, eos 102, pad 0
    with torch.no_grad():  # random init is small: widened, so that logits are far from ties
        for weight in (w for w in hf.parameters() if w.dim() > 1):
            weight.mul_(4.0)
    folder = tmp_path / "git-bert"
    hf.save_pretrained(folder)
    processor = GitProcessor(CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}), tok)
    processor.save_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=48, num_cores=1)
    img, question, n = image(3), "what is in the picture", 8
    pixels = processor(images=[img], return_tensors="pt")["pixel_values"]
    recipe = torch.tensor([[tok.cls_token_id, *tok(question, add_special_tokens=False).input_ids]])
    layouts = {
        "processor": dict(processor(images=[img], text=[question], return_tensors="pt")),
        "recipe": {"pixel_values": pixels, "input_ids": recipe},
        "caption": {"pixel_values": pixels},
    }
    assert layouts["processor"]["input_ids"][0, -1] == 102 and recipe[0, 0] == 101
    for name, inputs in layouts.items():
        assert ours(model, inputs, n) == hf_tokens(hf, n, **inputs), name


def test_video_checkpoints_are_refused_with_the_reason():
    config = GitConfig(num_image_with_embedding=6)
    with pytest.raises(UnsupportedArchitectureError, match="video frames"):
        get_vision_adapter(config)
