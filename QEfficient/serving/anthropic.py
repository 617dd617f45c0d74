"""Anthropic's Messages API (``POST /v1/messages``, ``POST /v1/messages/count_tokens``), as vLLM serves it, through the
chat route: a request's ``system``, ``messages`` (text, image, ``tool_use``, ``tool_result`` and ``thinking`` blocks),
``tools`` and ``tool_choice`` become a chat request; the chat answer becomes a message whose content blocks are the
thinking (where the server has a reasoning parser), the text and each ``tool_use``; streamed as Anthropic's events
(``message_start``, ``content_block_start`` / ``_delta`` / ``_stop``, ``message_delta``, ``message_stop``). Errors
come in Anthropic's shape (``{"type": "error", "error": {"type", "message"}}``).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from QEfficient.serving.errors import APIError
from QEfficient.serving.stream_relay import DeltaReader, relay

_PASSED_ON = ("model", "max_tokens", "temperature", "top_p", "top_k", "stream", "chat_template_kwargs", "seed")
_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}  # chat's finish reasons -> Anthropic's
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 413: "request_too_large"}
_ERROR_TYPES |= {429: "rate_limit_error", 503: "overloaded_error"}
# the chat fields a Messages request's fields become, named back in a 400
MESSAGES_FIELDS = {"stop": "stop_sequences", "max_tokens": "max_tokens", "messages": "messages"}


def error_body(err: APIError) -> dict:
    """An error in Anthropic's shape."""
    return {"type": "error", "error": {"type": _ERROR_TYPES.get(err.status, "api_error"), "message": err.message}}


def _text(blocks: Any, where: str) -> str:
    """A system prompt's or tool result's text: a string, or its text blocks'."""
    if isinstance(blocks, str):
        return blocks
    if isinstance(blocks, list) and all(isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in blocks):
        return "\n".join(b["text"] for b in blocks)  # separate blocks stay apart (a system prompt's reminders)
    raise APIError(400, f"{where} must be a string or a list of text blocks.", where.split("[")[0])


_MEDIA_TYPE = re.compile(r"image/[A-Za-z0-9.+-]+")  # Anthropic's: image/jpeg, image/png, image/gif, image/webp


def _image(block: dict, where: str) -> dict:
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        if not _MEDIA_TYPE.fullmatch(source["media_type"]):
            raise APIError(
                400, f"{where}.source.media_type must be an image's media type such as image/png, got {source['media_type']!r}.", "messages"
            )
        return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise APIError(400, f"{where}.source must be a base64 image (media_type, data) or a url.", "messages")


