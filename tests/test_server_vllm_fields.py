"""vLLM's request fields beyond OpenAI's that change what is generated: ``allowed_token_ids`` and ``bad_words`` applied
as vLLM applies them (greedy answers equal transformers' with the same rule as a logits processor),
``return_tokens_as_token_ids``, and the beam-search fields refused rather than ignored."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from transformers import LogitsProcessorList

from QEfficient.generation.continuous_batching import Request
from QEfficient.generation.sampling import NoTokenLeft, SamplingParams, TokenChooser
from QEfficient.serving.vllm_fields import bad_words_ids
from tests.helpers import tiny_chat_server
from tests.loopback import loopback_http
from tests.test_server import CHAT_TEMPLATE, PROMPTS, complete, post


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    with tiny_chat_server(tiny_model_dir("llama"), CHAT_TEMPLATE, prefill_seq_len=8, ctx_len=96, full_batch_size=2) as up:
        yield up


class _OutputRule:
    """A transformers logits processor: vLLM's allowed ids, then its bad words over the generated tokens only."""

    def __init__(self, prompt_len: int, allowed: list[int] | None = None, bad: tuple = ()) -> None:
        self.prompt_len, self.allowed, self.bad = prompt_len, allowed, bad

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        if self.allowed is not None:
            keep = torch.full_like(scores, float("-inf"))
            keep[:, self.allowed] = 0
            scores = scores + keep
        done = input_ids[0, self.prompt_len :].tolist()
        for word in self.bad:
            if len(word) == 1 or (len(done) >= len(word) - 1 and tuple(done[len(done) - len(word) + 1 :]) == word[:-1]):
                scores[:, word[-1]] = float("-inf")
        return scores


def _reference(hf, tok, prompt: str, rule: _OutputRule, n: int) -> list[int]:
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**ids, do_sample=False, max_new_tokens=n, logits_processor=LogitsProcessorList([rule]), pad_token_id=0)
    return out[0, ids["input_ids"].shape[1] :].tolist()


def _token_ids(body: dict) -> list[int]:
    """The completion's tokens, from logprobs written as "token_id:N" (return_tokens_as_token_ids)."""
    tokens = body["choices"][0]["logprobs"]["tokens"]
    assert all(t.startswith("token_id:") for t in tokens)
    return [int(t.split(":")[1]) for t in tokens]


def test_allowed_token_ids_as_vllm(server):
    url, _, tok, hf = server
    greedy = tok(complete(url, PROMPTS[1], 8)["choices"][0]["text"], add_special_tokens=False)["input_ids"]
    allowed = sorted({*range(40, 60), *range(200, 230)} - set(greedy[:1]))
    body = complete(url, PROMPTS[1], 8, allowed_token_ids=allowed, logprobs=1, return_tokens_as_token_ids=True)
    got = _token_ids(body)
    assert got == _reference(hf, tok, PROMPTS[1], _OutputRule(len(tok(PROMPTS[1])["input_ids"]), allowed=allowed), 8)[: len(got)]
    assert set(got) <= set(allowed) and len(got) == 8
    top = body["choices"][0]["logprobs"]["top_logprobs"][0]
    assert all(k.startswith("token_id:") for k in top)
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0, "logprobs": True, "top_logprobs": 1}
    r = post(url, "chat/completions", chat | {"return_tokens_as_token_ids": True, "allowed_token_ids": allowed})
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert [int(e["token"].split(":")[1]) for e in content] and all(int(e["token"].split(":")[1]) in allowed for e in content)
    assert content[0]["bytes"] == list(content[0]["token"].encode())


def test_bad_words_as_vllm(server):
    """Bad words within allowed ids (letters and spaces, so that the tiny model writes words): the words' tokens, as
    vLLM tokenizes them, are not written where they would complete a word."""
    url, _, tok, hf = server
    prompt = PROMPTS[2]
    letters = [i for i in range(len(tok)) if tok.decode([i]).strip().isascii() and tok.decode([i]).replace(" ", "").isalpha()]
    text = complete(url, prompt, 12, allowed_token_ids=letters)["choices"][0]["text"]
    words = text.split()[:2]
    assert words, text
    bad = bad_words_ids({"bad_words": words}, tok, len(tok))
    got = complete(url, prompt, 12, allowed_token_ids=letters, bad_words=words, logprobs=0, return_tokens_as_token_ids=True)
    rule = _OutputRule(len(tok(prompt)["input_ids"]), allowed=letters, bad=bad)
    assert _token_ids(got) == _reference(hf, tok, prompt, rule, 12)
    assert got["choices"][0]["text"] != text


