"""Tool-call syntaxes that write each call as ``<invoke name="NAME">`` with one tagged ``<parameter name="KEY">`` per
argument, inside a block (vLLM's ``--tool_call_parser`` names and rules); the values are typed by the request's tools,
as in serving/tool_parsers_xml.py.

- ``minimax_m2`` (MiniMax-M2): ``<minimax:tool_call>``, then per call ``<invoke name="NAME">`` and per argument
  ``<parameter name="KEY">`` value ``</parameter>`` (stripped, a newline more dropped on each side), ``</invoke>``,
  ``</minimax:tool_call>``.
- ``deepseek_v32`` and ``deepseek_v4`` (DeepSeek's DSML): ``<｜DSML｜function_calls>`` (V4: ``<｜DSML｜tool_calls>``),
  ``<｜DSML｜invoke name="NAME">``, ``<｜DSML｜parameter name="KEY" string="true|false">`` value ``</｜DSML｜parameter>``
  (``string="true"``: the text as written), ``</｜DSML｜invoke>``, the block's end.
- ``step3`` (Step-3): ``<｜tool_calls_begin｜>``, per call ``<｜tool_call_begin｜>function<｜tool_sep｜>``
  ``<steptml:invoke name="NAME">`` with ``<steptml:parameter name="KEY">`` value ``</steptml:parameter>`` (stripped; read
  as the schema's own integer, number, boolean or null type), ``</steptml:invoke><｜tool_call_end｜>``,
  ``<｜tool_calls_end｜>``; the text after the block is content too.

Only the invokes inside a block are calls (a block cut short by max_tokens still holds those written, as vLLM's stream
sends them); the text before the first block is the content. A key written twice keeps its first value, so that the
arguments only grow as they stream.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from QEfficient.serving.tool_parsers import (
    ScannedCall,
    ToolCallParser,
    calls_after_marker,
    content_around,
    finite_json,
    held_before,
    json_arguments,
)
from QEfficient.serving.tool_parsers_xml import _properties

_TYPE_ALIASES = {"str": "string", "text": "string", "varchar": "string", "char": "string", "enum": "string", "int": "integer"}
_TYPE_ALIASES |= {t: "integer" for t in ("int32", "int64", "uint", "uint32", "uint64", "long", "short", "unsigned")}
_TYPE_ALIASES |= {"float": "number", "float32": "number", "float64": "number", "double": "number", "bool": "boolean"}
_TYPE_ALIASES |= {"dict": "object", "arr": "array", "list": "array", "sequence": "array"}
_MINIMAX_ALIASES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "text": "string"}
_ENUM_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"), (dict, "object"))


def schema_types(schema: Any) -> set[str]:
    """Every type a property's schema admits, lower case, as vLLM reads them: "type" (a name or names), its enum values'
    types, and anyOf / oneOf / allOf's; {"string"} where it names none."""
    if not isinstance(schema, dict):
        return {"string"}
    types: set[str] = set()
    declared = schema.get("type")
    types.update(t.lower() for t in (declared if isinstance(declared, list) else [declared]) if isinstance(t, str))
    for value in schema["enum"] if isinstance(schema.get("enum"), list) else []:
        types.add("null" if value is None else next((name for kind, name in _ENUM_TYPES if isinstance(value, kind)), "string"))
    for key in ("anyOf", "oneOf", "allOf"):
        for choice in schema[key] if isinstance(schema.get(key), list) else []:
            types |= schema_types(choice)
    return types or {"string"}


