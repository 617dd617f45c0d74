"""The tool-call parsers of tool_choice "auto" (serving/tool_parsers*.py), on written answers: each reads a whole
answer as vLLM's parser of the same name does, and its stream, fed the answer in pieces of every size, adds up to it."""

from __future__ import annotations

import json

import pytest

from tests.test_structured_output import TOOLS

HERMES_CALLS = ('{"name": "get_time", "arguments": {"zone": 2}}', '{"name":"get_weather","arguments":{"city":"a}\\"b"}}')
LLAMA3_CALLS = ('{"name": "get_time", "parameters": {"zone": 2}}', HERMES_CALLS[1])
ARGUMENTS = ('{"zone": 2}', '{"city":"a}\\"b"}')
DS_CALLS, DS_CALL, DS_SEP, DS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>"
KIMI_SECTION, KIMI_CALL, KIMI_ARGS, KIMI_END = (
    "<|tool_calls_section_begin|>",
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
)


def assert_stream_adds_up(tools, text: str) -> None:
    """Fed in pieces of 1, 2, 3, 7 characters and whole, the stream's content and calls (names, arguments, ids where
    the model writes them) add up to the unstreamed message."""
    message = tools.message(text)
    for size in (1, 2, 3, 7, len(text)):
        stream, content, calls = tools.stream(), "", {}
        for start in range(0, len(text), size):
            piece = text[start : start + size]
            delta = stream.delta(piece, final=start + size >= len(text)) or {}
            content += delta.get("content", "")
            for c in delta.get("tool_calls", []):
                calls.setdefault(c["index"], [c["function"].get("name"), "", c.get("id")])[1] += c["function"]["arguments"]
        if message is None:
            assert content == text and not calls and not stream.called
        else:
            assert content == (message["content"] or "") and stream.called
            assert [tuple(calls[i][:2]) for i in sorted(calls)] == [
                (c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]
            ]
            if tools.parser == "kimi_k2":  # the model's own ids, streamed and not
                assert [calls[i][2] for i in sorted(calls)] == [c["id"] for c in message["tool_calls"]]