def test_a_bad_phrase_bars_its_last_token_after_the_rest():
    chooser = TokenChooser(SamplingParams(temperature=0, bad_words_ids=((3,), (5, 7))), 1, 10, 0)
    first = np.arange(10, dtype=np.float32)[None]
    first[0, 3], first[0, 5] = 50, 40  # 3 is barred always
    then = np.arange(10, dtype=np.float32)[None]
    then[0, 7] = 50  # 7 is barred right after 5 only
    assert [int(chooser(logits)[0]) for logits in (first, then, then)] == [5, 9, 7]


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"use_beam_search": True, "n": 3}, "n"),  # more beams than the engine's 2 slots
        ({"length_penalty": 2.0}, "length_penalty"),
        ({"early_stopping": True}, "early_stopping"),
        ({"prompt_embeds": "AAAA"}, "prompt_embeds"),
        ({"logits_processors": ["x"]}, "logits_processors"),
        ({"allowed_token_ids": []}, "allowed_token_ids"),
        ({"allowed_token_ids": [10**7]}, "allowed_token_ids"),
        ({"bad_words": "word"}, "bad_words"),
        ({"bad_words": [" "]}, "bad_words"),
        ({"return_tokens_as_token_ids": "yes"}, "return_tokens_as_token_ids"),
    ],
)
def test_fields_not_applied_or_malformed_are_a_400(server, fields, param):
    r = loopback_http.post(f"{server[0]}/v1/completions", json={"prompt": "hi", "max_tokens": 2, **fields}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_neutral_values_pass(server):
    neutral = {"use_beam_search": False, "length_penalty": 1.0, "early_stopping": False, "logits_processors": [], "bad_words": []}
    assert complete(server[0], "hi", 2, **neutral)["choices"][0]["text"] == complete(server[0], "hi", 2)["choices"][0]["text"]


def test_return_token_ids_as_vllm(server):
    """vLLM's return_token_ids: a completion choice's prompt_token_ids and token_ids (a chat's prompt ids beside the
    choices), streamed as each chunk's new ids, the prompt's first; the ids are the logprobs' tokens."""
    import json

    url, _, tok, _ = server
    body = complete(url, PROMPTS[0], 8, return_token_ids=True, logprobs=0, return_tokens_as_token_ids=True)
    choice = body["choices"][0]
    assert choice["token_ids"] == _token_ids(body) and len(choice["token_ids"]) == 8
    assert tok.decode(choice["prompt_token_ids"], skip_special_tokens=True) == PROMPTS[0]
    stream = {"prompt": PROMPTS[0], "max_tokens": 8, "temperature": 0, "return_token_ids": True, "stream": True}
    r = loopback_http.post(f"{url}/v1/completions", json=stream, timeout=60)
    chunks = [json.loads(line[6:]) for line in r.text.split("\n\n") if line.startswith("data: {")]
    assert chunks[0]["choices"][0]["prompt_token_ids"] == choice["prompt_token_ids"]
    assert [t for c in chunks for t in c["choices"][0]["token_ids"]] == choice["token_ids"]
    assert all("prompt_token_ids" not in c["choices"][0] for c in chunks[1:])
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "temperature": 0, "return_token_ids": True}
    answer = post(url, "chat/completions", chat).json()
    assert tok.decode(answer["choices"][0]["token_ids"], skip_special_tokens=True) == answer["choices"][0]["message"]["content"]
    assert "hi" in tok.decode(answer["prompt_token_ids"])
    r = loopback_http.post(f"{url}/v1/chat/completions", json=chat | {"stream": True}, timeout=60)
    chunks = [json.loads(line[6:]) for line in r.text.split("\n\n") if line.startswith("data: {")]
    assert chunks[0]["prompt_token_ids"] == answer["prompt_token_ids"] and all("prompt_token_ids" not in c for c in chunks[1:])
    assert [t for c in chunks for t in c["choices"][0]["token_ids"]] == answer["choices"][0]["token_ids"]
    # ended by a stop string: the ids up to the token that completed it (letters only, so that each token is text)
    letters = [i for i in range(len(tok)) if tok.decode([i]).isascii() and tok.decode([i]).isalpha()]
    whole = complete(url, PROMPTS[0], 8, return_token_ids=True, allowed_token_ids=letters)["choices"][0]["token_ids"]
    stop = tok.decode(whole[3:4])
    first = next(i for i in range(8) if stop in tok.decode(whole[: i + 1]))
    answer = complete(url, PROMPTS[0], 8, return_token_ids=True, allowed_token_ids=letters, stop=[stop])
    stopped = answer["choices"][0]
    assert stopped["finish_reason"] == "stop" and stopped["token_ids"] == whole[: first + 1]
    assert answer["usage"]["completion_tokens"] == first + 1  # the tokens up to the stop string's, as vLLM counts
    assert complete(url, PROMPTS[0], 2)["choices"][0].keys().isdisjoint({"token_ids", "prompt_token_ids"})


