"""More tool-call syntaxes whose calls are JSON (vLLM's ``--tool_call_parser`` names and rules), read as
serving/tool_parsers.py reads the others: a whole answer's message, and the calls so far of an answer being written.

- ``ernie45`` (ERNIE 4.5): hermes' ``<tool_call>{"name", "arguments"}</tool_call>`` calls; the content before them
  less its trailing newlines.
- ``hunyuan_a13b`` (Hunyuan): ``<tool_calls>`` then a JSON array of ``{"name", "arguments"}`` objects,
  ``</tool_calls>``, read as ``jamba``.
- ``nemotron_json`` (Nemotron): ``<TOOLCALL>`` then a JSON array of ``{"name", "arguments"}`` objects (its brackets may
  be left out), ``</TOOLCALL>``; every block's calls.
- ``minimax`` (MiniMax-Text-01): ``<tool_calls>``, one ``{"name", "arguments"}`` object per line (other lines skipped),
  ``</tool_calls>``; a call streams once its line is written.
- ``qwen2_5_coder`` (Qwen2.5-Coder): ``<tools>`` blocks (one left open runs to the end), each a call object, an array
  of them, or one per line; a call streams once its block closes; a block that is not calls is dropped.
- ``apertus`` (Apertus): ``<|tools_prefix|>`` then a JSON array of ``{"NAME": {arguments}}`` objects,
  ``<|tools_suffix|>``.
- ``xlam`` (xLAM): a JSON array of ``{"name", "arguments"}`` objects: the whole answer, or in a fenced code block, after
  ``[TOOL_CALLS]``, or in ``<tool_call>`` tags.

The content is the text outside the calls (vLLM strips it; here whitespace that streamed before the calls were seen
stays); the text after them goes out at the end. An answer whose calls are not complete JSON with a name is text, all
of it.
"""

from __future__ import annotations

import json
from typing import Any

from QEfficient.serving.tool_parsers import (
    _HERMES_OPEN,
    PARSERS,
    ScannedCall,
    ToolCallParser,
    _skip,
    content_around,
    held_before,
    scan_call,
    scan_call_array,
    tool_call,
)
from QEfficient.serving.tool_parsers_tagged import TAGGED_PARSERS, _complete


