"""OpenAI's Responses API (/v1/responses) and Anthropic's Messages API (/v1/messages), driven by OpenAI's and
Anthropic's own Python clients against a real server on loopback: each response holds what the same chat request
answers (transformers' greedy text, the reasoning apart, the tool calls, the JSON under a schema), streamed as each
API's events that add up to it; what this stateless server does not serve is a 400 that says what to send."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import tiny_chat_server
from tests.loopback import loopback_http
from tests.test_reasoning import MESSAGES, OPTIONS, THINK_TEMPLATE, thinking_model
from tests.test_server import post
from tests.test_structured_output import SCHEMA, TOOLS

# the thinking template, writing an assistant turn's tool calls too, and the reasoning effort where one is asked for
TEMPLATE = "{% if reasoning_effort is defined %}<s>effort: {{ reasoning_effort }}\n{% endif %}" + THINK_TEMPLATE.replace(
    "{{ m['content'] }}",
    "{{ m['content'] }}{% for c in m.tool_calls or [] %}[{{ c.function.name }} {{ c.function.arguments | tojson }}]{% endfor %}",
)


def _openai():
    import openai  # (here, not at collection: the two clients take 2 s to import in every worker)

    return openai


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """The tiny thinking model (test_reasoning.py) behind a server with the qwen3 reasoning parser and hermes tool
    calls; yields (url, OpenAI client)."""
    folder = shutil.copytree(tiny_model_dir("qwen2"), tmp_path_factory.mktemp("responses") / "qwen2")
    thinking_model(folder, TEMPLATE)
    with tiny_chat_server(folder, TEMPLATE, tool_call_parser="hermes", **{**OPTIONS, "ctx_len": 256}) as (url, *_):
        yield url, _openai().OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


def chat(url: str, **body) -> dict:
    r = post(url, "chat/completions", {"temperature": 0, **body})
    assert r.status_code == 200, r.text
    return r.json()


def streamed(client, **request) -> tuple[list, object]:
    """A streamed response's events, checked to be numbered in order, and the response the last one carries."""
    events = list(client.responses.create(stream=True, **request))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    return events, events[-1].response


def test_a_response_holds_the_chat_answer_streamed_or_not(server):
    """The reasoning and the text of a response are the chat answer's; the stream's deltas add up to them, each item
    opened and closed in order; max_output_tokens reached makes the response incomplete; usage counts the same tokens."""
    url, client = server
    expected = chat(url, messages=MESSAGES, max_tokens=12)
    message = expected["choices"][0]["message"]
    response = client.responses.create(input="paint the sky", max_output_tokens=12, temperature=0)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == message["reasoning"]
    assert response.output_text == (message["content"] or "")
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        expected["usage"]["prompt_tokens"],
        expected["usage"]["completion_tokens"],
    )
    assert 0 < response.usage.output_tokens_details.reasoning_tokens <= response.usage.output_tokens
    events, final = streamed(client, input="paint the sky", max_output_tokens=12, temperature=0)
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert (reasoning, text) == (message["reasoning"], message["content"] or "")
    assert [e.type for e in events if e.type.startswith("response.output_item")] == [
        "response.output_item.added",
        "response.output_item.done",
    ] * 2
    assert events[-1].type == "response.incomplete" and final.output_text == response.output_text
    assert final.usage.output_tokens == response.usage.output_tokens
    # the item max_output_tokens cut is incomplete, the one before it completed, as OpenAI's
    assert [item.status for item in response.output] == [item.status for item in final.output] == ["completed", "incomplete"]


