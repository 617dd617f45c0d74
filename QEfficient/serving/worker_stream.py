"""Streaming from the one-at-a-time servers (encoder-decoders, speech): the work runs on a worker thread that holds the
server's lock until it is done (a client that leaves early does not let the next request onto the sessions while the
thread still runs), and hands what it makes to the event loop; tokens become text pieces as they are decoded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import numpy as np

_END = ("end",)


async def worker_items(lock: asyncio.Lock, work: Callable[[Callable[..., None]], None]) -> AsyncIterator[tuple]:
    """Runs ``work(send)`` on a worker thread once ``lock`` is held, releasing it when the thread ends; returns the
    items it ``send``s, in order, as an async iterator, then ``("error", message)`` where it raised ValueError or
    NotImplementedError (a request the model refuses)."""
    loop, queue = asyncio.get_running_loop(), asyncio.Queue()

    def send(*item) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            work(send)
        except (ValueError, NotImplementedError) as err:
            send("error", str(err))
        finally:
            send(*_END)

    await lock.acquire()
    try:
        job = asyncio.ensure_future(asyncio.to_thread(run))
    except BaseException:
        lock.release()
        raise
    job.add_done_callback(lambda _: lock.release())

    async def items() -> AsyncIterator[tuple]:
        while (item := await queue.get()) != _END:
            yield item

    return items()


def error_event(message: str) -> str:
    """vLLM's event for a request that failed after its first byte."""
    return f"data: {json.dumps({'error': {'message': message, 'type': 'BadRequestError', 'code': 400}})}\n\n"


class TextPieces:
    """The text tokens add, handed to ``emit`` as it grows (held back while it ends inside a character, or while a
    later token rewrites earlier text). Also a transformers streamer (``put`` / ``end``) for one input, whose first
    ``put`` is the decoder's start token."""

    def __init__(self, tokenizer, emit: Callable[[str], None], skip_first_put: bool = True) -> None:
        self.tokenizer, self.emit = tokenizer, emit
        self.tokens: list[int] = []
        self.text = ""
        self.started = not skip_first_put

    def add(self, tokens) -> None:
        self.tokens += [int(t) for t in np.asarray(tokens).reshape(-1)]
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if len(text) > len(self.text) and text.startswith(self.text) and not text.endswith("\ufffd"):
            self.emit(text[len(self.text) :])
            self.text = text

    def put(self, value) -> None:
        if not self.started:  # the decoder's start token
            self.started = True
            return
        self.add(value)

    def end(self) -> None:
        pass