@pytest.mark.parametrize(
    "parser, answers, cut",
    [
        (
            "hermes",
            [
                f"Let me <b>look</b>.<tool_call>{HERMES_CALLS[0]}</tool_call>\n<tool_call> {HERMES_CALLS[1]}</tool_call>",
                "I am <tool not sure",
                "<",
                "A <tool_call> tag is how I call tools.",  # not a call: all of it content, as unstreamed
                '<tool_call>{"name": "get_time"}</tool_call>',  # no arguments: "{}", as unstreamed
            ],
            'ok<tool_call>{"name": "get_time", "arguments": {"zo',
        ),
        (
            "longcat",
            [f"Sure.<longcat_tool_call>{HERMES_CALLS[0]}</longcat_tool_call><longcat_tool_call>{HERMES_CALLS[1]}", "<longcat", "<"],
            'ok<longcat_tool_call>{"name": "get_time", "arguments": {"zo',
        ),
        (
            "granite4",
            [
                f"Sure.<tool_call>{HERMES_CALLS[0]}</tool_call> and <tool_call>\n{HERMES_CALLS[1]}\n</tool_call> done.",
                f"<tool_call>{HERMES_CALLS[1]}</tool_call>",
                "A <tool_call> tag is how I call tools.",  # left open: all of it content, as unstreamed
                "<tool_call>oops</tool_call>",
                "<",
            ],
            'ok<tool_call>{"name": "get_time", "arguments": {"zo',
        ),
        (
            "llama3_json",
            [
                f"{LLAMA3_CALLS[0]}; {LLAMA3_CALLS[1]}",
                f"<|python_tag|>{LLAMA3_CALLS[1]}",
                "I think { is a brace",
                "<|py",
                "<",
                '{"answer": 42}',
            ],
            '<|python_tag|>{"name": "get_time", "parameters": {"zo',
        ),
        (
            "pythonic",
            [
                '[get_time(zone=2), get_weather(city="a}\\"b")]',
                " [get_time(zone=-3)]\n",
                "[1, 2] is a list",
                "Sure: [get_time(zone=2)]",
                "[get_time(2)]",
            ],
            "[get_time(zone=2), get_wea",
        ),
        (
            "llama4_pythonic",
            [
                '<|python_start|>[get_time(zone=2), get_weather(city="a}\\"b")]<|python_end|>',
                '[get_weather(city="a}\\"b")]',
                "<|python_start|>not calls<|python_end|>",
                "<|python",
                "[1, 2] is a list",
            ],
            "<|python_start|>[get_time(zone=2), get_wea",
        ),
        (
            "mistral",
            [
                f"Sure.[TOOL_CALLS] [{HERMES_CALLS[0]}, {HERMES_CALLS[1]}]",
                '[TOOL_CALLS]get_time[ARGS]{"zone": 2}[TOOL_CALLS]get_weather[ARGS]{"city":"a}\\"b"}',
                "I am [TOOL not sure",
                "[",
                "[TOOL_CALLS] is my marker",
            ],
            'ok[TOOL_CALLS]get_time[ARGS]{"zo',
        ),
        (
            "deepseek_v31",
            [
                f"Let me check.{DS_CALLS}{DS_CALL}get_time{DS_SEP}{ARGUMENTS[0]}{DS_END}{DS_CALL}get_weather{DS_SEP}{ARGUMENTS[1]}{DS_END}",
                "I use <｜tool▁calls not often",
                "<",
                f"{DS_CALLS} opens my calls",
            ],
            f'ok{DS_CALLS}{DS_CALL}get_time{DS_SEP}{{"zo',
        ),
        (
            "deepseek_v3",
            [
                f"{DS_CALLS}{DS_CALL}function{DS_SEP}get_time\n```json\n{ARGUMENTS[0]}\n```{DS_END}\n"
                f"{DS_CALL}function{DS_SEP}get_weather\n```json\n{ARGUMENTS[1]}\n```{DS_END}<｜tool▁calls▁end｜>",
                f"{DS_CALLS}{DS_CALL}function{DS_SEP}get_time and no arguments",
            ],
            f'{DS_CALLS}{DS_CALL}function{DS_SEP}get_time\n```json\n{{"zo',
        ),
        (
            "kimi_k2",
            [
                f"Sure.{KIMI_SECTION}{KIMI_CALL}functions.get_time:0{KIMI_ARGS}{ARGUMENTS[0]}{KIMI_END}"
                f"{KIMI_CALL}functions.get_weather:1{KIMI_ARGS}{ARGUMENTS[1]}{KIMI_END}<|tool_calls_section_end|>",
                "<|tool_calls",
            ],
            f'ok{KIMI_SECTION}{KIMI_CALL}functions.get_time:0{KIMI_ARGS}{{"zo',
        ),
        (
            "internlm",
            [
                f'Let me see.<|action_start|><|plugin|>\n{{"name": "get_weather", "parameters": {ARGUMENTS[1]}}}<|action_end|>',
                "<|action_start|><|plugin|>\nnot a call<|action_end|>",
                "<|act",
            ],
            'ok<|action_start|><|plugin|>\n{"name": "get_time", "parameters": {"zo',
        ),
        (
            "jamba",
            [f"Sure.<tool_calls>[{HERMES_CALLS[0]}, {HERMES_CALLS[1]}]</tool_calls>", "<tool_calls>[1, 2]</tool_calls>", "<tool"],
            'ok<tool_calls>[{"name": "get_time", "arguments": {"zo',
        ),
        (
            "granite",
            [f"<|tool_call|>[{HERMES_CALLS[0]}, {HERMES_CALLS[1]}]", f" [{HERMES_CALLS[1]}]", "[1, 2] is a list", "I think", "<"],
            '<tool_call>[{"name": "get_time", "arguments": {"zo',
        ),
        (
            "olmo3",
            [
                '<function_calls>\nget_time(zone=2)\nget_weather(city="a}\\"b")\n</function_calls>',
                "<function_calls>\nget_time(zone=2, ok=true, none=null, more={'a': [false]})</function_calls>",
                "<function_calls>\nnot a call\n</function_calls>",
                "Plain text with get_time(zone=2)",
                "<function",
            ],
            "<function_calls>\nget_time(zone=2)\nget_wea",
        ),
        (
            "phi4_mini_json",
            [f"functools[{LLAMA3_CALLS[0]}, {HERMES_CALLS[1]}]", "Let me see. functools[]", "functools", "func", '{"answer": 42}'],
            'functools[{"name": "get_time", "arguments": {"zo',
        ),
        (
            "lfm2",
            [
                "Sure.<|tool_call_start|>[get_time(zone=2), get_weather(city='a}\"b')]<|tool_call_end|>Done.",
                "<|tool_call_start|>[get_time()]<|tool_call_end|>[get_time()]<|tool_call_end|> echo dropped",
                "<|tool_call_start|>not calls<|tool_call_end|>",
                "<|tool_ca",
            ],
            "ok<|tool_call_start|>[get_time(zone=2",
        ),
        (
            "ernie45",
            [
                f"Let me check.\n\n<tool_call>\n{HERMES_CALLS[0]}\n</tool_call>\n<tool_call>\n{HERMES_CALLS[1]}\n</tool_call>\n",
                "A plain answer\n\n",
                "<tool",
            ],
            'ok\n<tool_call>{"name": "get_time", "arguments": {"zo',
        ),
        (
            "nemotron_json",
            [
                f"Sure.<TOOLCALL>[{HERMES_CALLS[0]}, {HERMES_CALLS[1]}]</TOOLCALL>",
                f"<TOOLCALL>{HERMES_CALLS[0]}, {HERMES_CALLS[1]}</TOOLCALL> done",  # no brackets
                f"<TOOLCALL>[{HERMES_CALLS[0]}]</TOOLCALL>\n<TOOLCALL>[{HERMES_CALLS[1]}]</TOOLCALL>",
                "<TOOLCALL>[1, 2]</TOOLCALL>",
                "<TOOL",
            ],
            'ok<TOOLCALL>[{"name": "get_time", "arguments": {"zo',
        ),
        (
            "minimax",
            [
                f"Checking.\n<tool_calls>\n{HERMES_CALLS[0]}\n{HERMES_CALLS[1]}\n</tool_calls>",
                "<tool_calls>\nnot a call\n</tool_calls>",
                f"<tool_calls>\n{HERMES_CALLS[0]}\n",  # cut short by max_tokens: the calls written
                "<tool_c",
            ],
            'ok<tool_calls>\n{"name": "get_time", "arguments": {"zo',
        ),
        (
            "qwen2_5_coder",
            [
                f"Sure.\n<tools>\n{HERMES_CALLS[0]}\n{HERMES_CALLS[1]}\n</tools>",
                f"<tools>[{HERMES_CALLS[0]}]</tools> and <tools>{HERMES_CALLS[0]},\n{HERMES_CALLS[1]}</tools>",
                f"<tools>{HERMES_CALLS[1]}",  # left open: runs to the end
                "<tools>oops</tools>",
                "<too",
            ],
            'ok<tools>\n{"name": "get_time", "arguments": {"zo',
        ),
        (
            "apertus",
            [
                'I will check. <|tools_prefix|>[{"get_time": {"zone": 2}}, {"get_weather": {"city":"a}\\"b"}}]<|tools_suffix|>',
                '<|tools_prefix|>[{"get_weather": {"city":"a}\\"b"}}]',  # no suffix
                '<|tools_prefix|>[{"get_time": 2}]<|tools_suffix|>',
                "<|tools_pre",
            ],
            'ok<|tools_prefix|>[{"get_time": {"zo',
        ),
        (
            "xlam",
            [
                f"[{HERMES_CALLS[0]}, {HERMES_CALLS[1]}]",
                f"Sure.\n```json\n[{HERMES_CALLS[1]}]\n```\nDone.",
                f"[TOOL_CALLS][{HERMES_CALLS[1]}]\n",
                f"<tool_call>[{HERMES_CALLS[1]}]</tool_call>",
                "[1, 2] is a list",
                "```python\nprint(1)\n```",
                "`",
            ],
            '[{"name": "get_time", "arguments": {"zo',
        ),
    ],
)
def test_a_stream_of_auto_tool_calls_adds_up_to_the_unstreamed_answer(parser, answers, cut):
    """tool_choice "auto"'s stream, fed the answer in pieces of every size: the content (hermes and mistral: before
    the marker, a tail that may begin it held back; llama3_json: an answer that does not begin as a call; pythonic: one
    that is not a list of calls; any answer the parser does not read as calls, whole), each call's name once and its
    arguments as written, add up to the unstreamed message. A call cut short streams as it is written; at the end the
    answer is text (as unstreamed): the rest of it comes as content and the finish reason is not "tool_calls"."""
    from QEfficient.serving.tools import AutoTools

    tools = AutoTools(TOOLS, parser)
    for text in answers:
        assert_stream_adds_up(tools, text)
    first = tools.message(answers[0])["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in first][-1] == ("get_weather", {"city": 'a}"b'})
    stream = tools.stream()
    early, late = stream.delta(cut[:-1]) or {}, stream.delta(cut[-1], final=True) or {}
    assert tools.message(cut) is None and early.get("content", "") + late.get("content", "") == cut and not stream.called
    if parser not in ("pythonic", "lfm2", "llama4_pythonic", "granite4", "olmo3", "qwen2_5_coder", "minimax"):  # whole calls
        assert early["tool_calls"][0]["function"] == {"name": "get_time", "arguments": '{"z'}
    if parser == "hermes":  # a call, then one that is not: the answer is text, all of it content (the call stays sent)
        text = f"<tool_call>{HERMES_CALLS[0]}</tool_call><tool_call>oops</tool_call>"
        stream = tools.stream()
        sent = [stream.delta(text[i : i + 4], final=i + 4 >= len(text)) or {} for i in range(0, len(text), 4)]
        assert tools.message(text) is None and "".join(d.get("content", "") for d in sent) == text and not stream.called


def test_tagged_argument_syntaxes_typed_by_the_tools_schemas():
    """qwen3_coder's (and seed_oss's) <parameter=...> and glm45's <arg_key>/<arg_value> arguments: text, typed by each tool's schema as
    vLLM types them; streamed a key at a time, adding up to the unstreamed arguments; a call cut short is still a call
    (qwen3_coder, as vLLM reads it), its closed arguments streamed."""
    from QEfficient.serving.tool_parsers_xml import qwen3_value
    from QEfficient.serving.tools import AutoTools

    qwen3 = (
        "Let me check.\n<tool_call>\n<function=get_time>\n<parameter=zone>\n-2\n</parameter>\n</function>\n</tool_call>\n"
        '<tool_call>\n<function=get_weather>\n<parameter=city>\na}"b\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>'
    )
    glm = (
        "Sure.<tool_call>get_time\n<arg_key>zone</arg_key>\n<arg_value>-2</arg_value>\n</tool_call>"
        '<tool_call>get_weather<arg_key>city</arg_key><arg_value>a}"b</arg_value>'
        "<arg_key>days</arg_key><arg_value> 3\n</arg_value></tool_call>"
    )
    seed = qwen3.replace("tool_call>", "seed:tool_call>")  # Seed-OSS: qwen3_coder's calls in its own tags
    # "days" has no schema: qwen3_coder keeps it text, glm45 reads it as JSON (vLLM's rules)
    cases = [("qwen3_coder", qwen3, "Let me check.\n", "3"), ("qwen3_xml", qwen3, "Let me check.\n", "3"), ("glm45", glm, "Sure.", 3)]
    for parser, text, content, days in [*cases, ("seed_oss", seed, "Let me check.\n", "3")]:
        tools = AutoTools(TOOLS, parser)
        message = tools.message(text)
        assert message["content"] == content
        calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]
        assert calls == [("get_time", {"zone": -2}), ("get_weather", {"city": 'a}"b', "days": days})]
        for answer in (text, text[: text.index("get_weather")], "Plain text, <no calls>", "<"):
            assert_stream_adds_up(tools, answer)
    odd = [{"type": "function", "function": {"name": "f", "parameters": {"properties": ["x"]}}}]  # a schema of another shape
    odd.append({"type": "function", "function": {"name": "g", "parameters": {"properties": {"x": {"anyOf": 5}, "y": {"type": "number"}}}}})
    for parser, text in (("qwen3_coder", "<function=f>\n<parameter=x>\n1\n</parameter>\n</function>"), ("glm45", "<tool_call>f\n")):
        assert json.loads(AutoTools(odd, parser).message(text)["tool_calls"][0]["function"]["arguments"]) in ({"x": "1"}, {})
    nan = AutoTools(odd, "glm45").message("<tool_call>g\n<arg_key>x</arg_key><arg_value>NaN</arg_value></tool_call>")
    assert json.loads(nan["tool_calls"][0]["function"]["arguments"]) == {"x": "NaN"}  # JSON has no NaN: it stays text
    for cut_glm in (glm[: glm.rindex("</tool_call>")], glm[: glm.rindex("<arg_value>")], "<tool_call>\nget_ti"):
        assert_stream_adds_up(AutoTools(TOOLS, "glm45"), cut_glm)
    cut = AutoTools(TOOLS, "qwen3_coder").message(qwen3[: qwen3.index("3\n</parameter>") + 1])
    assert json.loads(cut["tool_calls"][1]["function"]["arguments"]) == {"city": 'a}"b', "days": "3"}
    assert AutoTools(TOOLS, "glm45").message(glm[: glm.rindex("</tool_call>")])["tool_calls"][-1]["function"]["name"] == "get_weather"
    schema = {
        "n": {"type": "integer"},
        "x": {"type": "number"},
        "b": {"type": "boolean"},
        "o": {"type": "object"},
        "a": {"type": "array"},
        "s": {"type": "string"},
        "ns": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    }
    cases = [
        ("n", "7", 7),
        ("n", "seven", "seven"),
        ("x", "2.5", 2.5),
        ("x", "2.0", 2),
        ("x", "inf", "inf"),
        ("b", "True", True),
        ("b", "no", False),
        ("o", '{"k": [1, null]}', {"k": [1, None]}),
        ("o", "{'k': 1}", {"k": 1}),
        ("a", "[1, 2]", [1, 2]),
        ("n", "null", None),
        ("s", "null", "null"),
        ("ns", "None", None),
        ("ns", "text", "text"),
        ("missing", "7", "7"),
    ]
    for key, value, expected in cases:
        assert qwen3_value(value, schema.get(key)) == expected, (key, value)