def test_output_text_logprobs(server):
    """include ["message.output_text.logprobs"] with top_logprobs: the message's output_text carries the chat answer's
    logprobs (every token's, the thinking's too, as vLLM's); streamed, the deltas carry them in order, and the done
    event and the final response hold every one."""
    url, client = server
    expected = chat(url, messages=MESSAGES, max_tokens=12, logprobs=True, top_logprobs=2)["choices"][0]["logprobs"]["content"]
    asked = {"input": "paint the sky", "max_output_tokens": 12, "temperature": 0, "include": ["message.output_text.logprobs"]}
    response = client.responses.create(**asked, top_logprobs=2)
    part = response.output[-1].content[0]
    assert [lp.model_dump() for lp in part.logprobs] == expected and len(expected) == 12
    events, final = streamed(client, **asked, top_logprobs=2)
    deltas = [lp.model_dump() for e in events if e.type == "response.output_text.delta" for lp in e.logprobs]
    done = next(e for e in events if e.type == "response.output_text.done")
    assert [entry["token"] for entry in deltas] == [entry["token"] for entry in expected[: len(deltas)]]
    assert deltas == expected[: len(deltas)] and [lp.model_dump() for lp in done.logprobs] == expected
    assert [lp.model_dump() for lp in final.output[-1].content[0].logprobs] == expected
    plain = client.responses.create(input="paint the sky", max_output_tokens=12, temperature=0, top_logprobs=2)  # no include
    assert plain.output[-1].type == "message" and not plain.output[-1].content[0].logprobs


def test_instructions_and_input_items_become_the_chat_messages(server):
    """instructions, a developer message, an earlier assistant turn, function calls and their outputs reach the chat
    template as the chat route's messages (the same tokens, the same answer); enable_thinking false (chat_template_kwargs, a vLLM
    extension) leaves no reasoning item."""
    url, client = server
    items = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "What time is it?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_time", "arguments": '{"zone": 2}'},
        {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_text", "text": "10:00"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "it said ten"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is ten."}]},
        {"role": "user", "content": "thanks"},
    ]
    call = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": '{"zone": 2}'}}
    messages = [
        {"role": "system", "content": "You help.\n\nBe brief."},  # instructions and a developer message: one system turn
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "10:00"},
        {"role": "assistant", "content": "It is ten.", "reasoning": "it said ten"},  # the reasoning item, sent back
        {"role": "user", "content": "thanks"},
    ]
    kwargs = {"enable_thinking": False}
    rendered = loopback_http.post(
        f"{url}/tokenize", json={"messages": messages, "chat_template_kwargs": kwargs, "return_token_strs": True}, timeout=60
    ).json()
    written = "".join(rendered["token_strs"]).replace("\u0120", " ")  # byte-level BPE's space
    assert all(s in written for s in ("get_time", "(it said ten)"))  # the template writes the call and the reasoning
    expected = chat(url, messages=messages, max_tokens=8, chat_template_kwargs=kwargs)["choices"][0]["message"]
    response = client.responses.create(
        instructions="You help.", input=items, max_output_tokens=8, temperature=0, extra_body={"chat_template_kwargs": kwargs}
    )
    assert [item.type for item in response.output] == ["message"] and response.output_text == expected["content"]
    effort = loopback_http.post(
        f"{url}/tokenize", json={"messages": MESSAGES, "reasoning_effort": "low", "return_token_strs": True}, timeout=60
    )
    assert "effort:\u0120low" in "".join(effort.json()["token_strs"])  # OpenAI's reasoning_effort: the template's variable
    expected = chat(url, messages=MESSAGES, max_tokens=8, reasoning_effort="low")["choices"][0]["message"]
    response = client.responses.create(input="paint the sky", max_output_tokens=8, temperature=0, reasoning={"effort": "low"})
    assert response.output_text == (expected["content"] or "") and response.output[0].content[0].text == expected["reasoning"]
    raw = post(url, "responses", {"input": "hi", "max_output_tokens": 4, "tools": [], "tool_choice": "auto", "temperature": 0})
    assert raw.status_code == 200 and _openai().types.responses.Response.model_validate(raw.json()).status == "incomplete"


