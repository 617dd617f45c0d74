"""Structured output on the server (vLLM's structured_outputs / guided_*, OpenAI's response_format): each answer is
transformers' greedy decoding with llguidance's mask of the grammar applied to every step's logits (the reference runs
its own matcher over HF's logits), and it matches the grammar; bad grammars and requests get a 400."""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import llguidance
import numpy as np
import pytest
import torch
from llguidance.numpy import allocate_token_bitmask, apply_token_bitmask_inplace, fill_next_token_bitmask

from QEfficient.serving.protocol import RequestParser
from tests.helpers import tiny_chat_server
from tests.loopback import loopback_http
from tests.test_server import CHAT_TEMPLATE, post

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 99}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    with tiny_chat_server(tiny_model_dir("qwen2"), CHAT_TEMPLATE, prefill_seq_len=8, ctx_len=128, full_batch_size=2, max_queue=8) as up:
        url, _, tok, hf = up
        yield url, tok, hf


def hf_constrained_greedy(hf, tok, prompt_ids: list[int], grammar: str, max_tokens: int, masked: list | None = None) -> list[int]:
    """HF's greedy tokens with llguidance's mask on each step's logits (kept in ``masked``); stops at EOS or where the
    grammar ends."""
    eos = [hf.config.eos_token_id]
    n_vocab = max(hf.config.vocab_size, len(tok))  # the tokenizer's added tokens past the head are never chosen
    ll = llguidance.LLTokenizer(tok.backend_tokenizer.to_str(), n_vocab=n_vocab, eos_token=eos)
    matcher = llguidance.LLMatcher(ll, grammar, log_level=0)
    bitmask = allocate_token_bitmask(1, n_vocab)
    ids, out = list(prompt_ids), []
    for _ in range(max_tokens):
        with torch.no_grad():
            logits = hf(torch.tensor([ids])).logits[:, -1].float().numpy()
        fill_next_token_bitmask(matcher, bitmask, 0)
        apply_token_bitmask_inplace(logits, bitmask)
        if masked is not None:
            masked.append(logits[0].astype(np.float64))
        token = int(logits.argmax())
        out.append(token)
        assert matcher.consume_token(token)
        if token in eos or matcher.is_stopped():
            break
        ids.append(token)
    return out


def completion(url: str, body: dict) -> httpx.Response:
    return loopback_http.post(f"{url}/v1/completions", json={"max_tokens": 24, "temperature": 0, **body}, timeout=60)


def test_a_regex_and_a_choice_in_completions_decode_as_hf_under_the_same_mask(server):
    url, tok, hf = server
    prompt = "My name is Ada and my number is"
    for field, spec, grammar in [
        ({"structured_outputs": {"regex": r" [0-9]{3}-[a-z]{2,4}"}}, r" [0-9]{3}-[a-z]{2,4}", llguidance.LLMatcher.grammar_from_regex),
        ({"guided_choice": ["Paris", "London", "Rome"]}, "(Paris)|(London)|(Rome)", llguidance.LLMatcher.grammar_from_regex),
        ({"guided_grammar": 'root ::= " yes" | " no"'}, "( yes)|( no)", llguidance.LLMatcher.grammar_from_regex),  # GBNF
    ]:
        r = completion(url, {"prompt": prompt, **field})
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        expected = hf_constrained_greedy(hf, tok, tok(prompt)["input_ids"], grammar(spec), 24)
        assert choice["text"] == tok.decode(expected, skip_special_tokens=True)
        assert re.fullmatch(spec, choice["text"]) and choice["finish_reason"] == "stop"
        for seed in range(3):  # sampled: among the tokens the grammar allows only
            sampled = completion(url, {"prompt": prompt, **field, "temperature": 1.5, "seed": seed}).json()["choices"][0]
            assert re.fullmatch(spec, sampled["text"]) and sampled["finish_reason"] == "stop", sampled


