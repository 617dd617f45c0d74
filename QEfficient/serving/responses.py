"""OpenAI's Responses API (``POST /v1/responses``), served through the chat route: a request becomes a chat request
(its ``instructions`` and ``input`` items as messages, its function tools, ``tool_choice`` and ``text.format`` in chat's
terms), and the chat answer becomes a response whose output items are the reasoning (where the server has a reasoning
parser), the message and each function call; streamed, as the Responses API's events (``response.created``,
``response.output_item.added``, ``response.output_text.delta``, ... ``response.completed``), each with its
``sequence_number``. The server keeps no responses: ``previous_response_id`` and stored items are refused with what to
send instead (the whole conversation in ``input``, as a client of a stateless server sends it).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from QEfficient.serving.errors import APIError
from QEfficient.serving.stream_relay import DeltaReader, relay

_TEXT_PARTS = ("input_text", "output_text", "text")
_PASSED_ON = ("temperature", "top_p", "stream", "model", "user", "top_k", "min_p", "repetition_penalty", "seed", "stop")
_PASSED_ON += ("chat_template_kwargs", "include_reasoning", "parallel_tool_calls", "skip_special_tokens")
LOGPROBS = "message.output_text.logprobs"  # the include that asks for the output text's logprobs
_INCLUDED = (LOGPROBS, "reasoning.encrypted_content")  # the latter: nothing to include, there is no encrypted reasoning
# the chat fields a Responses request's fields become, named back in a 400
RESPONSES_FIELDS = {
    "max_tokens": "max_output_tokens",
    "response_format": "text.format",
    "messages": "input",
    "reasoning_effort": "reasoning.effort",
}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _text_of(content: Any, where: str) -> str | list[dict]:
    """A message's content as chat takes it: text, or parts (text and images)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise APIError(400, f"{where}.content must be a string or a list of input_text / input_image parts.", "input")
    parts = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):  # an audio-text model's (the chat checks it)
            parts.append({"type": "input_audio", "input_audio": part["input_audio"]})
        else:
            raise APIError(
                400,
                f"{where}.content[{i}] is not an input_text, input_image (with an image_url) or input_audio part (files and "
                "file_id images are not served here).",
                "input",
            )
    return parts


def _add(messages: list[dict], message: dict) -> None:
    """Append a chat message; a system message right after another joins it (templates take one)."""
    last = messages[-1] if messages else None
    if (
        last is not None
        and message["role"] == last["role"] == "system"
        and isinstance(last["content"], str)
        and isinstance(message["content"], str)
    ):
        last["content"] += "\n\n" + message["content"]
    else:
        messages.append(message)


def _joined_text(parts: Any) -> str:
    """A function_call_output's or reasoning item's text: a string, or the texts of its parts."""
    if isinstance(parts, str):
        return parts
    if isinstance(parts, list):
        return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
    return json.dumps(parts)