def _message(calls: list[ScannedCall], content: str | None) -> dict | None:
    if not calls or not all(_complete(call) for call in calls):
        return None
    return {"role": "assistant", "content": content, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _parsed_run(text: str, i: int, separators: str = " \t\r\n,") -> list[Any] | None:
    """The JSON values of the objects an _object_run (or scan_call_array, after its "[") scans from ``text[i]``; None
    where one of them is not JSON."""
    decoder, parsed = json.JSONDecoder(), []
    i = _skip(text, i, separators)
    while i < len(text) and text[i] == "{":
        try:
            value, i = decoder.raw_decode(text, i)
        except (ValueError, RecursionError):
            return None
        parsed.append(value)
        i = _skip(text, i, separators)
    return parsed


def _agrees(calls: list[ScannedCall], parsed: list[Any] | None) -> bool:
    """Whether the scanned calls are the parsed objects: each JSON with that name and an object of arguments."""
    return (
        parsed is not None
        and len(parsed) == len(calls)
        and all(
            isinstance(p, dict) and p.get("name") == name and isinstance(p.get("arguments"), dict) for p, (name, _, _) in zip(parsed, calls)
        )
    )


def _object_run(text: str, i: int, key: str | tuple[str, ...] = "arguments", separators: str = " \t\r\n,") -> list[ScannedCall]:
    """The call objects from ``text[i]`` on, separated by ``separators``, perhaps the last cut short."""
    calls: list[ScannedCall] = []
    i = _skip(text, i, separators)
    while i < len(text) and text[i] == "{":
        calls.append(scan_call(text, i, key))
        if calls[-1][2] is None:
            break
        i = _skip(text, calls[-1][2], separators)
    return calls


def _end_of(calls: list[ScannedCall], text: str, i: int) -> int:
    return calls[-1][2] if calls and calls[-1][2] is not None else i


# ernie45: hermes, the content less its trailing newlines
def _ernie_message(text: str) -> dict | None:
    message = PARSERS["hermes"].message(text)
    if message is None:
        return None
    return {**message, "content": text[: text.find(_HERMES_OPEN)].rstrip("\n") or None}


def _ernie_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, calls = PARSERS["hermes"].scan(text, final)
    return (content if final and _HERMES_OPEN not in text else content.rstrip("\n")), calls


# nemotron_json: <TOOLCALL>[...]</TOOLCALL>, every block
_NEMOTRON = ("<TOOLCALL>", "</TOOLCALL>")


def _nemotron_calls(text: str) -> tuple[list[ScannedCall], bool]:
    """The calls of every block so far, and whether each block is JSON calls and nothing else (one left open: so far)."""
    calls: list[ScannedCall] = []
    opening, closing = _NEMOTRON
    at = text.find(opening)
    while at >= 0:
        i = _skip(text, at + len(opening))
        bracketed = text.startswith("[", i)
        found = scan_call_array(text, i, "arguments") if bracketed else _object_run(text, i)
        calls += found
        if not found or found[-1][2] is None:
            return calls, False
        end = _skip(text, found[-1][2], " \t\r\n,")
        if bracketed:
            end = _skip(text, end + 1) if text.startswith("]", end) else -1
        if end < 0 or not _agrees(found, _parsed_run(text, i + bracketed)):
            return calls, False
        if not text.startswith(closing, end):
            return calls, end >= len(text)  # the block's end tag not written yet (cut short by max_tokens)
        at = text.find(opening, end + len(closing))
    return calls, True


def _nemotron_message(text: str) -> dict | None:
    first = text.find(_NEMOTRON[0])
    if first < 0:
        return None
    calls, valid = _nemotron_calls(text)
    return _message(calls, text[:first] or None) if valid else None  # the text after the calls: vLLM drops it


def _nemotron_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, first, _ = held_before(text, _NEMOTRON[:1], final)
    return content, [] if first < 0 else _nemotron_calls(text)[0]


# minimax (MiniMax-Text-01): <tool_calls>, a call object per line, </tool_calls>
_MINIMAX = ("<tool_calls>", "</tool_calls>")


def _minimax_calls(text: str, final: bool) -> list[ScannedCall]:
    """The calls of every block so far: each line that is a JSON object with a name and arguments (vLLM's), once the
    line is written; other lines are skipped."""
    calls: list[ScannedCall] = []
    opening, closing = _MINIMAX
    at = text.find(opening)
    while at >= 0:
        close = text.find(closing, at)
        lines = text[at + len(opening) : len(text) if close < 0 else close].split("\n")
        for line in lines if close >= 0 or final else lines[:-1]:  # the last line may still be being written
            line = line.strip()
            if not (line.startswith("{") and line.endswith("}")):
                continue
            try:
                call = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(call, dict) and isinstance(call.get("name"), str) and "arguments" in call:
                calls.append((call["name"], json.dumps(call["arguments"], ensure_ascii=False), 0))
        if close < 0:
            return calls
        at = text.find(opening, close + len(closing))
    return calls


def _minimax_message(text: str) -> dict | None:
    first = text.find(_MINIMAX[0])
    calls = [] if first < 0 else _minimax_calls(text, final=True)
    if not calls:
        return None
    return {"role": "assistant", "content": content_around(text[:first]), "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _minimax_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, first, _ = held_before(text, _MINIMAX[:1], final)
    return content, [] if first < 0 else _minimax_calls(text, final)


# qwen2_5_coder: <tools> blocks of calls, each block's calls once it closes
_CODER = ("<tools>", "</tools>")


def _coder_block(body: str) -> list[ScannedCall]:
    """A block's calls, (name, arguments as JSON, 0): a call object, an array of them, one per line, or objects
    separated by commas; none where it is not calls."""
    body = body.strip()
    lines = [line.strip().rstrip(",") for line in body.splitlines() if line.strip()]
    attempts = [body, "[" + ",".join(lines) + "]", "[" + body + "]"]
    for attempt in [*attempts, *(a.replace('\\\\"', '\\"') for a in attempts)]:
        try:
            parsed = json.loads(attempt)
        except (ValueError, RecursionError):
            continue
        items = parsed if isinstance(parsed, list) else [parsed]
        calls = [c for c in items if isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("arguments") or {}, dict)]
        if calls:  # items that are not calls are left out (vLLM's)
            return [(c["name"], json.dumps(c.get("arguments") or {}, ensure_ascii=False), 0) for c in calls]
    return []


def _coder_parts(text: str, final: bool) -> tuple[list[ScannedCall], str]:
    """The calls of the blocks closed so far (at the ``final`` reading, a block left open too) and the text outside them."""
    calls: list[ScannedCall] = []
    outside, at = "", 0
    while (start := text.find(_CODER[0], at)) >= 0:
        outside += text[at:start]
        close = text.find(_CODER[1], start)
        if close < 0 and not final:
            return calls, outside
        body_end = len(text) if close < 0 else close
        calls += _coder_block(text[start + len(_CODER[0]) : body_end])
        at = len(text) if close < 0 else close + len(_CODER[1])
    return calls, outside + text[at:]


def _coder_message(text: str) -> dict | None:
    first = text.find(_CODER[0])
    if first < 0:
        return None
    calls, outside = _coder_parts(text, final=True)
    return _message(calls, content_around(text[:first], outside[first:]))


def _coder_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, first, _ = held_before(text, _CODER[:1], final)
    return content, [] if first < 0 else _coder_parts(text, final)[0]


# apertus: <|tools_prefix|>[{"NAME": {arguments}}, ...]<|tools_suffix|>
_APERTUS = ("<|tools_prefix|>", "<|tools_suffix|>")


def _apertus_calls(text: str, i: int) -> tuple[list[ScannedCall], int | None]:
    """The calls of the array at ``text[i]``, each ``{"NAME": {...}}``, perhaps the last cut short; the index after the
    array (None while it is open or where it is not calls)."""
    calls: list[ScannedCall] = []
    i = _skip(text, i)
    if not text.startswith("[", i):
        return calls, None
    decoder, i = json.JSONDecoder(), i + 1
    while True:
        i = _skip(text, i, " \t\r\n,")
        if text.startswith("]", i):
            return calls, i + 1
        if not text.startswith("{", i):
            return calls, None
        try:
            name, k = decoder.raw_decode(text, _skip(text, i + 1))
        except (ValueError, RecursionError):
            return calls, None  # the name is still being written
        k = _skip(text, k)
        if not isinstance(name, str) or not text.startswith(":", k):
            return calls, None
        k = _skip(text, k + 1)
        if not text.startswith("{", k):
            return calls, None  # the arguments are still to come, or not an object
        end = scan_call(text, k, ())[2]
        closing = -1 if end is None else _skip(text, end)
        done = end is not None and text.startswith("}", closing)
        calls.append((name, text[k : end or len(text)], closing + 1 if done else None))
        if not done:
            return calls, None
        i = closing + 1


def _apertus_message(text: str) -> dict | None:
    first = text.find(_APERTUS[0])
    if first < 0:
        return None
    calls, end = _apertus_calls(text, first + len(_APERTUS[0]))
    if end is None:
        return None
    after = text[end:].replace(_APERTUS[1], "", 1)
    return _message(calls, content_around(text[:first], after, joiner="\n"))


def _apertus_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, first, _ = held_before(text, _APERTUS[:1], final)
    return content, [] if first < 0 else _apertus_calls(text, first + len(_APERTUS[0]))[0]


# xlam: a JSON array of calls, the whole answer or marked
_XLAM_MARKERS = ("```", "[TOOL_CALLS]", _HERMES_OPEN)
_XLAM_ENDS = {"```": "```", "[TOOL_CALLS]": "\n", _HERMES_OPEN: "</tool_call>"}


def _xlam_array_start(text: str, at: int, marker: str) -> int:
    i = at + len(marker)
    if marker == "```" and text.startswith("json", i):
        i += len("json")
    return _skip(text, i)


def _bare_array(text: str) -> bool:
    """Whether ``text`` (stripped) begins as a JSON array of objects (``[TOOL_CALLS]`` begins with "[" too)."""
    i = _skip(text, 1)
    return text.startswith("[") and (i >= len(text) or text[i] in "{]")


def _xlam_message(text: str) -> dict | None:
    stripped = text.strip()
    if _bare_array(stripped):
        return _message(scan_call_array(stripped, 0, "arguments"), None) if _whole_array(stripped) else None
    _, at, marker = held_before(text, _XLAM_MARKERS, final=True)
    if at < 0:
        return None
    i = _xlam_array_start(text, at, marker)
    calls = scan_call_array(text, i, "arguments")
    end = _end_of(calls, text, i)
    if not calls or end == i or not text.startswith("]", _skip(text, end, " \t\r\n,")) or not _agrees(calls, _parsed_run(text, i + 1)):
        return None
    after = text[_skip(text, end, " \t\r\n,") + 1 :]
    closing = _XLAM_ENDS[marker]
    after = after[after.find(closing) + len(closing) :] if closing.strip() and closing in after else after
    return _message(calls, content_around(text[:at], after))


def _whole_array(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except (ValueError, RecursionError):
        return False


def _xlam_scan(text: str, final: bool) -> tuple[str | None, list[ScannedCall]]:
    """An answer that begins with "[" streams its calls; one with a marker, the text before it and then the calls."""
    if not text.strip():
        return (text if final else None), []
    if _bare_array(text.lstrip()):
        return None, scan_call_array(text.lstrip(), 0, "arguments")
    content, at, marker = held_before(text, _XLAM_MARKERS, final)
    return content, [] if at < 0 else scan_call_array(text, _xlam_array_start(text, at, marker), "arguments")


JSON_PARSERS: dict[str, Any] = {
    "ernie45": ToolCallParser(_ernie_message, _ernie_scan),
    "hunyuan_a13b": TAGGED_PARSERS["jamba"],
    "nemotron_json": ToolCallParser(_nemotron_message, _nemotron_scan),
    "minimax": ToolCallParser(_minimax_message, _minimax_scan),
    "qwen2_5_coder": ToolCallParser(_coder_message, _coder_scan),
    "apertus": ToolCallParser(_apertus_message, _apertus_scan, special_tokens=True),
    "xlam": ToolCallParser(_xlam_message, _xlam_scan),
}
