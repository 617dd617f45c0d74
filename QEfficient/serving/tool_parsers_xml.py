"""Tool-call syntaxes that write each argument as tagged text (vLLM's ``--tool_call_parser`` names and rules): the values
are typed by the request's tools (each function's JSON schema), so these parsers take the tools too.

- ``qwen3_coder`` (Qwen3-Coder, Qwen3.5): ``<tool_call>`` ``<function=NAME>``, then per argument
  ``<parameter=KEY>`` value ``</parameter>`` (one newline on each side of the value dropped), ``</function>``
  ``</tool_call>``; the text before the first call is the content.
- ``seed_oss`` (Seed-OSS): qwen3_coder's calls inside ``<seed:tool_call>`` ``</seed:tool_call>``.
- ``glm45`` (GLM-4.5 to 4.7; also as ``glm47``): ``<tool_call>NAME``, then per argument
  ``<arg_key>KEY</arg_key><arg_value>value</arg_value>`` (the value stripped), ``</tool_call>``; its markers are special
  tokens.

- ``minimax_m2``, ``deepseek_v32``, ``deepseek_v4``: ``<invoke name="NAME">`` calls, in serving/tool_parsers_invoke.py.

A value whose schema says string stays text; otherwise it is read as the schema's type (qwen3_coder, vLLM's rules:
integers, numbers, booleans, null, JSON or Python literals for objects and arrays; a value that does not read stays
text) or as JSON or a Python literal (glm45). A call's arguments are written as the JSON of its arguments so far, a
key at a time as each value closes, so the pieces of a stream add up to the unstreamed arguments.
"""

from __future__ import annotations

import ast
import json
import math
from functools import partial
from typing import Any

from QEfficient.serving.tool_parsers import ScannedCall, ToolCallParser, _before_marker, json_arguments, tool_call

_STRING_TYPES = ("string", "str", "text", "varchar", "char", "enum")


def _schema_type(schema: Any) -> tuple[str, bool]:
    """(the first non-null type name of a property's schema, lower case, "string" where it names none; whether it admits
    null), from its "type" (a name or a list of names) or its "anyOf" options."""
    if not isinstance(schema, dict):
        return "string", False
    declared = schema.get("type")
    if declared is not None:
        options = declared if isinstance(declared, list) else [declared]
    else:
        any_of = schema.get("anyOf")
        options = [o["type"] for o in any_of if isinstance(o, dict) and "type" in o] if isinstance(any_of, list) else []
    types = [str(t).strip().lower() for t in options]
    named = [t for t in types if t != "null"]
    return (named[0] if named else "string"), "null" in types


def _literal(value: str) -> Any:
    """``value`` as JSON, else as a Python literal that JSON can hold; else None (and the text is kept)."""
    for read in (json.loads, ast.literal_eval):
        try:
            parsed = read(value)
            json.dumps(parsed, allow_nan=False)  # JSON has no NaN or Infinity: such a value stays text
            return parsed
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            continue
    return None


def qwen3_value(value: str, schema: Any) -> Any:
    """An argument's text as vLLM's qwen3_coder parser types it by the property's schema (None: no schema, text)."""
    if schema is None:
        return value
    kind, nullable = _schema_type(schema)
    if nullable and value.lower() in ("null", "none"):
        return None
    if kind in _STRING_TYPES:
        return value
    if value.lower() in ("null", "none"):
        return None
    try:
        if kind.startswith(("int", "uint", "long", "short", "unsigned")):
            return int(value)
        if kind.startswith(("num", "float")):
            number = float(value)
            if not math.isfinite(number):
                return value  # JSON has no inf or nan
            return int(number) if number.is_integer() else number
    except (ValueError, OverflowError):
        return value
    if kind in ("boolean", "bool", "binary"):
        return value.lower() == "true"
    parsed = _literal(value)
    return value if parsed is None else parsed


def glm_value(value: str, schema: Any) -> Any:
    """An argument's text as vLLM's glm45 parser types it: text where the schema says string, else JSON or a Python
    literal, else text."""
    if schema is not None and _schema_type(schema)[0] in _STRING_TYPES:
        return value
    parsed = _literal(value)
    return value if parsed is None else parsed