def test_prompt_shaping_truncate_and_special_tokens(server):
    """vLLM's truncate_prompt_tokens (the prompt's last N tokens; token ids echoed as kept) and add_special_tokens."""
    url, _, tok, _ = server
    ids = complete(url, PROMPTS[3], 1, return_token_ids=True)["choices"][0]["prompt_token_ids"]
    last = complete(url, ids[-3:], 6)["choices"][0]["text"]
    assert complete(url, PROMPTS[3], 6, truncate_prompt_tokens=3)["choices"][0]["text"] == last
    assert complete(url, PROMPTS[3], 1, truncate_prompt_tokens=-1, return_token_ids=True)["choices"][0]["prompt_token_ids"] == ids
    plain = complete(url, PROMPTS[3], 1, add_special_tokens=False, return_token_ids=True)["choices"][0]["prompt_token_ids"]
    assert plain == tok(PROMPTS[3], add_special_tokens=False)["input_ids"]
    echoed = complete(url, ids, 1, truncate_prompt_tokens=3, echo=True)["choices"][0]["text"]  # the ids kept, echoed
    assert echoed.startswith(tok.decode(ids[-3:], skip_special_tokens=True))
    for bad in (0, -2, 10**6, "3"):
        r = loopback_http.post(f"{url}/v1/completions", json={"prompt": "hi", "truncate_prompt_tokens": bad}, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["param"] == "truncate_prompt_tokens"


def test_truncation_keeps_the_tokenizers_own_special_tokens(tokenizer_dir):
    """A text prompt is truncated as the tokenizer truncates on the left: the BOS it adds stays."""
    from tokenizers import processors
    from transformers import AutoTokenizer

    from QEfficient.serving.protocol import RequestParser

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    parser = RequestParser(tok, ["m"], 64, len(tok), 8)
    text = tok("a b c d e f g", add_special_tokens=False)["input_ids"]
    assert parser._tokens("a b c d e f g", "prompt", keep=3)[0] == [tok.bos_token_id, *text[-2:]]
    assert parser._tokens(text, "prompt", keep=3)[0] == text[-3:]  # token ids: the last ones, as vLLM cuts them


def test_rules_that_leave_no_token_are_an_error_not_a_token(server):
    """Bad words that bar every allowed id are a 400; allowed ids that are all ending ids while min_tokens masks them
    end the request with an error that says why (no token is written), and the server goes on."""
    url, runner, tok, _ = server
    word = tok.decode([60])
    r = loopback_http.post(f"{url}/v1/completions", json={"prompt": "hi", "allowed_token_ids": [60], "bad_words": [word]}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "bad_words", r.text
    body = {"prompt": "hi", "max_tokens": 4, "allowed_token_ids": [tok.eos_token_id], "min_tokens": 2}
    r = loopback_http.post(f"{url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 400 and "nothing could be written" in r.json()["error"]["message"], r.text
    body |= {"allowed_token_ids": [tok.eos_token_id, 60], "bad_words": [word]}  # the other allowed id a bad word
    r = loopback_http.post(f"{url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 400 and "nothing could be written" in r.json()["error"]["message"], r.text
    # found only while generating (a two-token bad word made of the one allowed id): that request ends with the reason
    done = threading.Event()
    sampling = SamplingParams(temperature=0, allowed_token_ids=(60,), bad_words_ids=((60, 60),))
    request = Request(tok("hi")["input_ids"], 4, sampling, on_done=lambda _: done.set())
    runner.submit(request)
    assert done.wait(60) and request.finish_reason == "error" and isinstance(request.error, NoTokenLeft)
    assert request.output == [60]
    assert complete(url, "hi", 2)["choices"][0]["text"] is not None


def test_prompt_logprobs_keep_the_tokens_text(server):
    url, _, tok, _ = server
    body = complete(url, PROMPTS[0], 1, prompt_logprobs=1, return_tokens_as_token_ids=True)
    entries = [e for e in body["choices"][0]["prompt_logprobs"] if e]
    assert entries and all(not v["decoded_token"].startswith("token_id:") for e in entries for v in e.values())


def test_the_encoder_decoder_server_refuses_them():
    from transformers import GenerationConfig

    from QEfficient.serving.errors import APIError
    from QEfficient.serving.seq2seq_app import sampling_options

    for field in ({"length_penalty": True}, {"allowed_token_ids": []}, {"return_token_ids": True}, {"truncate_prompt_tokens": 3}):
        with pytest.raises(APIError, match=next(iter(field))):
            sampling_options(field, GenerationConfig(), 32)
    assert sampling_options({"use_beam_search": False, "length_penalty": 1.0}, GenerationConfig(), 32)


def test_metrics_and_usage_count_up_to_the_stop_string(server):
    """A choice ended by a stop string: its usage and the server's generation-token count stop at the token that
    completed the string, and /metrics files it under "stop", as vLLM does."""
    url, _, tok, _ = server

    def stops() -> float:
        text = loopback_http.get(f"{url}/metrics", timeout=60).text
        line = next((x for x in text.splitlines() if x.startswith("vllm:request_success_total") and 'finished_reason="stop"' in x), None)
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    letters = [i for i in range(len(tok)) if tok.decode([i]).isascii() and tok.decode([i]).isalpha()]
    whole = complete(url, PROMPTS[4], 8, return_token_ids=True, allowed_token_ids=letters)["choices"][0]["token_ids"]
    before = stops()
    answer = complete(url, PROMPTS[4], 8, allowed_token_ids=letters, stop=[tok.decode(whole[2:3])])
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["usage"]["completion_tokens"] <= 3
    assert stops() == before + 1
