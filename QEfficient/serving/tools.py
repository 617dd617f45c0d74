"""Tool calls a chat request forces (OpenAI's ``tool_choice``: ``"required"`` or a named function), as vLLM serves them
without a model-specific parser: the tools go to the chat template, the answer is held by structured output to a JSON
schema made from the tools' parameters, and comes back as ``tool_calls``.

``tool_choice`` ``"auto"`` (the default when tools are given) lets the model answer in text or call tools in its own
syntax: a server started with ``--enable_auto_tool_choice --tool_call_parser NAME`` (vLLM's flags) parses it
(``hermes``: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, Qwen's and Hermes' format; ``llama3_json``:
an answer that is ``{"name": ..., "parameters": {...}}`` objects separated by "; ", Llama 3.1-3.3's JSON tool calls,
``<|python_tag|>`` first or not); without them it is refused with what to send instead.

Every kind streams as it is written (``delta.tool_calls``: a call's id, type and name with its first piece, then pieces
of its arguments): the answer so far is scanned again at each piece, and a call's arguments are the text the model
wrote for them, so the pieces of a stream add up to the arguments of the same request unstreamed.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import Any

from QEfficient.serving.errors import APIError

_EMPTY_PARAMETERS = {"type": "object", "properties": {}}
_HERMES_OPEN = "<tool_call>"
_HERMES_CALL = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)
_PYTHON_TAG = "<|python_tag|>"  # Llama 3's: an answer that begins with it is code or tool calls
TOOL_CALL_PARSERS = ("hermes", "llama3_json")  # the tool-call syntaxes parsed for tool_choice "auto" (vLLM's names)


def new_call_id() -> str:
    return f"chatcmpl-tool-{uuid.uuid4().hex}"


def _tool_call(name: str, arguments: str) -> dict:
    return {"id": new_call_id(), "type": "function", "function": {"name": name, "arguments": arguments}}


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def scan_call(text: str, start: int, arguments_key: str | tuple[str, ...]) -> tuple[str | None, str | None, int | None]:
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


def scan_call_array(text: str) -> list[tuple[str | None, str | None, int | None]]:
    """The calls of a JSON array of ``{"name", "parameters"}`` objects ("required"'s answer), perhaps cut short."""
    i = _skip_space(text, 0)
    if i >= len(text) or text[i] != "[":
        return []
    calls, i = [], i + 1
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] != "{":
            return calls
        calls.append(scan_call(text, i, "parameters"))
        if calls[-1][2] is None:
            return calls
        i = calls[-1][2]


class ToolCallStream:
    """One choice's stream of tool calls: ``delta(piece, final)`` gives the chunk's delta for the answer's next piece
    (or None), from what ``scan(text so far, final)`` finds; ``final``: the answer ends with it (nothing held back)."""

    def __init__(self, scan, content: bool = False) -> None:
        """``scan(text)``: (free text before the calls, or None where there is none to stream; the calls as
        scan_call gives them). ``content``: the answer may be text (tool_choice "auto")."""
        self.scan, self.content = scan, content
        self.text, self.sent_content = "", 0
        self.sent: list[int] = []  # per call opened: the characters of its arguments sent

    def delta(self, piece: str, final: bool = False) -> dict | None:
        self.text += piece
        content, calls = self.scan(self.text, final)
        out: dict[str, Any] = {}
        if self.content and content is not None and len(content) > self.sent_content:
            out["content"], self.sent_content = content[self.sent_content :], len(content)
        deltas = []
        for i, (name, arguments, _) in enumerate(calls):
            if name is None:
                break  # the call opens with its name
            arguments = arguments or ""
            if i == len(self.sent):
                head = {"id": new_call_id(), "type": "function", "function": {"name": name, "arguments": arguments}}
                deltas.append({"index": i, **head})
                self.sent.append(len(arguments))
            elif len(arguments) > self.sent[i]:
                deltas.append({"index": i, "function": {"arguments": arguments[self.sent[i] :]}})
                self.sent[i] = len(arguments)
        if deltas:
            out["tool_calls"] = deltas
        return out or None

    @property
    def called(self) -> bool:
        return bool(self.sent)