def _messages(body: dict) -> list[dict]:
    """The chat messages of a request's ``instructions`` and ``input``; a reasoning item goes with the assistant turn
    after it (as ``reasoning``, which chat templates read back)."""
    messages: list[dict] = []
    if body.get("instructions") is not None:
        if not isinstance(body["instructions"], str):
            raise APIError(400, "'instructions' must be a string.", "instructions")
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise APIError(400, "'input' must be a string or a non-empty list of input items.", "input")
    thought = None  # a reasoning item's text, for the assistant turn that follows
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message" and item.get("role") in ("user", "assistant", "system", "developer"):
            role = "system" if item["role"] == "developer" else item["role"]  # chat templates know no developer role
            message = {"role": role, "content": _text_of(item.get("content"), where)}
            if role == "assistant" and thought is not None:
                message["reasoning"], thought = thought, None
            _add(messages, message)
        elif kind == "function_call" and all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
            call = {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
                messages[-1].setdefault("tool_calls", []).append(call)  # parallel calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
            if thought is not None:
                messages[-1]["reasoning"], thought = thought, None
        elif kind == "function_call_output" and isinstance(item.get("call_id"), str):
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": _joined_text(item.get("output"))})
        elif kind == "reasoning":
            thought = _joined_text(item.get("content") or item.get("summary") or [])
        elif kind == "item_reference":
            raise APIError(400, f"{where} refers to a stored item; this server keeps none: send the item itself.", "input")
        elif kind == "function_call":
            raise APIError(400, f"{where} is a function_call: its call_id, name and arguments (JSON text) must be strings.", "input")
        elif kind == "function_call_output":
            raise APIError(400, f"{where} is a function_call_output: its call_id must be a string.", "input")
        elif kind == "message":
            raise APIError(400, f"{where} is a message: its role must be user, assistant, system or developer.", "input")
        else:
            raise APIError(
                400,
                f"{where} must be a message ({{role, content}}), a function_call or a function_call_output; got {kind!r}.",
                "input",
            )
    return messages


def _tools(body: dict) -> dict:
    """``tools`` and ``tool_choice`` in chat's terms."""
    out: dict[str, Any] = {}
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise APIError(400, "'tools' must be a list of function tools.", "tools")
        for i, tool in enumerate(tools):
            if tool.get("type") != "function":
                raise APIError(400, f"tools[{i}] is a {tool.get('type')!r} tool; this server calls functions only.", "tools")
            if not isinstance(tool.get("name"), str):
                raise APIError(400, f"tools[{i}] needs a 'name'.", "tools")
            if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
                raise APIError(400, f"tools[{i}].parameters must be a JSON schema object.", "tools")
        keys = ("name", "description", "parameters")
        out["tools"] = [{"type": "function", "function": {k: t[k] for k in keys if t.get(k) is not None}} for t in tools]
    choice = body.get("tool_choice")
    if not tools and choice in ("auto", "none"):
        return out  # nothing to call: OpenAI takes it
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice in ("none", "auto", "required"):
        out["tool_choice"] = choice
    elif choice is not None:
        raise APIError(400, '\'tool_choice\' must be "none", "auto", "required" or {"type": "function", "name": ...}.', "tool_choice")
    return out


def _text_format(body: dict) -> dict:
    """``text.format`` as chat's ``response_format``."""
    text = body.get("text")
    spec = text.get("format") if isinstance(text, dict) else None
    if spec is None or spec == {"type": "text"}:
        return {}
    if isinstance(spec, dict) and spec.get("type") == "json_object":
        return {"response_format": {"type": "json_object"}}
    if isinstance(spec, dict) and spec.get("type") == "json_schema":
        schema = {k: spec[k] for k in ("name", "schema", "strict", "description") if k in spec}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    raise APIError(400, '\'text.format\' must be {"type": "text"}, "json_object" or "json_schema" with a schema.', "text")


def chat_body(body: dict) -> dict:
    """The chat request a Responses request asks for; a 400 that says what to send for anything not served here."""
    for name, why in (
        ("previous_response_id", "this server keeps no responses: send the whole conversation in 'input'"),
        ("conversation", "this server keeps no conversations: send the whole conversation in 'input'"),
        ("prompt", "this server keeps no prompt templates: send 'instructions' and 'input'"),
    ):
        if body.get(name) is not None:
            raise APIError(400, f"'{name}' is not supported: {why}.", name)
    if body.get("background"):
        raise APIError(400, "'background' responses are not supported here: leave it out (or false).", "background")
    include = body.get("include")
    if include is not None and not (isinstance(include, list) and all(isinstance(x, str) for x in include)):
        raise APIError(400, "'include' must be a list of strings.", "include")
    wanted = [x for x in include or () if x not in _INCLUDED]
    if wanted:
        raise APIError(400, f"'include' {wanted!r} is not available on this server; only {list(_INCLUDED)} are.", "include")
    chat = {k: body[k] for k in _PASSED_ON if k in body}
    if LOGPROBS in (include or ()):  # top_logprobs counts only then, as vLLM reads it
        chat["logprobs"], chat["top_logprobs"] = True, body.get("top_logprobs", 0)
    chat["messages"] = _messages(body)
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if isinstance(body.get("reasoning"), dict) and body["reasoning"].get("effort") is not None:
        chat["reasoning_effort"] = body["reasoning"]["effort"]  # the chat template's variable (gpt-oss's)
    if chat.get("stream"):
        chat["stream_options"] = {"include_usage": True}  # the last event carries the usage
    return {**chat, **_tools(body), **_text_format(body)}


class ResponsesCall:
    """One Responses request: the chat request it makes (``chat``), and its answer in the Responses API's shape,
    whole (``response``) or as events (``events``). ``count_tokens(text)``: how many tokens a text holds (the
    reasoning's share of the output)."""

    def __init__(self, body: dict, model_id: str, count_tokens: Callable[[str], int]) -> None:
        self.body, self.chat = body, chat_body(body)
        self.id, self.created = _new_id("resp"), int(time.time())
        self.model = body.get("model") if isinstance(body.get("model"), str) else model_id
        self.count_tokens = count_tokens
        self.prompt_tokens = 0  # set once the prompt is tokenized

    def _base(self, status: str, output: list[dict], usage: dict | None = None, finish: str | None = None) -> dict:
        incomplete = {"reason": "max_output_tokens"} if finish == "length" else None
        body = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": "incomplete" if incomplete else status,
            "model": self.model,
            "output": output,
            "usage": usage,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {},
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "text": body.get("text") or {"format": {"type": "text"}},
            "reasoning": body.get("reasoning"),
            "store": False,
            "previous_response_id": None,
            "user": body.get("user"),
        }

    def _usage(self, usage: dict | None, reasoning: str) -> dict | None:
        if usage is None:
            return None
        thought = min(self.count_tokens(reasoning), usage["completion_tokens"]) if reasoning else 0
        return {
            "input_tokens": usage["prompt_tokens"],
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},  # no prefix cache here
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": thought},
            "total_tokens": usage["total_tokens"],
        }

    def response(self, completion: dict) -> dict:
        """The response for a chat completion (one choice)."""
        choice = completion["choices"][0]
        message = choice["message"]
        output = []
        if message.get("reasoning"):  # an empty reasoning streams no item: none here either
            output.append(_reasoning_item(_new_id("rs"), message["reasoning"]))
        if message.get("content") or not output + (message.get("tool_calls") or []):  # an empty answer: an empty message
            logprobs = (choice.get("logprobs") or {}).get("content") or []  # every token's, thinking too, as vLLM's
            output.append(_message_item(_new_id("msg"), message.get("content") or "", logprobs=logprobs))
        for call in message.get("tool_calls") or []:
            output.append(_call_item(_new_id("fc"), call["id"], call["function"]["name"], call["function"]["arguments"]))
        if choice["finish_reason"] == "length":  # the item being written when max_output_tokens cut it, as streamed
            output[-1]["status"] = "incomplete"
        usage = self._usage(completion.get("usage"), message.get("reasoning") or "")
        return self._base("completed", output, usage, choice["finish_reason"])

    async def events(self, source: AsyncIterator[dict]) -> AsyncIterator[str]:
        """The Responses API's events for a chat stream's payloads (chunks, the usage chunk, or an error body)."""
        writer = _EventWriter()

        def failed(error: dict) -> list[str]:
            failure = {"code": "server_error", "message": error["message"]}
            return [
                writer.emit("error", code=error.get("code"), message=failure["message"], param=None),
                writer.emit("response.failed", response={**self._base("failed", writer.output), "error": failure}),
            ]

        opening = [writer.emit(kind, response=self._base("in_progress", [])) for kind in ("response.created", "response.in_progress")]
        async with contextlib.aclosing(relay(source, opening, writer, failed)) as events:  # closed with the stream
            async for text in events:
                yield text
        if writer.failed:
            return
        if not writer.output:  # an empty answer is an empty message, as unstreamed
            for text in writer._open(_message_item(_new_id("msg"), "", "in_progress")) + writer.close():
                yield text
        final = self._base("completed", writer.output, self._usage(writer.usage, writer.thought), writer.finish)
        yield writer.emit("response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final)


def _reasoning_item(item_id: str, text: str, status: str = "completed") -> dict:
    return {"type": "reasoning", "id": item_id, "summary": [], "content": [{"type": "reasoning_text", "text": text}], "status": status}


def _message_item(item_id: str, text: str, status: str = "completed", logprobs: list | None = None) -> dict:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}]
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments, "status": status}


