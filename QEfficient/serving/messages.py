"""OpenAI's prompt and message forms, checked: a prompt as a string, token ids or lists of them; a chat message's
content as text or parts (text and image URLs); a tool-call turn's arguments as the chat template takes them."""

from __future__ import annotations

import json

from QEfficient.serving.errors import APIError


def tool_call_turn(message: dict) -> dict:
    """An assistant turn's ``tool_calls`` with each call's ``arguments`` (OpenAI's JSON text) as the object it holds, as
    vLLM hands them to chat templates (which write them with ``tojson``); {} for other turns."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return {}
    parsed = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            try:
                call = {**call, "function": {**function, "arguments": json.loads(function["arguments"])}}
            except ValueError:
                pass  # not JSON: the template gets the text
        parsed.append(call)
    return {"tool_calls": parsed}


def assistant_turn(message: dict) -> dict:
    """What an assistant turn hands the chat template beyond its content: its tool calls (``tool_call_turn``) and its
    reasoning, sent back as ``reasoning`` (vLLM's) or ``reasoning_content``, under both names and gpt-oss's
    ``thinking`` (templates read one of them)."""
    reasoning = next((v for v in (message.get("reasoning"), message.get("reasoning_content")) if isinstance(v, str)), None)
    thinking = {} if reasoning is None else {"reasoning": reasoning, "reasoning_content": reasoning, "thinking": reasoning}
    return {**tool_call_turn(message), **thinking}


def param_of(where: str) -> str:
    return "prompt" if where.startswith("prompt") else where


def openai_input_forms(value, name: str, max_items: int, limit_note: str = "") -> list[str | list[int]]:
    """OpenAI's four forms of ``prompt`` / ``input`` (a string, a list of strings, a list of token ids, a list of
    lists of token ids) -> a list of items, each a string or a list of token ids; a 400 for anything else."""
    if isinstance(value, str) or (isinstance(value, list) and value and all(_is_token(t) for t in value)):
        items = [value]
    elif (
        isinstance(value, list)
        and value
        and (all(isinstance(p, str) for p in value) or all(isinstance(p, list) and all(_is_token(t) for t in p) for p in value))
    ):
        items = value
    else:
        form = f"'{name}' must be a string, a list of strings, a list of token ids or a list of lists of token ids"
        raise APIError(400, f"{form}, and not empty.", name)
    if len(items) > max_items:
        raise APIError(400, f"At most {max_items} {name}s per request{limit_note}, got {len(items)}.", name)
    return items


def _is_token(t) -> bool:
    return isinstance(t, int) and not isinstance(t, bool)


def text_content(content, i: int) -> str:
    """A message's content: a string, or a list of text parts (joined by newlines, as vLLM does); no content
    (an assistant turn that called tools) is an empty string, as vLLM takes it."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    where = f"messages[{i}].content"
    if not isinstance(content, list):
        raise APIError(400, f'{where} must be a string or a list of {{"type": "text", "text": ...}} parts.', "messages")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            what = f"a part of type '{kind}'" if isinstance(kind, str) else "a part without a type"
            raise APIError(400, f"{where}[{j}] is {what}; this model takes 'text' parts only (not a vision-language model).", "messages")
        if not isinstance(part.get("text"), str):
            raise APIError(400, f"{where}[{j}] needs a string 'text'.", "messages")
        texts.append(part["text"])
    return "\n".join(texts)


MEDIA_PARTS = ("image_url", "input_audio", "audio_url")  # the content parts that fetch or decode media


def holds_media_parts(body: dict) -> bool:
    """Whether a chat body's messages hold an image (or audio) part (a quick look; chat_parts checks them)."""
    messages = body.get("messages")
    return isinstance(messages, list) and any(
        isinstance(m, dict)
        and isinstance(m.get("content"), list)
        and any(isinstance(part, dict) and part.get("type") in MEDIA_PARTS for part in m["content"])
        for m in messages
    )


def chat_parts(content, i: int, audio: bool = False) -> tuple[str | list[dict], list[str]]:
    """A message's content for the processor's chat template (a string as it is, a list as HF's content parts)
    and the URLs of its images in order (``audio``: of its audio, for an audio-text model: OpenAI's ``input_audio``
    parts, base64 WAV, as data: URLs, and vLLM's ``audio_url`` parts). No content (an assistant turn that called
    tools) is an empty string."""
    where = f"messages[{i}].content"
    takes = "'text' and 'input_audio' (or 'audio_url')" if audio else "'text' and 'image_url'"
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise APIError(400, f"{where} must be a string or a list of {takes} parts.", "messages")
    parts, urls = [], []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise APIError(400, f"{where}[{j}] needs a string 'text'.", "messages")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url" and not audio:
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise APIError(400, f'{where}[{j}] needs "image_url": {{"url": "data:image/...;base64,..." or "https://..."}}.', "messages")
            parts.append({"type": "image"})
            urls.append(url)
        elif kind in ("input_audio", "audio_url") and audio:
            parts.append({"type": "audio"})
            urls.append(_audio_url(part, kind, f"{where}[{j}]"))
        else:
            what = f"a part of type '{kind}'" if isinstance(kind, str) else "a part without a type"
            raise APIError(400, f"{where}[{j}] is {what}; this model takes {takes} parts.", "messages")
    return parts, urls


def _audio_url(part: dict, kind: str, where: str) -> str:
    """An audio part's source as a URL: OpenAI's ``{"input_audio": {"data": base64, "format": "wav"}}`` as a data: URL,
    vLLM's ``{"audio_url": {"url": ...}}`` as it is."""
    if kind == "audio_url":
        value = part.get("audio_url")
        url = value.get("url") if isinstance(value, dict) else value
        if not isinstance(url, str) or not url:
            raise APIError(400, f'{where} needs "audio_url": {{"url": "data:audio/wav;base64,..." or "https://..."}}.', "messages")
        return url
    value = part.get("input_audio")
    data, fmt = (value.get("data"), value.get("format") or "wav") if isinstance(value, dict) else (None, None)
    if not isinstance(data, str) or not data:
        raise APIError(400, f'{where} needs "input_audio": {{"data": "<base64 WAV>", "format": "wav"}}.', "messages")
    if fmt != "wav":
        raise APIError(
            400, f"{where} is '{fmt}' audio; this server reads WAV (convert it: ffmpeg -i in -ar 16000 -ac 1 out.wav).", "messages"
        )
    return f"data:audio/wav;base64,{data}"
