"""The tool-call parsers of vLLM's later models (hy_v3, hy_v4, gigachat3, plamo3, dots, kimi_k3, ling3) on written answers, with the
examples of vLLM's own tests: each reads a whole answer as vLLM's parser does, and its stream adds up to it."""

from __future__ import annotations

import json
import re

from tests.test_structured_output import TOOLS
from tests.test_tool_parsers import assert_stream_adds_up

DAYS = {"type": "function", "function": {"name": "plan", "parameters": {"type": "object", "properties": {
    "days": {"type": "integer"}, "ratio": {"type": "number"}, "ok": {"type": "boolean"}, "tags": {"type": "array"},
    "note": {"type": ["string", "null"]}, "level": {"type": "int64"},
}}}}  # fmt: skip
ALL_TOOLS = TOOLS + [DAYS]


def read(parser: str, text: str) -> tuple[str | None, list[tuple[str, dict]]] | None:
    from QEfficient.serving.tools import AutoTools

    message = AutoTools(ALL_TOOLS, parser).message(text)
    if message is None:
        return None
    return message["content"], [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]


def streams_add_up(parser: str, *answers: str) -> None:
    from QEfficient.serving.tools import AutoTools

    tools = AutoTools(ALL_TOOLS, parser)
    for text in answers:
        assert_stream_adds_up(tools, text)


def test_hy_v3_calls_typed_by_hunyuan_s_rules():
    text = (
        "Checking.<tool_calls>\n<tool_call>get_weather<tool_sep>\n<arg_key>city</arg_key>\n<arg_value>Beijing</arg_value>\n"
        "</tool_call>\n<tool_call>plan<tool_sep><arg_key>days</arg_key><arg_value>3</arg_value><arg_key>ratio</arg_key>"
        "<arg_value>2</arg_value><arg_key>ok</arg_key><arg_value>True</arg_value><arg_key>tags</arg_key><arg_value>[1, 2]"
        "</arg_value><arg_key>note</arg_key><arg_value>null</arg_value><arg_key>level</arg_key><arg_value>7</arg_value>"
        "</tool_call>\n</tool_calls>"
    )
    plan = {"days": 3, "ratio": 2, "ok": True, "tags": [1, 2], "note": "null", "level": 7}  # "null" stays text for a string
    assert read("hy_v3", text) == ("Checking.", [("get_weather", {"city": "Beijing"}), ("plan", plan)])
    assert read("hy_v3", "<tool_calls><tool_call>get_time<tool_sep></tool_call></tool_calls>") == (None, [("get_time", {})])
    cut = "<tool_calls><tool_call>get_weather<tool_sep><arg_key>city</arg_key><arg_value>Paris</arg_value><arg_key>x"
    assert read("hy_v3", cut) == (None, [("get_weather", {"city": "Paris"})])  # cut short: still a call (vLLM's)
    assert read("hy_v3", "No tools here.") is None and read("hy_v3", "<tool_calls>oops</tool_calls>") is None
    twice = "<tool_calls><tool_call>plan<tool_sep><arg_key>days</arg_key><arg_value>1</arg_value><arg_key>days</arg_key>"
    assert read("hy_v3", twice + "<arg_value>2</arg_value></tool_call></tool_calls>") == (None, [("plan", {"days": 2})])  # vLLM's: the last
    null = "<tool_calls><tool_call>plan<tool_sep><arg_key>days</arg_key><arg_value>null</arg_value></tool_call></tool_calls>"
    assert read("hy_v3", null) == (None, [("plan", {"days": None})])
    suffixed = re.sub(r"<(/?)(tool_calls|tool_call|tool_sep|arg_key|arg_value)>", r"<\1\2:6124c78e>", text)
    assert read("hy_v3", suffixed) == read("hy_v3", text)  # a checkpoint's suffixed markers
    assert read("hy_v3", "x<arg_key:q>y" + suffixed[len("Checking.") :])[0] == "x<arg_key:q>y"  # the content as written
    streams_add_up("hy_v3", text, cut, suffixed, "No <tool", "<tool_calls:61", "x <tool_call:q> y <tool_calls:q>oops</tool_calls:q>")


