"""The tool-call syntaxes of models, parsed for ``tool_choice`` "auto" (vLLM's ``--tool_call_parser`` names and rules):
each parser turns a whole answer into the assistant message with its calls, and scans an answer being written for the
calls so far, so that they stream.

- ``hermes``: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, Qwen's and Hermes' format; the text before
  the first tag is the message's content.
- ``llama3_json``: an answer that begins with ``{"name": ..., "parameters": {...}}`` objects separated by ";"
  (``<|python_tag|>`` first or not), Llama 3.1-3.3's JSON calls.
- ``pythonic``: an answer that is a Python list of calls with keyword arguments, ``[get_weather(city="Paris")]``,
  Llama 3.2's and Llama 4's; a call streams whole once its closing parenthesis is written.
- ``longcat`` (LongCat-Flash): hermes' calls in ``<longcat_tool_call>`` tags.
- ``llama4_pythonic``: pythonic, after ``<|python_start|>`` (and less ``<|python_end|>``) where the answer keeps them.
- ``mistral``: ``[TOOL_CALLS]`` then a JSON array of ``{"name", "arguments"}`` objects (Mistral 7B v0.3's tokenizer) or
  ``name[ARGS]{...}`` calls (later tokenizers), the text before it the content. ``[TOOL_CALLS]`` is a special token,
  so a request this parser reads is decoded with its special tokens (vLLM's ``skip_special_tokens=False``).

A call's arguments are the JSON the model wrote for them (pythonic: its literals as JSON), so the pieces of a stream
add up to the arguments of the same answer unstreamed.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

# (name, arguments so far, index after the call): a call as a scan sees it, perhaps cut short
ScannedCall = tuple[str | None, str | None, int | None]


def new_call_id() -> str:
    return f"chatcmpl-tool-{uuid.uuid4().hex}"


def tool_call(name: str, arguments: str, call_id: str | None = None) -> dict:
    """OpenAI's ``tool_calls`` entry (``call_id``: the model's own id for the call, where its syntax has one)."""
    return {"id": call_id or new_call_id(), "type": "function", "function": {"name": name, "arguments": arguments}}


def json_arguments(pairs: list[tuple[str, Any]], closed: bool) -> str:
    """The JSON of a call's arguments so far, a key at a time (json.dumps' own layout once closed), for syntaxes whose
    arguments are not JSON as written."""
    body = ", ".join(f"{json.dumps(key, ensure_ascii=False)}: {json.dumps(value, ensure_ascii=False)}" for key, value in pairs)
    return "{" + body + ("}" if closed else "")


def finite_json(text: str) -> tuple[bool, Any]:
    """(whether ``text`` is JSON without NaN or Infinity, which JSON has not, its value)."""
    try:
        parsed = json.loads(text)
        json.dumps(parsed, allow_nan=False)
        return True, parsed
    except (ValueError, TypeError, RecursionError):
        return False, None


def _skip(text: str, i: int, chars: str = " \t\r\n") -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def scan_call(text: str, start: int, arguments_key: str | tuple[str, ...]) -> ScannedCall:
    """A call's JSON object starting at ``text[start]`` ("{"), perhaps cut short: its "name" (once that string is
    closed), the text of its ``arguments_key`` object (the first of them, for a tuple) as written so far (None before
    it starts, or for a value that is not an object), and the index after the object (None while it is open)."""
    keys = (arguments_key,) if isinstance(arguments_key, str) else arguments_key
    depth, in_string, escaped, expecting_key = 0, False, False, True
    key = name = value_key = None
    string_start = value_start = value_end = None
    for j in range(start, len(text)):
        c = text[j]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
                if depth == 1:
                    try:
                        string = json.loads(text[string_start : j + 1])
                    except ValueError:
                        string = None
                    if expecting_key:
                        key = string
                    elif value_key == "name" and isinstance(string, str):
                        name = string
        elif c == '"':
            in_string, string_start = True, j
        elif c in "{[":
            depth += 1
            if depth == 2 and value_key in keys and c == "{" and value_start is None:
                value_start = j
        elif c in "}]":
            depth -= 1
            if depth == 1 and value_start is not None and value_end is None:
                value_end = j + 1
            if depth <= 0:
                return name, None if value_start is None else text[value_start:value_end], j + 1
        elif depth == 1 and c == ":":
            expecting_key, value_key = False, key
        elif depth == 1 and c == ",":
            expecting_key, value_key = True, None
    return name, None if value_start is None else text[value_start:value_end], None


def scan_call_array(text: str, start: int = 0, arguments_key: str | tuple[str, ...] = "parameters") -> list[ScannedCall]:
    """The calls of a JSON array of ``{"name", arguments_key}`` objects at ``text[start:]`` (tool_choice
    "required"'s answer), perhaps cut short."""
    i = _skip(text, start)
    if i >= len(text) or text[i] != "[":
        return []
    calls, i = [], i + 1
    while True:
        i = _skip(text, i, " \t\r\n,")
        if i >= len(text) or text[i] != "{":
            return calls
        calls.append(scan_call(text, i, arguments_key))
        if calls[-1][2] is None:
            return calls
        i = calls[-1][2]


def _before_marker(text: str, marker: str, final: bool) -> tuple[str, int]:
    """(the text before ``marker``, less a tail that may begin it while the answer goes on; where the marker is, or
    -1)."""
    at = text.find(marker)
    if at >= 0:
        return text[:at], at
    held = 0 if final else next((k for k in range(len(marker) - 1, 0, -1) if text.endswith(marker[:k])), 0)
    return text[: len(text) - held], -1


def held_before(text: str, markers: tuple[str, ...], final: bool) -> tuple[str, int, str]:
    """(the text before the first of ``markers``, its trailing whitespace held back while it may precede calls; where
    the marker is, or -1; which marker)."""
    found = [(at, m) for m in markers if (at := text.find(m)) >= 0]
    if found:
        at, marker = min(found)
        return text[:at].rstrip(), at, marker
    held = min((_before_marker(text, m, final)[0] for m in markers), key=len)
    return (held if final else held.rstrip()), -1, ""


def content_around(before: str, after: str = "", joiner: str | None = None) -> str | None:
    """The content of an answer with calls, as vLLM trims it: the text before them and after them, joined (by
    ``joiner`` after trimming each, where given); leading whitespace stays, as it streamed before the calls were seen."""
    if not before.strip():  # blank: none of it streamed (held_before holds whitespace back)
        before, after = "", after.lstrip()
    if joiner is not None:
        before, after = before.rstrip(), after.strip()
        joiner = joiner if before.strip() and after else ""
    content = (before + (joiner or "") + after).rstrip()
    return content if content.strip() else None


def _written_call(text: str, start: int, end: int, keys: tuple[str, ...]) -> dict | None:
    """The tool call of the complete JSON object ``text[start:end]``, its arguments as written; None where it is not an
    object with a string "name"."""
    try:
        call = json.loads(text[start:end])
        name, arguments = call["name"], next((call[k] for k in keys if k in call), {})
    except (ValueError, TypeError, KeyError, RecursionError):  # RecursionError: JSON nested deeper than the stack
        return None
    if not isinstance(name, str):
        return None
    written = scan_call(text, start, keys)[1] if isinstance(arguments, dict) else None
    return tool_call(name, written or json.dumps(arguments, ensure_ascii=False))


# hermes
_HERMES_OPEN, _HERMES_CLOSE = "<tool_call>", "</tool_call>"


def _hermes_message(text: str, tags: tuple[str, str] = (_HERMES_OPEN, _HERMES_CLOSE)) -> dict | None:
    """vLLM's hermes rules: each <tool_call> holds a JSON object (the last one's end tag may be cut); any call that is
    not JSON with a name makes the whole answer text. ``tags``: the opening and closing tags (longcat's are its own)."""
    opening, closing = tags
    first = text.find(opening)
    if first < 0:
        return None
    calls, at = [], first
    while at >= 0:
        close = text.find(closing, at)
        end = len(text) if close < 0 else close
        start = _skip(text, at + len(opening))
        body_end = len(text[:end].rstrip())
        call = _written_call(text, start, body_end, ("arguments",)) if start < body_end else None
        if call is None:
            return None
        calls.append(call)
        at = -1 if close < 0 else text.find(opening, close)
    return {"role": "assistant", "content": text[:first] or None, "tool_calls": calls}


def _hermes_scan(text: str, final: bool, tags: tuple[str, str] = (_HERMES_OPEN, _HERMES_CLOSE)) -> tuple[str, list[ScannedCall]]:
    """(content, calls) of a hermes answer so far: the text before the first <tool_call> (less a tail that may begin
    one, until the answer ends), and the calls after each tag."""
    opening = tags[0]
    content, first = _before_marker(text, opening, final)
    if first < 0:
        return content, []
    calls, at = [], first
    while at >= 0:
        i = _skip(text, at + len(opening))
        if i >= len(text) or text[i] != "{":
            break
        calls.append(scan_call(text, i, "arguments"))
        if calls[-1][2] is None:
            break
        at = text.find(opening, calls[-1][2])
    return text[:first], calls


# llama3_json
_PYTHON_TAG = "<|python_tag|>"  # Llama 3's: an answer that begins with it is code or tool calls
_LLAMA3_KEYS = ("arguments", "parameters")


def _llama3_body(text: str) -> str | None:
    """The calls' part of a llama3_json answer (after <|python_tag|>), or None where the answer is text."""
    body = text[len(_PYTHON_TAG) :] if text.startswith(_PYTHON_TAG) else text
    return body if body.startswith("{") else None


def _llama3_message(text: str) -> dict | None:
    """vLLM's llama3_json rules: an answer that begins with a JSON object (after <|python_tag|>) is calls, objects
    separated by ";", each with a "name" and its "arguments" or "parameters"; anything else, text."""
    body = _llama3_body(text)
    if body is None:
        return None
    calls, i, decoder = [], 0, json.JSONDecoder()
    while i < len(body):
        try:
            end = decoder.raw_decode(body, i)[1]
        except (ValueError, RecursionError):
            return None
        call = _written_call(body, i, end, _LLAMA3_KEYS)
        if call is None:
            return None
        calls.append(call)
        i = _skip(body, end, "; \t\r\n")
    return {"role": "assistant", "content": None, "tool_calls": calls}


def _llama3_scan(text: str, final: bool) -> tuple[str | None, list[ScannedCall]]:
    """(content, calls) of a llama3_json answer so far: an answer that may still begin <|python_tag|> holds back;
    one that begins as a call streams calls, any other is content."""
    if not final and _PYTHON_TAG.startswith(text):
        return None, []
    body = _llama3_body(text)
    if body is None:
        return text, []
    calls, i = [], 0
    while i < len(body) and body[i] == "{":
        calls.append(scan_call(body, i, _LLAMA3_KEYS))
        if calls[-1][2] is None:
            break
        i = _skip(body, calls[-1][2], "; \t\r\n")
    return None, calls


# pythonic
def _pythonic_call(source: str, value: Callable[[ast.expr], Any] = ast.literal_eval) -> tuple[str, str] | None:
    """(name, arguments as JSON) of one ``name(key=literal, ...)``, or None where it is not one; ``value`` reads each
    argument's expression (a Python literal, or another syntax's values)."""
    try:
        node = ast.parse(source.strip(), mode="eval").body
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args:
            return None
        if any(kw.arg is None for kw in node.keywords):
            return None
        arguments = {kw.arg: value(kw.value) for kw in node.keywords}
        return node.func.id, json.dumps(arguments, ensure_ascii=False, allow_nan=False)  # 1e999: not JSON, no call
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return None


def _pythonic_calls(text: str) -> tuple[list[ScannedCall], int | None]:
    """The complete calls of a pythonic list (``text`` starts with "[") so far, each once its closing parenthesis is
    written, and the index after the list (None while it is open, or where a call does not parse)."""
    calls: list[ScannedCall] = []
    depth, quote, escaped, start = 0, None, False, None
    for j, c in enumerate(text):
        if quote is not None:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 1 and c == ")" and start is not None:
                call = _pythonic_call(text[start : j + 1])
                if call is None:
                    return calls, None
                calls.append((*call, j + 1))
                start = None
            if depth == 0:
                return calls, j + 1
        elif depth == 1 and start is None and c not in " \t\r\n,":
            start = j
    return calls, None


def _pythonic_message(text: str) -> dict | None:
    """vLLM's pythonic rules: an answer that is a list of calls with keyword arguments and literal values is calls;
    anything else, text."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    calls, end = _pythonic_calls(stripped)
    if end != len(stripped) or not calls:
        return None
    try:
        node = ast.parse(stripped, mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return None
    if not isinstance(node, ast.List) or len(node.elts) != len(calls):
        return None
    return {"role": "assistant", "content": None, "tool_calls": [tool_call(name, arguments) for name, arguments, _ in calls]}


def _pythonic_scan(text: str, final: bool) -> tuple[str | None, list[ScannedCall]]:
    """(content, calls) of a pythonic answer so far: one that begins with "[" is held back as content (it may be a
    list of calls: at its end the whole answer decides), and streams each call once it is complete; any other is
    content."""
    stripped = text.lstrip()
    if not stripped:
        return (text if final else None), []
    if not stripped.startswith("["):
        return text, []
    return None, _pythonic_calls(stripped)[0]


# llama4_pythonic: pythonic, where the answer may be wrapped in <|python_start|> ... <|python_end|> (special tokens,
# seen where a client keeps them)
_PYTHON_START, _PYTHON_END = "<|python_start|>", "<|python_end|>"


def _llama4_body(text: str) -> str:
    return text[len(_PYTHON_START) :].replace(_PYTHON_END, "") if text.startswith(_PYTHON_START) else text


def _llama4_message(text: str) -> dict | None:
    return _pythonic_message(_llama4_body(text))


def _llama4_scan(text: str, final: bool) -> tuple[str | None, list[ScannedCall]]:
    if not final and _PYTHON_START.startswith(text):
        return None, []  # it may still begin with the tag
    body = _llama4_body(text)
    if body is not text and not body.lstrip().startswith("["):
        return text, []  # not calls: the answer is its text, tags and all
    return _pythonic_scan(body, final)  # a special token: <|python_end|> comes whole


# mistral
_MISTRAL_CALLS, _MISTRAL_ARGS = "[TOOL_CALLS]", "[ARGS]"


def _mistral_calls(text: str, start: int) -> list[ScannedCall]:
    """The calls after the first [TOOL_CALLS] (at ``start``): a JSON array, or ``name[ARGS]{...}`` calls each after
    its own [TOOL_CALLS]; perhaps cut short."""
    i = _skip(text, start)
    if i < len(text) and text[i] == "[":
        return scan_call_array(text, i, "arguments")
    calls: list[ScannedCall] = []
    while i < len(text):
        marker = text.find(_MISTRAL_ARGS, i)
        if marker < 0:
            break  # the name is still being written
        name, j = text[i:marker].strip(), _skip(text, marker + len(_MISTRAL_ARGS))
        if j >= len(text) or text[j] != "{":
            calls.append((name, None, None))
            break
        end = scan_call(text, j, ())[2]  # the end of the arguments' object
        calls.append((name, text[j : end or len(text)], end))
        if end is None:
            break
        i = _skip(text, end)
        if not text.startswith(_MISTRAL_CALLS, i):
            break
        i += len(_MISTRAL_CALLS)
    return calls


def _mistral_message(text: str) -> dict | None:
    """vLLM's mistral rules: the calls after [TOOL_CALLS], a JSON array of {"name", "arguments"} objects or
    ``name[ARGS]{...}`` calls and nothing after them; anything else, text."""
    first = text.find(_MISTRAL_CALLS)
    if first < 0:
        return None
    rest = text[first + len(_MISTRAL_CALLS) :]
    calls = _mistral_calls(rest, 0)
    if not calls:
        return None
    try:
        if rest.strip().startswith("["):
            parsed = json.loads(rest)
            ok = isinstance(parsed, list) and len(parsed) == len(calls)
            ok = ok and all(isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("arguments"), dict) for c in parsed)
        else:
            ok = all(end is not None and name and isinstance(json.loads(arguments), dict) for name, arguments, end in calls)
            ok = ok and not rest[calls[-1][2] :].strip()
    except (ValueError, TypeError, RecursionError):
        return None
    if not ok:
        return None
    return {"role": "assistant", "content": text[:first] or None, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _mistral_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    """(content, calls) of a mistral answer so far: the text before [TOOL_CALLS] (less a tail that may begin it,
    until the answer ends), and the calls after it."""
    content, first = _before_marker(text, _MISTRAL_CALLS, final)
    return content, [] if first < 0 else _mistral_calls(text, first + len(_MISTRAL_CALLS))


@dataclasses.dataclass(frozen=True)
class ToolCallParser:
    """A model's tool-call syntax: ``message(text)``, the assistant message of a whole answer (None where the answer is
    text); ``scan(text, final)``, (the content so far, or None where there is none to send yet; the calls so far) of an
    answer being written, ``final`` once it ends (nothing held back). ``typed`` parsers take the request's tools too
    (``message(text, tools)``, ``scan(text, final, tools)``): their arguments are text, typed by each tool's schema."""

    message: Callable[..., dict | None]
    scan: Callable[..., tuple[str | None, list[ScannedCall]]]
    special_tokens: bool = False  # its markers are special tokens: the answer is decoded with them
    call_ids: Callable[[str], list[str] | None] | None = None  # the model's own ids of the calls so far (Kimi's)
    typed: bool = False
    plain: Callable[[str], str] | None = None  # the content of an answer without calls, where it is not its text (harmony's)
    markup: bool = False  # it reads the whole answer, its reasoning's markup included (harmony's messages)

    def for_tools(self, tools: list[dict]) -> tuple[Callable[[str], dict | None], Callable[[str, bool], tuple]]:
        """(message, scan) for a request with these tools."""
        if not self.typed:
            return self.message, self.scan
        return (lambda text: self.message(text, tools)), (lambda text, final: self.scan(text, final, tools))


