"""Tool-call syntaxes with marker tokens around JSON arguments (vLLM's ``--tool_call_parser`` names and rules), read
as serving/tool_parsers.py reads the first four: a whole answer's message, and the calls so far of an answer being
written. Their markers are special tokens, so a request these parsers read is decoded with them.

- ``deepseek_v3`` (DeepSeek-V3, -R1): ``<｜tool▁calls▁begin｜>``, then per call ``<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME``,
  a fenced JSON block (```` ```json ````) with the arguments, ``<｜tool▁call▁end｜>``.
- ``deepseek_v31`` (DeepSeek-V3.1 and later): per call ``<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>``.
- ``kimi_k2``: ``<|tool_calls_section_begin|>``, then per call ``<|tool_call_begin|>functions.NAME:INDEX``
  ``<|tool_call_argument_begin|>{...}<|tool_call_end|>``; the call's id is the model's ``functions.NAME:INDEX`` (its chat
  template writes it back in later turns).
- ``internlm`` (InternLM2/2.5): ``<|action_start|><|plugin|>`` then one ``{"name", "parameters"}`` object, ``<|action_end|>``.
- ``jamba``: ``<tool_calls>`` then a JSON array of ``{"name", "arguments"}`` objects, ``</tool_calls>``.
- ``granite`` (Granite 3.x): an answer that is a JSON array of ``{"name", "arguments"}`` objects, after
  ``<|tool_call|>`` or ``<tool_call>``.
- ``granite4`` (Granite 4): ``<tool_call>{"name", "arguments"}</tool_call>`` anywhere in the answer, the text around
  the calls the content (all of it, joined; what follows the first call is sent at the end); a call left open makes
  the answer text; each call streams once closed.
- ``olmo3`` (OLMo 3): ``<function_calls>``, then one pythonic call per line (``get_weather(city="Paris")``, JSON's
  null, true and false taken as values), ``</function_calls>``; an answer that does not open with the tag is text
  (as vLLM's stream reads it: its whole-answer reading also takes untagged lines).
- ``phi4_mini_json`` (Phi-4-mini): ``functools`` then a JSON array of ``{"name", "arguments"}`` (or ``"parameters"``)
  objects; plain text, no special tokens.
- ``lfm2`` (LiquidAI LFM2, LFM2.5): ``<|tool_call_start|>``, a pythonic list of calls (``[f(x=1)]``, as ``pythonic``
  reads it), ``<|tool_call_end|>``; the text before and after is the content (after an echo of the calls that the
  model may write and close with a second ``<|tool_call_end|>``, as vLLM drops it), the text after sent at the end.

The text before the first marker is the message's content (none for granite); an answer whose calls are not complete
JSON objects with a name is text, all of it.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from QEfficient.serving.tool_parsers import (
    _HERMES_CLOSE,
    _HERMES_OPEN,
    ScannedCall,
    ToolCallParser,
    _before_marker,
    _pythonic_call,
    _pythonic_calls,
    _pythonic_message,
    _skip,
    _written_call,
    scan_call,
    scan_call_array,
    tool_call,
)


@dataclasses.dataclass(frozen=True)
class TaggedCalls:
    """Calls each opened by ``call_open``, its head (what names the call) up to ``arguments_open``, then a JSON object;
    all of them after ``section`` (the content is the text before it)."""

    section: str
    call_open: str
    arguments_open: str
    name_of: Callable[[str], str]  # the call's name from its head
    model_ids: bool = False  # the head is the call's id (Kimi's)

    def calls(self, text: str) -> tuple[list[ScannedCall], list[str]]:
        """The calls after the section marker so far (perhaps the last cut short), and their heads."""
        calls: list[ScannedCall] = []
        heads: list[str] = []
        section = text.find(self.section)
        at = -1 if section < 0 else text.find(self.call_open, section)
        while at >= 0:
            head_start = at + len(self.call_open)
            opened = text.find(self.arguments_open, head_start)
            if opened < 0:
                break  # the head is still being written
            heads.append(text[head_start:opened].strip())
            j = _skip(text, opened + len(self.arguments_open))
            if j >= len(text) or text[j] != "{":
                calls.append((self.name_of(heads[-1]), None, None))
                break
            end = scan_call(text, j, ())[2]  # the end of the arguments' object
            calls.append((self.name_of(heads[-1]), text[j : end or len(text)], end))
            if end is None:
                break
            at = text.find(self.call_open, end)
        return calls, heads

    def message(self, text: str) -> dict | None:
        first = text.find(self.section)
        if first < 0:
            return None
        calls, heads = self.calls(text)
        if not calls or not all(_complete(call) for call in calls):
            return None
        ids = heads if self.model_ids else [None] * len(calls)
        made = [tool_call(name, arguments, call_id) for (name, arguments, _), call_id in zip(calls, ids)]
        return {"role": "assistant", "content": text[:first] or None, "tool_calls": made}

    def scan(self, text: str, final: bool) -> tuple[str, list[ScannedCall]]:
        content, first = _before_marker(text, self.section, final)
        return content, [] if first < 0 else self.calls(text)[0]

    def call_ids(self, text: str) -> list[str] | None:
        return self.calls(text)[1] if self.model_ids else None

    def parser(self) -> ToolCallParser:
        return ToolCallParser(self.message, self.scan, special_tokens=True, call_ids=self.call_ids if self.model_ids else None)


def _complete(call: ScannedCall) -> bool:
    """A call with a name and a whole JSON object for its arguments."""
    name, arguments, end = call
    try:
        return bool(name) and end is not None and isinstance(json.loads(arguments), dict)
    except (TypeError, ValueError, RecursionError):
        return False


_DEEPSEEK_SEP = "<｜tool▁sep｜>"
DEEPSEEK_V3 = TaggedCalls("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "```json", lambda head: head.split(_DEEPSEEK_SEP)[-1].strip())
DEEPSEEK_V31 = TaggedCalls("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", _DEEPSEEK_SEP, str.strip)
# "functions.get_weather:0" -> "get_weather"
KIMI_K2 = TaggedCalls(
    "<|tool_calls_section_begin|>",
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    lambda head: head.split(":")[0].split(".")[-1],
    model_ids=True,
)

# internlm: one call, a JSON object after the action marker
_INTERNLM_OPEN, _INTERNLM_PLUGIN, _INTERNLM_CLOSE = "<|action_start|>", "<|plugin|>", "<|action_end|>"
_INTERNLM_KEYS = ("parameters", "arguments")


def _internlm_start(text: str, first: int) -> int:
    """Where the call's JSON object starts: after the action marker at ``first`` and the plugin marker (-1 while the
    plugin marker is still being written)."""
    i = _skip(text, first + len(_INTERNLM_OPEN))
    if text.startswith(_INTERNLM_PLUGIN, i):
        return _skip(text, i + len(_INTERNLM_PLUGIN))
    return -1 if _INTERNLM_PLUGIN.startswith(text[i:]) else i


def _internlm_call(text: str, first: int) -> ScannedCall | None:
    i = _internlm_start(text, first)
    return scan_call(text, i, _INTERNLM_KEYS) if 0 <= i < len(text) and text[i] == "{" else None


def _internlm_message(text: str) -> dict | None:
    first = text.find(_INTERNLM_OPEN)
    i = -1 if first < 0 else _internlm_start(text, first)
    if i < 0:
        return None
    try:
        call, end = json.JSONDecoder().raw_decode(text, i)
        name, arguments = call["name"], next((call[k] for k in _INTERNLM_KEYS if k in call), {})
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if not isinstance(name, str) or not isinstance(arguments, dict) or text[end:].strip() not in ("", _INTERNLM_CLOSE):
        return None
    written = scan_call(text, i, _INTERNLM_KEYS)[1]
    return {"role": "assistant", "content": text[:first] or None, "tool_calls": [tool_call(name, written or "{}")]}


def _internlm_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, first = _before_marker(text, _INTERNLM_OPEN, final)
    call = None if first < 0 else _internlm_call(text, first)
    return content, [] if call is None else [call]


# jamba and granite: a JSON array of {"name", "arguments"} objects
_JAMBA_OPEN, _JAMBA_CLOSE = "<tool_calls>", "</tool_calls>"
_GRANITE_MARKERS = ("<|tool_call|>", "<tool_call>")


def _array_message(text: str, content: str | None, keys: tuple[str, ...] = ("arguments",)) -> dict | None:
    """The message of a JSON array of calls (``text``: the array alone), each call's arguments under the first of
    ``keys`` it has, or None where it is not one."""
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, list) or not parsed:
        return None
    for call in parsed:
        arguments = next((call[k] for k in keys if k in call), {}) if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not isinstance(arguments, dict):
            return None
    written = scan_call_array(text, 0, keys)
    calls = [tool_call(c["name"], arguments or "{}") for c, (_, arguments, _) in zip(parsed, written)]
    return {"role": "assistant", "content": content, "tool_calls": calls}


def _jamba_message(text: str) -> dict | None:
    first = text.find(_JAMBA_OPEN)
    if first < 0:
        return None
    body = text[first + len(_JAMBA_OPEN) :]
    close = body.find(_JAMBA_CLOSE)
    return _array_message(body[:close] if close >= 0 else body, text[:first] or None)


def _jamba_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, first = _before_marker(text, _JAMBA_OPEN, final)
    return content, [] if first < 0 else scan_call_array(text, first + len(_JAMBA_OPEN), "arguments")


def _granite_body(text: str) -> str:
    body = text.strip()
    for marker in _GRANITE_MARKERS:
        body = body.removeprefix(marker)
    return body.lstrip()


def _granite_message(text: str) -> dict | None:
    body = _granite_body(text)
    return _array_message(body, None) if body.startswith("[") else None


def _granite_scan(text: str, final: bool) -> tuple[str | None, list[ScannedCall]]:
    """An answer that may still begin with a marker or "[" holds back; one that begins as an array streams its calls;
    any other is content."""
    body = _granite_body(text)
    if not final and (not body or any(m.startswith(text.strip()) for m in _GRANITE_MARKERS)):
        return None, []
    if not body.startswith("["):
        return text, []
    return None, scan_call_array(body, 0, "arguments")


# granite4: <tool_call>{...}</tool_call> anywhere, the text around the calls the content


def _granite4_parts(text: str, final: bool) -> tuple[str, list[ScannedCall], bool]:
    """(the text outside the closed calls so far, less a tail that may begin a tag while the answer goes on; the closed
    calls; whether every closed call is a JSON object with a name and nothing is left open)."""
    content, calls, at = "", [], 0
    while True:
        start = text.find(_HERMES_OPEN, at)
        if start < 0:
            return content + _before_marker(text[at:], _HERMES_OPEN, final)[0], calls, True
        content += text[at:start]
        close = text.find(_HERMES_CLOSE, start)
        if close < 0:
            return content, calls, False  # a call being written (or left open)
        body_start, body_end = _skip(text, start + len(_HERMES_OPEN)), len(text[:close].rstrip())
        call = _written_call(text, body_start, body_end, ("arguments",)) if body_start < body_end else None
        if call is None:
            return content, calls, False
        calls.append((call["function"]["name"], call["function"]["arguments"], close + len(_HERMES_CLOSE)))
        at = close + len(_HERMES_CLOSE)


def _granite4_message(text: str) -> dict | None:
    """vLLM's granite4 rules: closed calls, each a JSON object with a name, and the text around them the content."""
    content, calls, whole = _granite4_parts(text, final=True)
    if not calls or not whole:
        return None
    return {"role": "assistant", "content": content or None, "tool_calls": [tool_call(n, a) for n, a, _ in calls]}


