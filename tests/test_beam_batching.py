"""Beam search inside continuous batching (vLLM's use_beam_search on the server): a request's beams take slots of the
engine beside other requests, and its best hypotheses equal transformers' ``generate(num_beams=...)``."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.generation.beam_search import BeamSettings
from QEfficient.generation.continuous_batching import ContinuousBatchingEngine, Request
from QEfficient.generation.exec_kv import open_session
from tests.helpers import hf_greedy, tiny_chat_server
from tests.loopback import loopback_http
from tests.test_server import CHAT_TEMPLATE

PROMPTS = ["My name is", "Once upon a time a robot learned to paint", "The sun", "Numbers: 1 2 3"]


def hf_beams(hf, tok, prompt: str, beams: int, n: int, length_penalty: float = 1.0) -> list[list[int]]:
    """transformers' best ``beams`` hypotheses' new tokens, each up to and with its end token."""
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(
            **enc, do_sample=False, num_beams=beams, num_return_sequences=beams, max_new_tokens=n, length_penalty=length_penalty,
            early_stopping=False, pad_token_id=tok.pad_token_id,
        )  # fmt: skip
    rows = []
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        end = next((i for i, t in enumerate(row) if t == tok.eos_token_id), None)
        rows.append(row if end is None else row[: end + 1])
    return rows


@pytest.fixture(scope="module")
def cb_model(tiny_model_dir):
    folder = tiny_model_dir("qwen2")
    model = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True)
    model.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=4, num_cores=1)
    return model, AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()


def test_beams_beside_greedy_requests_equal_transformers(cb_model):
    """Two beam searches (3 and 2 beams) and greedy requests share 4 slots: a search waits for its slots, the greedy
    requests go on around it, and every result equals transformers' alone."""
    model, tok, hf = cb_model
    engine = ContinuousBatchingEngine(open_session(model.qpc_path, 1), 8, {tok.eos_token_id}, tok.pad_token_id)
    greedy = [Request(tok(p)["input_ids"], n) for p, n in ((PROMPTS[2], 12), (PROMPTS[3], 5))]
    beams = [
        Request(tok(PROMPTS[0])["input_ids"], 10, beams=BeamSettings(3, num_return_sequences=3)),
        Request(tok(PROMPTS[1])["input_ids"], 7, beams=BeamSettings(2, length_penalty=0.5, num_return_sequences=2)),
    ]
    engine.run_all([greedy[0], beams[0], greedy[1], beams[1]])
    assert beams[0].beam_outputs == hf_beams(hf, tok, PROMPTS[0], 3, 10)
    assert beams[1].beam_outputs == hf_beams(hf, tok, PROMPTS[1], 2, 7, length_penalty=0.5)
    for request, (prompt, n) in zip(greedy, ((PROMPTS[2], 12), (PROMPTS[3], 5))):
        assert request.output == hf_greedy(hf, tok, prompt, n)
    assert all(r.finish_reason in ("stop", "length") for r in beams + greedy) and not engine.busy_slots()
    assert beams[0].output == beams[0].beam_outputs[0]


def test_a_search_wider_than_the_engine_waits_for_nothing(cb_model):
    model, tok, _ = cb_model
    engine = ContinuousBatchingEngine(open_session(model.qpc_path, 1), 8, {tok.eos_token_id}, tok.pad_token_id)
    with pytest.raises(ValueError, match="num_beams"):
        engine.submit(Request(tok(PROMPTS[0])["input_ids"], 4, beams=BeamSettings(5, num_return_sequences=5)))


def test_use_beam_search_on_the_server(tiny_model_dir):
    """vLLM's use_beam_search: n beams, their n best hypotheses as the choices (completions and chat, streamed whole
    too); fields beam search does not read are refused."""
    import json

    folder = tiny_model_dir("llama")
    with tiny_chat_server(folder, CHAT_TEMPLATE, prefill_seq_len=8, ctx_len=96, full_batch_size=3) as (url, _, tok, hf):
        body = {"prompt": PROMPTS[1], "max_tokens": 6, "use_beam_search": True, "n": 3, "length_penalty": 1.0}
        answer = loopback_http.post(f"{url}/v1/completions", json=body, timeout=60).json()
        expected = hf_beams(hf, tok, PROMPTS[1], 3, 6)
        assert [c["text"] for c in answer["choices"]] == [tok.decode(e, skip_special_tokens=True) for e in expected]
        assert [c["index"] for c in answer["choices"]] == [0, 1, 2]
        assert answer["usage"]["completion_tokens"] == sum(len(e) for e in expected)
        usage = {"stream_options": {"include_usage": True, "continuous_usage_stats": True}}
        r = loopback_http.post(f"{url}/v1/completions", json=body | {"stream": True} | usage, timeout=60)
        chunks = [json.loads(line[6:]) for line in r.text.split("\n\n") if line.startswith("data: {")]
        assert [c["choices"][0]["text"] for c in chunks[:-1]] == [c["text"] for c in answer["choices"]]
        assert [c["usage"]["completion_tokens"] for c in chunks[:-1]] == [len(e) for e in expected]
        assert chunks[-1]["usage"] == answer["usage"] and chunks[-1]["choices"] == []
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "use_beam_search": True, "n": 2}
        chat |= {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}  # nothing to apply
        reply = loopback_http.post(f"{url}/v1/chat/completions", json=chat, timeout=60).json()
        assert len(reply["choices"]) == 2 and all(c["message"]["role"] == "assistant" for c in reply["choices"])
        refused = (({"n": 4}, "n"), ({"logprobs": 1}, "logprobs"), ({"stop": ["x"]}, "stop"), ({"echo": True}, "echo"))
        for extra, param in (*refused, ({"early_stopping": 1}, "early_stopping")):
            r = loopback_http.post(f"{url}/v1/completions", json=body | extra, timeout=60)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_a_failed_step_ends_the_search_once_and_frees_its_slots(cb_model):
    """A step that fails (here another request's callback) is recovered as the server's runner does it: every busy
    slot finished with an error; the search ends once, its slots freed, and the next requests run as alone."""
    model, tok, hf = cb_model
    engine = ContinuousBatchingEngine(open_session(model.qpc_path, 1), 8, {tok.eos_token_id}, tok.pad_token_id)
    done = []

    def boom(request, token):
        if len(request.output) == 3:
            raise RuntimeError("a callback failed")

    search = Request(tok(PROMPTS[0])["input_ids"], 10, beams=BeamSettings(2, num_return_sequences=2), on_done=done.append)
    engine.submit(Request(tok(PROMPTS[2])["input_ids"], 10, on_token=boom))
    engine.submit(search)
    with pytest.raises(RuntimeError, match="callback"):
        while engine.busy:
            engine.step()
    for slot in engine.busy_slots():  # as serving/runner.py recovers
        if engine.slots[slot] is not None:
            engine._finish(slot, "error")
    assert done == [search] and search.finish_reason == "error" and not engine.groups and not engine.busy_slots()
    after = Request(tok(PROMPTS[1])["input_ids"], 7, beams=BeamSettings(2, length_penalty=0.5, num_return_sequences=2))
    greedy = Request(tok(PROMPTS[3])["input_ids"], 5)
    engine.run_all([after, greedy])
    assert after.beam_outputs == hf_beams(hf, tok, PROMPTS[1], 2, 7, length_penalty=0.5)
    assert greedy.output == hf_greedy(hf, tok, PROMPTS[3], 5)
