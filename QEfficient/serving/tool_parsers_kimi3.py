"""Kimi K3's tool calls (vLLM's ``kimi_k3``), in its channels of special tokens: the reply in
``<|open|>response<|sep|>`` ... ``<|close|>response<|sep|>``, then the calls in ``<|open|>tools<|sep|>`` ...
``<|close|>tools<|sep|>``, each ``<|open|>call tool="NAME" index="N"<|sep|>`` with ``<|open|>argument key="KEY"
type="TYPE"<|sep|>`` value ``<|close|>argument<|sep|>`` (a "string" as written, another type as JSON) and
``<|close|>call<|sep|>``; the turn ends with ``<|close|>message<|sep|>``.

A call counts once it is closed (it streams whole); the content is the reply without its channel markers (the prompt
usually opens the reply's channel, so the answer starts inside it).
"""

from __future__ import annotations

import json
import re
from typing import Any

from QEfficient.serving import harmony
from QEfficient.serving.tool_parsers import ScannedCall, ToolCallParser, finite_json, tool_call

RESPONSE, RESPONSE_END = "<|open|>response<|sep|>", "<|close|>response<|sep|>"
TOOLS, TOOLS_END, MESSAGE_END = "<|open|>tools<|sep|>", "<|close|>tools<|sep|>", "<|close|>message<|sep|>"
_CALL = re.compile(r"<\|open\|>call([^<]*)<\|sep\|>(.*?)<\|close\|>call<\|sep\|>", re.DOTALL)
_ARGUMENT = re.compile(r"<\|open\|>argument([^<]*)<\|sep\|>(.*?)<\|close\|>argument<\|sep\|>", re.DOTALL)
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')


def _attributes(head: str) -> dict[str, str]:
    return {key: value.replace("&quot;", '"').replace("&amp;", "&") for key, value in _ATTRIBUTE.findall(head)}


def _value(text: str, kind: str) -> Any:
    if kind == "string":
        return text
    ok, parsed = finite_json(text)
    return parsed if ok else text


def _calls(text: str) -> list[ScannedCall]:
    """The closed calls of the first tools channel so far."""
    start = text.find(TOOLS)
    if start < 0:
        return []
    end = text.find(TOOLS_END, start)
    channel = text[start : len(text) if end < 0 else end]
    calls = []
    for call in _CALL.finditer(channel):
        name = _attributes(call[1]).get("tool", "")
        if not name:
            continue
        arguments: dict[str, Any] = {}
        for argument in _ARGUMENT.finditer(call[2]):
            attributes = _attributes(argument[1])
            if "key" in attributes:
                arguments[attributes["key"]] = _value(argument[2], attributes.get("type", "string"))
        calls.append((name, json.dumps(arguments, ensure_ascii=False), start + call.end()))
    return calls


def reply(text: str, final: bool = True) -> str:
    """The reply: after the response channel's opening (where the answer writes it), up to its end, the tools channel
    or the end of the turn; while the answer goes on, less a tail that may begin one of those markers."""
    if not final and len(text) < len(RESPONSE) and RESPONSE.startswith(text):
        return ""
    start = text.find(RESPONSE)  # its marker dropped where it is (text before it stays, as it streamed)
    body = text[:start] + text[start + len(RESPONSE) :] if start >= 0 else text
    ends = [at for marker in (RESPONSE_END, TOOLS, MESSAGE_END) if (at := body.find(marker)) >= 0]
    if ends:
        return body[: min(ends)]
    return body if final else body[: len(body) - harmony.partial_tag(body, (RESPONSE_END, TOOLS, MESSAGE_END, RESPONSE))]


def _message(text: str) -> dict | None:
    calls = _calls(text)
    if not calls:
        return None
    return {"role": "assistant", "content": reply(text) or None, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    return reply(text, final), _calls(text)


KIMI_K3 = ToolCallParser(_message, _scan, special_tokens=True, plain=reply)