def test_more_json_syntaxes_content_and_calls():
    """The content vLLM's parsers give (the text around the calls, its surrounding whitespace trimmed where it did not
    stream before them), and each syntax's calls."""
    from QEfficient.serving.tools import PARSERS, AutoTools

    def read(parser: str, text: str) -> tuple[str | None, list[tuple[str, dict]]]:
        message = AutoTools(TOOLS, parser).message(text)
        return message["content"], [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]

    weather = ("get_weather", {"city": 'a}"b'})
    assert read("ernie45", f"Checking.\n<tool_call>\n{HERMES_CALLS[1]}\n</tool_call>\n") == ("Checking.", [weather])
    assert read("nemotron_json", f"Sure.<TOOLCALL>{HERMES_CALLS[1]}</TOOLCALL>\n\nDone.") == ("Sure.", [weather])
    assert read("minimax", f"Checking.\n<tool_calls>\n{HERMES_CALLS[1]}\n</tool_calls>") == ("Checking.", [weather])
    assert read("qwen2_5_coder", f"A\n<tools>{HERMES_CALLS[1]}</tools>\nB\n<tools>junk</tools>") == ("A\n\nB", [weather])
    assert read("qwen2_5_coder", '<tools>{"name": "get_time"}</tools>') == (None, [("get_time", {})])
    assert read("apertus", '<|tools_prefix|>[{"get_time": {}}]<|tools_suffix|> ok') == ("ok", [("get_time", {})])
    assert read("apertus", 'Sure. <|tools_prefix|>[{"get_time": {}}]<|tools_suffix|>') == ("Sure.", [("get_time", {})])
    assert read("xlam", f"Sure.\n```json\n[{HERMES_CALLS[1]}]\n```\nDone.") == ("Sure.\n\nDone.", [weather])
    assert read("xlam", f" [{HERMES_CALLS[1]}] ") == (None, [weather])
    assert PARSERS["hunyuan_a13b"] is PARSERS["jamba"]  # Hunyuan's <tool_calls>[...]</tool_calls>
    # xLAM's own marker opens the answer; a call object that is not JSON is none; lines that are not calls are skipped
    assert read("xlam", f"[TOOL_CALLS][{HERMES_CALLS[1]}]\nok") == ("ok", [weather])
    assert AutoTools(TOOLS, "xlam").message('ok ```json\n[{"name": "f", "arguments": {"a": 1}} oops]\n```') is None
    assert AutoTools(TOOLS, "minimax").message('<tool_calls>\n{"name": "f", "arguments": {"a": 1} oops}\n</tool_calls>') is None
    assert read("minimax", f'x\n<tool_calls>\n{HERMES_CALLS[1]}\nnote\n{{"name": "g", "argu') == ("x", [weather])
    assert AutoTools(TOOLS, "nemotron_json").message(f"<TOOLCALL>[{HERMES_CALLS[1]}] junk</TOOLCALL>") is None
    assert read("qwen2_5_coder", f'<tools>[5, {HERMES_CALLS[1]}, {{"name": "g", "arguments": "x"}}]</tools>') == (None, [weather])
    for parser in ("apertus", "nemotron_json", "xlam", "minimax"):  # nested past the stack: text, no exception
        deep = {"apertus": "<|tools_prefix|>[{", "nemotron_json": "<TOOLCALL>[", "xlam": "[TOOL_CALLS][", "minimax": "<tool_calls>\n"}
        assert AutoTools(TOOLS, parser).message(deep[parser] + "[" * 5000 + "{" * 5000) is None