def _messages(body: dict) -> list[dict]:
    """The chat messages of a request's ``system`` and ``messages``."""
    out: list[dict] = []
    if body.get("system") is not None:
        out.append({"role": "system", "content": _text(body["system"], "system")})
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' must be a non-empty list of {role, content} objects.", "messages")
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise APIError(400, f'messages[{i}].role must be "user" or "assistant".', "messages")
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise APIError(400, f"messages[{i}].content must be a string or a list of content blocks.", "messages")
        parts, calls, thinking = [], [], None
        for j, block in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text" and isinstance(block.get("text"), str):
                parts.append({"type": "text", "text": block["text"]})
            elif kind == "image" and role == "user":
                parts.append(_image(block, where))
            elif kind == "tool_result" and role == "user" and isinstance(block.get("tool_use_id"), str):
                result = block.get("content", "")
                out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": _text(result, f"{where}.content")})
            elif kind == "tool_use" and role == "assistant" and isinstance(block.get("id"), str) and isinstance(block.get("name"), str):
                if not isinstance(block.get("input") or {}, dict):
                    raise APIError(400, f"{where}.input must be an object: the tool's arguments by name.", "messages")
                arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
                calls.append({"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}})
            elif kind == "thinking" and role == "assistant" and isinstance(block.get("thinking"), str):
                thinking = block["thinking"] if thinking is None else f"{thinking}\n{block['thinking']}"
            elif kind == "redacted_thinking":
                continue  # encrypted: nothing a template could read
            else:
                raise APIError(400, f"{where} is not a text, image, tool_use, tool_result or thinking block of a {role} turn.", "messages")
        if parts or calls or thinking is not None:
            text_only = all(p["type"] == "text" for p in parts)
            turn: dict = {"role": role, "content": "\n".join(p["text"] for p in parts) if text_only else parts}
            if calls:
                turn["tool_calls"] = calls
            if thinking is not None:
                turn["reasoning"] = thinking
            out.append(turn)
    return out


def _tools(body: dict) -> dict:
    """``tools`` and ``tool_choice`` in chat's terms."""
    out: dict[str, Any] = {}
    tools = body.get("tools")
    if isinstance(tools, list):  # Anthropic's own server tools (web search, code execution, ...) run nowhere here
        tools = [t for t in tools if not (isinstance(t, dict) and t.get("type") not in (None, "custom"))]
    if tools:
        if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
            raise APIError(400, "'tools' must be a list of {name, description, input_schema} tools.", "tools")
        for i, tool in enumerate(tools):
            if tool.get("input_schema") is not None and not isinstance(tool["input_schema"], dict):
                raise APIError(400, f"tools[{i}].input_schema must be a JSON schema object.", "tools")
        out["tools"] = [
            {
                "type": "function",
                "function": {"name": t["name"], "description": t.get("description", ""), "parameters": t.get("input_schema") or {}},
            }
            for t in tools
        ]
    choice = body.get("tool_choice")
    if choice is None:
        return out
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not (kind in ("auto", "any", "none") or (kind == "tool" and isinstance(choice.get("name"), str))):
        raise APIError(400, '\'tool_choice\' must be {"type": "auto"}, "any", "none" or {"type": "tool", "name": ...}.', "tool_choice")
    if not tools:  # (a choice among no tools leaves the answer as it is)
        return out
    if kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    return out


def chat_body(body: dict, count_only: bool = False) -> dict:
    """The chat request a Messages request asks for; a 400 that says what to send for anything not served here."""
    if not count_only and body.get("max_tokens") is None:
        raise APIError(400, "'max_tokens' is required: the most tokens the answer may have.", "max_tokens")
    chat = {k: body[k] for k in _PASSED_ON if k in body}
    chat["messages"] = _messages(body)
    if body.get("stop_sequences") is not None:
        chat["stop"] = body["stop_sequences"]
    thinking = body.get("thinking")
    if thinking is not None and not isinstance(thinking, dict):
        raise APIError(400, '\'thinking\' must be an object: {"type": "enabled", "budget_tokens": N} or {"type": "disabled"}.', "thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "disabled"):
        on = thinking["type"] == "enabled"  # the variables Qwen3's and DeepSeek's templates read
        kwargs = chat.get("chat_template_kwargs")
        if kwargs is None or isinstance(kwargs, dict):
            chat["chat_template_kwargs"] = {"enable_thinking": on, "thinking": on, **(kwargs or {})}
    if chat.get("stream"):
        chat["stream_options"] = {"include_usage": True}  # the last events carry the usage
    return {**chat, **_tools(body)}


class MessagesCall:
    """One Messages request: the chat request it makes (``chat``), and its answer in Anthropic's shape, whole
    (``response``) or as events (``events``)."""

    def __init__(self, body: dict, model_id: str) -> None:
        self.body, self.chat = body, chat_body(body)
        self.id = f"msg_{uuid.uuid4().hex}"
        self.model = body.get("model") if isinstance(body.get("model"), str) else model_id
        self.prompt_tokens = 0  # set once the prompt is tokenized

    def _message(self, content: list[dict], stop_reason: str | None, usage: dict, stop_sequence: str | None = None) -> dict:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }

    @staticmethod
    def _usage(usage: dict | None) -> dict:
        usage = usage or {"prompt_tokens": 0, "completion_tokens": 0}
        return {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]}

    def response(self, completion: dict) -> dict:
        """The message for a chat completion (one choice)."""
        choice = completion["choices"][0]
        message = choice["message"]
        content = []
        if message.get("reasoning"):  # an empty thinking streams no block: none here either
            content.append({"type": "thinking", "thinking": message["reasoning"], "signature": ""})
        if message.get("content") or not content + (message.get("tool_calls") or []):
            content.append({"type": "text", "text": message.get("content") or ""})
        for call in message.get("tool_calls") or []:
            content.append(_tool_use(call["id"], call["function"]["name"], call["function"]["arguments"]))
        reason, sequence = _stop(choice["finish_reason"], choice.get("stop_reason"), bool(message.get("tool_calls")))
        return self._message(content, reason, self._usage(completion.get("usage")), sequence)

    async def events(self, source: AsyncIterator[dict]) -> AsyncIterator[str]:
        """Anthropic's events for a chat stream's payloads (chunks, the usage chunk, or an error body)."""
        writer = _BlockWriter()
        usage = {"input_tokens": self.prompt_tokens, "output_tokens": 0}  # the prompt's count, as Anthropic starts a stream
        opening = [_event("message_start", message=self._message([], None, usage))]

        def failed(error: dict) -> list[str]:
            return [_event("error", error={"type": "api_error", "message": error["message"]})]

        async with contextlib.aclosing(relay(source, opening, writer, failed)) as events:  # closed with the stream
            async for text in events:
                yield text
        if writer.failed:
            return
        if writer.index == 0:  # an empty answer is an empty text block, as unstreamed
            for text in writer.open_block({"type": "text", "text": ""}) + writer.close():
                yield text
        named = isinstance(self.chat.get("tool_choice"), dict)  # a forced function's call ends chat's answer with "stop"
        reason, sequence = _stop(writer.finish, writer.stop_reason, named and bool(writer.calls))
        usage = self._usage(writer.usage)
        yield _event("message_delta", delta={"stop_reason": reason, "stop_sequence": sequence}, usage=usage)
        yield _event("message_stop")


def _stop(finish_reason: str | None, stop_reason: str | int | None, called: bool) -> tuple[str, str | None]:
    """Anthropic's ``stop_reason`` and ``stop_sequence`` for chat's finish reason and vLLM's stop reason (a stop string
    found, or a stop token id)."""
    if finish_reason == "length":  # cut short, a call too (its input then incomplete: Anthropic's clients ask again)
        return "max_tokens", None
    if called or finish_reason == "tool_calls":  # the calls' turn, whatever else stopped it
        return "tool_use", None
    if isinstance(stop_reason, str):
        return "stop_sequence", stop_reason
    return _STOP_REASONS.get(finish_reason, "end_turn"), None


def _tool_use(call_id: str, name: str, arguments: str) -> dict:
    try:
        parsed = json.loads(arguments) if arguments else {}
    except ValueError:
        parsed = {}  # arguments cut short: Anthropic's input is an object
    return {"type": "tool_use", "id": call_id, "name": name, "input": parsed if isinstance(parsed, dict) else {}}


def _event(kind: str, **fields: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n"


class _BlockWriter(DeltaReader):
    """A streamed message's content blocks as the chat stream's deltas arrive: the block being written (thinking,
    text or a tool_use) starts with its first piece and stops when another begins, or at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.index = 0  # the blocks started so far
        self.kind: str | None = None  # the open block's type

    def reasoning(self, piece: str) -> list[str]:
        return self._piece("thinking", {"type": "thinking_delta", "thinking": piece})

    def content(self, piece: str) -> list[str]:
        return self._piece("text", {"type": "text_delta", "text": piece})

    def call_opened(self, index: int, call_id: str, name: str) -> list[str]:
        out = self.open_block({"type": "tool_use", "id": call_id, "name": name, "input": {}})
        self.calls[index] = self.index - 1
        return out

    def arguments(self, index: int, piece: str) -> list[str]:
        return [_event("content_block_delta", index=self.calls[index], delta={"type": "input_json_delta", "partial_json": piece})]

    def _piece(self, kind: str, delta: dict) -> list[str]:
        out = [] if self.kind == kind else self.open_block({"type": kind, kind: ""} if kind == "thinking" else {"type": "text", "text": ""})
        return [*out, _event("content_block_delta", index=self.index - 1, delta=delta)]

    def open_block(self, block: dict) -> list[str]:
        out = self.close()
        if block["type"] == "thinking":
            block = {**block, "signature": ""}
        out.append(_event("content_block_start", index=self.index, content_block=block))
        self.kind, self.index = block["type"], self.index + 1
        return out

    def close(self) -> list[str]:
        """The events that stop the open block (none where none is)."""
        if self.kind is None:
            return []
        out = []
        if self.kind == "thinking":  # no signature: this server signs nothing
            out.append(_event("content_block_delta", index=self.index - 1, delta={"type": "signature_delta", "signature": ""}))
        out.append(_event("content_block_stop", index=self.index - 1))
        self.kind = None
        return out
