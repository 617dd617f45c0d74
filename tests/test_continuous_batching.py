"""Continuous batching: many more prompts than slots, each result equal to the prompt run alone."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.generation.continuous_batching import ContinuousBatchingEngine, Request
from QEfficient.generation.exec_kv import open_session
from tests.helpers import hf_greedy, real_tokens

PROMPTS = [
    "My name is",
    "Once upon a time a robot learned to paint the sky blue and the grass green, then",
    "The sun",
    "What is the capital of France?",
    "A small model runs fast on a small machine",
    "Numbers: 1 2 3",
    "Paris",
    "The quiet sea",
    "Once upon a time",
]


@pytest.fixture(scope="module")
def cb_model(tiny_model_dir):
    folder = tiny_model_dir("qwen2")
    model = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True)
    model.compile(prefill_seq_len=8, ctx_len=160, full_batch_size=3, num_cores=1)
    return model, AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()


def test_every_prompt_equals_its_greedy_result_alone(cb_model, capsys):
    model, tok, hf = cb_model
    info = model.generate(tok, PROMPTS, generation_len=30, stream=True)
    out = capsys.readouterr().out
    assert out.count("Completion :") == len(PROMPTS)
    assert info.batch_size == 1 and len(info.generated_texts) == len(PROMPTS)
    assert info.texts == info.generated_texts  # flat, as QEfficient's: one completion per prompt, not its characters
    for prompt, row, text in zip(PROMPTS, info.generated_ids, info.generated_texts):
        ref = hf_greedy(hf, tok, prompt, 30)
        assert real_tokens(row, tok.pad_token_id, len(ref)) == ref, prompt
        assert text == tok.decode(ref, skip_special_tokens=True)


def test_slots_finishing_at_different_steps_are_refilled_at_once(cb_model):
    model, tok, hf = cb_model
    lengths = [5, 30, 12, 20, 3, 25, 8, 16, 1]
    session = open_session(model.qpc_path, 1)
    engine = ContinuousBatchingEngine(session, 8, {tok.eos_token_id}, tok.pad_token_id)
    admitted_while_busy = []

    def on_token(request, token):
        if len(request.output) == 1:  # its first token: was anything else in flight?
            admitted_while_busy.append(len(engine.busy_slots()) > 1)

    requests = [Request(tok(p)["input_ids"], n, on_token=on_token) for p, n in zip(PROMPTS, lengths)]
    engine.run_all(requests)
    for prompt, n, request in zip(PROMPTS, lengths, requests):
        assert request.output == hf_greedy(hf, tok, prompt, n), prompt
    assert sum(admitted_while_busy) >= 5  # refills happened next to running requests
    assert engine.decode_steps < sum(lengths)  # rows were advanced together


def test_continuous_batching_needs_full_batch_size(tiny_model_dir):
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("qwen2"), continuous_batching=True)
    with pytest.raises(TypeError, match="full_batch_size"):
        model.compile(prefill_seq_len=8, ctx_len=64)


def test_sampling_with_a_seed_is_reproducible_in_continuous_batching(cb_model):
    model, tok, _ = cb_model
    a = model.generate(tok, PROMPTS[:5], generation_len=10, stream=False, temperature=1.0, seed=5)
    b = model.generate(tok, PROMPTS[:5], generation_len=10, stream=False, temperature=1.0, seed=5)
    assert [r.tolist() for r in a.generated_ids] == [r.tolist() for r in b.generated_ids]


def test_a_request_that_fails_in_prefill_fails_alone(cb_model):
    model, tok, hf = cb_model
    session = open_session(model.qpc_path, 1)
    engine = ContinuousBatchingEngine(session, 8, {tok.eos_token_id}, tok.pad_token_id)
    done = []
    bad = Request([10**6], 5, on_done=done.append)  # a token id far outside the vocabulary
    good = [Request(tok(p)["input_ids"], 6) for p in PROMPTS[:4]]
    engine.run_all([good[0], bad, *good[1:]])
    assert bad.finish_reason == "error" and done == [bad]
    for prompt, request in zip(PROMPTS[:4], good):
        assert request.output == hf_greedy(hf, tok, prompt, 6)
