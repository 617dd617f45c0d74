"""The OpenAI-compatible server, over real HTTP on the loopback address."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn

from QEfficient.cloud.serve import build_server
from QEfficient.generation.continuous_batching import Request
from tests.helpers import hf_greedy

PROMPTS = ["My name is", "The sun rises", "Once upon a time a robot", "What is the capital of France?", "Paris", "Numbers: 1 2"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_model_dir("llama")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    app, runner = build_server(str(folder), None, prefill_seq_len=8, ctx_len=96, full_batch_size=3, num_cores=1, max_queue=32)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    yield url, runner, tok, AutoModelForCausalLM.from_pretrained(folder).eval()
    srv.should_exit = True
    thread.join(timeout=10)
    runner.stop()


def complete(url: str, prompt: str, max_tokens: int = 12, **extra) -> dict:
    r = httpx.post(f"{url}/v1/completions", json={"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **extra}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_health_and_models(server):
    url = server[0]
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    models = httpx.get(f"{url}/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["object"] == "model"


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
    with httpx.stream(
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
    r = httpx.post(f"{url}/v1/chat/completions", json={"messages": messages, "max_tokens": 8, "temperature": 0}, timeout=60)
    assert r.status_code == 200, r.text
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = tok.decode(hf_greedy(hf, tok, prompt, 8), skip_special_tokens=True)
    assert r.json()["choices"][0]["message"] == {"role": "assistant", "content": expected}
    with httpx.stream(
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
        body = {"prompt": prompt, "max_tokens": 16, "temperature": 0, "stop": [stop, "zzzz-never"], "stream": stream}
        if stream:
            with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
                chunks = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: ") and x != "data: [DONE]"]
            text, reason = "".join(c["choices"][0]["text"] for c in chunks), chunks[-1]["choices"][0]["finish_reason"]
        else:
            choice = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]
            text, reason = choice["text"], choice["finish_reason"]
        assert (text, reason) == (full[:start], "stop"), (full, stop)


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
        (json.dumps({"prompt": "hi", "n": 2}).encode(), 400),
        (json.dumps({"prompt": "hi", "temperature": "hot"}).encode(), 400),
        (json.dumps(["not", "an", "object"]).encode(), 400),
    ],
)
def test_bad_input_is_a_4xx_and_the_server_keeps_serving(server, payload, status):
    url = server[0]
    r = httpx.post(f"{url}/v1/completions", content=payload, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status
    assert set(r.json()["error"]) >= {"message", "type"}
    assert complete(url, "My name is", 3)["choices"][0]["text"] is not None


def test_a_client_leaving_mid_stream_frees_its_slot(server):
    url, runner, _, _ = server
    with httpx.stream(
        "POST", f"{url}/v1/completions", json={"prompt": PROMPTS[2], "max_tokens": 80, "temperature": 0, "stream": True}, timeout=60
    ) as r:
        next(r.iter_lines())
    for _ in range(200):
        if not runner.engine.busy_slots():
            break
        time.sleep(0.05)
    assert not runner.engine.busy_slots()


def test_full_queue_answers_429(server):
    url, runner, tok, _ = server
    # more than the queue holds: the engine may still move some of them into its free slots
    blockers = [Request(tok("My name is")["input_ids"], 80) for _ in range(runner.max_queue + 8)]
    with runner.inbox.mutex:  # fill the queue without the engine draining it in between
        runner.inbox.queue.extend(blockers)
    try:
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 2}, timeout=30)
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
    finally:
        for b in blockers:
            b.cancelled.set()
