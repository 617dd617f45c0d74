"""QEFFAutoModelForCausalLM.generate(num_beams=...): transformers' beam search, its tokens, on tiny models (the fused
graph and the plain one, prompts of different lengths in one batch, the checkpoint's logits processors); the real
SmolLM2's in tests/test_smollm2.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM

PROMPTS = ["hello world the cat sat on", "a b", "the quick brown fox jumps over the lazy dog and"]


def _hf_beams(hf, tokenizer, prompt: str, n: int, **kwargs) -> list[int]:
    enc = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id, **kwargs)
    return out[0, enc["input_ids"].shape[1] :].tolist()


def _ours(info, tokenizer) -> list[list[int]]:
    """Each prompt's tokens, up to and with its end token."""
    rows = [row for batch in info.generated_ids for row in batch]
    out = []
    for row in rows:
        ends = np.flatnonzero(row == tokenizer.eos_token_id)
        out.append(row[: ends[0] + 1].tolist() if len(ends) else row.tolist())
    return out


def _trimmed(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "plain"])
def test_beam_search_equals_transformers(tiny_model_dir, model_type, fuse):
    """Three prompts of 2-11 tokens on batch_size=2 (a full batch and a padded one), 3 beams, 10 new tokens."""
    folder = tiny_model_dir(model_type)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=4, ctx_len=64, batch_size=2, num_cores=1, fuse=fuse)
    info = model.generate(tokenizer, PROMPTS, generation_len=10, stream=False, num_beams=3)
    expected = [_trimmed(_hf_beams(hf, tokenizer, p, 10, num_beams=3), tokenizer.eos_token_id) for p in PROMPTS]
    assert _ours(info, tokenizer) == expected
    greedy = [_trimmed(_hf_beams(hf, tokenizer, p, 10), tokenizer.eos_token_id) for p in PROMPTS]
    assert expected != greedy  # the search chose other tokens than greedy decoding would
    assert info.generated_texts[0][0] == tokenizer.decode(expected[0], skip_special_tokens=True)


def test_beam_options_and_the_checkpoints_processors(tiny_model_dir):
    """length_penalty, early_stopping and min_new_tokens from the call; repetition_penalty and no_repeat_ngram_size from
    the checkpoint's generation config, which transformers' beam search applies (greedy generate() here does not)."""
    folder = tiny_model_dir("llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    cases = [
        dict(num_beams=4, length_penalty=0.5, early_stopping=True),
        dict(num_beams=2, min_new_tokens=8, early_stopping="never", length_penalty=-1.0),
    ]
    for kwargs in cases:
        info = model.generate(tokenizer, PROMPTS[:2], generation_len=12, stream=False, **kwargs)
        assert _ours(info, tokenizer) == [_trimmed(_hf_beams(hf, tokenizer, p, 12, **kwargs), tokenizer.eos_token_id) for p in PROMPTS[:2]]
    for config in (hf.generation_config, model.model.hf.generation_config):
        config.repetition_penalty, config.no_repeat_ngram_size = 1.5, 2
    info = model.generate(tokenizer, PROMPTS[:2], generation_len=12, stream=False, num_beams=3)
    assert _ours(info, tokenizer) == [_trimmed(_hf_beams(hf, tokenizer, p, 12, num_beams=3), tokenizer.eos_token_id) for p in PROMPTS[:2]]


def test_several_sequences_per_prompt(tiny_model_dir):
    """num_return_sequences=3 of 4 beams: each prompt's three best in turn, as transformers returns them (3 prompts on
    batch_size=2: a full batch and a padded one)."""
    folder = tiny_model_dir("llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    info = model.generate(tokenizer, PROMPTS, generation_len=8, stream=False, num_beams=4, num_return_sequences=3)
    expected = []
    for prompt in PROMPTS:
        enc = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = hf.generate(
                **enc, max_new_tokens=8, do_sample=False, num_beams=4, num_return_sequences=3, pad_token_id=tokenizer.pad_token_id
            )
        expected += [_trimmed(row.tolist(), tokenizer.eos_token_id) for row in out[:, enc["input_ids"].shape[1] :]]
    assert _ours(info, tokenizer) == expected and len(info.texts) == 9


def test_a_left_padded_batch_with_the_repetition_penalty_is_transformers(tiny_model_dir):
    """Two prompts of different lengths in one batch, as transformers runs them left-padded: the repetition penalty (here
    from the call) does not count the padding."""
    folder = tiny_model_dir("llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    kwargs = dict(num_beams=3, repetition_penalty=1.5, no_repeat_ngram_size=3)
    info = model.generate(tokenizer, PROMPTS[:2], generation_len=12, stream=False, **kwargs)
    tokenizer.padding_side = "left"
    enc = tokenizer(PROMPTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id, **kwargs)
    expected = [_trimmed(row.tolist(), tokenizer.eos_token_id) for row in out[:, enc["input_ids"].shape[1] :]]
    assert _ours(info, tokenizer) == expected


def test_bad_beam_requests_say_what_to_do(tiny_model_dir):
    folder = tiny_model_dir("llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    with pytest.raises(ValueError, match="apply to beam search: pass num_beams > 1"):
        model.generate(tokenizer, ["hi"], length_penalty=2.0, stream=False)
    with pytest.raises(ValueError, match="num_return_sequences=4 must be between 1 and num_beams=3"):
        model.generate(tokenizer, ["hi"], num_beams=3, num_return_sequences=4, stream=False)
    with pytest.raises(ValueError, match="not sampled"):
        model.generate(tokenizer, ["hi"], num_beams=3, temperature=0.7, stream=False)
    with pytest.raises(ValueError, match="num_beams must be a positive integer"):
        model.generate(tokenizer, ["hi"], num_beams=0, stream=False)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['diversity_penalty'\]"):
        model.generate(tokenizer, ["hi"], num_beams=2, diversity_penalty=0.5, stream=False)
    model.generate(tokenizer, ["hi"], num_beams=2, length_penalty=None, generation_len=2, stream=False)  # None: the default
    batching = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True)
    batching.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_cores=1)
    with pytest.raises(NotImplementedError, match="compile without continuous batching"):
        batching.generate(tokenizer, ["hi"], num_beams=2, stream=False)
