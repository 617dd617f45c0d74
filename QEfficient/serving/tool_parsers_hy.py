"""Tencent Hunyuan's Hy3 and Hy4 tool calls (vLLM's ``hy_v3`` and ``hy_v4``): one block of calls whose arguments are
tagged text, typed by the request's tools.

- ``hy_v3``: ``<tool_calls>``, then per call ``<tool_call>NAME<tool_sep>``, per argument
  ``<arg_key>KEY</arg_key><arg_value>value</arg_value>``, ``</tool_call>``, and ``</tool_calls>``; a last call cut
  short is still a call, with its closed arguments.
- ``hy_v4``: the same without ``<tool_sep>`` (the name runs to the first ``<arg_key>``), read strictly: a block that
  is not closed, or a call with anything but whitespace besides its arguments, makes the whole answer text.

The text before the block is the content (what follows it is dropped, as vLLM does). Checkpoints whose markers carry
a suffix (``<tool_call:6124c78e>``) are read alike. Values keep their whitespace and are typed by Hunyuan's rules
(``hy_value``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from QEfficient.serving.tool_parsers import ScannedCall, ToolCallParser, finite_json, json_arguments, tool_call
from QEfficient.serving.tool_parsers_xml import _literal, _properties

_SUFFIXED = re.compile(r"<(/?)(tool_calls|tool_call|tool_sep|arg_key|arg_value)(?::[^\s<>]+)>")
_OPEN_TAIL = re.compile(r"<(?:t(?:o(?:o(?:l(?:_(?:c(?:a(?:l(?:l(?:s(?::[^\s<>]*)?)?)?)?)?)?)?)?)?)?)?$")
BLOCK, BLOCK_END, CALL, CALL_END, SEP = "<tool_calls>", "</tool_calls>", "<tool_call>", "</tool_call>", "<tool_sep>"
KEY, KEY_END, VALUE, VALUE_END = "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>"
_PAIR = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.DOTALL)
_BLOCK_OPEN = re.compile(r"<tool_calls(?::[^\s<>]+)?>")
_ALIASES = {"str": "string", "text": "string", "varchar": "string", "char": "string", "enum": "string", "bool": "boolean"}
_ALIASES |= {"binary": "boolean", "int": "integer", "float": "number", "double": "number", "list": "array", "dict": "object"}
_ALIASES |= {"map": "object"}


def _type_name(name: Any) -> str:
    name = str(name).strip().lower()
    if name in _ALIASES:
        return _ALIASES[name]
    if name.startswith(("int", "uint", "long", "short", "unsigned")):
        return "integer"
    return "number" if name.startswith(("num", "float")) else name


def _types(schema: Any) -> set[str]:
    """The non-null types a property's schema admits: its "type" (a name or a list), else its anyOf or oneOf options;
    "string" where it names none."""
    schema = schema if isinstance(schema, dict) else {}
    declared = schema.get("type")
    if isinstance(declared, list):
        options = [{"type": t} for t in declared]
    elif declared is not None:
        options = [schema]
    else:
        options = next((o for o in (schema.get("anyOf"), schema.get("oneOf")) if isinstance(o, list)), [{"type": "string"}])
    return {_type_name(o.get("type", "string")) for o in options if isinstance(o, dict)} - {"null"}


def hy_value(value: str, schema: Any) -> Any:
    """An argument's text as vLLM's Hunyuan parsers type it: a boolean, an integer, a number (an integer unless it has a
    point or an exponent), JSON for another non-string type, text where the schema allows a string; with no type that
    reads, JSON or a Python literal, else the text."""
    types = _types(schema)
    if "boolean" in types and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if "integer" in types:
        try:
            return int(value)
        except ValueError:
            pass
    if "number" in types:
        try:
            number = float(value) if any(c in value for c in ".eE") else int(value)
            if math.isfinite(number):
                return number
        except (ValueError, OverflowError):
            pass
    if types - {"string", "boolean", "integer", "number"}:
        ok, parsed = finite_json(value)
        if ok:
            return parsed
    if "string" in types:
        return value
    ok, parsed = finite_json(value)
    if ok:
        return parsed  # null too
    parsed = _literal(value)
    return value if parsed is None else parsed


def _block(text: str) -> re.Match | None:
    """The block's opening marker (suffixed or not) in the answer as written."""
    return _BLOCK_OPEN.search(text)


