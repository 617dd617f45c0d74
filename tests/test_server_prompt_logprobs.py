"""A prompt's own logprobs over real HTTP: completions' echo with logprobs (what lm-evaluation-harness's
local-completions model sends to score answers), echo with max_tokens 0, and vLLM's prompt_logprobs; each checked
against transformers' log-softmax over the whole prompt, on the plain graph (one token a step) and on a speculative
target's (every position of a chunk at once)."""

from __future__ import annotations

import pytest
import torch

from QEfficient.cloud.serve import build_server
from tests.helpers import hf_greedy, serve_on_loopback, tiny_chat_server
from tests.test_server import CHAT_TEMPLATE, complete, post, sse_chunks

PROMPTS = ["The sun rises in the east and", "Once upon a time a robot"]
ANSWERS = [" sets in the west", " learned to sing"]


@pytest.fixture(scope="module", params=["plain", "speculative_target"])
def server(request, tiny_model_dir):
    """The plain graph scores a prompt one token a step; a prompt-lookup server's target graph, a chunk at a time."""
    folder = tiny_model_dir("llama")
    if request.param == "plain":
        with tiny_chat_server(folder, CHAT_TEMPLATE, prefill_seq_len=8, ctx_len=96, full_batch_size=2) as up:
            yield up
        return
    from transformers import AutoModelForCausalLM, AutoTokenizer

    app, runner = build_server(str(folder), None, 8, 96, 2, 1, prompt_lookup_num_tokens=3)
    try:
        with serve_on_loopback(app) as url:
            yield url, runner, AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()
    finally:
        runner.stop()


def hf_log_softmax(hf, ids: list[int]) -> torch.Tensor:
    """transformers' log-softmax at every position of ``ids`` [len, V] (row i scores the token after i)."""
    with torch.no_grad():
        return torch.log_softmax(hf(torch.tensor([ids])).logits[0].double(), -1)


def test_echo_with_logprobs_as_lm_evaluation_harness_scores_answers(server):
    """lm-evaluation-harness's loglikelihood request (echo, max_tokens 1, logprobs 1, temperature 0; token-id prompts in
    a batch) and its reading of the answer: the continuation's summed logprobs and whether it is the greedy one."""
    url, runner, tok, hf = server
    assert hasattr(runner.engine.session, "run_slot_all") == hasattr(runner.engine, "drafter")  # which path scores
    contexts = [tok(p)["input_ids"] for p in PROMPTS]
    continuations = [tok(a, add_special_tokens=False)["input_ids"] for a in ANSWERS]
    prompts = [c + a for c, a in zip(contexts, continuations)]
    body = {"prompt": prompts, "temperature": 0, "max_tokens": 1, "logprobs": 1, "seed": 1234, "echo": True}
    choices = sorted(post(url, "completions", body).json()["choices"], key=lambda c: c["index"])
    for choice, context, ids in zip(choices, contexts, prompts):
        reference = hf_log_softmax(hf, ids)
        lp = choice["logprobs"]
        assert len(lp["tokens"]) == len(ids) + 1  # the prompt's tokens, then the one generated
        assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
        expected = [reference[i - 1, ids[i]].item() for i in range(1, len(ids))]
        assert lp["token_logprobs"][1 : len(ids)] == pytest.approx(expected, abs=1e-4)
        # as lm-evaluation-harness reads it: token_logprobs[ctxlen:-1], greedy where each is its top entry
        ctxlen = len(context)
        assert sum(lp["token_logprobs"][ctxlen:-1]) == pytest.approx(sum(expected[ctxlen - 1 :]), abs=1e-3)
        greedy = all(t == max(top.values()) for t, top in zip(lp["token_logprobs"][ctxlen:-1], lp["top_logprobs"][ctxlen:-1]))
        assert greedy == all(reference[i - 1].argmax().item() == ids[i] for i in range(ctxlen, len(ids)))
        for i in range(1, len(ids)):  # the likeliest token and the prompt's own
            best = reference[i - 1].argmax().item()
            assert lp["top_logprobs"][i] == pytest.approx(
                {tok.decode([best]): reference[i - 1, best].item(), tok.decode([ids[i]]): reference[i - 1, ids[i]].item()}, abs=1e-4
            )
        assert lp["tokens"][: len(ids)] == [tok.decode([t]) for t in ids]
        echoed = tok.decode(ids, skip_special_tokens=True)  # token ids are echoed decoded
        assert lp["text_offset"][: len(ids)] == [len(tok.decode(ids[:i], skip_special_tokens=True)) for i in range(len(ids))]
        assert lp["text_offset"][-1] == len(echoed) and choice["text"].startswith(echoed)