def test_an_answer_cut_in_its_thinking_is_a_reasoning_item_alone(server):
    """max_output_tokens reached before </think>: the output is the reasoning, streamed or not."""
    url, client = server
    thought = chat(url, messages=MESSAGES, max_tokens=2)["choices"][0]["message"]["reasoning"]
    response = client.responses.create(input="paint the sky", max_output_tokens=2, temperature=0)
    assert [(item.type, item.content[0].text) for item in response.output] == [("reasoning", thought)]
    _, final = streamed(client, input="paint the sky", max_output_tokens=2, temperature=0)
    assert [(item.type, item.content[0].text) for item in final.output] == [("reasoning", thought)]


def test_function_calls_and_json_output(server):
    """A forced function call comes back as a function_call item (its call_id the chat call's id), its arguments
    streamed as deltas that add up; text.format json_schema holds the answer after the thinking, as chat's
    response_format does."""
    url, client = server
    tools = [{"type": "function", **t["function"]} for t in TOOLS]
    named = {"type": "function", "name": "get_time"}
    expected = chat(url, messages=MESSAGES, max_tokens=60, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}})
    call = expected["choices"][0]["message"]["tool_calls"][0]["function"]
    response = client.responses.create(input="paint the sky", max_output_tokens=60, temperature=0, tools=tools, tool_choice=named)
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [("get_time", call["arguments"])] and calls[0].call_id.startswith("chatcmpl-tool-")
    events, final = streamed(client, input="paint the sky", max_output_tokens=60, temperature=0, tools=tools, tool_choice=named)
    assert "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta") == call["arguments"]
    assert [(c.name, c.arguments) for c in final.output if c.type == "function_call"] == [("get_time", call["arguments"])]
    schema = {"type": "json_schema", "name": "person", "schema": SCHEMA}
    expected = chat(
        url, messages=MESSAGES, max_tokens=60, response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
    )
    response = client.responses.create(input="paint the sky", max_output_tokens=60, temperature=0, text={"format": schema})
    assert response.output_text == expected["choices"][0]["message"]["content"] and set(json.loads(response.output_text)) == {"name", "age"}


@pytest.mark.parametrize(
    "request_body, param",
    [
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input"),
        ({"input": []}, "input"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text"),
        ({"input": "hi", "temperature": "hot"}, "temperature"),
        ({"input": "hi", "max_output_tokens": 100000}, "max_output_tokens"),  # the chat route's 400, named as asked
        ({"input": "hi", "reasoning": {"effort": "low"}, "chat_template_kwargs": "x"}, "chat_template_kwargs"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools"),
        ({"input": "hi", "reasoning": {"effort": 5}}, "reasoning.effort"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": 5}]}, "input"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": [1]}], "tool_choice": "none"}, "tools"),
        ({"input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function"}}, "tool_choice"),
    ],
)
def test_what_is_not_served_is_a_400_that_says_what_to_send(server, request_body, param):
    url, client = server
    extra = {k: v for k, v in request_body.items() if k == "chat_template_kwargs"}  # vLLM's, not in OpenAI's client
    with pytest.raises(_openai().BadRequestError) as caught:
        client.responses.create(**{k: v for k, v in request_body.items() if k not in extra}, extra_body=extra)
    assert caught.value.body["param"] == param
    message = caught.value.body["message"]  # in the Responses API's terms, not the chat request it becomes
    assert "'max_tokens'" not in message and "'messages'" not in message and '"function": {' not in message, message


# Anthropic's Messages API, driven by Anthropic's own Python client against the same server


@pytest.fixture(scope="module")
def claude(server):
    """(url, Anthropic client, the served model's name)."""
    url = server[0]
    model = loopback_http.get(f"{url}/v1/models", timeout=30).json()["data"][0]["id"]
    import anthropic

    return url, anthropic.Anthropic(base_url=url, api_key="none", max_retries=0), model