def _granite4_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    """The text before the first call streams; the text after it goes out at the end (the whole answer decides whether
    it is the text around the calls or all of the answer)."""
    content, first = _before_marker(text, _HERMES_OPEN, final)
    return content, [] if first < 0 else _granite4_parts(text, final)[1]


# olmo3: <function_calls>, one pythonic call per line (JSON's null, true and false taken as values), </function_calls>
_OLMO_OPEN, _OLMO_CLOSE = "<function_calls>", "</function_calls>"
_JSON_NAMES = {"null": None, "true": True, "false": False}


def _olmo3_value(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in _JSON_NAMES:
        return _JSON_NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant):
        if isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
            return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_olmo3_value(v) for v in node.elts]
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
        return {k.value: _olmo3_value(v) for k, v in zip(node.keys, node.values)}
    raise ValueError("not a literal")


def _olmo3_calls(text: str, final: bool) -> tuple[list[ScannedCall], bool]:
    """The calls of the lines written so far after an answer's opening tag (each once its line ends), and whether
    every line so far is one."""
    at = len(text) - len(text.lstrip()) + len(_OLMO_OPEN)
    close = text.find(_OLMO_CLOSE, at)
    end = len(text) if close < 0 else close
    calls: list[ScannedCall] = []
    while at < end:
        line_end = text.find("\n", at, end)
        if line_end < 0 and close < 0 and not final:
            break  # the last line is still being written
        line_end = end if line_end < 0 else line_end
        if text[at:line_end].strip():
            call = _pythonic_call(text[at:line_end], _olmo3_value)
            if call is None:
                return calls, False
            calls.append((*call, line_end))
        at = line_end + 1
    return calls, True