def test_step3_invokes_typed_by_the_schema_s_own_type():
    """Step-3's <steptml:invoke> calls (vLLM's step3): values stripped, read as the schema's own type where they read
    (integer, number as a float, boolean, null), else text; streamed a key at a time, adding up."""
    from QEfficient.serving.tool_parsers_invoke import step3_value
    from QEfficient.serving.tools import AutoTools

    begin, call, sep = "<｜tool_calls_begin｜>", "<｜tool_call_begin｜>", "<｜tool_sep｜>"
    end, calls_end = "<｜tool_call_end｜>", "<｜tool_calls_end｜>"
    text = (
        f'Let me check.{begin}{call}function{sep}<steptml:invoke name="get_time"><steptml:parameter name="zone"> -2 '
        f'</steptml:parameter></steptml:invoke>{end}{call}function{sep}<steptml:invoke name="get_weather">'
        f'<steptml:parameter name="city">a}}"b</steptml:parameter><steptml:parameter name="days">3</steptml:parameter>'
        f"</steptml:invoke>{end}{calls_end}"
    )
    tools = AutoTools(TOOLS, "step3")
    message = tools.message(text)
    assert message["content"] == "Let me check." and tools.message(text + " Done.")["content"] == "Let me check. Done."
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]
    assert calls == [("get_time", {"zone": -2}), ("get_weather", {"city": 'a}"b', "days": "3"})]
    for answer in (text, text + " Done.", text[: text.index("get_weather")], "Plain text", "<｜tool"):
        assert_stream_adds_up(tools, answer)
    cases = [("integer", " 7 ", 7), ("integer", "7.5", "7.5"), ("number", "2", 2.0), ("number", "inf", "inf")]
    cases += [("boolean", "True", True), ("boolean", "yes", "yes"), ("null", "NULL", None), ("string", " x ", "x"), ("object", "{}", "{}")]
    for kind, value, expected in cases:
        assert step3_value(value, {"type": kind}) == expected and type(step3_value(value, {"type": kind})) is type(expected)