def test_logprobs_under_a_grammar_are_those_of_what_it_allows(server):
    """As vLLM's: each step's log-softmax over the masked logits; a token the grammar forbids is never among the top
    ones while an allowed one remains, and sits at OpenAI's floor (-9999) after them."""
    url, tok, hf = server
    prompt, choices = "My name is Ada and my number is", ["Paris", "London", "Rome"]
    r = completion(url, {"prompt": prompt, "guided_choice": choices, "logprobs": 5})
    assert r.status_code == 200, r.text
    steps = r.json()["choices"][0]["logprobs"]
    masked: list[np.ndarray] = []
    grammar = llguidance.LLMatcher.grammar_from_regex("(Paris)|(London)|(Rome)")
    expected = hf_constrained_greedy(hf, tok, tok(prompt)["input_ids"], grammar, 24, masked)
    assert len(steps["token_logprobs"]) == len(expected) == len(masked)
    for got, row, token in zip(steps["token_logprobs"], masked, expected):
        log_probs = row - (row.max() + np.log(np.exp(row - row.max()).sum()))
        assert got == pytest.approx(log_probs[token], abs=1e-4)
    allowed_first = {tok.decode([t]) for t in np.flatnonzero(np.isfinite(masked[0]))}
    first = steps["top_logprobs"][0]
    finite = [t for t, lp in first.items() if lp > -9999.0]
    assert set(finite) == allowed_first & set(first) and len(finite) == min(5, len(allowed_first))
    assert all(lp == -9999.0 for t, lp in first.items() if t not in allowed_first)