def test_hy_v4_reads_strictly():
    text = (
        "Sure.<tool_calls><tool_call>get_weather<arg_key>city</arg_key><arg_value> Paris </arg_value></tool_call>"
        "<tool_call>get_time</tool_call></tool_calls>"
    )
    assert read("hy_v4", text) == ("Sure.", [("get_weather", {"city": " Paris "}), ("get_time", {})])  # values as written
    assert read("hy_v4", text.replace("</tool_calls>", "")) is None  # not closed: text
    assert read("hy_v4", text.replace("</arg_key>", "</arg_key>junk")) is None  # more than the arguments
    assert read("hy_v4", "<tool_calls><tool_call><arg_key>a</arg_key><arg_value>1</arg_value></tool_call></tool_calls>") is None
    streams_add_up("hy_v4", text, "Sure.<tool_calls><tool_call>get_wea")
    # an unclosed block streams its calls as written; at the end the answer is text and the rest of it follows as content
    from QEfficient.serving.tools import AutoTools

    unclosed, stream = text.replace("</tool_calls>", ""), AutoTools(ALL_TOOLS, "hy_v4").stream()
    sent = [stream.delta(unclosed[i : i + 5], final=i + 5 >= len(unclosed)) or {} for i in range(0, len(unclosed), 5)]
    assert "".join(d.get("content", "") for d in sent) == unclosed and not stream.called


def test_gigachat3_one_json_call_after_its_header():
    three = 'I\'ll check that for you.<|message_sep|>\n\nfunction call<|role_sep|>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    assert read("gigachat3", three) == ("I'll check that for you.", [("get_weather", {"city": "Oslo"})])
    one = '<|function_call|>{"name": "get_time", "arguments": {}}</s>'
    assert read("gigachat3", one) == (None, [("get_time", {})])
    assert read("gigachat3", '<|function_call|>{"name": "get_time", "arguments": [1]}') is None  # arguments not an object
    assert read("gigachat3", "<|function_call|>{oops") is None and read("gigachat3", "Plain answer.") is None
    raw = '<|function_call|>{"name": "get_weather", "arguments": {"city": "a\nb"}}'  # a raw newline in a string
    assert read("gigachat3", raw) == (None, [("get_weather", {"city": "a\nb"})])
    streams_add_up("gigachat3", raw)  # escaped alike, streamed or not
    streams_add_up("gigachat3", three, one, "Plain <|message", 'x<|function_call|>{"name": "get_ti')


def test_plamo3_tags_in_strict_order_and_json_as_written():
    def call(name: str, arguments: str) -> str:
        return (
            f"<|plamo:begin_tool_request:plamo|><|plamo:begin_tool_name:plamo|>{name}<|plamo:end_tool_name:plamo|>"
            f"<|plamo:begin_tool_arguments:plamo|><|plamo:constrain|>json<|plamo:msg|>{arguments}"
            "<|plamo:end_tool_arguments:plamo|><|plamo:end_tool_request:plamo|>"
        )

    block = "<|plamo:begin_tool_requests:plamo|>" + call("get_weather", '{"city": "Tokyo"}') + call("get_time", '{"zone": 9}')
    text = f"Checking the weather.{block}<|plamo:end_tool_requests:plamo|><|plamo:tag|>ignored"
    assert read("plamo3", text) == ("Checking the weather.", [("get_weather", {"city": "Tokyo"}), ("get_time", {"zone": 9})])
    from QEfficient.serving.tools import AutoTools

    assert AutoTools(ALL_TOOLS, "plamo3").message(text)["tool_calls"][0]["function"]["arguments"] == '{"city": "Tokyo"}'
    assert read("plamo3", f"Checking.{block}") is None  # no end tag: no calls
    assert read("plamo3", text.replace("<|plamo:end_tool_name:plamo|><|plamo", "<|plamo:end_tool_name:plamo|> <|plamo")) is None
    streams_add_up("plamo3", text)
    plain = AutoTools(ALL_TOOLS, "plamo3")  # an answer without calls: the text before the block or the end tag
    assert plain.plain("Answer<|plamo:begin_") == "Answer"  # a tag cut short at the end
    for answer, content in ((f"Checking.{block}", "Checking."), ("Just an answer.<|plamo:tag|>after", "Just an answer.")):
        stream = plain.stream()
        sent = [stream.delta(answer[i : i + 3], final=i + 3 >= len(answer)) or {} for i in range(0, len(answer), 3)]
        assert "".join(d.get("content", "") for d in sent) == content