class _EventWriter(DeltaReader):
    """A streamed response's output as the chat stream's deltas arrive: the item being written (reasoning, message or
    a function call) is opened with its first piece and closed when another begins, or at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.sequence = 0
        self.output: list[dict] = []  # the finished items
        self.open: dict | None = None  # the item being written
        self.text = ""  # its text (or arguments) so far
        self.thought = ""  # the reasoning so far (its share of the output tokens)
        self.text_logprobs: list[dict] = []  # the open message's, sent with its deltas

    def emit(self, kind: str, **fields: Any) -> str:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"

    def reasoning(self, piece: str) -> list[str]:
        self.thought += piece
        return self._write("reasoning", piece)

    def content(self, piece: str) -> list[str]:
        return self._write("message", piece)

    def call_opened(self, index: int, call_id: str, name: str) -> list[str]:
        out = self._open(_call_item(_new_id("fc"), call_id, name, "", "in_progress"))
        self.calls[index] = len(self.output)
        return out

    def arguments(self, index: int, piece: str) -> list[str]:
        at = self.calls[index]
        if at == len(self.output):
            return self._piece(piece)
        self.output[at]["arguments"] += piece  # the parser's last word on a call already closed ("{}" for none)
        return [self.emit("response.function_call_arguments.delta", item_id=self.output[at]["id"], output_index=at, delta=piece)]

    def _write(self, kind: str, piece: str) -> list[str]:
        out = []
        if self.open is None or self.open["type"] != kind:
            new = _reasoning_item if kind == "reasoning" else _message_item
            out = self._open(new(_new_id("rs" if kind == "reasoning" else "msg"), "", "in_progress"))
        return out + self._piece(piece)

    def _open(self, item: dict) -> list[str]:
        out = self.close()
        self.open, self.text = item, ""
        shown = {**item, "content": []} if "content" in item else item
        out.append(self.emit("response.output_item.added", output_index=len(self.output), item=shown))
        if "content" in item:
            out.append(self._part_event("response.content_part.added", item["content"][0]))
        return out

    def _part_event(self, kind: str, part: dict) -> str:
        return self.emit(kind, item_id=self.open["id"], output_index=len(self.output), content_index=0, part=part)

    def _piece(self, piece: str) -> list[str]:
        self.text += piece
        where = {"item_id": self.open["id"], "output_index": len(self.output)}
        kind = self.open["type"]
        if kind == "function_call":
            return [self.emit("response.function_call_arguments.delta", **where, delta=piece)]
        if kind == "reasoning":
            return [self.emit("response.reasoning_text.delta", **where, content_index=0, delta=piece)]
        sent, self.logprobs = self.logprobs, []  # those of the tokens read since the last delta (thinking's too)
        self.text_logprobs += sent
        return [self.emit("response.output_text.delta", **where, content_index=0, delta=piece, logprobs=sent)]

    def close(self) -> list[str]:
        """Events that finish the item being written (none where none is)."""
        item, text = self.open, self.text
        if item is None:
            return []
        where = {"item_id": item["id"], "output_index": len(self.output)}
        status = "incomplete" if self.finish == "length" else "completed"  # (set by the last chunk: the last item's close)
        if item["type"] == "function_call":
            done = {**item, "arguments": text, "status": status}
            out = [self.emit("response.function_call_arguments.done", **where, arguments=text)]
        else:
            part = {**item["content"][0], "text": text}
            if item["type"] == "reasoning":
                out = [self.emit("response.reasoning_text.done", **where, content_index=0, text=text)]
            else:
                # and those of the tokens read since its last delta (an ending token's, a call's), as unstreamed
                part["logprobs"], self.text_logprobs, self.logprobs = self.text_logprobs + self.logprobs, [], []
                out = [self.emit("response.output_text.done", **where, content_index=0, text=text, logprobs=part["logprobs"])]
            done = {**item, "content": [part], "status": status}
            out.append(self._part_event("response.content_part.done", part))
        out.append(self.emit("response.output_item.done", output_index=len(self.output), item=done))
        self.output.append(done)
        self.open, self.text = None, ""
        return out
