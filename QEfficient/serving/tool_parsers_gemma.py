"""Gemma's tool calls (vLLM's ``--tool_call_parser`` names and rules).

``gemma4``, Gemma 4's: ``<|tool_call>call:NAME{key:value,...}<tool_call|>``,
the calls one after another, the text before the first the content. Gemma 4 writes its arguments in its own notation,
not JSON: keys bare, strings between ``<|"|>`` marks, objects ``{...}`` and arrays ``[...]`` nested, and other values
bare (``true``, ``false``, numbers; anything else stays text). The markers are special tokens.

The arguments come back as JSON (vLLM's), streamed a key at a time as each value closes; a key written twice keeps
its first value, so that the arguments only grow. A call cut short by max_tokens is still a call, as hermes' is (vLLM
waits for the end marker), and the content keeps its whitespace (vLLM strips it): what streams adds up to the answer.

``functiongemma`` (FunctionGemma-270M): ``<start_function_call>call:NAME{key:<escape>value<escape>,...}``
``<end_function_call>``; each value between ``<escape>`` marks is read as JSON where it is JSON, else kept as text,
and a value without them is skipped (vLLM's). A call cut short is still a call, as vLLM reads it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from QEfficient.serving.tool_parsers import ScannedCall, calls_after_marker, finite_json, json_arguments

_START, _END, _QUOTE = "<|tool_call>", "<tool_call|>", '<|"|>'
_CALL = re.compile(r"call:([\w\-.]+)\{")
_KEY = re.compile(r'(?:<\|"\|>)?([^:,{}\[\]<>"]+?)(?:<\|"\|>)?\s*:')  # a bare key (quoted: the marks dropped), then ":"


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
    if text[i] == "<":  # a quote mark being written, or a marker where a value should be: nothing more to read
        return None, len(text), False
    end = i
    while end < len(text) and text[end] not in ",}]<":  # "<": a marker, which no bare value holds
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
            match = _KEY.match(text, i)
            if match is None:
                return items, len(text), False  # a key being written, or no key: nothing more to read
            key, i = match.group(1).strip(), match.end()
            while i < len(text) and text[i] in " \n\t":
                i += 1
            if i >= len(text):
                return items, i, False
        before = i
        value, i, done = _value(text, i, final)
        if not done or i == before:  # i == before: a stray closing character, nothing more to read
            return items, i if done else len(text), False
        if pairs:
            items.setdefault(key, value)
        else:
            items.append(value)


ReadArguments = Callable[[str, int, bool], tuple[dict | None, int | None]]


def _each_call(text: str, final: bool, *, start: str, head: re.Pattern, arguments: ReadArguments) -> list[ScannedCall]:
    """Each call after a ``start`` marker, its name the first group of ``head`` matched right after the marker.
    ``arguments(text, i, final)`` reads the call's arguments from ``i``: (the arguments, or None where there are none to
    read; the index where the call ends, or None while it is open)."""
    calls: list[ScannedCall] = []
    at = text.find(start)
    while at >= 0:
        match = head.match(text, at + len(start))
        if match is None:
            break  # the name is still being written, or this is no call
        found, end = arguments(text, match.end(), final)
        if found is None:
            break
        calls.append((match.group(1), json_arguments(list(found.items()), end is not None or final), end))
        if end is None:
            break
        at = text.find(start, end)
    return calls


def _gemma4_arguments(text: str, i: int, final: bool) -> tuple[dict | None, int | None]:
    try:
        arguments, end, closed = _items(text, i, True, final)
    except RecursionError:  # nested deeper than the stack: no call
        return None, None
    if not closed:
        return arguments, None
    if text.startswith(_END, end):
        return arguments, end + len(_END)
    # no end marker, the next call straight after: this one ends at its brace (vLLM would read it into the next)
    return arguments, end if text[end:].lstrip().startswith(_START) else None


# functiongemma
_FG_START, _FG_END = "<start_function_call>", "}<end_function_call>"
_FG_CALL = re.compile(r"call:(\w+)\{")
_FG_ARGUMENT = re.compile(r"(\w+):<escape>(.*?)<escape>", re.DOTALL)


def _fg_arguments(text: str, i: int, final: bool) -> tuple[dict, int | None]:
    close = text.find(_FG_END, i)
    arguments: dict[str, Any] = {}
    for key, value in _FG_ARGUMENT.findall(text, i, close if close >= 0 else len(text)):
        ok, parsed = finite_json(value)
        arguments.setdefault(key, parsed if ok else value)
    return arguments, None if close < 0 else close + len(_FG_END)


GEMMA_PARSERS = {
    "gemma4": calls_after_marker(_START, partial(_each_call, start=_START, head=_CALL, arguments=_gemma4_arguments), special_tokens=True),
    "functiongemma": calls_after_marker(
        _FG_START, partial(_each_call, start=_FG_START, head=_FG_CALL, arguments=_fg_arguments), special_tokens=True
    ),
}
