"""The server as the command line builds it, against hostile clients: API key, body cap, slow
tokenization kept off the event loop, unexpected errors as JSON; and the flags it passes on."""

from __future__ import annotations

import threading

import pytest

from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import exposure_warning, parse_args
from QEfficient.compile.ort_cpu import read_artifact
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http

KEY = "sk-test-1234"
AUTH = {"authorization": f"Bearer {KEY}"}
LIMIT = 256 * 1024
HOLD_OVER = 100_000  # prompts longer than this wait in the tokenizer until the test lets them go
CRASH = "make the tokenizer crash"


class TokenizerHold:
    """Makes the server's real tokenizer wait, on long prompts, until released, as a slow
    tokenization would, and fail on one prompt; everything else goes to the real tokenizer."""

    def __init__(self, tokenizer) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        hold, base = self, type(tokenizer)

        class Held(base):
            def __call__(self, text, *args, **kwargs):
                if text == CRASH:
                    raise RuntimeError("tokenizer crashed")
                if isinstance(text, str) and len(text) > HOLD_OVER:
                    hold.entered.set()
                    hold.release.wait(120)
                return base.__call__(self, text, *args, **kwargs)

        tokenizer.__class__ = Held


@pytest.fixture(scope="module")
def guarded(tiny_model_dir):
    folder = tiny_model_dir("llama")
    argv = ["--model_name", str(folder), "--prefill_seq_len", "8", "--ctx_len", "96", "--full_batch_size", "2", "--num_cores", "1"]
    args = parse_args([*argv, "--api-key", KEY, "--max_body_bytes", str(LIMIT), "--mxfp6", "--mxint8_kv_cache"])
    app, runner = build_from_args(args)
    hold = TokenizerHold(app.state.tokenizer)
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, app, hold
        hold.release.set()
    runner.stop()


def test_cli_spellings_and_the_exposure_warning(monkeypatch):
    for flags in (["--mxfp6_matmul", "--mxint8_kv_cache"], ["--mxfp6-matmul", "--mxint8-kv-cache"], ["--mxfp6", "--mxint8"]):
        args = parse_args(flags)
        assert args.mxfp6_matmul and args.mxint8_kv_cache
    assert not parse_args([]).mxfp6_matmul
    monkeypatch.delenv("QEFF_API_KEY", raising=False)
    assert parse_args([]).api_key is None
    assert parse_args(["--api-key", "a"]).api_key == parse_args(["--api_key", "a"]).api_key == "a"
    monkeypatch.setenv("QEFF_API_KEY", "from-env")
    assert parse_args([]).api_key == "from-env" and parse_args(["--api-key", "b"]).api_key == "b"
    assert "--api-key" in exposure_warning("0.0.0.0", None)
    assert exposure_warning("example.org", "") is not None
    for host, key in (("127.0.0.1", None), ("localhost", None), ("::1", None), ("0.0.0.0", "k")):
        assert exposure_warning(host, key) is None


def test_the_server_runs_the_artifact_its_flags_ask_for(guarded):
    url, app, _ = guarded
    config = read_artifact(app.state.qpc_path)
    assert config["compile_params"]["mxfp6_matmul"] and config["compile_params"]["mxint8_kv_cache"]
    assert config["kv_dtype"] == "float16"
    r = loopback_http.post(
        f"{url}/v1/completions", json={"prompt": "My name is", "max_tokens": 4, "temperature": 0}, headers=AUTH, timeout=60
    )
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1


def test_every_route_but_health_needs_the_api_key(guarded):
    url = guarded[0]
    assert loopback_http.get(f"{url}/health").status_code == 200
    calls = [
        ("GET", "/v1/models", None),
        ("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 1}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}),
        ("GET", "/docs", None),
        ("GET", "/metrics", None),
        ("GET", "/no/such/route", None),
    ]
    calls.append(("POST", "/v1/messages", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}))
    wrong = ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {KEY}"}, {"authorization": KEY}, {"x-api-key": "wrong"})
    for headers in wrong:
        for method, route, body in calls:
            r = loopback_http.request(method, f"{url}{route}", json=body, headers=headers, timeout=30)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (route, headers)
            if route == "/v1/messages":  # Anthropic's route answers in Anthropic's shape
                assert r.json()["error"]["type"] == "authentication_error" and r.json()["type"] == "error"
            else:
                assert r.json()["error"]["code"] == "invalid_api_key"
    assert loopback_http.get(f"{url}/v1/models", headers=AUTH).status_code == 200
    assert loopback_http.get(f"{url}/v1/models", headers={"authorization": f"bearer {KEY}"}).status_code == 200
    assert loopback_http.get(f"{url}/metrics", headers=AUTH).status_code == 200
    assert loopback_http.get(f"{url}/v1/models", headers={"x-api-key": KEY}).status_code == 200  # Anthropic's clients send it so


def test_a_body_over_the_limit_is_a_413_without_being_read(guarded):
    url = guarded[0]
    big = b'{"prompt": "' + b"x" * LIMIT + b'"}'
    r = loopback_http.post(f"{url}/v1/completions", content=big, headers={**AUTH, "content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def pieces():  # no Content-Length: the server counts as it reads
        yield b'{"prompt": "'
        for _ in range(64):
            yield b"y" * 8192
        yield b'"}'

    r = loopback_http.post(f"{url}/v1/completions", content=pieces(), headers=AUTH, timeout=30)
    assert r.status_code == 413
    r = loopback_http.post(f"{url}/v1/completions", json={"prompt": "My name is", "max_tokens": 2}, headers=AUTH, timeout=30)
    assert r.status_code == 200


def test_health_and_streams_answer_while_a_large_prompt_is_tokenized(guarded):
    url, _, hold = guarded
    hold.entered.clear()
    hold.release.clear()
    large = "word " * (HOLD_OVER // 5 + 1000)  # within the body limit, beyond the context
    result: dict = {}

    def send_large() -> None:
        result["r"] = loopback_http.post(f"{url}/v1/completions", json={"prompt": large, "max_tokens": 2}, headers=AUTH, timeout=120)

    sender = threading.Thread(target=send_large)
    sender.start()
    try:
        assert hold.entered.wait(60), "the large prompt never reached the tokenizer"
        # the tokenizer is busy with the large prompt: the event loop must still answer
        assert loopback_http.get(f"{url}/health", timeout=30).json()["status"] == "ok"
        body = {"prompt": [5, 6, 7], "max_tokens": 4, "temperature": 0, "stream": True}
        with loopback_http.stream("POST", f"{url}/v1/completions", json=body, headers=AUTH, timeout=30) as r:
            lines = [x for x in r.iter_lines() if x.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and len(lines) >= 2
        assert not result  # still held
    finally:
        hold.release.set()
        sender.join(timeout=120)
    assert result["r"].status_code == 400 and result["r"].json()["error"]["code"] == "context_length_exceeded"


def test_an_unexpected_error_is_a_json_500_and_the_server_keeps_serving(guarded):
    url = guarded[0]
    r = loopback_http.post(f"{url}/v1/completions", json={"prompt": CRASH}, headers=AUTH, timeout=30)
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "server_error" and "RuntimeError" in r.json()["error"]["message"]
    r = loopback_http.post(f"{url}/v1/completions", json={"prompt": "My name is", "max_tokens": 2}, headers=AUTH, timeout=30)
    assert r.status_code == 200