def _properties(tools: list[dict], name: str) -> dict | None:
    """The properties of function ``name``'s parameters, or None where the request has no such tool."""
    for tool in tools:
        function = tool.get("function", {})
        if function.get("name") == name:
            parameters = function.get("parameters") or {}
            properties = parameters.get("properties")
            return properties if isinstance(properties, dict) else {}  # a schema of another shape types nothing
    return None


# qwen3_coder
_Q_CALL, _Q_FUNCTION, _Q_FUNCTION_END = "<tool_call>", "<function=", "</function>"
_Q_PARAMETER, _Q_PARAMETER_END = "<parameter=", "</parameter>"


def _qwen3_functions(text: str, start: int) -> list[tuple[str | None, list[tuple[str, str, bool]], int | None]]:
    """Each ``<function=`` from ``start``: (its name once written, its parameters (key, text, whether closed) so far,
    the index after its ``</function>``, None while it is open)."""
    functions = []
    at = text.find(_Q_FUNCTION, start)
    while at >= 0:
        name_end = text.find(">", at + len(_Q_FUNCTION))
        if name_end < 0:
            functions.append((None, [], None))
            break
        close = text.find(_Q_FUNCTION_END, name_end)
        body = text[name_end + 1 : close if close >= 0 else len(text)]
        parameters = []
        p = body.find(_Q_PARAMETER)
        while p >= 0:
            key_end = body.find(">", p + len(_Q_PARAMETER))
            if key_end < 0:
                break
            ends = [e for e in (body.find(_Q_PARAMETER_END, key_end), body.find(_Q_PARAMETER, key_end)) if e >= 0]
            value_end = min(ends) if ends else len(body)
            value = body[key_end + 1 : value_end]
            value = value[1:] if value.startswith("\n") else value
            value = value[:-1] if value.endswith("\n") else value
            parameters.append((body[p + len(_Q_PARAMETER) : key_end].strip(), value, bool(ends) or close >= 0))
            p = body.find(_Q_PARAMETER, value_end)
        functions.append((text[at + len(_Q_FUNCTION) : name_end].strip(), parameters, None if close < 0 else close + len(_Q_FUNCTION_END)))
        if close < 0:
            break
        at = text.find(_Q_FUNCTION, close)
    return functions


def _qwen3_first(text: str, call: str = _Q_CALL) -> int:
    """Where the calls begin (the first ``call`` tag, or a bare <function=), or -1."""
    found = [i for i in (text.find(call), text.find(_Q_FUNCTION)) if i >= 0]
    return min(found) if found else -1


def _qwen3_calls(text: str, first: int, tools: list[dict], final: bool) -> list[ScannedCall]:
    calls: list[ScannedCall] = []
    for name, parameters, end in _qwen3_functions(text, first):
        if name is None:
            break
        properties = _properties(tools, name) or {}
        done = [(key, qwen3_value(value, properties.get(key))) for key, value, closed in parameters if closed or final]
        calls.append((name, json_arguments(done, end is not None or final), end))
    return calls


