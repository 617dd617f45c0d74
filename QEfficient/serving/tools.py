"""Tool calls a chat request forces (OpenAI's ``tool_choice``: ``"required"`` or a named function), as vLLM serves them
without a model-specific parser: the tools go to the chat template, the answer is held by structured output to a JSON
schema made from the tools' parameters, and comes back as ``tool_calls``.

``tool_choice`` ``"auto"`` (the default when tools are given) lets the model answer in text or call tools in its own
syntax: a server started with ``--enable_auto_tool_choice --tool_call_parser NAME`` (vLLM's flags) parses it
(serving/tool_parsers.py: ``hermes``, ``longcat``, ``llama3_json``, ``pythonic``, ``llama4_pythonic``, ``mistral``;
serving/tool_parsers_tagged.py: ``deepseek_v3``, ``deepseek_v31``, ``kimi_k2``, ``internlm``, ``jamba``, ``granite``,
``granite4``, ``olmo3``, ``phi4_mini_json``, ``lfm2``; serving/tool_parsers_xml.py: ``qwen3_coder``, ``seed_oss``, ``glm45``;
serving/tool_parsers_invoke.py: ``minimax_m2``, ``deepseek_v32``, ``deepseek_v4``, ``step3``; serving/tool_parsers_gemma.py:
``gemma4``, ``functiongemma``; serving/tool_parsers_json.py: ``ernie45``, ``hunyuan_a13b``, ``nemotron_json``, ``minimax``,
``qwen2_5_coder``, ``apertus``, ``xlam``; serving/tool_parsers_hy.py: ``hy_v3``, ``hy_v4``;
serving/tool_parsers_headed.py: ``gigachat3``, ``plamo3``; serving/tool_parsers_dots.py: ``dots``;
serving/tool_parsers_kimi3.py: ``kimi_k3``;
serving/harmony.py: ``openai``, gpt-oss's; and vLLM's other names for these: ``llama4_json``, ``qwen3_xml``, ``glm47``,
``mimo``, ``step3p5``, ``poolside_v1``, ``ling3``);
without them it is refused with what to send.

Every kind streams as it is written (``delta.tool_calls``: a call's id, type and name with its first piece, then pieces
of its arguments): the answer so far is scanned again at each piece, and a call's arguments are the text the model
wrote for them, so the pieces of a stream add up to the arguments of the same request unstreamed.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from QEfficient.serving import harmony
from QEfficient.serving.errors import APIError
from QEfficient.serving.tool_parsers import PARSERS as FIRST_PARSERS
from QEfficient.serving.tool_parsers import ToolCallParser, new_call_id, scan_call_array, tool_call
from QEfficient.serving.tool_parsers_dots import DOTS
from QEfficient.serving.tool_parsers_gemma import GEMMA_PARSERS
from QEfficient.serving.tool_parsers_headed import HEADED_PARSERS
from QEfficient.serving.tool_parsers_hy import HY_PARSERS
from QEfficient.serving.tool_parsers_invoke import INVOKE_PARSERS
from QEfficient.serving.tool_parsers_json import JSON_PARSERS
from QEfficient.serving.tool_parsers_kimi3 import KIMI_K3
from QEfficient.serving.tool_parsers_tagged import TAGGED_PARSERS
from QEfficient.serving.tool_parsers_xml import XML_PARSERS

_EMPTY_PARAMETERS = {"type": "object", "properties": {}}
HARMONY = ToolCallParser(
    harmony.tool_message, harmony.tool_scan, special_tokens=True, plain=lambda text: harmony.split(text)[1], markup=True
)
PARSERS = {**FIRST_PARSERS, **TAGGED_PARSERS, **XML_PARSERS, **INVOKE_PARSERS, **GEMMA_PARSERS, **JSON_PARSERS}
PARSERS |= {**HY_PARSERS, **HEADED_PARSERS, "dots": DOTS, "kimi_k3": KIMI_K3, "openai": HARMONY}
TOOL_CALL_PARSERS = tuple(PARSERS)  # the tool-call syntaxes parsed for tool_choice "auto" (vLLM's names)


class ToolCallStream:
    """One choice's stream of tool calls: ``delta(piece, final)`` gives the chunk's delta for the answer's next piece
    (or None), from what ``scan(text so far, final)`` finds; ``final``: the answer ends with it (nothing held back).

    At the end, ``message(text)`` (the parser's reading of the whole answer) has the last word, so that the stream adds
    up to the unstreamed answer: an answer it does not read as calls sends the rest of its text as content (calls
    already sent cannot be taken back: the finish reason is then the text's), and a call without arguments gets
    "{}"."""

    def __init__(self, scan, message=None, call_ids=None, plain=None) -> None:
        """``scan(text, final)``: (the answer's text outside the calls so far, or None where there is none to send yet;
        the calls so far, as serving/tool_parsers.scan_call gives them); ``call_ids(text)``: the model's own ids of the
        calls so far, where its syntax has them; ``plain(text)``: the content of an answer without calls, where it is
        not the text itself."""
        self.scan, self.message, self.call_ids, self.plain = scan, message, call_ids, plain
        self.text, self.sent_content = "", 0
        self.sent: list[int] = []  # per call opened: the characters of its arguments sent
        self.verdict: bool | None = None  # at the end: whether the whole answer reads as calls

    def delta(self, piece: str, final: bool = False) -> dict | None:
        self.text += piece
        if final and self.message is not None:
            whole = self.message(self.text)
            self.verdict = whole is not None
            if whole is None:
                content, calls = (self.text if self.plain is None else self.plain(self.text)), []
            else:
                content = whole["content"] or ""
                calls = [(c["function"]["name"], c["function"]["arguments"], None) for c in whole["tool_calls"]]
        else:
            content, calls = self.scan(self.text, final)
        out: dict[str, Any] = {}
        if content is not None and len(content) > self.sent_content:
            out["content"], self.sent_content = content[self.sent_content :], len(content)
        deltas = []
        for i, (name, arguments, _) in enumerate(calls):
            if not name:
                break  # the call opens with its name
            arguments = arguments or ""
            if i == len(self.sent):
                ids = self.call_ids(self.text) if self.call_ids is not None else None
                head = {"id": ids[i] if ids else new_call_id(), "type": "function", "function": {"name": name, "arguments": arguments}}
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
        """Whether the answer is tool calls: at the end the parser's verdict on the whole, before it any call sent."""
        return self.verdict if self.verdict is not None else bool(self.sent)


@dataclasses.dataclass(frozen=True)
class ForcedTools:
    """The request's tools (OpenAI's tool objects, as the chat template takes them) and the one it names, or None
    for ``"required"`` (one call or more, of any of them)."""

    tools: list[dict]
    name: str | None
    special_tokens = False  # the answer is JSON under a schema: no markers to keep
    reads_markup = False

    def plain(self, text: str) -> str:
        return text

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

    def tool_calls(self, text: str) -> list[dict]:
        """The answer as OpenAI's ``tool_calls``, as the stream sends them: a named function's arguments are the answer;
        "required"'s calls are read from the array as written, so an answer cut by ``max_tokens`` gives the calls whose
        names it holds, the last one's arguments cut short (none where no name was written: vLLM's empty list)."""
        if self.name is not None:
            return [tool_call(self.name, text)]
        return [tool_call(name, arguments or "") for name, arguments, _ in scan_call_array(text) if name]

    def stream(self) -> ToolCallStream:
        """A choice's stream: a named function's arguments are the answer itself; "required"'s calls are read from
        the array as it is written."""
        if self.name is not None:
            return ToolCallStream(lambda text, final: (None, [(self.name, text, None)]))
        return ToolCallStream(lambda text, final: (None, scan_call_array(text)))

    def message(self, text: str) -> dict:
        """The assistant message holding the calls (the answer is held to their schema: it is never text)."""
        return {"role": "assistant", "content": "", "tool_calls": self.tool_calls(text)}

    def finish_reason(self, reason: str | None, text: str) -> str | None:
        """OpenAI's: a forced named function ends with "stop"; calls the model chose among the tools with
        "tool_calls", once their array is complete (a stop string may cut it: "stop" then, as cut)."""
        return "tool_calls" if self.name is None and reason == "stop" and _complete_json(text) else reason


@dataclasses.dataclass(frozen=True)
class AutoTools:
    """``tool_choice`` "auto" on a server with a tool-call parser: the model answers freely; the calls it writes in its
    own syntax are parsed out of the text (serving/tool_parsers.py)."""

    tools: list[dict]
    parser: str

    def schema(self) -> None:
        return None  # the answer is free: nothing to hold it to

    def message(self, text: str) -> dict | None:
        """The assistant message with the calls the text holds (and, hermes, the text before them as its content), or
        None where it holds none, or one the parser does not read (the text is then the answer)."""
        return PARSERS[self.parser].for_tools(self.tools)[0](text)

    def stream(self) -> ToolCallStream:
        """A choice's stream: the content and the calls as the parser finds them in the answer so far."""
        parser = PARSERS[self.parser]
        message, scan = parser.for_tools(self.tools)
        return ToolCallStream(scan, message, parser.call_ids, parser.plain)

    @property
    def special_tokens(self) -> bool:
        """Whether the parser's markers are special tokens, which the answer's text must then keep."""
        return PARSERS[self.parser].special_tokens

    @property
    def reads_markup(self) -> bool:
        """Whether the parser reads the whole answer, its reasoning's markup included (harmony's messages)."""
        return PARSERS[self.parser].markup

    def plain(self, text: str) -> str:
        """The content of an answer the parser reads no calls in (its syntax's markers left out, where it has some)."""
        plain = PARSERS[self.parser].plain
        return text if plain is None else plain(text)

    def finish_reason(self, reason: str | None, text: str) -> str | None:
        return "tool_calls" if reason == "stop" else reason


def requested_tools(body: dict, parser: str | None = None) -> ForcedTools | AutoTools | None:
    """The tool calls a chat body forces, or lets the model make (``parser``: the server's tool-call parser, for
    ``"auto"``), or None (no tools, or ``"tool_choice": "none"``); a 400 that says what to send for anything this
    server cannot answer."""
    if body.get("function_call") not in (None, "none") or (body.get("functions") and body.get("function_call") != "none"):
        raise APIError(400, "The legacy 'functions' / 'function_call' are not supported: send 'tools' and 'tool_choice'.", "functions")
    tools, choice = body.get("tools"), body.get("tool_choice")
    if tools and (not isinstance(tools, list) or not all(_is_function_tool(t) for t in tools)):
        raise APIError(400, '\'tools\' must be a list of {"type": "function", "function": {"name", "parameters"}} objects.', "tools")
    if choice == "none" or (not tools and choice is None):
        return None  # (the prompt still shows "none"'s tools)
    if not tools:
        raise APIError(400, "'tool_choice' needs 'tools'.", "tool_choice")
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


def _complete_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _is_function_tool(tool: Any) -> bool:
    function = tool.get("function") if isinstance(tool, dict) else None
    return (
        isinstance(function, dict)
        and tool.get("type") == "function"
        and isinstance(function.get("name"), str)
        and bool(function["name"])
        and isinstance(function.get("parameters", {}), dict)
    )
