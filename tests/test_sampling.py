"""Sampling: greedy stays the default; transformers' semantics; a seed makes it reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.generation.sampling import SamplingParams, TokenChooser
from tests.helpers import real_tokens

PROMPTS = ["My name is", "The sun rises over the quiet sea"]


@pytest.fixture(scope="module")
def compiled(tiny_model_dir):
    folder = tiny_model_dir("llama")
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    return model, AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()


def rows(info):
    return [r.tolist() for batch in info.generated_ids for r in batch]


def test_temperature_zero_and_top_k_one_are_greedy(compiled):
    model, tok, _ = compiled
    greedy = rows(model.generate(tok, PROMPTS, generation_len=12, stream=False))
    assert rows(model.generate(tok, PROMPTS, generation_len=12, stream=False, temperature=0.0)) == greedy
    assert rows(model.generate(tok, PROMPTS, generation_len=12, stream=False, temperature=0.7, top_k=1, seed=3)) == greedy


def test_seed_makes_sampling_reproducible(compiled):
    model, tok, _ = compiled
    kwargs = dict(generation_len=16, stream=False, temperature=1.3, top_p=0.95, top_k=50)
    a = rows(model.generate(tok, PROMPTS, seed=11, **kwargs))
    b = rows(model.generate(tok, PROMPTS, seed=11, **kwargs))
    c = rows(model.generate(tok, PROMPTS, seed=12, **kwargs))
    assert a == b and a != c


def test_a_seeded_call_samples_each_prompt_apart(tiny_model_dir):
    """One seed for a call: the same prompt four times gives different samples (as the rows of one batch do), and the
    same ones on every run, in continuous batching and at batch size 1 as in a batch."""
    folder = tiny_model_dir("llama")
    tok = AutoTokenizer.from_pretrained(folder)
    kwargs = dict(generation_len=12, stream=False, do_sample=True, temperature=1.0, seed=3)
    for model, options in (
        (QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True), {"full_batch_size": 2}),
        (QEFFAutoModelForCausalLM.from_pretrained(folder), {"batch_size": 1}),
    ):
        model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1, **options)
        first = [np.asarray(r).tolist() for r in model.generate(tok, ["My name is"] * 4, **kwargs).generated_ids]
        again = [np.asarray(r).tolist() for r in model.generate(tok, ["My name is"] * 4, **kwargs).generated_ids]
        assert first == again and len({str(r) for r in first}) > 1, options


def test_repetition_penalty_matches_transformers(compiled):
    model, tok, hf = compiled
    info = model.generate(tok, PROMPTS, generation_len=16, stream=False, repetition_penalty=1.5)
    for prompt, row in zip(PROMPTS, rows(info)):
        enc = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            ref = hf.generate(**enc, do_sample=False, max_new_tokens=16, repetition_penalty=1.5, pad_token_id=tok.pad_token_id)
        ref = ref[0, enc["input_ids"].shape[1] :].tolist()
        assert real_tokens(row, tok.pad_token_id, len(ref)) == ref


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], dtype=np.float32))
    chooser = TokenChooser(SamplingParams(temperature=1.0, top_p=0.7, seed=0), 1, 4)
    picks = {int(chooser(logits)[0]) for _ in range(300)}
    assert picks == {0, 1}  # 0.5 alone is short of 0.7; 0.5 + 0.3 reaches it


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": -1},
        {"top_p": 0},
        {"top_k": -2},
        {"repetition_penalty": 0},
        {"min_p": 1.5},
        {"temperature": float("nan")},  # NaN passes every comparison: it would sample garbage
        {"temperature": float("inf")},
        {"repetition_penalty": float("nan")},
        {"presence_penalty": float("inf")},
        {"temperature": "0.7"},
        {"top_k": True},
        {"seed": -1},  # (numpy's own errors before)
        {"seed": 1.5},
        {"seed": True},
        {"do_sample": "yes"},
    ],
)
def test_bad_sampling_arguments(kwargs):
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)
    import numpy as np

    SamplingParams(temperature=np.float32(0.5), top_k=np.int64(3))  # numpy's scalars are numbers too


def test_a_prompt_id_past_the_head_is_not_penalized_nor_an_error():
    """Mllama's image token id equals the text vocabulary's size: the repetition penalty's history skips it."""
    chooser = TokenChooser(SamplingParams(repetition_penalty=1.5), 1, 8)
    chooser.prime([[1, 8, 3]])
    assert chooser.seen[0].tolist() == [False, True, False, True, False, False, False, False]


