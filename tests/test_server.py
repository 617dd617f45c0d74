"""The OpenAI-compatible server, over real HTTP on the loopback address."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from QEfficient.generation.continuous_batching import Request
from tests.helpers import hf_greedy, tiny_chat_server
from tests.loopback import loopback_http

PROMPTS = ["My name is", "The sun rises", "Once upon a time a robot", "What is the capital of France?", "Paris", "Numbers: 1 2"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    with tiny_chat_server(tiny_model_dir("llama"), CHAT_TEMPLATE, prefill_seq_len=8, ctx_len=96, full_batch_size=3, max_queue=32) as up:
        yield up


def complete(url: str, prompt, max_tokens: int = 12, **extra) -> dict:
    r = loopback_http.post(
        f"{url}/v1/completions", json={"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **extra}, timeout=60
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_health_and_models(server):
    url = server[0]
    assert loopback_http.get(f"{url}/health").json()["status"] == "ok"
    models = loopback_http.get(f"{url}/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"
    card = models["data"][0]
    assert card["max_model_len"] == 96 and card["root"] == card["id"] and card["parent"] is None  # vLLM's model card


def test_concurrent_greedy_requests_equal_offline(server):
    url, _, tok, hf = server
    prompts = PROMPTS * 2  # 12 requests on 3 slots
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda p: complete(url, p), prompts))
    for prompt, body in zip(prompts, results):
        expected = tok.decode(hf_greedy(hf, tok, prompt, 12), skip_special_tokens=True)
        assert body["choices"][0]["text"] == expected
        assert body["object"] == "text_completion" and body["usage"]["prompt_tokens"] == len(tok(prompt)["input_ids"])


def test_streaming_chunks_add_up(server):
    url, _, tok, hf = server
    with loopback_http.stream(
        "POST", f"{url}/v1/completions", json={"prompt": PROMPTS[2], "max_tokens": 10, "temperature": 0, "stream": True}, timeout=60
    ) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks)
    assert text == tok.decode(hf_greedy(hf, tok, PROMPTS[2], 10), skip_special_tokens=True)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_chat_completion_uses_the_chat_template(server):
    url, _, tok, hf = server
    messages = [{"role": "user", "content": "My name is"}]
    r = loopback_http.post(f"{url}/v1/chat/completions", json={"messages": messages, "max_tokens": 8, "temperature": 0}, timeout=60)
    assert r.status_code == 200, r.text
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = tok.decode(hf_greedy(hf, tok, prompt, 8), skip_special_tokens=True)
    assert r.json()["choices"][0]["message"] == {"role": "assistant", "content": expected}
    with loopback_http.stream(
        "POST", f"{url}/v1/chat/completions", json={"messages": messages, "max_tokens": 8, "temperature": 0, "stream": True}, timeout=60
    ) as s:
        chunks = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: ") and x != "data: [DONE]"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == expected


def test_a_stop_string_split_across_tokens_never_reaches_the_client(server):
    url, _, tok, hf = server
    prompt = PROMPTS[3]
    ids = hf_greedy(hf, tok, prompt, 16)
    full = tok.decode(ids, skip_special_tokens=True)
    bounds = [len(tok.decode(ids[:k], skip_special_tokens=True)) for k in range(1, len(ids))]
    # a 3-character stop string that starts in one token and ends in the next, first occurrence
    start = next(b - 1 for b in bounds if 1 <= b - 1 and b + 2 <= len(full) and full.find(full[b - 1 : b + 2]) == b - 1)
    stop = full[start : start + 3]
    for stream in (False, True):
        never = [f"zzzz-never-{i}" for i in range(9)]  # ten stop strings: more than OpenAI's 4, as vLLM takes them
        body = {"prompt": prompt, "max_tokens": 16, "temperature": 0, "stop": [stop, *never], "stream": stream}
        if stream:
            with loopback_http.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
                chunks = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: ") and x != "data: [DONE]"]
            text, choice = "".join(c["choices"][0]["text"] for c in chunks), chunks[-1]["choices"][0]
            assert all("stop_reason" not in c["choices"][0] for c in chunks[:-1])  # vLLM's: with the finish reason
        else:
            choice = loopback_http.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]
            text = choice["text"]
        assert (text, choice["finish_reason"], choice["stop_reason"]) == (full[:start], "stop", stop), (full, stop)


def test_a_stop_string_found_only_at_the_end_still_finishes_with_stop(server):
    """Where the engine's last event is the first to show the stop string (the text held back until then, as a split
    character at its end holds it), that event sends the text before it and finish reason "stop" (it once sent none)."""
    from QEfficient.generation.sampling import SamplingParams
    from QEfficient.serving.choices import ChoiceText, TokenText
    from QEfficient.serving.protocol import Job

    _, _, tok, hf = server
    ids = hf_greedy(hf, tok, PROMPTS[3], 16)
    full = tok.decode(ids, skip_special_tokens=True)
    cut = next(k for k in range(1, len(full) - 1) if full.find(full[k : k + 2]) == k)
    request = Request(tok(PROMPTS[3])["input_ids"], 16, output=list(ids), finish_reason="cancelled")
    job = Job(request.tokens, 16, SamplingParams(), stop=[full[cut : cut + 2]])
    choice = ChoiceText(tok, TokenText(tok), request, job, chat=False)
    assert choice.update(done=True, reason="cancelled")[:2] == (full[:cut], "stop")
    assert choice.stop_reason == full[cut : cut + 2]


def test_stop_strings_and_seeded_sampling(server):
    url, _, tok, hf = server
    full = complete(url, PROMPTS[3], 16)["choices"][0]["text"]
    cut = next(k for k in range(1, len(full) - 1) if full.find(full[k : k + 2]) == k)  # a first occurrence past the start
    stopped = complete(url, PROMPTS[3], 16, stop=[full[cut : cut + 2]])["choices"][0]
    assert (stopped["text"], stopped["finish_reason"]) == (full[:cut], "stop"), (full, cut)
    a = complete(url, PROMPTS[1], 10, temperature=1.0, seed=4)["choices"][0]["text"]
    b = complete(url, PROMPTS[1], 10, temperature=1.0, seed=4)["choices"][0]["text"]
    assert a == b


@pytest.mark.parametrize(
    "payload, status",
    [
        (b"{not json", 400),
        (json.dumps({"max_tokens": 5}).encode(), 400),  # no prompt
        (json.dumps({"prompt": "hi", "max_tokens": -1}).encode(), 400),
        (json.dumps({"prompt": "hi", "max_tokens": 500}).encode(), 400),  # beyond the context
        (json.dumps({"prompt": "hi", "n": 0}).encode(), 400),
        (json.dumps({"prompt": "hi", "n": 2.5}).encode(), 400),
        (json.dumps({"prompt": ["hi"] * 20, "n": 2}).encode(), 400),  # more choices than the queue takes
        (json.dumps({"prompt": "hi", "temperature": "hot"}).encode(), 400),
        (json.dumps(["not", "an", "object"]).encode(), 400),
    ],
)
def test_bad_input_is_a_4xx_and_the_server_keeps_serving(server, payload, status):
    url = server[0]
    r = loopback_http.post(f"{url}/v1/completions", content=payload, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status
    assert set(r.json()["error"]) >= {"message", "type"}
    assert complete(url, "My name is", 3)["choices"][0]["text"] is not None


def test_a_client_leaving_mid_stream_frees_its_slot(server):
    url, runner, _, _ = server
    with loopback_http.stream(
        "POST", f"{url}/v1/completions", json={"prompt": PROMPTS[2], "max_tokens": 80, "temperature": 0, "stream": True}, timeout=60
    ) as r:
        next(r.iter_lines())
    for _ in range(200):
        if not runner.engine.busy_slots():
            break
        time.sleep(0.05)
    assert not runner.engine.busy_slots()


def test_a_client_leaving_before_the_first_byte_frees_its_slot(tiny_model_dir):
    """A client gone as soon as its request is read (the disconnect waiting before the stream's first chunk) has its
    request aborted, as one leaving mid-stream has, not run to max_tokens. Driven through the app's ASGI interface,
    which lets the disconnect come at that moment every time."""
    import asyncio
    import re

    from starlette.testclient import TestClient

    from QEfficient.cloud.serve import build_server

    # 400 tokens: far more than a busy machine's event loop needs to see the disconnect (64 once finished first in CI)
    app, runner = build_server(str(tiny_model_dir("llama")), None, num_cores=1, prefill_seq_len=8, ctx_len=512, full_batch_size=3)
    body = json.dumps({"prompt": PROMPTS[2], "max_tokens": 400, "ignore_eos": True, "temperature": 0, "stream": True}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},  # uvicorn's
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/completions",
        "raw_path": b"/v1/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    def ended() -> tuple[float, ...]:  # requests ended aborted, and at their length, as /metrics counts them
        text = TestClient(app).get("/metrics").text
        pattern = 'vllm:request_success_total{{[^}}]*finished_reason="{}"[^}}]*}} (\\S+)'
        return tuple(sum(float(v) for v in re.findall(pattern.format(reason), text)) for reason in ("abort", "length"))

    try:
        asyncio.run(app(scope, receive, send))
        for _ in range(400):  # until the engine ended it (it may be between the inbox and a slot a while)
            if sum(ended()) and not runner.engine.busy_slots():
                break
            time.sleep(0.05)
        assert not any(m.get("body") for m in sent)  # nothing streamed
        assert ended() == (1, 0)
    finally:
        runner.stop()


def test_chat_echo_puts_the_continued_message_first(server):
    """vLLM's chat echo: where the last message is the assistant's (continue_final_message), the answer's content
    starts with its text (text parts joined by newlines), streamed as a chunk of its own after the role's; with
    another last role, nothing is echoed."""
    url = server[0]
    parts = [{"type": "text", "text": "Hi,"}, {"type": "text", "text": "I"}]
    turn = [{"role": "user", "content": "My name is"}, {"role": "assistant", "content": parts}]
    body = {"messages": turn, "add_generation_prompt": False, "continue_final_message": True, "max_tokens": 6, "temperature": 0}
    plain = post(url, "chat/completions", body).json()["choices"][0]["message"]["content"]
    echoed = post(url, "chat/completions", {**body, "echo": True}).json()["choices"][0]["message"]["content"]
    assert echoed == "Hi,\nI" + plain
    chunks = sse_chunks(url, "chat/completions", {**body, "echo": True})
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hi,\nI"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == echoed
    user_last = {"messages": turn[:1], "max_tokens": 4, "temperature": 0}
    answers = [post(url, "chat/completions", {**user_last, **extra}).json()["choices"][0]["message"] for extra in ({}, {"echo": True})]
    assert answers[0] == answers[1]


def test_full_queue_answers_429(server):
    url, runner, tok, _ = server
    # twice what the queue holds: the engine, 3 slots of 80 tokens at a time, cannot drain the
    # surplus in the moments the request takes to arrive
    blockers = [Request(tok("My name is")["input_ids"], 80) for _ in range(2 * runner.max_queue)]
    with runner.inbox.mutex:  # fill the queue without the engine draining it in between
        runner.inbox.queue.extend(blockers)
    try:
        r = loopback_http.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 2}, timeout=30)
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    finally:
        for b in blockers:
            b.cancelled.set()


def post(url: str, route: str, body: dict) -> httpx.Response:
    return loopback_http.post(f"{url}/v1/{route}", json=body, timeout=60)


def sse_chunks(url: str, route: str, body: dict) -> list[dict]:
    with loopback_http.stream("POST", f"{url}/v1/{route}", json={**body, "stream": True}, timeout=60) as r:
        assert r.status_code == 200
        lines = [x for x in r.iter_lines() if x.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(x[6:]) for x in lines[:-1]]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"prompt": "hi", "top_p": NaN}',
        b'{"prompt": "hi", "temperature": NaN}',
        b'{"prompt": "hi", "temperature": Infinity}',
        b'{"prompt": "hi", "temperature": 1e400}',  # parses to inf
        b'{"prompt": "hi", "max_tokens": 1' + b"0" * 5000 + b"}",  # beyond Python's int digit limit
        b'{"prompt": "\\ud800"}',  # a lone surrogate
        b'{"prompt": ["ok", "\\udc00x"]}',
        b'{"prompt": "hi", "\\ud800": 1}',
        b"[" * 100_000 + b"]" * 100_000,  # nested 100k deep
        b'{"prompt": "hi", "x": ' + b"[" * 70 + b"]" * 70 + b"}",  # beyond the nesting limit, not Python's
        b"\xff\xfe{}",  # not UTF-8
        b'{"prompt": "hi", "stream": "no"}',
        b'{"prompt": "hi", "stream": 1}',
        b'{"prompt": "hi", "n": true}',
        b'{"prompt": "hi", "n": 1.0}',
        b'{"prompt": "hi", "seed": 9223372036854775808}',  # beyond int64
        b'{"prompt": "hi", "seed": 1.5}',
        b'{"prompt": "hi", "max_tokens": true}',
        b'{"prompt": "hi", "top_p": 0}',
        b'{"prompt": "hi", "stop": [""]}',
        b'{"prompt": "hi", "stop": [' + b", ".join(b'"s%d"' % i for i in range(65)) + b"]}",  # beyond the 64 taken
        b'{"prompt": "hi", "model": 3}',
        b'{"prompt": "hi", "logprobs": 6}',
        b'{"prompt": "hi", "logprobs": true}',
        b'{"prompt": "hi", "stream_options": {"include_usage": true}}',  # only with stream: true
        b'{"prompt": "hi", "stream": true, "stream_options": {"include_usage": "yes"}}',
        b'{"prompt": "hi", "echo": 1}',
        b'{"prompt": "hi", "max_tokens": 0}',  # generates nothing: only with echo
        b'{"prompt": "hi", "max_tokens": 0, "echo": true, "min_tokens": 2}',
        b'{"prompt": "hi", "prompt_logprobs": 21}',
        b'{"prompt": "hi", "prompt_logprobs": 1, "stream": true}',  # vLLM's rule
        b'{"prompt": "hi", "best_of": 3}',
        b'{"prompt": []}',
        b'{"prompt": [[]]}',
        b'{"prompt": ["a", 1]}',
        b'{"prompt": [1, 2, 1000000]}',  # a token id outside the vocabulary
        b'{"prompt": [1, -2]}',
        b'{"prompt": [true]}',
        b'{"prompt": ["hi", ""]}',
    ],
)
def test_malformed_completion_input_is_a_400_in_openai_format(server, payload):
    url = server[0]
    r = loopback_http.post(f"{url}/v1/completions", content=payload, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error" and error["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2},  # needs logprobs: true
        {"messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 21},
        {"messages": [{"role": "user", "content": "hi"}], "logprobs": 1},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},  # completions' echo only
        {"messages": [{"role": "user", "content": "hi"}], "prompt_logprobs": 1, "stream": True},
        {"messages": []},
    ],
)
def test_malformed_chat_input_is_a_400(server, body):
    r = post(server[0], "chat/completions", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"logit_bias": {"5": 101}}, "logit_bias"),
        ({"logit_bias": {"word": 1}}, "logit_bias"),
        ({"logit_bias": {"\u00b2": 1}}, "logit_bias"),  # a digit to str.isdigit, not to int()
        ({"logit_bias": {"9" * 5000: 1}}, "logit_bias"),
        ({"n": 10**400}, "n"),
        ({"logit_bias": {"100000": 1}}, "logit_bias"),
        ({"min_p": 1.5}, "min_p"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tool_choice"),  # "auto": no parser
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "function"}], "tool_choice": "required"}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": "f"}}, "tool_choice"),
        (
            {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}},
            "tool_choice",
        ),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"top_k": -2}, "top_k"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
    ],
)
def test_fields_this_server_does_not_honour_are_refused_not_ignored(server, fields, param):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **fields}
    r = post(server[0], "chat/completions", body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_neutral_values_pass_and_top_k_and_repetition_penalty_are_honoured(server):
    url, _, tok, hf = server
    neutral = {"frequency_penalty": 0, "presence_penalty": 0, "logit_bias": {}, "response_format": {"type": "text"}}
    neutral |= {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0, **neutral}
    assert post(url, "chat/completions", body).status_code == 200
    greedy = complete(url, PROMPTS[0], 10)["choices"][0]["text"]
    assert complete(url, PROMPTS[0], 10, temperature=1.0, top_k=1, seed=3)["choices"][0]["text"] == greedy  # top-1 sampling is greedy
    ids = tok(PROMPTS[0], return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**ids, do_sample=False, max_new_tokens=10, repetition_penalty=1.8, pad_token_id=0)
    expected = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert complete(url, PROMPTS[0], 10, repetition_penalty=1.8)["choices"][0]["text"] == expected


class _VllmPenalties:
    """vLLM's logit_bias, presence and frequency penalties as a transformers logits processor (the generated tokens
    counted, not the prompt's), for the reference."""

    def __init__(self, prompt_len: int, presence: float, frequency: float, bias: dict[int, float]) -> None:
        self.prompt_len, self.presence, self.frequency, self.bias = prompt_len, presence, frequency, bias

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        for token, value in self.bias.items():
            scores[:, token] += value
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, input_ids[:, self.prompt_len :], torch.ones_like(input_ids[:, self.prompt_len :], dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


def test_presence_frequency_penalties_logit_bias_and_min_p_as_vllm(server):
    """OpenAI's presence_penalty, frequency_penalty and logit_bias (and vLLM's min_p): greedy answers equal
    transformers' greedy decoding with vLLM's penalties as a logits processor; min_p 1 keeps the likeliest token only."""
    from transformers import LogitsProcessorList

    url, _, tok, hf = server
    ids = tok(PROMPTS[5], return_tensors="pt")
    greedy = complete(url, PROMPTS[5], 12)["choices"][0]["text"]
    banned = tok(greedy, add_special_tokens=False)["input_ids"][0]  # the greedy answer's first token
    for options in ({"presence_penalty": 1.5, "frequency_penalty": 0.7}, {"logit_bias": {str(banned): -100.0}, "presence_penalty": -0.5}):
        bias = {int(k): v for k, v in options.get("logit_bias", {}).items()}
        processor = _VllmPenalties(ids["input_ids"].shape[1], options.get("presence_penalty", 0), options.get("frequency_penalty", 0), bias)
        with torch.no_grad():
            out = hf.generate(**ids, do_sample=False, max_new_tokens=12, logits_processor=LogitsProcessorList([processor]), pad_token_id=0)
        expected = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        got = complete(url, PROMPTS[5], 12, **options)["choices"][0]["text"]
        assert got == expected
        assert got != greedy
    assert complete(url, PROMPTS[5], 12, temperature=1.5, min_p=1.0, seed=4)["choices"][0]["text"] == greedy


def test_vllm_end_rules_stop_token_ids_min_tokens_ignore_eos(server):
    """vLLM's extensions: stop_token_ids end a choice as EOS does (the id counted, its text left out unless
    include_stop_str_in_output), min_tokens masks every ending id and ignores stop strings until that many tokens
    (transformers' min_new_tokens), ignore_eos lets EOS be generated, skip_special_tokens false shows it; streamed
    alike."""
    url, _, tok, hf = server
    prompt = PROMPTS[1]
    greedy = hf_greedy(hf, tok, prompt, 12)
    text = tok.decode(greedy, skip_special_tokens=True)
    first = next(i for i in range(2, 12) if greedy[i] not in greedy[:i])  # a token's first appearance
    stop_id = greedy[first]

    def answer(max_tokens: int = 12, **options) -> tuple[str, str, int]:
        body = complete(url, prompt, max_tokens, **options)
        return body["choices"][0]["text"], body["choices"][0]["finish_reason"], body["usage"]["completion_tokens"]

    def stop_reason(**options) -> str | int | None:  # vLLM's: the stop string or stop id that ended the choice
        return complete(url, prompt, 12, **options)["choices"][0]["stop_reason"]

    assert answer(stop_token_ids=[stop_id]) == (tok.decode(greedy[:first], skip_special_tokens=True), "stop", first + 1)
    assert stop_reason(stop_token_ids=[stop_id]) == stop_id and stop_reason() is None  # max_tokens: none
    with_stop = tok.decode(greedy[: first + 1], skip_special_tokens=True)
    assert answer(stop_token_ids=[stop_id], include_stop_str_in_output=True)[0] == with_stop
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**enc, do_sample=False, max_new_tokens=12, min_new_tokens=first + 2, eos_token_id=stop_id, pad_token_id=0)
    held = out[0, enc["input_ids"].shape[1] :].tolist()
    assert held != greedy[: len(held)]  # the stop id came later (or never)
    reason = "stop" if held[-1] == stop_id and len(held) < 12 else "length"
    shown = held[:-1] if reason == "stop" else held
    assert answer(stop_token_ids=[stop_id], min_tokens=first + 2) == (tok.decode(shown, skip_special_tokens=True), reason, len(held))
    assert tok.decode(greedy[:3], skip_special_tokens=True)[-2:] in text  # a stop string in the first tokens' text...
    stop = tok.decode(greedy[:3], skip_special_tokens=True)[-2:]
    assert answer(stop=[stop], min_tokens=12) == (text, "length", 12)  # ...ignored before min_tokens
    cut = text.find(stop)
    assert answer(stop=[stop], include_stop_str_in_output=True)[0] == text[: cut + len(stop)]
    for streamed in (False, True):  # one logprob per token id, those that wrote the hidden stop string too (vLLM's)
        body = {"prompt": prompt, "max_tokens": 12, "temperature": 0, "stop": [stop], "logprobs": 0, "return_token_ids": True}
        if streamed:
            chunks = sse_chunks(url, "completions", body)
            counted = sum(len((c["choices"][0].get("logprobs") or {}).get("tokens", [])) for c in chunks if c["choices"])
            ids = sum(len(c["choices"][0].get("token_ids") or []) for c in chunks if c["choices"])
        else:
            choice = complete(url, prompt, 12, stop=[stop], logprobs=0, return_token_ids=True)["choices"][0]
            counted, ids = len(choice["logprobs"]["tokens"]), len(choice["token_ids"])
        assert counted == ids > 0, streamed
    eos = {"logit_bias": {str(tok.eos_token_id): 100}}  # EOS first
    assert answer(**eos) == ("", "stop", 1)
    assert stop_reason(**eos) is None and stop_reason(**eos, stop_token_ids=[tok.eos_token_id]) is None  # EOS: none
    assert answer(**eos, ignore_eos=True) == ("", "length", 12)
    assert answer(**eos, ignore_eos=True, skip_special_tokens=False, max_tokens=3) == (tok.eos_token * 3, "length", 3)
    assert answer(**eos, min_tokens=3) == (tok.decode(greedy[:3], skip_special_tokens=True), "stop", 4)
    chunks = sse_chunks(url, "completions", {"prompt": prompt, "max_tokens": 12, "temperature": 0, "stop_token_ids": [stop_id]})
    assert "".join(c["choices"][0]["text"] for c in chunks) == tok.decode(greedy[:first], skip_special_tokens=True)
    assert chunks[-1]["choices"][0]["stop_reason"] == stop_id
    for bad in (
        {"stop_token_ids": [-1]},
        {"stop_token_ids": [10**6]},
        {"stop_token_ids": 5},
        {"stop_token_ids": [True]},
        {"min_tokens": 13},
        {"ignore_eos": "yes"},
        {"skip_special_tokens": 1},
        {"include_stop_str_in_output": 1},
    ):
        r = post(url, "completions", {"prompt": prompt, "max_tokens": 12, **bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == next(iter(bad)), r.text


def test_a_chat_answer_defaults_to_what_the_context_leaves(server):
    """Without max_tokens, a chat answer may run to the end of the context (vLLM's and OpenAI's default), a completion
    to 16 tokens (OpenAI's)."""
    url, _, tok, hf = server
    messages = [{"role": "user", "content": "My name is"}]
    body = post(url, "chat/completions", {"messages": messages, "temperature": 0}).json()
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = hf_greedy(hf, tok, prompt, 96 - body["usage"]["prompt_tokens"])  # the server's ctx_len is 96: prompt and answer
    assert body["choices"][0]["message"]["content"] == tok.decode(expected, skip_special_tokens=True)
    assert body["usage"]["completion_tokens"] == len(expected) and body["usage"]["total_tokens"] <= 96  # (vLLM's max_model_len)
    assert body["choices"][0]["finish_reason"] == ("length" if len(expected) == 96 - body["usage"]["prompt_tokens"] else "stop")
    r = post(url, "completions", {"prompt": PROMPTS[0], "max_tokens": 96})  # the prompt and max_tokens past the context
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
    full = [5 + i % 200 for i in range(96)]  # echo with max_tokens 0 scores a prompt that fills the context (it asks for none)
    scored = post(url, "completions", {"prompt": full, "max_tokens": 0, "echo": True, "logprobs": 0})
    assert scored.status_code == 200 and len(scored.json()["choices"][0]["logprobs"]["tokens"]) == 96, scored.text
    assert post(url, "completions", {"prompt": full + [5], "max_tokens": 0, "echo": True}).status_code == 400
    assert post(url, "completions", {"prompt": PROMPTS[0], "temperature": 0}).json()["usage"]["completion_tokens"] <= 16
    r = post(url, "chat/completions", {"messages": messages, "min_tokens": 96})  # more than the context leaves
    assert r.status_code == 400 and r.json()["error"]["param"] == "min_tokens", r.text


def test_prometheus_metrics_under_vllms_names(server):
    """GET /metrics: Prometheus text with vLLM's names and a model_name label; the counters move by what the requests
    used (prompt and generated tokens, requests by finish reason), the latency histograms count them."""
    from prometheus_client.parser import text_string_to_metric_families

    url, _, tok, _ = server

    def scrape() -> dict:
        r = loopback_http.get(f"{url}/metrics", timeout=30)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(r.text) for s in f.samples}

    before = scrape()
    model = loopback_http.get(f"{url}/v1/models").json()["data"][0]["id"]
    answers = [complete(url, p, 5) for p in PROMPTS[:3]]
    # the prompt alone (echo, max_tokens 0): the token the engine writes is not counted as generated
    answers.append(post(url, "completions", {"prompt": PROMPTS[3], "max_tokens": 0, "echo": True}).json())
    assert answers[-1]["usage"]["completion_tokens"] == 0
    after = scrape()

    def moved(name: str, **labels) -> float:
        key = (name, tuple(sorted({"model_name": model, **labels}.items())))
        return after[key] - before.get(key, 0.0)

    assert moved("vllm:prompt_tokens_total") == sum(a["usage"]["prompt_tokens"] for a in answers)
    assert moved("vllm:generation_tokens_total") == sum(a["usage"]["completion_tokens"] for a in answers)
    reasons = [a["choices"][0]["finish_reason"] for a in answers]
    assert moved("vllm:request_success_total", finished_reason="length") == reasons.count("length")
    assert moved("vllm:e2e_request_latency_seconds_count") == moved("vllm:time_to_first_token_seconds_count") == 4
    assert after[("vllm:num_requests_running", (("model_name", model),))] == 0


def test_n_choices_per_prompt(server):
    """OpenAI's n: n choices per prompt, indexed prompt by prompt; a seeded request's choice j samples as the same
    request with seed + j; greedy choices are equal; usage counts each prompt once; a chat stream opens every choice."""
    url = server[0]
    body = {"temperature": 1.0, "seed": 7}
    many = complete(url, PROMPTS[:2], 8, n=3, **body)
    assert [c["index"] for c in many["choices"]] == list(range(6))
    for p, prompt in enumerate(PROMPTS[:2]):
        for j in range(3):
            alone = complete(url, prompt, 8, temperature=1.0, seed=7 + j)["choices"][0]["text"]
            assert many["choices"][3 * p + j]["text"] == alone
    one = complete(url, PROMPTS[:2], 8, **body)
    assert many["usage"]["prompt_tokens"] == one["usage"]["prompt_tokens"]
    greedy = complete(url, PROMPTS[0], 8, n=2)["choices"]
    assert greedy[0]["text"] == greedy[1]["text"] == complete(url, PROMPTS[0], 8)["choices"][0]["text"]
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "n": 2, "stream": True, **body}
    with loopback_http.stream("POST", f"{url}/v1/chat/completions", json=chat, timeout=60) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    openers = [e["choices"][0]["index"] for e in events if e["choices"][0]["delta"].get("role") == "assistant"]
    assert openers == [0, 1]
    streamed = ["".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"][0]["index"] == i) for i in (0, 1)]
    whole = post(url, "chat/completions", {**chat, "stream": False}).json()["choices"]
    assert streamed == [c["message"]["content"] for c in whole]


def test_int64_seeds_are_accepted_and_reproducible(server):
    url = server[0]
    a = complete(url, PROMPTS[1], 6, temperature=1.0, seed=-1)["choices"][0]
    assert a["finish_reason"] in ("stop", "length")
    assert complete(url, PROMPTS[1], 6, temperature=1.0, seed=-1)["choices"][0]["text"] == a["text"]
    assert complete(url, PROMPTS[1], 6, temperature=1.0, seed=2**63 - 1)["choices"][0]["finish_reason"] in ("stop", "length")


def test_an_unknown_model_is_a_404(server):
    url = server[0]
    served = loopback_http.get(f"{url}/v1/models").json()["data"][0]["id"]
    assert complete(url, "Paris", 2, model=served)["model"] == served
    r = post(url, "completions", {"prompt": "Paris", "model": "gpt-4o"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = post(url, "chat/completions", {"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert loopback_http.get(f"{url}/no/such/route").json()["error"]["message"]  # OpenAI's error shape everywhere


def test_prompt_batches_of_strings_and_token_ids(server):
    url, _, tok, hf = server
    prompts = PROMPTS[:3]
    expected = [tok.decode(hf_greedy(hf, tok, p, 6), skip_special_tokens=True) for p in prompts]
    ids = [tok(p)["input_ids"] for p in prompts]
    for prompt in (prompts, ids):
        body = complete(url, prompt, 6)
        assert [c["index"] for c in body["choices"]] == [0, 1, 2]
        assert [c["text"] for c in body["choices"]] == expected
        assert body["usage"]["prompt_tokens"] == sum(len(i) for i in ids)
        assert body["usage"]["completion_tokens"] == sum(len(hf_greedy(hf, tok, p, 6)) for p in prompts)
    assert complete(url, ids[0], 6)["choices"][0]["text"] == expected[0]  # one prompt as token ids
    chunks = sse_chunks(url, "completions", {"prompt": prompts, "max_tokens": 6, "temperature": 0})
    for index, text in enumerate(expected):
        assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"][0]["index"] == index) == text


def test_echo_sends_the_prompt_before_the_completion(server):
    """OpenAI's echo: a string prompt as sent, token ids decoded; each of n choices, streamed with its first piece (as
    vLLM streams it); usage unchanged."""
    url, _, tok, hf = server
    prompts = PROMPTS[:2]
    expected = [tok.decode(hf_greedy(hf, tok, p, 6), skip_special_tokens=True) for p in prompts]
    ids = [tok(p)["input_ids"] for p in prompts]
    plain = complete(url, prompts, 6)
    for prompt in (prompts, ids):
        body = complete(url, prompt, 6, echo=True, n=2)
        assert [c["text"] for c in body["choices"]] == [p + e for p, e in zip(prompts, expected) for _ in range(2)]
        assert body["usage"] == {
            **plain["usage"],
            "completion_tokens": 2 * plain["usage"]["completion_tokens"],
            "total_tokens": plain["usage"]["prompt_tokens"] + 2 * plain["usage"]["completion_tokens"],
        }
    chunks = sse_chunks(url, "completions", {"prompt": prompts, "max_tokens": 6, "temperature": 0, "echo": True})
    for index, (prompt, text) in enumerate(zip(prompts, expected)):
        mine = [c["choices"][0]["text"] for c in chunks if c["choices"][0]["index"] == index]
        assert mine[0].startswith(prompt) and "".join(mine) == prompt + text
    assert complete(url, prompts[0], 6, echo=False)["choices"][0]["text"] == expected[0]
    with_bos = [tok.bos_token_id, *ids[0]]  # skip_special_tokens false: the echo keeps them, as its text_offset count them
    body = complete(url, with_bos, 6, echo=True, skip_special_tokens=False, logprobs=0)
    echo = tok.decode(with_bos, skip_special_tokens=False)
    assert body["choices"][0]["text"].startswith(echo) and echo.startswith(tok.bos_token)
    text, logprobs = body["choices"][0]["text"], body["choices"][0]["logprobs"]
    offsets = logprobs["text_offset"]
    assert [text[offsets[i] : offsets[i + 1]] for i in range(len(with_bos))] == logprobs["tokens"][: len(with_bos)]


def test_chat_content_as_a_list_of_text_parts(server):
    url = server[0]
    plain = [{"role": "system", "content": "Be brief.\nAlways."}, {"role": "user", "content": "My name is"}]
    parts = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Always."}]},
        {"role": "user", "content": [{"type": "text", "text": "My name is"}]},
    ]
    answers = [post(url, "chat/completions", {"messages": m, "max_tokens": 6, "temperature": 0}).json() for m in (plain, parts)]
    assert answers[0]["choices"][0]["message"] == answers[1]["choices"][0]["message"]
    assert answers[0]["usage"] == answers[1]["usage"]


def hf_step_logprobs(hf, tok, prompt: str, n: int) -> tuple[list[int], torch.Tensor]:
    """HF's greedy tokens and the log-softmax of its logits at each of those steps [n, V]."""
    ids = hf_greedy(hf, tok, prompt, n)
    prompt_ids = tok(prompt)["input_ids"]
    with torch.no_grad():
        logits = hf(torch.tensor([prompt_ids + ids[:-1]])).logits[0, len(prompt_ids) - 1 :]
    return ids, torch.log_softmax(logits.double(), -1)


def test_completion_logprobs_are_hf_log_softmax(server):
    url, _, tok, hf = server
    prompt, n, top = PROMPTS[0], 8, 3
    ids, reference = hf_step_logprobs(hf, tok, prompt, n)
    choice = complete(url, prompt, n, logprobs=top)["choices"][0]
    lp = choice["logprobs"]
    assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert len(lp["tokens"]) == len(ids)
    assert lp["tokens"] == [tok.decode([t]) for t in ids]
    assert lp["text_offset"] == [len(tok.decode(ids[:i], skip_special_tokens=True)) for i in range(len(ids))]
    for step, token in enumerate(ids):
        assert lp["token_logprobs"][step] == pytest.approx(reference[step, token].item(), abs=1e-4)
        values, best = reference[step].topk(top)
        expected = {tok.decode([int(t)]): v.item() for t, v in zip(best, values)}
        expected.setdefault(tok.decode([token]), reference[step, token].item())
        got = lp["top_logprobs"][step]
        assert got.keys() == expected.keys() and all(got[k] == pytest.approx(expected[k], abs=1e-4) for k in got)
    # streamed: the same logprobs, spread over the chunks
    chunks = sse_chunks(url, "completions", {"prompt": prompt, "max_tokens": n, "temperature": 0, "logprobs": top})
    streamed = {k: sum((c["choices"][0]["logprobs"][k] for c in chunks if c["choices"][0]["logprobs"]), []) for k in lp}
    assert streamed == lp
    assert complete(url, prompt, 2)["choices"][0]["logprobs"] is None


def test_chat_logprobs_and_top_logprobs(server):
    url, _, tok, hf = server
    messages, n, top = [{"role": "user", "content": "Once upon a time"}], 8, 4
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids, reference = hf_step_logprobs(hf, tok, prompt, n)
    body = {"messages": messages, "max_tokens": n, "temperature": 0, "logprobs": True, "top_logprobs": top}
    choice = post(url, "chat/completions", body).json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert [e["token"] for e in content] == [tok.decode([t]) for t in ids]
    for step, (entry, token) in enumerate(zip(content, ids)):
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert entry["logprob"] == pytest.approx(reference[step, token].item(), abs=1e-4)
        values, best = reference[step].topk(top)
        assert [e["token"] for e in entry["top_logprobs"]] == [tok.decode([int(t)]) for t in best]
        assert [e["logprob"] for e in entry["top_logprobs"]] == pytest.approx(values.tolist(), abs=1e-4)
    if choice["finish_reason"] == "length":  # the tokens' bytes make up the answer
        raw = b"".join(bytes(e["bytes"]) for e in content)
        assert raw.decode("utf-8", errors="replace") == choice["message"]["content"]
    chunks = sse_chunks(url, "chat/completions", body)
    assert sum((c["choices"][0]["logprobs"]["content"] for c in chunks if c["choices"][0]["logprobs"]), []) == content
    plain = post(url, "chat/completions", {**body, "top_logprobs": None}).json()["choices"][0]["logprobs"]["content"]
    assert [e["top_logprobs"] for e in plain] == [[]] * len(content)  # logprobs: true alone: the chosen tokens only


def test_stream_options_include_usage(server):
    url = server[0]
    body = {"prompt": PROMPTS[1], "max_tokens": 5, "temperature": 0}
    usage = complete(url, **body)["usage"]
    chunks = sse_chunks(url, "completions", {**body, "stream_options": {"include_usage": True}})
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    assert all(c["usage"] is None for c in chunks[:-1])
    assert all("usage" not in c for c in sse_chunks(url, "completions", body))
    chat = sse_chunks(
        url,
        "chat/completions",
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream_options": {"include_usage": True}},
    )
    assert chat[-1]["usage"]["completion_tokens"] >= 1 and chat[-1]["object"] == "chat.completion.chunk"
    options = {"include_usage": True, "continuous_usage_stats": True}  # vLLM's: each chunk its choice's usage so far
    steady = sse_chunks(url, "completions", {**body, "stream_options": options})
    counts = [c["usage"]["completion_tokens"] for c in steady[:-1]]
    assert counts == sorted(counts) and counts[-1] == usage["completion_tokens"] and steady[-1]["usage"] == usage
    assert all(c["usage"]["prompt_tokens"] == usage["prompt_tokens"] for c in steady)


def test_tokenize_detokenize_and_version(server):
    """vLLM's /tokenize (a prompt, or a chat through the template as a chat request is tokenized), /detokenize
    and /version, with the server's own tokenizer."""
    url, _, tok, _ = server
    r = loopback_http.post(f"{url}/tokenize", timeout=60, json={"prompt": "My name is Ada", "return_token_strs": True})
    assert r.status_code == 200, r.text
    ids = tok("My name is Ada")["input_ids"]
    assert r.json() == {"count": len(ids), "max_model_len": 96, "tokens": ids, "token_strs": tok.convert_ids_to_tokens(ids)}
    messages = [{"role": "user", "content": "My name is"}]
    chat = loopback_http.post(f"{url}/tokenize", timeout=60, json={"messages": messages}).json()
    assert chat["tokens"] == tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False)
    turn = [*messages, {"role": "assistant", "content": "Hi"}]
    body = {"messages": turn, "add_generation_prompt": False, "continue_final_message": True}
    expected = tok.apply_chat_template(turn, tokenize=True, continue_final_message=True, return_dict=False)
    assert loopback_http.post(f"{url}/tokenize", timeout=60, json=body).json()["tokens"] == expected  # vLLM's template fields too
    assert chat["token_strs"] is None
    assert loopback_http.post(f"{url}/detokenize", timeout=60, json={"tokens": ids}).json() == {"prompt": tok.decode(ids)}
    import QEfficient

    assert loopback_http.get(f"{url}/version").json() == {"version": QEfficient.__version__}
    for route, body, status, message in [
        ("/tokenize", {"prompt": "a", "messages": messages}, 400, "either 'prompt'"),
        ("/tokenize", {}, 400, "either 'prompt'"),
        ("/tokenize", {"prompt": ["a"]}, 400, "'prompt' must be a string"),
        ("/tokenize", {"messages": messages, "chat_template": "{{ messages }}"}, 400, "'chat_template' is not supported"),
        ("/tokenize", {"messages": messages, "continue_final_message": True}, 400, 'needs "add_generation_prompt": false'),
        ("/tokenize", {"prompt": "a", "model": "other"}, 404, "does not exist"),
        ("/detokenize", {"tokens": [1, 10**6]}, 400, "outside this model's vocabulary"),
        ("/detokenize", {"tokens": "1 2"}, 400, "'tokens' must be a list of token ids"),
    ]:
        r = loopback_http.post(f"{url}{route}", json=body, timeout=60)
        assert r.status_code == status and message in r.json()["error"]["message"], (route, body, r.text)