def test_a_json_schema_in_chat_streams_json_that_fits_it(server):
    url, tok, hf = server
    messages = [{"role": "user", "content": "Who are you?"}]
    body = {
        "messages": messages,
        "max_tokens": 60,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}},
    }
    r = loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    text = r.json()["choices"][0]["message"]["content"]
    value = json.loads(text)
    assert set(value) == {"name", "age"} and isinstance(value["name"], str) and 0 <= value["age"] <= 99
    prompt_ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=False)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(SCHEMA, defaults={"whitespace_flexible": False})
    assert text == tok.decode(hf_constrained_greedy(hf, tok, prompt_ids, grammar, 60), skip_special_tokens=True)
    with loopback_http.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=60) as s:
        chunks = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: ") and x != "data: [DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text
    anything = {**body, "response_format": {"type": "json_object"}, "max_tokens": 100}  # any JSON object
    answer = loopback_http.post(f"{url}/v1/chat/completions", json=anything, timeout=60).json()["choices"][0]
    assert answer["finish_reason"] == "stop" and isinstance(json.loads(answer["message"]["content"]), dict)


@pytest.mark.parametrize(
    "body, message",
    [
        ({"structured_outputs": {"regex": "[0-9"}}, "cannot be used"),
        ({"guided_regex": "a+", "guided_choice": ["a"]}, "Ask for one structured output, not 2"),
        ({"guided_choice": []}, "must be a non-empty list"),
        ({"structured_outputs": "json"}, "'structured_outputs' must be an object"),
        ({"structured_outputs": {"structural_tag": "{}"}}, "'structured_outputs.structural_tag' must have 'structures'"),
        ({"structured_outputs": {"whitespace_pattern": " *"}}, "'structured_outputs.whitespace_pattern' is not supported"),
        ({"structured_outputs": {"json_object": 1}}, "must be true"),
        ({"guided_whitespace_pattern": " *", "guided_json": {}}, "'guided_whitespace_pattern' is not supported"),
        ({"guided_json": "[" * 5000 + "]" * 5000}, "cannot be used"),
        ({"response_format": {"type": "xml"}}, "must have the type text, json_object, json_schema or structural_tag"),
        ({"guided_json": {"type": "object", "properties": {"a": {"type": "nosuchtype"}}}}, "cannot be used"),
    ],
)
def test_bad_structured_output_requests_get_a_400(server, body, message):
    r = completion(server[0], {"prompt": "hi", **body})
    assert r.status_code == 400 and message in r.json()["error"]["message"], r.text
    assert len(r.json()["error"]["message"]) < 600  # llguidance's errors without its parser state


def test_response_format_in_completions(server):
    """vLLM's completions take response_format too."""
    r = completion(server[0], {"prompt": "My name is", "response_format": {"type": "json_object"}, "max_tokens": 100})
    assert r.status_code == 200 and isinstance(json.loads(r.json()["choices"][0]["text"]), dict), r.text


@pytest.mark.parametrize("speculation", [{"prompt_lookup_num_tokens": 3}, "draft"])
def test_speculative_decoding_keeps_the_grammar(tiny_model_dir, speculation):
    """Drafts (prompt lookup, or a draft model) are kept only while they are the target's greedy choice under the
    grammar as it stands after them: the answers are constrained greedy decoding's, logprobs those of the mask."""
    folder = tiny_model_dir("qwen2")
    if speculation == "draft":  # the target itself drafts: its drafts are the unmasked greedy tokens, often kept
        speculation = {"draft_model": str(folder), "num_speculative_tokens": 3}
    with tiny_chat_server(folder, CHAT_TEMPLATE, prefill_seq_len=8, ctx_len=128, full_batch_size=2, **speculation) as up:
        url, runner, tok, hf = up
        prompt = "Numbers: 1 2 3 1 2 3 1 2"  # prompt lookup drafts from the repeats
        for field, spec in [
            ({"guided_regex": r" [0-9]( [0-9]){5}"}, r" [0-9]( [0-9]){5}"),
            ({"guided_choice": ["1 2 3", "Paris", "London"]}, "(1 2 3)|(Paris)|(London)"),
            ({"guided_regex": r"[\s\S]{1,16}"}, r"[\s\S]{1,16}"),  # loose: the unmasked drafts are often the choice
        ]:
            r = completion(url, {"prompt": prompt, **field, "logprobs": 2})
            assert r.status_code == 200, r.text
            choice = r.json()["choices"][0]
            masked: list[np.ndarray] = []
            grammar = llguidance.LLMatcher.grammar_from_regex(spec)
            expected = hf_constrained_greedy(hf, tok, tok(prompt)["input_ids"], grammar, 24, masked)
            assert choice["text"] == tok.decode(expected, skip_special_tokens=True) and re.fullmatch(spec, choice["text"])
            assert choice["finish_reason"] == "stop"
            for got, row, token in zip(choice["logprobs"]["token_logprobs"], masked, expected):
                assert got == pytest.approx(row[token] - (row.max() + np.log(np.exp(row - row.max()).sum())), abs=1e-4)
        stats = runner.engine.stats
        assert stats["verify_steps"] > 0 and stats["accepted"] > 0  # drafts kept under the grammar
        # in one batch: a constrained greedy request, an unconstrained one, and a sampled constrained one
        bodies = [
            {"prompt": prompt, "guided_regex": r" [0-9]( [0-9]){5}"},
            {"prompt": prompt, "max_tokens": 10},
            {"prompt": prompt, "guided_choice": ["1 2 3", "Paris", "London"], "temperature": 1.5, "seed": 3},
        ]
        with ThreadPoolExecutor(3) as pool:
            answers = [r.json()["choices"][0]["text"] for r in pool.map(lambda b: completion(url, b), bodies)]
        assert answers[0] == choice_text(hf, tok, prompt, r" [0-9]( [0-9]){5}")
        with torch.no_grad():
            plain = hf.generate(torch.tensor([tok(prompt)["input_ids"]]), max_new_tokens=10, do_sample=False)[0]
        assert answers[1] == tok.decode(plain[len(tok(prompt)["input_ids"]) :], skip_special_tokens=True)
        assert answers[2] in ("1 2 3", "Paris", "London")
        # vLLM's min_tokens: the ending ids masked (not drafted past) until then, as transformers' min_new_tokens
        ids = tok(prompt)["input_ids"]
        stop_id = int(plain[len(ids)])  # greedy's first token: masked for the first 3
        with torch.no_grad():
            out = hf.generate(torch.tensor([ids]), max_new_tokens=10, min_new_tokens=3, eos_token_id=stop_id, do_sample=False)
        held = out[0, len(ids) :].tolist()
        body = completion(url, {"prompt": prompt, "max_tokens": 10, "stop_token_ids": [stop_id], "min_tokens": 3}).json()
        shown = held[:-1] if held[-1] == stop_id else held
        assert body["choices"][0]["text"] == tok.decode(shown, skip_special_tokens=True)
        assert body["usage"]["completion_tokens"] == len(held) and held[0] != stop_id


@pytest.mark.parametrize("speculation", [{"prompt_lookup_num_tokens": 3}, "draft"])
def test_what_a_grammar_forces_is_drafted(tiny_model_dir, speculation):
    """Where the grammar forces the next tokens (a one-string choice, a schema's keys and punctuation) they are the
    drafts, whatever the drafter proposes, and the target verifies them K at a time: fewer steps than tokens, the same
    answers as constrained greedy decoding. A draft model's adaptive draft length learns from its own drafts only."""
    folder = tiny_model_dir("qwen2")
    if speculation == "draft":
        speculation = {"draft_model": str(folder), "num_speculative_tokens": 3}
    with tiny_chat_server(folder, CHAT_TEMPLATE, prefill_seq_len=8, ctx_len=128, full_batch_size=2, **speculation) as up:
        url, runner, tok, hf = up
        sentence = "The quick brown fox jumps over the lazy dog"
        for field, grammar, most_steps in [
            ({"guided_choice": [sentence]}, llguidance.LLMatcher.grammar_from_regex(re.escape(sentence)), 0.3),
            ({"guided_json": SCHEMA}, llguidance.LLMatcher.grammar_from_json_schema(SCHEMA, defaults={"whitespace_flexible": False}), 0.8),
        ]:
            before = dict(runner.engine.stats)
            r = completion(url, {"prompt": "Say:", **field, "max_tokens": 40})
            assert r.status_code == 200, r.text
            expected = hf_constrained_greedy(hf, tok, tok("Say:")["input_ids"], grammar, 40)
            assert r.json()["choices"][0]["text"] == tok.decode(expected, skip_special_tokens=True)
            steps = runner.engine.stats["verify_steps"] - before["verify_steps"]
            assert runner.engine.stats["accepted"] > before["accepted"] and steps <= most_steps * len(expected), (steps, len(expected))
            if "guided_choice" in field and speculation.get("draft_model"):
                # forced drafts are not the draft model's: they do not shorten what it drafts for the next requests
                assert runner.engine.drafter.length.k == 3


def test_a_structural_tag_holds_the_tagged_part_to_its_schema(server):
    """vLLM's structural tag: free text in which a trigger starts a tag whose arguments follow its schema. The trigger
    here is a letter of the unconstrained answer, so the tag is used; the answer is constrained greedy decoding's
    under llguidance's grammar for the tags, as vLLM builds it, and each tag's arguments parse to the schema."""
    url, tok, hf = server
    prompt = "My name is Ada and my number is"
    plain = completion(url, {"prompt": prompt}).json()["choices"][0]["text"]
    trigger = next(c for c in plain if c.isalpha())
    structure = {"begin": f"{trigger}<n>", "schema": {"type": "integer", "minimum": 0, "maximum": 99}, "end": "</n>"}
    tag = {"type": "structural_tag", "structures": [structure], "triggers": [trigger]}
    schema = {**structure["schema"], "x-guidance": {"whitespace_flexible": False}}  # JSON without free whitespace, as elsewhere
    grammar = llguidance.StructTag.to_grammar(
        [llguidance.StructTag(trigger=trigger, begin=structure["begin"], grammar=schema, end=structure["end"])]
    )
    expected = tok.decode(hf_constrained_greedy(hf, tok, tok(prompt)["input_ids"], grammar, 24), skip_special_tokens=True)
    for body in ({"response_format": tag}, {"structured_outputs": {"structural_tag": json.dumps(tag)}}):
        text = completion(url, {"prompt": prompt, **body}).json()["choices"][0]["text"]
        assert text == expected
    arguments = re.findall(rf"{re.escape(trigger)}<n>(.*?)</n>", text)
    assert arguments and all(0 <= int(a) <= 99 for a in arguments), text
    for bad, says in [
        ({**tag, "triggers": ["zz"]}, "starts with none of the triggers"),
        ({"type": "structural_tag", "format": {"type": "triggered_tags"}}, "must have 'structures'"),
        ({**tag, "structures": [{"begin": trigger, "schema": 3, "end": ""}]}, "must have the strings 'begin' and 'end'"),
        ({**tag, "structures": [{**structure, "schema": {"type": "no such type"}}]}, ""),
    ]:
        r = completion(url, {"prompt": prompt, "response_format": bad})
        assert r.status_code == 400 and says in r.json()["error"]["message"], r.text


TOOLS_TEMPLATE = CHAT_TEMPLATE.replace(
    "{% for m in messages %}",
    "{% if tools %}<s>tools: {% for t in tools %}{{ t['function']['name'] }} {% endfor %}\n{% endif %}{% for m in messages %}",
)
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}}}
WEATHER["parameters"] |= {"required": ["city"], "additionalProperties": False}
ZONE = {"type": "object", "properties": {"zone": {"type": "integer", "minimum": -12, "maximum": 12}}, "required": ["zone"]}
TIME = {"name": "get_time", "parameters": {**ZONE, "additionalProperties": False}}
TOOLS = [{"type": "function", "function": WEATHER}, {"type": "function", "function": TIME}]