def _block_text(text: str) -> str:
    """The answer from the block's opening marker on, its markers without their checkpoint suffix
    (``<tool_call:6124c78e>`` reads as ``<tool_call>``); "" before the block opens."""
    found = _block(text)
    return "" if found is None else _SUFFIXED.sub(r"<\1\2>", text[found.start() :])


def _content(text: str, final: bool) -> tuple[str, bool]:
    """(the text before the block, less a tail that may begin its marker while the answer goes on; whether the block
    has opened)."""
    found = _block(text)
    if found is not None:
        return text[: found.start()], True
    tail = _OPEN_TAIL.search(text)
    return (text if final or tail is None else text[: tail.start()]), False


def _arguments(body: str, properties: dict, closed: bool) -> str:
    """The JSON of a call's closed arguments, every pair as written (a key written twice reads as its last value, as
    vLLM keeps it, and the arguments only grow as they stream)."""
    pairs = [(m[1], hy_value(m[2], properties.get(m[1].strip()))) for m in _PAIR.finditer(body)]
    return json_arguments(pairs, closed)


def _calls(text: str, final: bool, tools: list[dict], separator: str | None) -> list[ScannedCall]:
    """The calls of the block so far, each with its closed arguments; at the ``final`` reading a call cut short is
    closed as it stands. hy_v3's name ends at ``<tool_sep>``, hy_v4's at the first argument."""
    block = _block_text(text)
    end = block.find(BLOCK_END)
    region = block[: len(block) if end < 0 else end]
    calls: list[ScannedCall] = []
    at = region.find(CALL)
    while at >= 0:
        close = region.find(CALL_END, at)
        body = region[at + len(CALL) : close if close >= 0 else len(region)]
        name_end = body.find(separator) if separator else min(i for i in (body.find(KEY), len(body)) if i >= 0)
        if name_end < 0 or (not separator and name_end == len(body) and close < 0 and not final):
            break  # the name is still being written
        name = body[:name_end].strip()
        rest = body[name_end + (len(separator) if separator else 0) :]
        closed = None if close < 0 else close + len(CALL_END)
        if name:
            calls.append((name, _arguments(rest, _properties(tools, name) or {}, closed is not None or final), closed))
        if closed is None:
            break
        at = region.find(CALL, closed)
    return calls


def _strict_block(block: str) -> bool:
    """hy_v4's reading of the block's text: closed, at least one call, each named, its tags balanced, nothing but
    whitespace beside its arguments."""
    end = block.find(BLOCK_END)
    if end < 0:
        return False
    inner = block[len(BLOCK) : end]
    bodies = re.findall(r"<tool_call>(.*?)</tool_call>", inner, re.DOTALL)
    if not bodies or inner.count(CALL) != len(bodies) or inner.count(CALL_END) != len(bodies):
        return False
    for body in bodies:
        name = body.split(KEY, 1)[0].strip()
        tags = [body.count(tag) for tag in (KEY, KEY_END, VALUE, VALUE_END)]
        if not name or len(set(tags)) != 1 or _PAIR.sub("", body[body.find(KEY) :] if KEY in body else "").strip():
            return False
    return True


def _message(text: str, tools: list[dict], separator: str | None) -> dict | None:
    found = _block(text)
    if found is None or (separator is None and not _strict_block(_block_text(text))):
        return None
    calls = _calls(text, True, tools, separator)
    if not calls:
        return None
    content = text[: found.start()]
    return {"role": "assistant", "content": content or None, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _scan(text: str, final: bool, tools: list[dict], separator: str | None) -> tuple[str, list[ScannedCall]]:
    content, opened = _content(text, final)
    return content, _calls(text, final, tools, separator) if opened else []


HY_PARSERS = {
    "hy_v3": ToolCallParser(
        lambda text, tools: _message(text, tools, SEP),
        lambda text, final, tools: _scan(text, final, tools, SEP),
        special_tokens=True,
        typed=True,
    ),
    "hy_v4": ToolCallParser(
        lambda text, tools: _message(text, tools, None),
        lambda text, final, tools: _scan(text, final, tools, None),
        special_tokens=True,
        typed=True,
    ),
}