@dataclasses.dataclass(frozen=True)
class ForcedTools:
    """The request's tools (OpenAI's tool objects, as the chat template takes them) and the one it names, or None
    for ``"required"`` (one call or more, of any of them)."""

    tools: list[dict]
    name: str | None

    def _parameters(self, function: dict) -> dict:
        return function.get("parameters") or _EMPTY_PARAMETERS

    def schema(self) -> dict:
        """The JSON schema the answer is held to: the named function's parameters, or vLLM's array of
        ``{"name", "parameters"}`` objects (closed to other keys) for ``"required"``."""
        functions = [tool["function"] for tool in self.tools]
        if self.name is not None:
            return self._parameters(next(f for f in functions if f["name"] == self.name))
        calls = [
            {
                "properties": {"name": {"type": "string", "enum": [f["name"]]}, "parameters": self._parameters(f)},
                "required": ["name", "parameters"],
                "additionalProperties": False,  # vLLM's leaves it open: a model could ramble in keys no call reads
            }
            for f in functions
        ]
        return {"type": "array", "minItems": 1, "items": {"type": "object", "anyOf": calls}}

    def tool_calls(self, text: str) -> list[dict] | None:
        """The answer as OpenAI's ``tool_calls``; None where it is not complete JSON (cut by ``max_tokens``)."""
        if self.name is not None:
            pairs = [(self.name, text)]
        else:
            try:
                calls = json.loads(text)
                assert all(isinstance(call["name"], str) and isinstance(call["parameters"], dict) for call in calls)
            except (ValueError, TypeError, KeyError, AssertionError):
                return None
            pairs = [(name, arguments) for name, arguments, _ in scan_call_array(text)]  # as written, as streamed
        return [_tool_call(name, arguments) for name, arguments in pairs]

    def stream(self) -> ToolCallStream:
        """A choice's stream: a named function's arguments are the answer itself; "required"'s calls are read from
        the array as it is written."""
        if self.name is not None:
            return ToolCallStream(lambda text, final: (None, [(self.name, text, None)]))
        return ToolCallStream(lambda text, final: (None, scan_call_array(text)))

    def message(self, text: str) -> dict | None:
        """The assistant message holding the calls, or None where the answer is not complete JSON (cut by
        ``max_tokens``: it is returned as text)."""
        calls = self.tool_calls(text)
        return None if calls is None else {"role": "assistant", "content": "", "tool_calls": calls}

    def finish_reason(self, reason: str | None) -> str | None:
        """OpenAI's: a forced named function ends with "stop"; calls the model chose among the tools with
        "tool_calls"."""
        return "tool_calls" if self.name is None and reason == "stop" else reason


@dataclasses.dataclass(frozen=True)
class AutoTools:
    """``tool_choice`` "auto" on a server with a tool-call parser: the model answers freely; the calls it writes in its
    own syntax are parsed out of the text (vLLM's hermes parser's rules)."""

    tools: list[dict]
    parser: str

    def schema(self) -> None:
        return None  # the answer is free: nothing to hold it to

    def message(self, text: str) -> dict | None:
        """The assistant message with the calls the text holds (and the text before them as its content), or None
        where it holds none, or one that is not JSON with a name (the text is then the answer)."""
        if self.parser == "llama3_json":
            return _llama3_message(text)
        if _HERMES_OPEN not in text:
            return None
        calls = []
        for match in _HERMES_CALL.finditer(text):
            body = (match.group(1) or match.group(2)).strip()
            try:
                call = json.loads(body)
                name, arguments = call["name"], call.get("arguments", {})
            except (ValueError, TypeError, KeyError):
                return None
            written = scan_call(body, 0, "arguments")[1] if isinstance(arguments, dict) else None
            calls.append(_tool_call(name, written or json.dumps(arguments, ensure_ascii=False)))  # as written, as streamed
        content = text[: text.index(_HERMES_OPEN)]
        return {"role": "assistant", "content": content or None, "tool_calls": calls}

    def stream(self) -> ToolCallStream:
        """A choice's stream: hermes's text before the first <tool_call> as content (a tail that could begin the tag
        held back until it cannot), then each call as it is written; llama3_json's answer as content unless it begins
        as a call."""
        return ToolCallStream(_llama3_scan if self.parser == "llama3_json" else _hermes_scan, content=True)

    def finish_reason(self, reason: str | None) -> str | None:
        return "tool_calls" if reason == "stop" else reason