def test_ling3_reads_glm47_calls():
    from QEfficient.serving.tools import PARSERS

    assert PARSERS["ling3"] is PARSERS["glm47"]


def test_dots_invokes_or_json_in_closed_blocks_to_offered_tools():
    from QEfficient.serving.tool_parsers_dots import dots_value

    text = (
        'ok<dots_function_call><invoke name="plan"><parameter name="tags">["a"]</parameter><parameter name=days> 3 '
        '</parameter><parameter name="ok">1</parameter><parameter name="note">null</parameter></invoke>'
        '<invoke name="unknown"></invoke></dots_function_call>'
        '<dots_function_call>{"name": "get_weather", "arguments": {"city": "Shanghai"}}</dots_function_call> trailing'
    )
    plan = {"tags": ["a"], "days": 3, "ok": True, "note": None}
    assert read("dots", text) == ("ok", [("plan", plan), ("get_weather", {"city": "Shanghai"})])  # unknown: dropped
    assert read("dots", '<dots_function_call>{"name": "get_time"}</dots_function_call>') == (None, [("get_time", {})])
    assert read("dots", '<dots_function_call>{"name": "get_time", "arguments": {}}') is None  # not closed: text
    assert read("dots", '<dots_function_call><invoke name="nope"></invoke></dots_function_call>') is None
    assert read("dots", '<dots_function_call>{"name": ["x"], "arguments": {}}</dots_function_call>') is None  # not a name
    twice = '<dots_function_call><invoke name="get_weather"><parameter name="city">a</parameter><parameter name="city">b'
    assert read("dots", twice + "</parameter></invoke></dots_function_call>") == (None, [("get_weather", {"city": "b"})])
    streams_add_up("dots", text, "plain <dots_func", '<dots_function_call>{"name": "get_time"}</dots_function_call>')
    assert [dots_value(v, k) for v, k in (("2.0", "number"), ("2.5", "float"), ("x", "integer"), ("{}", "object"))] == [2, 2.5, "x", {}]


def test_kimi_k3_calls_in_its_tools_channel():
    def argument(key: str, kind: str, value: str) -> str:
        return f'<|open|>argument key="{key}" type="{kind}"<|sep|>{value}<|close|>argument<|sep|>'

    calls = (
        '<|open|>tools<|sep|><|open|>call tool="get_weather" index="0"<|sep|>' + argument("city", "string", "Paris")
        + '<|close|>call<|sep|><|open|>call tool="plan" index="1"<|sep|>' + argument("days", "integer", "3")
        + argument("tags", "array", '["a"]') + argument("note", "object", "not json") + "<|close|>call<|sep|><|close|>tools<|sep|>"
    )  # fmt: skip
    text = f"Sure.<|close|>response<|sep|>{calls}<|close|>message<|sep|>"
    expected = [("get_weather", {"city": "Paris"}), ("plan", {"days": 3, "tags": ["a"], "note": "not json"})]
    assert read("kimi_k3", text) == ("Sure.", expected)
    assert read("kimi_k3", "<|open|>response<|sep|>Sure.<|close|>response<|sep|>" + calls) == ("Sure.", expected)
    assert read("kimi_k3", "Sure." + calls) == ("Sure.", expected)  # the reply's channel closed by the reasoning parser
    assert read("kimi_k3", "Hello<|close|>message<|sep|>") is None
    assert read("kimi_k3", '<|open|>tools<|sep|><|open|>call tool="get_time"<|sep|>') is None  # not closed: no call
    streams_add_up("kimi_k3", text, "Sure." + calls, "Sure.<|close|>res", "pre<|open|>response<|sep|>Sure." + calls)
    from QEfficient.serving.tools import AutoTools

    stream = AutoTools(ALL_TOOLS, "kimi_k3").stream()  # an answer without calls: the reply, its markers left out
    answer = "Hello there<|close|>response<|sep|><|close|>message<|sep|>"
    sent = [stream.delta(answer[i : i + 4], final=i + 4 >= len(answer)) or {} for i in range(0, len(answer), 4)]
    assert "".join(d.get("content", "") for d in sent) == "Hello there"
    assert AutoTools(ALL_TOOLS, "kimi_k3").plain(answer) == "Hello there"  # the same unstreamed (serving/app.py)
