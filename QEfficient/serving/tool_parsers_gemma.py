"""Gemma 4's tool calls (vLLM's ``--tool_call_parser gemma4``): ``<|tool_call>call:NAME{key:value,...}<tool_call|>``,
the calls one after another, the text before the first the content. Gemma 4 writes its arguments in its own notation,
not JSON: keys bare, strings between ``<|"|>`` marks, objects ``{...}`` and arrays ``[...]`` nested, and other values
bare (``true``, ``false``, numbers; anything else stays text). The markers are special tokens.

The arguments come back as JSON (vLLM's), streamed a key at a time as each value closes; a key written twice keeps
its first value, so that the arguments only grow. A call cut short by max_tokens is still a call, as hermes' is (vLLM
waits for the end marker), and the content keeps its whitespace (vLLM strips it): what streams adds up to the answer.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from QEfficient.serving.tool_parsers import ScannedCall, ToolCallParser, _before_marker, tool_call

_START, _END, _QUOTE = "<|tool_call>", "<tool_call|>", '<|"|>'
_CALL = re.compile(r"call:([\w\-.]+)\{")


def _bare(text: str) -> Any:
    """A bare value: true, false, a finite number (with a "." a float, as vLLM reads it), else the text."""
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    try:
        number = float(text) if "." in text else int(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _value(text: str, i: int, final: bool) -> tuple[Any, int, bool]:
    """The value at ``text[i]``: (it, the index after it, whether it is complete: at the ``final`` reading a string or
    bare value cut short is, as it stands)."""
    if text.startswith(_QUOTE, i):
        close = text.find(_QUOTE, i + len(_QUOTE))
        if close < 0:
            return (text[i + len(_QUOTE) :] if final else None), len(text), final
        return text[i + len(_QUOTE) : close], close + len(_QUOTE), True
    if text[i] in "{[":
        return _items(text, i + 1, text[i] == "{", final)
    end = i
    while end < len(text) and text[end] not in ",}]":
        end += 1
    if end >= len(text) and not final:
        return None, len(text), False  # a bare value may go on
    return _bare(text[i:end]), end, True


def _items(text: str, i: int, pairs: bool, final: bool) -> tuple[dict | list, int, bool]:
    """An object's (``pairs``) or an array's items from ``i`` up to its closing brace or bracket: (the complete items,
    the index after it, whether it closed)."""
    closing = "}" if pairs else "]"
    items: dict | list = {} if pairs else []
    while True:
        while i < len(text) and text[i] in " ,\n\t":
            i += 1
        if i >= len(text):
            return items, i, False
        if text[i] == closing:
            return items, i + 1, True
        key = None
        if pairs:
            colon = text.find(":", i)
            if colon < 0:
                return items, len(text), False
            key, i = text[i:colon].strip(), colon + 1
            while i < len(text) and text[i] in " \n\t":
                i += 1
            if i >= len(text):
                return items, i, False
        value, i, done = _value(text, i, final)
        if not done:
            return items, i, False
        if pairs:
            items.setdefault(key, value)
        else:
            items.append(value)


def _calls(text: str, final: bool) -> list[ScannedCall]:
    """Each call from the first marker: its name once its ``{`` is written, its complete arguments so far, and the
    index after its end marker (None while it is open)."""
    calls: list[ScannedCall] = []
    at = text.find(_START)
    while at >= 0:
        head = _CALL.match(text, at + len(_START))
        if head is None:
            break  # the name is still being written, or this is no call
        try:
            arguments, end, closed = _items(text, head.end(), True, final)
        except RecursionError:  # nested deeper than the stack: no call
            break
        whole = closed and text.startswith(_END, end)
        pairs = ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
        calls.append((head.group(1), "{" + pairs + ("}" if whole or final else ""), end + len(_END) if whole else None))
        if not whole:
            break
        at = text.find(_START, end + len(_END))
    return calls


def _message(text: str) -> dict | None:
    """vLLM's gemma4 rules: each ``<|tool_call>call:NAME{`` is a call (the last may be cut short, as its stream sent it);
    none makes the answer text."""
    calls = _calls(text, final=True)
    if not calls:
        return None
    content = text[: text.find(_START)]
    return {"role": "assistant", "content": content or None, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, first = _before_marker(text, _START, final)
    return content, [] if first < 0 else _calls(text, final)


GEMMA_PARSERS = {"gemma4": ToolCallParser(_message, _scan, special_tokens=True)}