def _olmo3_message(text: str) -> dict | None:
    """vLLM's olmo3 rules, for an answer that opens with <function_calls> (as its stream reads one): every line a call
    with keyword arguments and literal values; anything else, text."""
    if not text.lstrip().startswith(_OLMO_OPEN):
        return None
    calls, whole = _olmo3_calls(text, final=True)
    if not calls or not whole:
        return None
    return {"role": "assistant", "content": None, "tool_calls": [tool_call(name, arguments) for name, arguments, _ in calls]}


def _olmo3_scan(text: str, final: bool) -> tuple[str | None, list[ScannedCall]]:
    """An answer that opens (or may still open) with <function_calls> is held back and streams each call once its line
    ends; any other is content."""
    stripped = text.lstrip()
    if not final and _OLMO_OPEN.startswith(stripped):
        return None, []
    if not stripped.startswith(_OLMO_OPEN):
        return text, []
    return None, _olmo3_calls(text, final)[0]


# phi4_mini_json: functools[...]
_PHI4 = "functools"


def _phi4_message(text: str) -> dict | None:
    at = text.find(_PHI4 + "[")
    if at < 0:
        return None
    start = at + len(_PHI4)
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        return None  # cut short, or not JSON: the answer is text
    return _array_message(text[start:end], text[:at] or None, ("arguments", "parameters"))