def test_forced_tool_calls_are_constrained_greedy_decoding_under_the_tools_schema(tiny_model_dir, tmp_path):
    """tool_choice naming a function, or "required": the tools reach the chat template, the answer is constrained
    greedy decoding under the function's parameters (or vLLM's array of {name, parameters}) and comes back as
    tool_calls, streamed as they are written (the pieces add up to the unstreamed arguments); "auto" (no parser of the
    model's own syntax on this server) is refused with what to send."""
    folder = shutil.copytree(tiny_model_dir("llama"), tmp_path / "llama")  # its own chat template
    with tiny_chat_server(folder, TOOLS_TEMPLATE, prefill_seq_len=8, ctx_len=160, full_batch_size=2) as up:
        url, _, tok, hf = up
        messages = [{"role": "user", "content": "What time is it in Paris?"}]
        rendered = tok.apply_chat_template(messages, tools=TOOLS, tokenize=False, add_generation_prompt=True)
        assert "tools: get_weather get_time" in rendered
        prompt_ids = tok(rendered, add_special_tokens=False)["input_ids"]
        counted = loopback_http.post(f"{url}/tokenize", json={"messages": messages, "tools": TOOLS}, timeout=60).json()
        assert counted["tokens"] == prompt_ids  # vLLM's /tokenize renders the tools too
        named = {"type": "function", "function": {"name": "get_time"}}
        required = {"type": "array", "minItems": 1, "items": {"type": "object", "anyOf": []}}
        for f in (WEATHER, TIME):
            schema = {"properties": {"name": {"type": "string", "enum": [f["name"]]}, "parameters": f["parameters"]}}
            required["items"]["anyOf"].append({**schema, "required": ["name", "parameters"], "additionalProperties": False})
        whole = {}
        for choice, schema in ((named, TIME["parameters"]), ("required", required)):
            body = {"messages": messages, "tools": TOOLS, "tool_choice": choice, "max_tokens": 60, "temperature": 0}
            r = loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=60)
            assert r.status_code == 200, r.text
            answer = whole[str(choice)] = r.json()["choices"][0]
            grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
            expected = json.loads(tok.decode(hf_constrained_greedy(hf, tok, prompt_ids, grammar, 60), skip_special_tokens=True))
            calls = answer["message"]["tool_calls"]
            assert answer["message"]["content"] == "" and all(c["type"] == "function" and c["id"] for c in calls)
            if choice == "required":
                assert answer["finish_reason"] == "tool_calls"
                assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
                    (e["name"], e["parameters"]) for e in expected
                ]
            else:
                assert answer["finish_reason"] == "stop"
                assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [("get_time", expected)]
                assert -12 <= expected["zone"] <= 12
        for choice in (named, "required"):
            body = {"messages": messages, "tools": TOOLS, "tool_choice": choice, "max_tokens": 60, "temperature": 0, "stream": True}
            calls, reason = streamed_calls(url, body)
            assert calls == [(c["function"]["name"], c["function"]["arguments"]) for c in whole[str(choice)]["message"]["tool_calls"]]
            assert reason == whole[str(choice)]["finish_reason"]
        # cut by max_tokens: the calls whose names were written (the last one's arguments cut short), streamed or not
        named_at = []
        for cut in (3, 16, 24):
            body = {"messages": messages, "tools": TOOLS, "tool_choice": "required", "max_tokens": cut, "temperature": 0}
            answer = loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()["choices"][0]
            calls = [(c["function"]["name"], c["function"]["arguments"]) for c in answer["message"]["tool_calls"]]
            assert answer["message"]["content"] == "" and answer["finish_reason"] == "length"
            assert streamed_calls(url, {**body, "stream": True}) == (calls, "length")
            named_at.append(len(calls))
        assert named_at[0] == 0 and named_at[-1] == 1, named_at  # none named yet; one named, its arguments cut
        body = {"messages": messages, "tools": TOOLS, "tool_choice": "required", "max_tokens": 60, "temperature": 0, "stop": ["parameters"]}
        answer = loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=60).json()["choices"][0]
        calls = [(c["function"]["name"], c["function"]["arguments"]) for c in answer["message"]["tool_calls"]]
        assert answer["finish_reason"] == "stop" and len(calls) == 1 and calls[0][1] == ""  # cut by the stop string: not "tool_calls"
        assert streamed_calls(url, {**body, "stream": True}) == (calls, "stop")
        body = {"messages": messages, "tools": TOOLS, "max_tokens": 8, "tool_choice": "auto"}
        r = loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice", r.text
        # "none": no call, the tools still in the prompt (vLLM's default), checked as any other request's
        body = {"messages": messages, "tools": TOOLS, "max_tokens": 1, "tool_choice": "none"}
        r = loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == len(prompt_ids), r.text
        r = loopback_http.post(f"{url}/v1/chat/completions", json={**body, "tools": [{"a": 1}]}, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["param"] == "tools", r.text


def streamed_calls(url: str, body: dict) -> tuple[list[tuple[str, str]], str]:
    """A chat stream's tool calls, (name, arguments) put together from their pieces, and its finish reason; each call's
    id, type and name come once, with its first piece."""
    with loopback_http.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
        choices = [json.loads(line[6:])["choices"][0] for line in r.iter_lines() if line.startswith("data: {")]
    calls: dict[int, list] = {}
    for piece in (c for choice in choices for c in choice["delta"].get("tool_calls", [])):
        if piece["index"] not in calls:
            assert piece["id"].startswith("chatcmpl-tool-") and piece["type"] == "function" and piece["function"]["name"]
            calls[piece["index"]] = [piece["function"]["name"], ""]
        else:
            assert "id" not in piece and "name" not in piece["function"]
        calls[piece["index"]][1] += piece["function"]["arguments"]
    assert sorted(calls) == list(range(len(calls)))
    return [tuple(calls[i]) for i in range(len(calls))], choices[-1]["finish_reason"]


def test_auto_tool_choice_parses_hermes_calls(tiny_model_dir, tmp_path):
    """--enable_auto_tool_choice --tool_call_parser hermes: tool_choice "auto" is served, the answer free (the tiny
    model calls no tool: its text is HF's greedy text, finish "stop"); calls written as <tool_call>{json}</tool_call>
    become tool_calls with the text before them as content (vLLM's hermes rules); without the flags "auto" is refused."""
    from QEfficient.serving.tools import AutoTools

    parse = AutoTools(TOOLS, "hermes").message
    first, second = '{"name": "get_time", "arguments": {"zone": 2}}', '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    text = f"Let me look.<tool_call>{first}</tool_call>\n<tool_call>{second}"  # the last one cut before its end tag
    message = parse(text)
    assert message["content"] == "Let me look."
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]] == [
        ("get_time", {"zone": 2}),
        ("get_weather", {"city": "Oslo"}),
    ]
    assert parse("no call here") is None and parse("<tool_call>{not json</tool_call>") is None
    llama3 = AutoTools(TOOLS, "llama3_json").message
    assert llama3('{"name": "get_time"}')["tool_calls"][0]["function"]["arguments"] == "{}"
    assert llama3('{"name": "get_time", "parameters": {}} trailing') is None and llama3('{"nam": 1}') is None
    pythonic = AutoTools(TOOLS, "pythonic").message
    calls = pythonic('[get_weather(city="Oslo", days=[1, 2], opts={"metric": True, "x": None}), get_time()]')["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Oslo", "days": [1, 2], "opts": {"metric": True, "x": None}}),
        ("get_time", {}),
    ]
    mistral = AutoTools(TOOLS, "mistral").message
    assert mistral("[TOOL_CALLS]get_time[ARGS]{} and more") is None and mistral('[TOOL_CALLS] [{"name": "get_time"}]') is None
    assert all(pythonic(t) is None for t in ("[get_time(**k)]", "[f(x=y)]", "[get_time(zone=2)] and more", "[]", "[a.b(c=1)]"))
    from QEfficient.cloud import serve_args
    from QEfficient.serving.tools import TOOL_CALL_PARSERS

    assert serve_args.TOOL_CALL_PARSERS == TOOL_CALL_PARSERS  # the command line's names, kept without the serve extra
    assert parse('<tool_call>{"name": "get_time", "arguments": {}}</tool_call>')["content"] is None
    folder = shutil.copytree(tiny_model_dir("llama"), tmp_path / "llama")
    with tiny_chat_server(folder, TOOLS_TEMPLATE, prefill_seq_len=8, ctx_len=160, full_batch_size=2, tool_call_parser="hermes") as up:
        url, _, tok, hf = up
        messages = [{"role": "user", "content": "What time is it in Paris?"}]
        r = loopback_http.post(
            f"{url}/v1/chat/completions", json={"messages": messages, "tools": TOOLS, "max_tokens": 8, "temperature": 0}, timeout=60
        )
        assert r.status_code == 200, r.text
        answer = r.json()["choices"][0]
        ids = tok(tok.apply_chat_template(messages, tools=TOOLS, tokenize=False, add_generation_prompt=True), add_special_tokens=False)
        with torch.no_grad():
            out = hf.generate(torch.tensor([ids["input_ids"]]), max_new_tokens=8, do_sample=False, pad_token_id=0)
        assert answer["message"]["content"] == tok.decode(out[0, len(ids["input_ids"]) :], skip_special_tokens=True)
        assert "tool_calls" not in answer["message"] and answer["finish_reason"] in ("stop", "length")
        body = {"messages": messages, "tools": TOOLS, "max_tokens": 8, "temperature": 0, "stream": True}
        with loopback_http.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as s:
            chunks = [json.loads(x[6:])["choices"][0] for x in s.iter_lines() if x.startswith("data: {")]
        assert "".join(c["delta"].get("content", "") for c in chunks) == answer["message"]["content"]
        assert chunks[-1]["finish_reason"] == answer["finish_reason"] and not any("tool_calls" in c["delta"] for c in chunks)
        bos = {"logit_bias": {str(tok.bos_token_id): 100}, "max_tokens": 3}  # a special token, written three times
        assert post(url, "chat/completions", {**body, **bos, "stream": False}).json()["choices"][0]["message"]["content"] == ""
    with tiny_chat_server(folder, TOOLS_TEMPLATE, prefill_seq_len=8, ctx_len=160, full_batch_size=2, tool_call_parser="mistral") as up:
        url = up[0]
        body = {"messages": messages, "tools": TOOLS, "temperature": 0, **bos}  # mistral's markers are special tokens: kept
        assert post(url, "chat/completions", body).json()["choices"][0]["message"]["content"] == tok.bos_token * 3
        assert post(url, "chat/completions", {**body, "tool_choice": "none"}).json()["choices"][0]["message"]["content"] == ""


