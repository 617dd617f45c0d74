"""A chat stream's payloads retold as another API's events (the Responses API's, Anthropic's Messages API's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any


async def relay(source: AsyncIterator[dict], opening: list[str], writer: Any, failure: Callable[[dict], list[str]]) -> AsyncIterator[str]:
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
