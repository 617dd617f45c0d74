"""dots.llm's tool calls (vLLM's ``dots``): ``<dots_function_call>`` blocks, each holding ``<invoke name=NAME>`` calls
with ``<parameter name=KEY>`` values (typed by the tool's schema) or one JSON object ``{"name", "arguments"}``.

As vLLM reads them: only closed blocks hold calls, a call to a function the request did not offer is dropped, and the
content is the text before the first block (what follows the blocks is dropped).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from QEfficient.serving.tool_parsers import ScannedCall, ToolCallParser, content_around, finite_json, held_before, json_arguments, tool_call
from QEfficient.serving.tool_parsers_xml import _properties

BLOCK, BLOCK_END = "<dots_function_call>", "</dots_function_call>"
_BLOCKS = re.compile(r"<dots_function_call>(.*?)</dots_function_call>", re.DOTALL)
_INVOKE = re.compile(r"<invoke\s+name\s*=\s*(.*?)>(.*?)</invoke>", re.DOTALL)
_PARAMETER = re.compile(r"<parameter\s+name\s*=\s*(.*?)>(.*?)</parameter>", re.DOTALL)


def _unquoted(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" else text


def _schema_type(schema: Any, definitions: dict) -> str:
    """The first non-null type a property's schema names: its "type" (a list's first non-null), a ``$ref`` into the
    parameters' ``$defs``, or the first branch of anyOf / oneOf / allOf that names one; "string" where none does."""
    if not isinstance(schema, dict):
        return "string"
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    if isinstance(declared, str) and declared != "null":
        return declared.lower()
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        return _schema_type(definitions.get(reference.removeprefix("#/$defs/")), definitions)
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key) or []:
            if isinstance(branch, dict) and branch.get("type") != "null":
                return _schema_type(branch, definitions)
    return "string"


def dots_value(value: str, kind: str) -> Any:
    """An argument's stripped text as vLLM's dots parser types it: "null" is null; integers, numbers (integral ones as
    integers) and booleans ("true" or "1") by the schema's type; JSON for another type; the text where none reads."""
    if value.lower() == "null":
        return None
    try:
        if kind in ("integer", "int"):
            return int(value)
        if kind in ("number", "float"):
            number = float(value)
            return value if not math.isfinite(number) else int(number) if number.is_integer() else number
    except (ValueError, OverflowError):
        return value
    if kind in ("boolean", "bool"):
        return value.lower() in ("true", "1")
    if kind in ("string", "str", "text"):
        return value
    ok, parsed = finite_json(value)
    return parsed if ok else value


def _definitions(tools: list[dict], name: str) -> dict:
    function = next((t.get("function", {}) for t in tools if t.get("function", {}).get("name") == name), {})
    return (function.get("parameters") or {}).get("$defs") or {}


def _block_calls(body: str, tools: list[dict], end: int) -> list[ScannedCall]:
    offered = {t.get("function", {}).get("name") for t in tools}
    body = body.strip()
    if not body.startswith("<invoke"):
        ok, call = finite_json(body)
        if not ok or not isinstance(call, dict):
            return []
        arguments = call.get("arguments", call.get("parameters")) or {}
        name = call.get("name")
        valid = isinstance(name, str) and name in offered and isinstance(arguments, dict)
        return [(name, json.dumps(arguments, ensure_ascii=False), end)] if valid else []
    calls = []
    for invoke in _INVOKE.finditer(body):
        name = _unquoted(invoke[1])
        if name not in offered:
            continue
        properties, definitions = _properties(tools, name) or {}, _definitions(tools, name)
        pairs: dict[str, Any] = {}
        for parameter in _PARAMETER.finditer(invoke[2]):
            key = _unquoted(parameter[1])
            pairs[key] = dots_value(parameter[2].strip(), _schema_type(properties.get(key), definitions))  # the last value (vLLM's)
        calls.append((name, json_arguments(list(pairs.items()), True), end))
    return calls


def _calls(text: str, tools: list[dict]) -> list[ScannedCall]:
    """The calls of the closed blocks so far (each whole once its block closes)."""
    return [call for block in _BLOCKS.finditer(text) for call in _block_calls(block[1], tools, block.end())]


def _message(text: str, tools: list[dict]) -> dict | None:
    calls = _calls(text, tools)
    if not calls:
        return None
    content = content_around(text[: text.find(BLOCK)])
    return {"role": "assistant", "content": content, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _scan(text: str, final: bool, tools: list[dict]) -> tuple[str, list[ScannedCall]]:
    content, first, _ = held_before(text, (BLOCK,), final)
    return content, [] if first < 0 else _calls(text, tools)


DOTS = ToolCallParser(_message, _scan, typed=True)