def _number(value: str) -> int | float | None:
    """A finite number, integral ones as int (vLLM's), or None."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() else number


def _typed(value: str, types: set[str], order: tuple[str, ...], true_words: tuple[str, ...], false_words: tuple[str, ...]) -> Any:
    """``value`` as the first type of ``order`` that ``types`` holds and that reads it ("string": the text); else JSON,
    else the text."""
    for kind in order:
        if kind not in types:
            continue
        if kind == "string":
            return value
        if kind == "null" and value.lower() == "null":
            return None
        if kind == "integer":
            with contextlib.suppress(ValueError):
                return int(value)
        elif kind == "number" and (number := _number(value)) is not None:
            return number
        elif kind == "boolean" and value.lower().strip() in true_words + false_words:
            return value.lower().strip() in true_words
        elif kind in ("object", "array") and (parsed := finite_json(value))[0]:
            return parsed[1]
    ok, parsed = finite_json(value)
    return parsed if ok else value


def minimax_value(value: str, schema: Any) -> Any:
    """An argument's text as vLLM's minimax_m2 parser types it: null, none or nil is null whatever the schema; else the
    first of integer, number, boolean, object, array, string the schema admits that reads; else JSON, else text."""
    if value.lower() in ("null", "none", "nil"):
        return None
    types = {_MINIMAX_ALIASES.get(t, t) for t in schema_types(schema)}
    order = ("integer", "number", "boolean", "object", "array", "string")
    return _typed(value, types, order, ("true", "1", "yes", "on"), ("false", "0", "no", "off"))


def dsml_value(value: str, schema: Any) -> Any:
    """A ``string="false"`` argument's text as vLLM's DSML parsers type it: the first of null, integer, number, boolean,
    object, array, string the schema admits (type aliases such as int64 or double read as theirs) that reads; else
    JSON, else text."""
    types = {_TYPE_ALIASES.get(t.strip(), t.strip()) for t in schema_types(schema)}
    return _typed(value, types, ("null", "integer", "number", "boolean", "object", "array", "string"), ("true", "1"), ("false", "0"))


def step3_value(value: str, schema: Any) -> Any:
    """An argument's text as vLLM's step3 parser types it: stripped, then read as the schema's own "type" (integer,
    number, boolean, null) where it reads; else the text."""
    value = value.strip()
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "integer":
        with contextlib.suppress(ValueError):
            return int(value)
    elif kind == "number":
        with contextlib.suppress(ValueError, OverflowError):
            number = float(value)
            return number if math.isfinite(number) else value
    elif kind == "boolean" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    elif kind == "null" and value.lower() == "null":
        return None
    return value


def _step3_argument(head: str, value: str, properties: dict) -> tuple[str, Any]:
    key = head.strip().strip("\"'")
    return key, step3_value(value, properties.get(key))


_DSML_HEAD = re.compile(r'\s*"([^"]+)"\s+string="(true|false)"\s*')


def _minimax_argument(head: str, value: str, properties: dict) -> tuple[str, Any]:
    key = head.strip().strip("\"'")
    value = value.strip()
    value = value[1:] if value.startswith("\n") else value
    return key, minimax_value(value[:-1] if value.endswith("\n") else value, properties.get(key))


def _dsml_argument(head: str, value: str, properties: dict) -> tuple[str, Any] | None:
    match = _DSML_HEAD.fullmatch(head)
    if match is None:
        return None  # not name="..." string="true|false": vLLM skips it
    key, as_text = match.group(1), match.group(2) == "true"
    return key, value if as_text else dsml_value(value, properties.get(key))


@dataclasses.dataclass(frozen=True)
class InvokeSyntax:
    """Calls written as ``{invoke}"NAME">`` ... ``{invoke_end}`` with arguments ``{parameter}HEAD>`` value
    ``{parameter_end}``, inside ``block`` ... ``block_end``; ``argument(head, value, properties)``: (key, typed value),
    or None for an argument to skip."""

    block: str
    block_end: str
    invoke: str
    invoke_end: str
    parameter: str
    parameter_end: str
    argument: Callable[[str, str, dict], tuple[str, Any] | None]

    def calls(self, text: str, final: bool, tools: list[dict]) -> list[ScannedCall]:
        """The calls of every block so far, each with its closed arguments; at the ``final`` reading a call cut short
        is closed as it stands. An invoke without a name is none."""
        calls: list[ScannedCall] = []
        block = text.find(self.block)
        while block >= 0:
            block_end = text.find(self.block_end, block)
            end = len(text) if block_end < 0 else block_end
            at = text.find(self.invoke, block, end)
            while at >= 0:
                head_end = text.find(">", at + len(self.invoke), end)
                if head_end < 0:
                    return calls  # the name is still being written
                name = text[at + len(self.invoke) : head_end].strip().strip("\"'")
                close = text.find(self.invoke_end, head_end, end)
                closed = None if close < 0 else close + len(self.invoke_end)
                if name:
                    body = text[head_end + 1 : close if close >= 0 else end]
                    arguments = self._arguments(body, _properties(tools, name) or {})
                    calls.append((name, json_arguments(arguments, closed is not None or final), closed))
                if closed is None:
                    return calls
                at = text.find(self.invoke, closed, end)
            if block_end < 0:
                return calls
            block = text.find(self.block, block_end)
        return calls

    def _arguments(self, body: str, properties: dict) -> list[tuple[str, Any]]:
        """The closed arguments of an invoke's ``body``, a key's first value kept."""
        pairs: dict[str, Any] = {}
        p = body.find(self.parameter)
        while p >= 0:
            key_end, value_end = body.find(">", p), body.find(self.parameter_end, p)
            if key_end < 0 or value_end < key_end:
                break  # an argument still being written
            argument = self.argument(body[p + len(self.parameter) : key_end], body[key_end + 1 : value_end], properties)
            if argument is not None:
                pairs.setdefault(*argument)
            p = body.find(self.parameter, value_end)
        return list(pairs.items())

    def parser(self) -> ToolCallParser:
        """vLLM's rules: the named invokes inside the blocks are the calls (none: the answer is text)."""
        return calls_after_marker(self.block, self.calls, special_tokens=True, typed=True)