def _phi4_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, at = _before_marker(text, _PHI4 + "[", final)
    return content, [] if at < 0 else scan_call_array(text, at + len(_PHI4), ("arguments", "parameters"))


# lfm2: <|tool_call_start|>[pythonic calls]<|tool_call_end|>
_LFM2_START, _LFM2_END = "<|tool_call_start|>", "<|tool_call_end|>"


def _lfm2_parts(text: str, at: int) -> tuple[str, str | None]:
    """(the calls' text after the start marker at ``at``, the text after its end marker (less an echo of the calls the
    model closed with a second end marker), or None while the calls are open)."""
    body = text[at + len(_LFM2_START) :]
    end = body.find(_LFM2_END)
    if end < 0:
        return body, None
    after = body[end + len(_LFM2_END) :]
    return body[:end], after[after.rfind(_LFM2_END) + len(_LFM2_END) :] if _LFM2_END in after else after


def _lfm2_message(text: str) -> dict | None:
    at = text.find(_LFM2_START)
    if at < 0:
        return None
    calls, after = _lfm2_parts(text, at)
    message = _pythonic_message(calls)
    if message is None:
        return None
    content = text[:at] + (after or "")
    return {**message, "content": content if content.strip() else None}


def _lfm2_scan(text: str, final: bool) -> tuple[str, list[ScannedCall]]:
    content, at = _before_marker(text, _LFM2_START, final)
    if at < 0:
        return content, []
    calls, after = _lfm2_parts(text, at)
    body = calls.lstrip()
    shown = content + ((after or "") if final else "")  # the text after the calls goes out at the end
    return shown, _pythonic_calls(body)[0] if body.startswith("[") else []


TAGGED_PARSERS = {
    "deepseek_v3": DEEPSEEK_V3.parser(),
    "deepseek_v31": DEEPSEEK_V31.parser(),
    "kimi_k2": KIMI_K2.parser(),
    "internlm": ToolCallParser(_internlm_message, _internlm_scan, special_tokens=True),
    "jamba": ToolCallParser(_jamba_message, _jamba_scan, special_tokens=True),
    "granite": ToolCallParser(_granite_message, _granite_scan),
    "granite4": ToolCallParser(_granite4_message, _granite4_scan, special_tokens=True),
    "phi4_mini_json": ToolCallParser(_phi4_message, _phi4_scan),
    "olmo3": ToolCallParser(_olmo3_message, _olmo3_scan),
    "lfm2": ToolCallParser(_lfm2_message, _lfm2_scan, special_tokens=True),
}