def test_vllm_s_other_names_read_alike():
    """llama4_json and qwen3_xml are vLLM's other names for llama3_json's and qwen3_coder's syntaxes, mimo and step3p5
    read qwen3_coder's calls and poolside_v1 glm45's; mimo's thinking is read as Qwen3's."""
    from QEfficient.serving.reasoning import SYNTAXES
    from QEfficient.serving.tools import PARSERS

    assert PARSERS["llama4_json"] is PARSERS["llama3_json"] and PARSERS["qwen3_xml"] is PARSERS["qwen3_coder"]
    assert PARSERS["mimo"] is PARSERS["step3p5"] is PARSERS["qwen3_coder"] and PARSERS["poolside_v1"] is PARSERS["glm45"]
    assert SYNTAXES["mimo"] is SYNTAXES["qwen3"]


def test_invoke_syntaxes_minimax_m2_and_deepseek_dsml():
    """minimax_m2's <invoke name=...>/<parameter name=...> calls and DeepSeek V3.2's and V4's DSML ones (vLLM's rules):
    the text before the first block is the content; values typed by the tools' schemas (DSML: string="true" keeps the
    text as written); streamed a key at a time, adding up to the unstreamed answer; a call cut short is still a call."""
    from QEfficient.serving.tool_parsers_invoke import dsml_value, minimax_value
    from QEfficient.serving.tools import AutoTools

    minimax = (
        'Let me check.<minimax:tool_call>\n<invoke name="get_time">\n<parameter name="zone">\n-2\n</parameter>\n</invoke>\n'
        '<invoke name="get_weather">\n<parameter name="city">a}"b</parameter>\n<parameter name="days"> 3 </parameter>\n'
        "</invoke>\n</minimax:tool_call>"
    )
    ds = "｜DSML｜"
    dsml = (
        f'Let me check.<{ds}function_calls>\n<{ds}invoke name="get_time">\n<{ds}parameter name="zone" string="false">-2</{ds}parameter>\n'
        f'</{ds}invoke>\n<{ds}invoke name="get_weather">\n<{ds}parameter name="city" string="true">a}}"b</{ds}parameter>\n'
        f'<{ds}parameter name="days" string="false">3</{ds}parameter>\n</{ds}invoke>\n</{ds}function_calls>'
    )
    v4 = dsml.replace(f"{ds}function_calls>", f"{ds}tool_calls>")
    # "days" has no schema: text, also where DSML says string="false" (vLLM's rules)
    for parser, text in (("minimax_m2", minimax), ("deepseek_v32", dsml), ("deepseek_v4", v4)):
        tools = AutoTools(TOOLS, parser)
        message = tools.message(text)
        assert message["content"] == "Let me check."
        calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]
        assert calls == [("get_time", {"zone": -2}), ("get_weather", {"city": 'a}"b', "days": "3"})]
        cut = text[: text.rindex("</invoke>" if parser == "minimax_m2" else f"</{ds}invoke>")]
        assert [c["function"]["name"] for c in tools.message(cut)["tool_calls"]] == ["get_time", "get_weather"]
        for answer in (text, cut, text[: text.index("get_weather")], "Plain text, <no calls>", "<"):
            assert_stream_adds_up(tools, answer)
    assert AutoTools(TOOLS, "deepseek_v32").message(v4) is None and AutoTools(TOOLS, "deepseek_v4").message(dsml) is None
    tools = AutoTools(TOOLS, "minimax_m2")
    after = minimax + ' Note: <invoke name="rm"><parameter name="path">/</parameter></invoke>'  # outside any block: text
    unnamed = '<minimax:tool_call><invoke name=""><parameter name="x">1</parameter></invoke></minimax:tool_call>'
    twice = '<minimax:tool_call><invoke name="get_time"><parameter name="zone">7</parameter><parameter name="zone">9</parameter>'
    assert [c["function"]["name"] for c in tools.message(after)["tool_calls"]] == ["get_time", "get_weather"]
    assert tools.message(unnamed) is None  # an invoke without a name is no call
    assert json.loads(tools.message(twice)["tool_calls"][0]["function"]["arguments"]) == {"zone": 7}  # the first value stays
    for answer in (after, unnamed, twice):
        assert_stream_adds_up(tools, answer)
    schema = {"n": {"type": "integer"}, "x": {"type": ["number", "null"]}, "b": {"type": "boolean"}, "o": {"type": "object"}}
    schema |= {"s": {"type": "string"}, "e": {"enum": [1, 2]}, "u": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}
    cases = [
        ("n", "7", 7, 7),
        ("n", "seven", "seven", "seven"),
        ("x", "2.0", 2, 2),
        ("x", "inf", "inf", "inf"),
        ("x", "null", None, None),
        ("b", "yes", True, "yes"),
        ("b", "0", False, False),
        ("o", '{"k": [1, null]}', {"k": [1, None]}, {"k": [1, None]}),
        ("s", "null", None, "null"),
        ("s", "42", "42", "42"),
        ("e", "2", 2, 2),
        ("u", "x1", "x1", "x1"),
        ("missing", "[1]", "[1]", "[1]"),
    ]
    for key, value, by_minimax, by_dsml in cases:
        assert (minimax_value(value, schema.get(key)), dsml_value(value, schema.get(key))) == (by_minimax, by_dsml), (key, value)