def requested_tools(body: dict, parser: str | None = None) -> ForcedTools | AutoTools | None:
    """The tool calls a chat body forces, or lets the model make (``parser``: the server's tool-call parser, for
    ``"auto"``), or None (no tools, or ``"tool_choice": "none"``); a 400 that says what to send for anything this
    server cannot answer."""
    if body.get("function_call") not in (None, "none") or (body.get("functions") and body.get("function_call") != "none"):
        raise APIError(400, "The legacy 'functions' / 'function_call' are not supported: send 'tools' and 'tool_choice'.", "functions")
    tools, choice = body.get("tools"), body.get("tool_choice")
    if choice == "none" or (not tools and choice is None):
        return None
    if not tools:
        raise APIError(400, "'tool_choice' needs 'tools'.", "tool_choice")
    if not isinstance(tools, list) or not all(_is_function_tool(t) for t in tools):
        raise APIError(400, '\'tools\' must be a list of {"type": "function", "function": {"name", "parameters"}} objects.', "tools")
    if choice in (None, "auto"):
        if parser is not None:
            return AutoTools(tools, parser)
        raise APIError(
            400,
            'tool_choice "auto" (the default with tools) needs a parser of this model\'s tool-call syntax (start the server '
            'with --enable_auto_tool_choice --tool_call_parser hermes, as vLLM): send "tool_choice": "required", a named '
            'function ({"type": "function", "function": {"name": ...}}) or "none".',
            "tool_choice",
        )
    if choice == "required":
        return ForcedTools(tools, None)
    function = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise APIError(
            400, '\'tool_choice\' must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.', "tool_choice"
        )
    if name not in [t["function"]["name"] for t in tools]:
        raise APIError(400, f"'tool_choice' names the function '{name}', which is not among 'tools'.", "tool_choice")
    return ForcedTools(tools, name)


def _is_function_tool(tool: Any) -> bool:
    function = tool.get("function") if isinstance(tool, dict) else None
    return (
        isinstance(function, dict)
        and tool.get("type") == "function"
        and isinstance(function.get("name"), str)
        and bool(function["name"])
        and isinstance(function.get("parameters", {}), dict)
    )


def _hermes_scan(text: str, final: bool) -> tuple[str, list[tuple[str | None, str | None, int | None]]]:
    """(content, calls) of a hermes answer so far: the text before the first <tool_call> (less a tail that may begin
    one, until the answer ends), and the calls after each tag."""
    first = text.find(_HERMES_OPEN)
    if first < 0:
        held = 0 if final else next((k for k in range(len(_HERMES_OPEN) - 1, 0, -1) if text.endswith(_HERMES_OPEN[:k])), 0)
        return text[: len(text) - held], []
    calls, at = [], first
    while at >= 0:
        i = _skip_space(text, at + len(_HERMES_OPEN))
        if i >= len(text) or text[i] != "{":
            break
        calls.append(scan_call(text, i, "arguments"))
        if calls[-1][2] is None:
            break
        at = text.find(_HERMES_OPEN, calls[-1][2])
    return text[:first], calls


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
            call, end = decoder.raw_decode(body, i)
            arguments = call.get("arguments", call.get("parameters", {}))
            name = call["name"]
        except (ValueError, AttributeError, KeyError):
            return None
        if not isinstance(name, str):
            return None
        written = scan_call(body, i, ("arguments", "parameters"))[1] if isinstance(arguments, dict) else None
        calls.append(_tool_call(name, written or json.dumps(arguments, ensure_ascii=False)))
        i = end
        while i < len(body) and body[i] in "; \t\r\n":
            i += 1
    return {"role": "assistant", "content": None, "tool_calls": calls} if calls else None


def _llama3_scan(text: str, final: bool) -> tuple[str | None, list[tuple[str | None, str | None, int | None]]]:
    """(content, calls) of a llama3_json answer so far: an answer that may still begin <|python_tag|> holds back;
    one that begins as a call streams calls, any other is content."""
    if not final and _PYTHON_TAG.startswith(text):
        return None, []
    body = _llama3_body(text)
    if body is None:
        return text, []
    calls, i = [], 0
    while i < len(body) and body[i] == "{":
        calls.append(scan_call(body, i, ("arguments", "parameters")))
        if calls[-1][2] is None:
            break
        i = calls[-1][2]
        while i < len(body) and body[i] in "; \t\r\n":
            i += 1
    return None, calls