def calls_after_marker(marker: str, calls: Callable[..., list[ScannedCall]], **options: Any) -> ToolCallParser:
    """The parser of a syntax whose calls follow the first ``marker``, the text before it the content: ``calls(text,
    final)`` reads the calls so far (at the ``final`` reading, one cut short as it stands: still a call); a ``typed``
    parser's ``calls(text, final, tools)`` takes the request's tools too."""

    def message(text: str, *tools: list[dict]) -> dict | None:
        found = calls(text, True, *tools)
        if not found:
            return None
        content = text[: text.find(marker)]
        return {"role": "assistant", "content": content or None, "tool_calls": [tool_call(n, a) for n, a, _ in found]}

    def scan(text: str, final: bool, *tools: list[dict]) -> tuple[str, list[ScannedCall]]:
        content, first = _before_marker(text, marker, final)
        return content, [] if first < 0 else calls(text, final, *tools)

    return ToolCallParser(message, scan, **options)


PARSERS = {
    "hermes": ToolCallParser(_hermes_message, _hermes_scan),
    "llama3_json": ToolCallParser(_llama3_message, _llama3_scan),
    "pythonic": ToolCallParser(_pythonic_message, _pythonic_scan),
    "mistral": ToolCallParser(_mistral_message, _mistral_scan, special_tokens=True),
}
PARSERS["llama4_json"] = PARSERS["llama3_json"]  # vLLM's name for Llama 4's JSON calls, read alike
PARSERS["llama4_pythonic"] = ToolCallParser(_llama4_message, _llama4_scan)
_LONGCAT = ("<longcat_tool_call>", "</longcat_tool_call>")  # LongCat-Flash: hermes' calls in its own tags
PARSERS["longcat"] = ToolCallParser(partial(_hermes_message, tags=_LONGCAT), partial(_hermes_scan, tags=_LONGCAT), special_tokens=True)
