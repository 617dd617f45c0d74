"""A chat stream's payloads retold as another API's events (the Responses API's, Anthropic's Messages API's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable


async def relay(
    source: AsyncIterator[dict], opening: list[str], writer: DeltaReader, failure: Callable[[dict], list[str]]
) -> AsyncIterator[str]:
    """``opening``'s events, then each chat payload's through ``writer.take(payload)`` (a list of events), then the
    events that close the item or block being written (``writer.close()``); an error body ends it with
    ``failure(error)``'s events instead, and sets ``writer.failed``. The engine's requests are let go however it ends,
    a client that leaves at the first event included."""
    writer.failed = False
    try:
        for text in opening:
            yield text
        async for payload in source:
            if "error" in payload:
                writer.failed = True
                for text in failure(payload["error"]):
                    yield text
                return
            for text in writer.take(payload):
                yield text
    finally:
        await source.aclose()
    for text in writer.close():
        yield text


class DeltaReader:
    """A chat stream's payloads read for another API's events: ``take(payload)`` gives the events of each delta's
    reasoning, content, tool call opened and arguments (a subclass's ``reasoning``, ``content``, ``call_opened`` and
    ``arguments``, each a list of events), and keeps the usage, the finish reason and the stop reason for the end, and
    the logprobs of the tokens read."""

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}  # a chat tool call's index -> where the subclass wrote it (call_opened sets it)
        self.usage: dict | None = None
        self.finish: str | None = None
        self.stop_reason: str | int | None = None  # vLLM's: the stop string or stop token id that ended the answer
        self.logprobs: list[dict] = []  # chat's logprobs entries of the tokens read, until a subclass takes them
        self.failed = False

    def take(self, payload: dict) -> list[str]:
        if payload.get("usage") is not None and not payload.get("choices"):
            self.usage = payload["usage"]
        out: list[str] = []
        for choice in payload.get("choices") or []:
            delta = choice.get("delta") or {}
            self.logprobs += (choice.get("logprobs") or {}).get("content") or []
            if delta.get("reasoning"):
                out += self.reasoning(delta["reasoning"])
            if delta.get("content"):
                out += self.content(delta["content"])
            for call in delta.get("tool_calls") or []:
                if "id" in call:
                    out += self.call_opened(call["index"], call["id"], call["function"]["name"])
                if call["function"].get("arguments") and call["index"] in self.calls:
                    out += self.arguments(call["index"], call["function"]["arguments"])
            self.finish = choice.get("finish_reason") or self.finish
            self.stop_reason = choice.get("stop_reason", self.stop_reason)
        return out

    def reasoning(self, piece: str) -> list[str]:
        raise NotImplementedError

    def content(self, piece: str) -> list[str]:
        raise NotImplementedError

    def call_opened(self, index: int, call_id: str, name: str) -> list[str]:
        raise NotImplementedError

    def arguments(self, index: int, piece: str) -> list[str]:
        raise NotImplementedError

    def close(self) -> list[str]:
        raise NotImplementedError