def test_json_nested_deeper_than_the_stack_is_text_for_every_parser():
    """An answer whose JSON nests past Python's recursion limit reads as text (it was an exception: a 500)."""
    from QEfficient.serving.tools import PARSERS, AutoTools

    deep = '{"a": ' * 50000 + "1" + "}" * 50000
    for name in PARSERS:
        tools = AutoTools(TOOLS, name)
        for text in (f'<tool_call>{{"name": "get_time", "arguments": {deep}}}</tool_call>', f"[{deep}]", deep, f"functools[{deep}]"):
            message = tools.message(text)
            assert message is None or isinstance(message["tool_calls"], list)
            tools.stream().delta(text, final=True)


Q, ESC = '<|"|>', "<escape>"  # Gemma 4's string marks, FunctionGemma's


@pytest.mark.parametrize(
    "parser, text, weather, cut_at, cut_weather",
    [
        (
            "gemma4",
            f"Sure.<|tool_call>call:get_time{{zone:-2}}<tool_call|>"
            f'<|tool_call>call:get_weather{{city:{Q}a}}"b{Q},days:3,o:{{x:[1,2.5,{Q}s,t{Q}],y:true,z:nope}}}}<tool_call|>',
            {"city": 'a}"b', "days": 3, "o": {"x": [1, 2.5, "s,t"], "y": True, "z": "nope"}},
            ",o:",
            {"city": 'a}"b', "days": 3},
        ),
        (
            "functiongemma",  # a bare value (days) is skipped, as vLLM skips it
            f"Sure.<start_function_call>call:get_time{{zone:{ESC}-2{ESC}}}<end_function_call>"
            f'<start_function_call>call:get_weather{{city:{ESC}a}}"b{ESC},days:3,unit:{ESC}[1, 2]{ESC}}}<end_function_call>',
            {"city": 'a}"b', "unit": [1, 2]},
            ",days",
            {"city": 'a}"b'},
        ),
    ],
)
def test_gemma_calls_in_their_own_notation(parser, text, weather, cut_at, cut_weather):
    """Gemma 4's <|tool_call>call:NAME{key:value}<tool_call|> (strings between <|"|> marks, bare numbers and booleans,
    nested objects and arrays) and FunctionGemma's call:NAME{key:<escape>value<escape>} (each escaped value JSON where
    it is JSON, else text): read into JSON as vLLM reads them; streamed a key at a time, adding up to the unstreamed
    answer; a call cut short is still a call (what it holds); no call, text."""
    from QEfficient.serving.tools import AutoTools

    tools = AutoTools(TOOLS, parser)
    message = tools.message(text)
    calls = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]]
    assert message["content"] == "Sure." and calls == [("get_time", {"zone": -2}), ("get_weather", weather)]
    cut = text[: text.index(cut_at)]
    assert json.loads(tools.message(cut)["tool_calls"][1]["function"]["arguments"]) == cut_weather
    opening = text[5 : text.index("call:")]
    for answer in (text, cut, text[: text.index("call:get_weather")], f"{opening}not a call", "Plain <b>text", opening[:6]):
        assert_stream_adds_up(tools, answer)
    assert tools.message(f"{opening}not a call") is None and tools.message("Plain text") is None


