"""DeepSeek Sparse Attention (deepseek_v32, glm_moe_dsa, axk2, hy_v4): the indexer chooses each query's keys in the
graph, so a context past ``index_topk`` keys generates HF's tokens. The architecture sweep checks every DSA type with
an indexer that chooses 8 of up to 29 keys (tests/tiny_models.py); here, a longer run, a batch of two prompts of
different lengths and continuous batching, on a model whose tokens change when the indexer selects every key."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.transform.adapters.sparse_attention import _TopkOfWidth
from tests.helpers import hf_greedy, real_tokens
from tests.tiny_models import sweep_config

TOPK = 6
CTX = 96
N_NEW = 24
PROMPTS = [
    "Once upon a time a robot learned to paint the sky with colors nobody had seen before",
    "The quick brown fox jumps over the lazy dog while the farmer sleeps",
]


def tiny_dsa(index_topk: int):
    config = sweep_config("deepseek_v32")
    config.update(dict(index_topk=index_topk, index_n_heads=8))
    torch.manual_seed(3)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def dsa_dir(tmp_path_factory, tokenizer_dir):
    """A tiny DeepSeek-V3.2 whose indexer keeps TOPK keys per query."""
    folder = tmp_path_factory.mktemp("deepseek_v32")
    tiny_dsa(TOPK).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def references(dsa_dir):
    tok, hf = AutoTokenizer.from_pretrained(dsa_dir), AutoModelForCausalLM.from_pretrained(dsa_dir).eval()
    return [hf_greedy(hf, tok, prompt, N_NEW) for prompt in PROMPTS]


def test_the_indexer_choice_changes_the_tokens(dsa_dir, references):
    """Selecting every key (the graph before the indexer ran in it) would not give HF's tokens here."""
    tok = AutoTokenizer.from_pretrained(dsa_dir)
    assert all(len(tok(p)["input_ids"]) > 4 * TOPK for p in PROMPTS)
    every_key = [hf_greedy(tiny_dsa(CTX), tok, prompt, N_NEW) for prompt in PROMPTS]
    assert every_key != references


def test_a_batch_past_index_topk_equals_hf(dsa_dir, references):
    tok = AutoTokenizer.from_pretrained(dsa_dir)
    model = QEFFAutoModelForCausalLM.from_pretrained(dsa_dir)
    model.compile(prefill_seq_len=8, ctx_len=CTX, batch_size=2, num_cores=1)
    info = model.generate(tok, PROMPTS, generation_len=N_NEW, stream=False)
    for row, ref in zip(info.generated_ids[0], references):
        assert real_tokens(row, tok.pad_token_id, len(ref)) == ref


def test_continuous_batching_past_index_topk_equals_hf(dsa_dir, references):
    tok = AutoTokenizer.from_pretrained(dsa_dir)
    model = QEFFAutoModelForCausalLM.from_pretrained(dsa_dir, continuous_batching=True)
    model.compile(prefill_seq_len=8, ctx_len=CTX, full_batch_size=2, num_cores=1)
    prompts = PROMPTS + PROMPTS[::-1]  # more prompts than slots: a slot is reused after a sequence ends
    info = model.generate(tok, prompts, generation_len=N_NEW, stream=False)
    for row, ref in zip(info.generated_ids, references + references[::-1]):
        assert real_tokens(row, tok.pad_token_id, len(ref)) == ref


@pytest.mark.parametrize("topk", [torch.Tensor.topk, torch.topk], ids=["method", "function"])
def test_the_top_k_keeps_its_width_whatever_the_number_of_keys(topk):
    """transformers' indexers take topk(min(index_topk, keys)); while an indexer runs, either spelling picks exactly
    index_topk, and a pick past the keys a query sees becomes slot 0."""
    scores = torch.tensor([[[0.5, float("-inf"), 0.2]]])  # one query sees slots 0 and 2
    with _TopkOfWidth(4):
        values, picks = topk(scores, min(4, scores.shape[-1]), dim=-1)
    assert picks.tolist() == [[[0, 2, 0, 0]]] and torch.equal(values[..., :2], scores[..., [0, 2]])