def test_a_tool_call_turn_reaches_the_template_with_its_arguments_as_an_object(server):
    """An assistant turn's tool_calls: each call's arguments (OpenAI's JSON text) reach the chat template as the object
    they hold, as vLLM hands them (templates write them with tojson)."""
    import copy

    tok = copy.deepcopy(server[1])
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }}:{% if m.get('tool_calls') %}{% for c in m['tool_calls'] %}"
        "{{ c['function']['arguments'] | tojson }}{% endfor %}{% else %}{{ m['content'] }}{% endif %}\n{% endfor %}"
    )
    parser = RequestParser(tok, ["m"], 128, 320, 8, grammars=None)
    call = {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": '{"zone": 2}'}}
    messages = [
        {"role": "user", "content": "Time?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "12:00"},
    ]
    rendered = parser.chat_prompt(messages, options={"add_generation_prompt": False})
    assert 'assistant:{"zone": 2}' in rendered and "tool:12:00" in rendered


def choice_text(hf, tok, prompt: str, regex: str) -> str:
    expected = hf_constrained_greedy(hf, tok, tok(prompt)["input_ids"], llguidance.LLMatcher.grammar_from_regex(regex), 24)
    return tok.decode(expected, skip_special_tokens=True)


def test_a_server_that_generates_nothing_refuses_structured_output(server):
    """The parser of a server without generation (the scores and embeddings servers' /tokenize) says so."""
    parser = RequestParser(server[1], ["m"], 128, 320, 8, grammars=None)
    with pytest.raises(Exception, match="not available on this server"):
        parser.completion({"prompt": "hi", "guided_regex": "a+"})
    assert np.asarray(parser.completion({"prompt": "hi"}).jobs[0].tokens).size  # without a grammar: as before