def test_gemma4_keys_values_and_markers():
    """Gemma 4's notation at its edges: a quoted key, a bare value cut by the end marker, a colon after the call (not a
    key), a call followed by the next without its end marker (each its own), as streamed."""
    from QEfficient.serving.tools import AutoTools

    tools = AutoTools(TOOLS, "gemma4")
    cases = {
        f"<|tool_call>call:f{{{Q}city{Q}:{Q}x{Q}}}<tool_call|>": [("f", {"city": "x"})],
        "<|tool_call>call:f{a:1<tool_call|>": [("f", {"a": 1})],
        "<|tool_call>call:f{a}<tool_call|> see: here": [("f", {})],
        "<|tool_call>call:f{a:1}<|tool_call>call:g{b:2}<tool_call|>": [("f", {"a": 1}), ("g", {"b": 2})],
    }
    for text, expected in cases.items():
        calls = tools.message(text)["tool_calls"]
        assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == expected, text
        assert_stream_adds_up(tools, text)


def test_olmo3_reads_json_s_null_true_and_false():
    from QEfficient.serving.tools import AutoTools

    text = "<function_calls>\nget_time(zone=-2, ok=true, none=null, more={'a': [false]}, pair=(1, 2))\n</function_calls>"
    call = AutoTools(TOOLS, "olmo3").message(text)["tool_calls"][0]["function"]
    assert json.loads(call["arguments"]) == {"zone": -2, "ok": True, "none": None, "more": {"a": [False]}, "pair": [1, 2]}
    assert AutoTools(TOOLS, "olmo3").message("<function_calls>\nget_time(zone=1e999)\n</function_calls>") is None  # no JSON