def _qwen3_message(text: str, tools: list[dict], call: str = _Q_CALL) -> dict | None:
    """vLLM's qwen3_coder rules: any <function=...> makes the answer calls (the last may be cut short); the text before
    the first call is the content."""
    first = _qwen3_first(text, call)
    if first < 0 or _Q_FUNCTION not in text[first:]:
        return None
    calls = _qwen3_calls(text, first, tools, final=True)
    if not calls or not all(name for name, _, _ in calls):
        return None
    return {"role": "assistant", "content": text[:first] or None, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _qwen3_scan(text: str, final: bool, tools: list[dict], call: str = _Q_CALL) -> tuple[str, list[ScannedCall]]:
    content, _ = _before_marker(text, call, final)
    content, _ = _before_marker(content, _Q_FUNCTION, final)
    first = _qwen3_first(text, call)
    return content, [] if first < 0 else _qwen3_calls(text, first, tools, final)


# glm45
_G_CALL, _G_CALL_END, _G_KEY, _G_KEY_END, _G_VALUE, _G_VALUE_END = (
    "<tool_call>",
    "</tool_call>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
)


def _glm_calls(text: str, first: int, tools: list[dict], final: bool = False) -> list[ScannedCall]:
    """The calls from ``first`` so far; at the ``final`` reading a call cut short is closed as it stands."""
    calls: list[ScannedCall] = []
    at = first
    while at >= 0:
        head = at + len(_G_CALL)
        close = text.find(_G_CALL_END, head)
        body = text[head : close if close >= 0 else len(text)]
        lead = len(body) - len(body.lstrip(" \t\r\n"))  # the name starts after any whitespace
        ends = [i for i in (body.find("\n", lead), body.find(_G_KEY, lead)) if i >= 0] + ([len(body)] if close >= 0 or final else [])
        if not ends:
            break  # the name is still being written
        name_end = min(ends)
        name = body[:name_end].strip()
        properties = _properties(tools, name) or {}
        pairs, k = [], body.find(_G_KEY, name_end)
        while k >= 0:
            key_end = body.find(_G_KEY_END, k)
            value_at = body.find(_G_VALUE, key_end) if key_end >= 0 else -1
            value_end = body.find(_G_VALUE_END, value_at) if value_at >= 0 else -1
            if value_end < 0:
                break
            key = body[k + len(_G_KEY) : key_end].strip()
            pairs.append((key, glm_value(body[value_at + len(_G_VALUE) : value_end].strip(), properties.get(key))))
            k = body.find(_G_KEY, value_end)
        end = None if close < 0 else close + len(_G_CALL_END)
        calls.append((name, json_arguments(pairs, end is not None or final), end))
        if end is None:
            break
        at = text.find(_G_CALL, end)
    return calls


def _glm_message(text: str, tools: list[dict]) -> dict | None:
    """vLLM's glm45 rules: each <tool_call>NAME...</tool_call> is a call (the last may be cut short, as hermes' and
    qwen3_coder's may: a stream has sent it); the text before the first is the content."""
    first = text.find(_G_CALL)
    if first < 0:
        return None
    calls = _glm_calls(text, first, tools, final=True)
    if calls and calls[-1][2] is None and not calls[-1][0]:
        calls.pop()  # a last call cut before its name: nothing of it was sent
    if not calls or not all(name for name, _, _ in calls):
        return None
    return {"role": "assistant", "content": text[:first] or None, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _glm_scan(text: str, final: bool, tools: list[dict]) -> tuple[str, list[ScannedCall]]:
    content, first = _before_marker(text, _G_CALL, final)
    return content, [] if first < 0 else _glm_calls(text, first, tools)


XML_PARSERS = {
    "qwen3_coder": ToolCallParser(_qwen3_message, _qwen3_scan, typed=True),
    "glm45": ToolCallParser(_glm_message, _glm_scan, special_tokens=True, typed=True),
}
XML_PARSERS["qwen3_xml"] = XML_PARSERS["qwen3_coder"]  # vLLM's other name for it
_SEED_CALL = "<seed:tool_call>"
XML_PARSERS["seed_oss"] = ToolCallParser(partial(_qwen3_message, call=_SEED_CALL), partial(_qwen3_scan, call=_SEED_CALL), typed=True)
XML_PARSERS["glm47"] = XML_PARSERS["glm45"]  # vLLM's name for GLM-4.7's, whose name may run straight into <arg_key>
# vLLM's names for syntaxes read alike: MiMo's and Step-3.5's calls are qwen3_coder's, poolside's GLM-4.5's
XML_PARSERS |= {"mimo": XML_PARSERS["qwen3_coder"], "step3p5": XML_PARSERS["qwen3_coder"], "poolside_v1": XML_PARSERS["glm45"]}
XML_PARSERS["ling3"] = XML_PARSERS["glm47"]  # vLLM runs GLM-4.7's parser for Ling 3