def test_a_message_holds_the_chat_answer_streamed_or_not(claude):
    """The thinking and text blocks of a message are the chat answer's reasoning and content, streamed as the same
    blocks; max_tokens reached is stop_reason max_tokens; usage counts the same tokens; count_tokens counts the prompt
    as /tokenize does."""
    url, client, model = claude
    expected = chat(url, messages=MESSAGES, max_tokens=12)
    message = expected["choices"][0]["message"]
    greedy = {"extra_body": {"temperature": 0}}  # Anthropic's client sends no temperature of its own (the default samples)
    answer = client.messages.create(model=model, max_tokens=12, messages=MESSAGES, **greedy)
    assert [b.type for b in answer.content] == ["thinking", "text"] and answer.content[0].thinking == message["reasoning"]
    assert answer.content[1].text == (message["content"] or "") and answer.stop_reason == "max_tokens"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (
        expected["usage"]["prompt_tokens"],
        expected["usage"]["completion_tokens"],
    )
    with client.messages.stream(model=model, max_tokens=12, messages=MESSAGES, **greedy) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    blocks = [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in final.content]
    assert text == answer.content[1].text and final.stop_reason == "max_tokens"
    assert blocks == [("thinking", answer.content[0].thinking), ("text", answer.content[1].text)]
    cut = next(k for k in range(1, len(text) - 1) if text.find(text[k : k + 2]) == k)  # a first occurrence past the start
    sequence = {"stop_sequences": ["zz-never", text[cut : cut + 2]], **greedy}
    stopped = client.messages.create(model=model, max_tokens=12, messages=MESSAGES, **sequence)
    assert (stopped.content[-1].text, stopped.stop_reason, stopped.stop_sequence) == (text[:cut], "stop_sequence", text[cut : cut + 2])
    with client.messages.stream(model=model, max_tokens=12, messages=MESSAGES, **sequence) as stream:
        final = stream.get_final_message()
    assert (final.content[-1].text, final.stop_reason, final.stop_sequence) == (text[:cut], "stop_sequence", text[cut : cut + 2])
    from QEfficient.serving.anthropic import _stop

    assert _stop("tool_calls", text[cut : cut + 2], called=False) == ("tool_use", None)  # calls, whatever stopped them
    counted = client.messages.count_tokens(model=model, messages=MESSAGES)
    assert counted.input_tokens == loopback_http.post(f"{url}/tokenize", json={"messages": MESSAGES}, timeout=30).json()["count"]


def test_tool_use_blocks_in_and_out(claude):
    """A forced tool comes back as a tool_use block (stop_reason tool_use), streamed as input_json deltas; a
    conversation with tool_use, tool_result and thinking blocks reaches the template as the chat route's messages."""
    url, client, model = claude
    tools = [{"name": t["function"]["name"], "input_schema": t["function"]["parameters"]} for t in TOOLS]
    named = {"type": "function", "function": {"name": "get_time"}}
    call = chat(url, messages=MESSAGES, max_tokens=60, tools=TOOLS, tool_choice=named)["choices"][0]["message"]["tool_calls"][0]
    forced = {"model": model, "max_tokens": 60, "messages": MESSAGES, "tools": tools, "tool_choice": {"type": "tool", "name": "get_time"}}
    forced["extra_body"] = {"temperature": 0}
    answer = client.messages.create(**forced)
    uses = [(b.name, b.input) for b in answer.content if b.type == "tool_use"]
    assert uses == [("get_time", json.loads(call["function"]["arguments"]))] and answer.stop_reason == "tool_use"
    with client.messages.stream(**forced) as stream:
        final = stream.get_final_message()
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == uses and final.stop_reason == "tool_use"
    cut = {**forced, "max_tokens": 3}  # a call cut short is max_tokens' stop, not a finished tool_use
    assert client.messages.create(**cut).stop_reason == "max_tokens"
    with client.messages.stream(**cut) as stream:
        assert stream.get_final_message().stop_reason == "max_tokens"
    use = {"type": "tool_use", "id": "t1", "name": "get_time", "input": {"zone": 2}}
    result = [{"type": "tool_result", "tool_use_id": "t1", "content": "10:00"}, {"type": "text", "text": "thanks"}]
    turns = [
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "ask", "signature": ""}, use]},
        {"role": "user", "content": result},
    ]
    tool_call = {"id": "t1", "type": "function", "function": {"name": "get_time", "arguments": '{"zone": 2}'}}
    messages = [
        {"role": "system", "content": "You help."},
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": "", "reasoning": "ask", "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "t1", "content": "10:00"},
        {"role": "user", "content": "thanks"},
    ]
    kwargs = {"enable_thinking": False}
    expected = chat(url, messages=messages, max_tokens=8, chat_template_kwargs=kwargs)["choices"][0]["message"]["content"]
    extra = {"chat_template_kwargs": kwargs, "temperature": 0}
    answer = client.messages.create(model=model, max_tokens=8, messages=turns, system="You help.", extra_body=extra)
    assert [(b.type, b.text) for b in answer.content] == [("text", expected)]