def test_echo_with_logprobs_leaves_the_completion_as_it_was(server):
    """Scoring the prompt fills the cache as a prefill does: the completion and its logprobs follow unchanged; streamed,
    the prompt and its logprobs come with the first piece, and the pieces add up to the answer."""
    url, _, tok, hf = server
    prompt = PROMPTS[0]
    plain = complete(url, prompt, 6, logprobs=2)["choices"][0]
    echoed = complete(url, prompt, 6, logprobs=2, echo=True)["choices"][0]
    assert plain["text"] == tok.decode(hf_greedy(hf, tok, prompt, 6), skip_special_tokens=True)
    assert echoed["text"] == prompt + plain["text"]
    n = len(tok(prompt)["input_ids"])
    lp, mine = plain["logprobs"], echoed["logprobs"]
    assert mine["tokens"][n:] == lp["tokens"] and mine["token_logprobs"][n:] == pytest.approx(lp["token_logprobs"], abs=1e-5)
    assert mine["text_offset"][n:] == [len(prompt) + offset for offset in lp["text_offset"]]
    chunks = sse_chunks(url, "completions", {"prompt": prompt, "max_tokens": 6, "temperature": 0, "logprobs": 2, "echo": True})
    assert chunks[0]["choices"][0]["text"].startswith(prompt)
    assert "".join(c["choices"][0]["text"] for c in chunks) == echoed["text"]
    streamed = {k: sum((c["choices"][0]["logprobs"][k] for c in chunks if c["choices"][0]["logprobs"]), []) for k in mine}
    assert streamed["tokens"] == mine["tokens"] and streamed["text_offset"] == mine["text_offset"]
    assert streamed["token_logprobs"][0] is None and streamed["token_logprobs"][1:] == pytest.approx(mine["token_logprobs"][1:], abs=1e-5)


def test_echo_with_max_tokens_0_scores_the_prompt_alone(server):
    """vLLM's (and OpenAI's legacy) max_tokens 0 with echo: the prompt and its logprobs, no completion tokens."""
    url, _, tok, hf = server
    ids = tok(PROMPTS[1])["input_ids"]
    body = post(url, "completions", {"prompt": PROMPTS[1], "max_tokens": 0, "echo": True, "logprobs": 0}).json()
    choice = body["choices"][0]
    assert choice["text"] == PROMPTS[1]
    reference = hf_log_softmax(hf, ids)
    expected = [reference[i - 1, ids[i]].item() for i in range(1, len(ids))]
    assert choice["logprobs"]["token_logprobs"][1:] == pytest.approx(expected, abs=1e-4)
    assert len(choice["logprobs"]["tokens"]) == len(ids) and choice["finish_reason"] in ("length", "stop")
    assert body["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 0, "total_tokens": len(ids)}
    streamed = {"prompt": PROMPTS[1], "max_tokens": 0, "echo": True, "stream_options": {"include_usage": True}}
    chunks = sse_chunks(url, "completions", streamed)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == PROMPTS[1]
    assert chunks[-1]["usage"]["completion_tokens"] == 0
    assert post(url, "completions", {"prompt": PROMPTS[1], "max_tokens": 0}).status_code == 400


def test_vllm_prompt_logprobs_with_ranks(server):
    """vLLM's prompt_logprobs: per prompt token, null first, then {id: {logprob, rank, decoded_token}} for the token and
    the N likeliest; a chat answer has them once, beside its choices."""
    url, _, tok, hf = server
    ids = tok(PROMPTS[0])["input_ids"]
    choice = complete(url, PROMPTS[0], 2, prompt_logprobs=2)["choices"][0]
    reference = hf_log_softmax(hf, ids)
    scored = choice["prompt_logprobs"]
    assert len(scored) == len(ids) and scored[0] is None
    for i in range(1, len(ids)):
        row = reference[i - 1]
        order = row.argsort(descending=True).tolist()
        expected = {ids[i]: order.index(ids[i]) + 1, order[0]: 1, order[1]: 2}
        assert {int(k): v["rank"] for k, v in scored[i].items()} == expected
        for key, entry in scored[i].items():
            assert entry["logprob"] == pytest.approx(row[int(key)].item(), abs=1e-4)
            assert entry["decoded_token"] == tok.decode([int(key)])
    assert "prompt_logprobs" not in complete(url, PROMPTS[0], 2)["choices"][0]
    chat = post(url, "chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "prompt_logprobs": 0})
    answer = chat.json()
    assert chat.status_code == 200 and answer["prompt_logprobs"][0] is None
    n = answer["usage"]["prompt_tokens"]
    assert len(answer["prompt_logprobs"]) == n and all(len(entry) == 1 for entry in answer["prompt_logprobs"][1:])