MINIMAX_M2 = InvokeSyntax(
    "<minimax:tool_call>", "</minimax:tool_call>", "<invoke name=", "</invoke>", "<parameter name=", "</parameter>", _minimax_argument
)
_DS = "｜DSML｜"
DEEPSEEK_V32 = InvokeSyntax(
    f"<{_DS}function_calls>",
    f"</{_DS}function_calls>",
    f"<{_DS}invoke name=",
    f"</{_DS}invoke>",
    f"<{_DS}parameter name=",
    f"</{_DS}parameter>",
    _dsml_argument,
)
DEEPSEEK_V4 = dataclasses.replace(DEEPSEEK_V32, block=f"<{_DS}tool_calls>", block_end=f"</{_DS}tool_calls>")
STEP3 = InvokeSyntax(
    "<｜tool_calls_begin｜>",
    "<｜tool_calls_end｜>",
    "<steptml:invoke name=",
    "</steptml:invoke>",
    "<steptml:parameter name=",
    "</steptml:parameter>",
    _step3_argument,
)


def _step3_message(text: str, tools: list[dict]) -> dict | None:
    """step3's: the calls as InvokeSyntax reads them, the text before and after the block the content (vLLM's)."""
    message = STEP3.parser().message(text, tools)
    if message is None:
        return None
    first, end = text.find(STEP3.block), text.find(STEP3.block_end)
    after = "" if end < 0 else text[end + len(STEP3.block_end) :]
    return {**message, "content": content_around(text[:first], after)}


def _step3_scan(text: str, final: bool, tools: list[dict]) -> tuple[str, list[ScannedCall]]:
    content, first, _ = held_before(text, (STEP3.block,), final)
    return content, [] if first < 0 else STEP3.calls(text, final, tools)


INVOKE_PARSERS = {
    "minimax_m2": MINIMAX_M2.parser(),
    "deepseek_v32": DEEPSEEK_V32.parser(),
    "deepseek_v4": DEEPSEEK_V4.parser(),
    "step3": ToolCallParser(_step3_message, _step3_scan, special_tokens=True, typed=True),
}
