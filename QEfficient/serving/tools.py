"""Tool calls a chat request forces (OpenAI's ``tool_choice``: ``"required"`` or a named function), as vLLM serves them
without a model-specific parser: the tools go to the chat template, the answer is held by structured output to a JSON
schema made from the tools' parameters, and comes back as ``tool_calls``.

``tool_choice`` ``"auto"`` (the default when tools are given) needs a parser of the model's own tool-call syntax
(vLLM's ``--tool-call-parser``), which this server does not have: it is refused with what to send instead.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from QEfficient.serving.errors import APIError

_EMPTY_PARAMETERS = {"type": "object", "properties": {}}


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
                pairs = [(call["name"], json.dumps(call["parameters"], ensure_ascii=False)) for call in json.loads(text)]
            except (ValueError, TypeError, KeyError):
                return None
        return [
            {"id": f"chatcmpl-tool-{uuid.uuid4().hex}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for name, arguments in pairs
        ]

    def finish_reason(self, reason: str | None) -> str | None:
        """OpenAI's: a forced named function ends with "stop"; calls the model chose among the tools with
        "tool_calls"."""
        return "tool_calls" if self.name is None and reason == "stop" else reason


def requested_tools(body: dict) -> ForcedTools | None:
    """The tool calls a chat body forces, or None (no tools, or ``"tool_choice": "none"``); a 400 that says what to
    send for anything this server cannot answer."""
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
        raise APIError(
            400,
            'tool_choice "auto" (the default with tools) needs a parser of this model\'s tool-call syntax, which this server '
            'does not have: send "tool_choice": "required", a named function ({"type": "function", "function": '
            '{"name": ...}}) or "none".',
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