def test_every_error_of_the_messages_routes_is_in_anthropic_s_shape(claude):
    """An unknown model, an unknown route under /v1/messages, a wrong method: Anthropic's error bodies."""
    url, _, model = claude
    for method, route, body, status, kind in (
        ("POST", "/v1/messages", {"model": "nope", "max_tokens": 4, "messages": MESSAGES}, 404, "not_found_error"),
        ("POST", "/v1/messages/batches", {}, 404, "not_found_error"),
        ("GET", "/v1/messages", None, 405, "api_error"),
        ("POST", "/v1/messages/count_tokens", {"model": model, "messages": []}, 400, "invalid_request_error"),
    ):
        r = loopback_http.request(method, f"{url}{route}", json=body, timeout=30)
        assert (r.status_code, r.json()["type"], r.json()["error"]["type"]) == (status, "error", kind), (route, r.text)


@pytest.mark.parametrize(
    "request_body, words",
    [
        ({"messages": MESSAGES}, "max_tokens"),
        ({"messages": [{"role": "user", "content": [{"type": "document"}]}], "max_tokens": 4}, "block"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image png", "data": "AA"}}]}
                ],
                "max_tokens": 4,
            },
            "media_type must be an image's media type",
        ),
        ({"messages": [{"role": "system", "content": "x"}], "max_tokens": 4}, "role"),
        ({"messages": MESSAGES, "max_tokens": 4, "tools": [{"name": "f"}], "tool_choice": {"type": "weird"}}, "tool_choice"),
        ({"messages": MESSAGES, "max_tokens": 4, "temperature": "hot"}, "temperature"),
        ({"messages": MESSAGES, "max_tokens": 4, "thinking": "yes"}, "'thinking' must be an object"),
        ({"messages": MESSAGES, "max_tokens": 4, "tool_choice": {"type": "foo"}}, "tool_choice"),  # without tools too
        ({"messages": MESSAGES, "max_tokens": 4, "stop_sequences": [""]}, "'stop_sequences'"),  # the chat route's, named as sent
        ({"messages": MESSAGES, "max_tokens": 0}, "'max_tokens' is out of range"),
        (
            {"messages": MESSAGES, "max_tokens": 4, "tools": [{"name": "f", "input_schema": [1]}], "tool_choice": {"type": "none"}},
            "input_schema must be",
        ),
        (
            {
                "messages": [*MESSAGES, {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}],
                "max_tokens": 4,
            },
            "input must be an object",
        ),
    ],
)
def test_a_bad_message_request_is_an_anthropic_400(claude, request_body, words):
    url, client, model = claude
    r = post(url, "messages", {"model": model, **request_body})
    assert r.status_code == 400 and r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    assert words in r.json()["error"]["message"]
    if "max_tokens" in request_body:  # Anthropic's client would not send a request without it
        extra = {k: v for k, v in request_body.items() if k == "temperature"}
        import anthropic

        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(model=model, **{k: v for k, v in request_body.items() if k not in extra}, extra_body=extra)