def test_every_parser_reads_random_pieces_of_every_syntax_without_failing():
    """Answers made of random pieces of every parser's markers and of JSON, Python and tagged values, read whole and
    streamed in pieces of 2: every parser returns (no exception, no endless loop: a half-written quote mark once looped
    Gemma 4's reader), and an answer it reads as text, sending no call, streams as its whole text."""
    import random

    from QEfficient.serving.tools import PARSERS, AutoTools

    markers = ["<tool_call>", "</tool_call>", "<|tool_call>", "<tool_call|>", "call:f{", '<|"|>', "<escape>", "<function_calls>"]
    markers += ["</function_calls>", '<invoke name="', '<parameter name="', "</parameter>", "</invoke>", "<minimax:tool_call>"]
    markers += ["[TOOL_CALLS]", "<|python_start|>", "<start_function_call>", "<end_function_call>", "functools[", "<function="]
    values = ['{"name": "f", "arguments": {', '"a": 1', "}", "]", "[", "f(", "a=1", ")", ",", ":", "\n", '">', "true", "x"]
    rng = random.Random(12)
    for name in PARSERS:
        tools = AutoTools(TOOLS, name)
        for _ in range(60):
            text = "".join(rng.choice(markers + values) for _ in range(rng.randint(1, 12)))
            message = tools.message(text)
            stream, content = tools.stream(), ""
            for start in range(0, len(text), 2):
                content += (stream.delta(text[start : start + 2], final=start + 2 >= len(text)) or {}).get("content", "")
            if message is None and not stream.called:
                assert content == text, (name, text)