def test_presence_and_frequency_penalties_count_the_generated_tokens_only():
    """As vLLM and OpenAI: each generated token's logit loses presence_penalty once and frequency_penalty per time it
    was generated; the prompt's tokens are not counted (the repetition penalty counts them). A logit_bias is added
    before."""
    logits = np.array([[3.0, 2.9, 2.8, 0.0]], dtype=np.float32)
    chooser = TokenChooser(SamplingParams(presence_penalty=0.15, frequency_penalty=0.12), 1, 4)
    chooser.prime([[0, 1, 2]])  # the prompt: not counted
    picks = [int(chooser(logits)[0]) for _ in range(5)]
    # 0 (3.0), 1 (2.9 > 2.73), 2 (2.8 > 2.73, 2.63), 0 (2.73 > 2.63, 2.53), 1 (2.63 > 2.61 = 3.0 - 2 * 0.12 - 0.15, 2.53)
    assert picks == [0, 1, 2, 0, 1]
    assert chooser.counts[0].tolist() == [2, 2, 1, 0]
    biased = TokenChooser(SamplingParams(logit_bias=((3, 5.0), (0, -100.0))), 1, 4)
    assert int(biased(logits)[0]) == 3
    with pytest.raises(ValueError, match="logit_bias names token 7"):
        TokenChooser(SamplingParams(logit_bias=((7, 1.0),)), 1, 4)


def test_min_p_drops_tokens_less_likely_than_a_share_of_the_likeliest():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], dtype=np.float32))
    chooser = TokenChooser(SamplingParams(temperature=1.0, min_p=0.5, seed=0), 1, 4)
    assert {int(chooser(logits)[0]) for _ in range(300)} == {0, 1}  # 0.3 >= 0.5 * 0.5 > 0.15
    only_top = TokenChooser(SamplingParams(temperature=1.5, min_p=1.0, seed=0), 1, 4)
    assert {int(only_top(logits)[0]) for _ in range(50)} == {0}


def test_a_sampling_call_takes_the_checkpoints_warpers_as_transformers(tiny_model_dir):
    """do_sample=True without top_k / temperature / top_p: the checkpoint's generation config fills them, top_k 50
    where it names none, as transformers' generate (every token was drawn from the whole vocabulary at temperature 1)."""
    from transformers import GenerationConfig

    from QEfficient.generation.sampling import with_checkpoint_warpers

    asked = SamplingParams(do_sample=True, seed=1)
    assert with_checkpoint_warpers(asked, GenerationConfig()) == SamplingParams(1.0, 50, 1.0, do_sample=True, seed=1)
    checkpoint = GenerationConfig(do_sample=True, top_k=3, temperature=0.6, top_p=0.9)
    assert with_checkpoint_warpers(asked, checkpoint) == SamplingParams(0.6, 3, 0.9, do_sample=True, seed=1)
    assert with_checkpoint_warpers(SamplingParams(do_sample=True, top_k=7), checkpoint).top_k == 7  # the call's own stays
    assert with_checkpoint_warpers(SamplingParams(), checkpoint) == SamplingParams()  # greedy: as it is
    folder = tiny_model_dir("llama")
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=1, num_cores=1)
    model.model.hf.generation_config.top_k = 1  # the checkpoint's top_k of 1: sampling gives the greedy tokens
    tok = AutoTokenizer.from_pretrained(folder)
    greedy = rows(model.generate(tok, PROMPTS, generation_len=8, stream=False))
    assert rows(model.generate(tok, PROMPTS, generation_len=8, stream=False, do_sample=True, seed=5)) == greedy
