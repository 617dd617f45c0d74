"""Tool calls whose JSON follows a header (vLLM's ``--tool_call_parser`` names and rules), read as
serving/tool_parsers.py reads the others.

- ``gigachat3`` (GigaChat 3 and 3.1): one call, ``{"name": ..., "arguments": {...}}``, after ``function
  call<|role_sep|>`` and a newline (3; the content ends at the ``<|message_sep|>`` before it) or after
  ``<|function_call|>`` (3.1); a trailing ``</s>`` is dropped.
- ``plamo3`` (PLaMo 3): ``<|plamo:begin_tool_requests:plamo|>``, then per call ``begin_tool_request``,
  ``begin_tool_name`` NAME ``end_tool_name``, ``begin_tool_arguments`` (``<|plamo:constrain|>json<|plamo:msg|>``)
  the JSON arguments as written ``end_tool_arguments``, ``end_tool_request``, and ``end_tool_requests``, every tag
  right after the one before; the answer ends at ``<|plamo:tag|>``. A block that breaks the order is no calls, and
  the content is the text before it.
"""

from __future__ import annotations

import json
import re

from QEfficient.serving import harmony
from QEfficient.serving.tool_parsers import ScannedCall, ToolCallParser, _skip, finite_json, held_before, scan_call, tool_call

# gigachat3
_GIGA_ENDS = ("<|message_sep|>", "<|function_call|>")  # where the content ends
_GIGA_HEADERS = ("function call<|role_sep|>\n", "<|function_call|>")  # what the call follows


def _giga_call_start(text: str) -> int:
    """Where the call's object starts (after the first header and whitespace), or -1."""
    found = [(at, header) for header in _GIGA_HEADERS if (at := text.find(header)) >= 0]
    if not found:
        return -1
    at, header = min(found)
    return _skip(text, at + len(header))


def _escaped_controls(written: str | None) -> str | None:
    """JSON as written, a raw control character inside a string escaped (GigaChat's parser reads it leniently; a client's
    JSON reader would not); character by character, so a stream's pieces add up to the whole."""
    if written is None:
        return None
    out, in_string, escaped = [], False, False
    for c in written:
        if in_string and not escaped and ord(c) < 0x20:
            out.append(json.dumps(c)[1:-1])
            continue
        out.append(c)
        if escaped:
            escaped = False
        elif c == "\\" and in_string:
            escaped = True
        elif c == '"':
            in_string = not in_string
    return "".join(out)


def _giga_calls(text: str) -> list[ScannedCall]:
    start = _giga_call_start(text)
    if not (0 <= start < len(text) and text[start] == "{"):
        return []
    name, arguments, end = scan_call(text, start, "arguments")
    return [(name, _escaped_controls(arguments), end)]


def _giga_message(text: str) -> dict | None:
    """vLLM's: the rest of the answer after the header is one JSON object with a name and an object of arguments."""
    start = _giga_call_start(text)
    if start < 0:
        return None
    try:
        call = json.loads(text[start:].rstrip().removesuffix("</s>"), strict=False)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(call, dict) and isinstance(call.get("name"), str) and isinstance(call.get("arguments"), dict)):
        return None
    written = _escaped_controls(scan_call(text, start, "arguments")[1])
    if written is None or not finite_json(written)[0]:
        written = json.dumps(call["arguments"], ensure_ascii=False)
    content = held_before(text, _GIGA_ENDS, True)[0]
    return {"role": "assistant", "content": content or None, "tool_calls": [tool_call(call["name"], written)]}


def _giga_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, at, _ = held_before(text, _GIGA_ENDS, final)
    return content, [] if at < 0 else _giga_calls(text)


# plamo3
def _tag(name: str) -> str:
    return f"<|plamo:{name}:plamo|>"


_P_BLOCK, _P_BLOCK_END, _P_CALL, _P_CALL_END = (
    _tag("begin_tool_requests"),
    _tag("end_tool_requests"),
    _tag("begin_tool_request"),
    _tag("end_tool_request"),
)
_P_NAME, _P_NAME_END, _P_ARGS, _P_ARGS_END = (
    _tag("begin_tool_name"),
    _tag("end_tool_name"),
    _tag("begin_tool_arguments"),
    _tag("end_tool_arguments"),
)
_P_JSON, _P_EOT = "<|plamo:constrain|>json<|plamo:msg|>", "<|plamo:tag|>"


def _plamo_calls(text: str, final: bool) -> tuple[list[ScannedCall], bool]:
    """The calls so far, and whether the block is complete in vLLM's strict order (each tag right after the one
    before); a call's arguments are its JSON as written, less a tail that may begin the end tag."""
    text = text.split(_P_EOT, 1)[0]
    at = text.find(_P_BLOCK)
    if at < 0:
        return [], False
    calls: list[ScannedCall] = []
    i = at + len(_P_BLOCK)
    while True:
        if text.startswith(_P_BLOCK_END, i):
            return calls, bool(calls)
        if not text.startswith(_P_CALL + _P_NAME, i):
            return calls, False
        i += len(_P_CALL + _P_NAME)
        name_end = text.find(_P_NAME_END, i)
        if name_end < 0:
            return calls, False  # the name is still being written
        name, i = text[i:name_end], name_end + len(_P_NAME_END)
        if not text.startswith(_P_ARGS, i) or (not final and _P_JSON.startswith(text[i + len(_P_ARGS) :])):
            return calls + [(name, None, None)], False
        i += len(_P_ARGS)
        i += len(_P_JSON) if text.startswith(_P_JSON, i) else 0
        end = text.find(_P_ARGS_END, i)
        if end < 0:
            held = 0 if final else harmony.partial_tag(text[i:], (_P_ARGS_END,))
            return calls + [(name, text[i : len(text) - held], None)], False
        arguments, i = text[i:end], end + len(_P_ARGS_END)
        closed = text.startswith(_P_CALL_END, i)
        i += len(_P_CALL_END) if closed else 0
        calls.append((name, arguments, i if closed else None))
        if not closed:
            return calls, False


_P_FRAGMENT = re.compile(r"<\|plamo:[^\s<>|]*\|?$")  # a tag the answer stopped in the middle of


def _plamo_plain(text: str) -> str:
    """The content: the text before the block (or the end of the answer), whether or not the block reads as calls,
    less a tag cut short at its end."""
    before = held_before(text, (_P_BLOCK, _P_EOT), True)[0] if _P_BLOCK in text or _P_EOT in text else text
    return _P_FRAGMENT.sub("", before)


def _plamo_message(text: str) -> dict | None:
    calls, valid = _plamo_calls(text, True)
    if not valid:
        return None
    return {"role": "assistant", "content": _plamo_plain(text) or None, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _plamo_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, at, marker = held_before(text, (_P_BLOCK, _P_EOT), final)
    return content, [] if at < 0 or marker == _P_EOT else _plamo_calls(text, final)[0]


HEADED_PARSERS = {
    "gigachat3": ToolCallParser(_giga_message, _giga_scan, special_tokens=True),
    "plamo3": ToolCallParser(_plamo_message, _plamo_scan, special_tokens=True, plain=_plamo_plain),
}
