"""Streaming from the one-at-a-time servers (encoder-decoders, speech): the work runs on a worker thread that holds the
server's lock until it is done (a client that leaves early does not let the next request onto the sessions while the
thread still runs), and hands what it makes to the event loop; tokens become text pieces as they are decoded."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable

import numpy as np

from QEfficient.serving.errors import APIError
from QEfficient.serving.stop_strings import common_start

logger = logging.getLogger(__name__)

_END = ("end",)


async def worker_items(lock: asyncio.Lock, work: Callable[[Callable[..., None]], None]) -> AsyncIterator[tuple]:
    """Runs ``work(send)`` on a worker thread once ``lock`` is held, releasing it when the thread ends; returns the
    items it ``send``s, in order, as an async iterator, ending with ``("error", message, code, param)`` where it raised
    (an APIError's own; 400: a request the model refuses, ValueError or NotImplementedError; 500: anything else, logged).
    Returns once the first item has come: where the work raised before sending anything, that error is raised here as
    an APIError (an error answer, not a stream that carries it: vLLM checks a request before it streams)."""
    loop, queue = asyncio.get_running_loop(), asyncio.Queue()

    def send(*item) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed (the client gone): nothing to send to
            pass

    def run() -> None:
        try:
            work(send)
        except APIError as err:  # worded by the server, its field named
            send("error", err.message, err.status, err.param)
        except (ValueError, NotImplementedError) as err:
            send("error", str(err), 400, None)
        except Exception as err:
            logger.exception("A streamed request failed")
            send("error", f"The server had an error while processing your request ({type(err).__name__}).", 500, None)
        finally:
            send(*_END)

    await lock.acquire()
    try:
        job = asyncio.ensure_future(asyncio.to_thread(run))
    except BaseException:
        lock.release()
        raise
    job.add_done_callback(lambda _: lock.release())
    waiting = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait({waiting, job}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done() and job.exception() is not None:  # the thread never ran (the executor shut down)
            raise job.exception()
        first = await waiting  # (the thread ended: its items are queued)
    finally:
        if not waiting.done():  # a request cancelled while it waited
            waiting.cancel()
    if first[0] == "error":
        _, message, status, param = first
        raise APIError(status, message, param, kind="invalid_request_error" if status < 500 else "server_error")

    async def items() -> AsyncIterator[tuple]:
        item = first
        while item != _END:
            yield item
            item = await queue.get()

    return items()


def error_event(message: str, code: int = 400, param: str | None = None) -> str:
    """vLLM's event for a request that failed after its first byte."""
    kind = "BadRequestError" if code < 500 else "InternalServerError"
    return f"data: {json.dumps({'error': {'message': message, 'type': kind, 'param': param, 'code': code}})}\n\n"


async def transcription_events(
    items: AsyncIterator[tuple], model: str, created: int, usage: Callable[..., dict] | None, translate: bool = False
) -> AsyncIterator[str]:
    """vLLM's transcription (or translation) stream from a worker's items (worker_items): ``("text", piece)`` a delta;
    ``("done", text, pieces, *result)`` what ``text`` adds to the pieces sent (TextPieces) with the finish reason, then,
    where ``usage`` is given, ``usage(pieces, *result)`` (prompt, completion and total tokens); an error; then [DONE].
    ``created``: when the request came (before it waited for the server's lock)."""
    kind = "translation.chunk" if translate else "transcription.chunk"
    head = {"id": f"trsc-{uuid.uuid4().hex}", "object": kind, "created": created, "model": model}

    def event(choices: list[dict], **more) -> str:
        return f"data: {json.dumps(head | {'choices': choices} | more)}\n\n"

    async for kind, *rest in items:
        if kind == "text":
            yield event([{"delta": {"content": rest[0]}}])
        elif kind == "done":
            text, pieces, *result = rest
            finish = getattr(pieces, "finish_reason", "stop")
            yield event([{"delta": {"content": pieces.rest(text)}, "finish_reason": finish, "stop_reason": None}])
            if usage is not None:
                yield event([], usage=usage(pieces, *result))
        else:
            yield error_event(*rest)
    yield "data: [DONE]\n\n"


def _printable_end(text: str) -> int:
    """How much of ``text`` can be sent for good, as transformers' TextStreamer decides it: all of it after a newline
    or a CJK character, else up to its last space (a later token may still change the word being written); never a
    split character."""
    if text.endswith("\ufffd"):
        return 0
    if text.endswith("\n") or (text and _is_cjk(ord(text[-1]))):
        return len(text)
    return text.rfind(" ") + 1


def _is_cjk(cp: int) -> bool:
    return any(a <= cp <= b for a, b in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class TextPieces:
    """One sequence's text, handed to ``emit`` in pieces as its tokens come (``add``), as far as later tokens cannot
    change it (``open_words=False``: all of it but a split character, where each ``add`` ends a passage, as a Whisper
    window does); ``rest(text)`` is what the final text adds."""

    def __init__(self, decode: Callable[[list[int]], str], emit: Callable[[str], None], open_words: bool = True) -> None:
        """``decode(ids)``: the text of the tokens so far (the tokenizer's decode, special tokens skipped or not)."""
        self.decode, self.emit, self.open_words = decode, emit, open_words
        self.finish_reason = "stop"  # "length" where a length bound, not an end token, ended the sequence
        self.tokens: list[int] = []
        self.sent = ""

    def add(self, tokens) -> None:
        self.tokens += [int(t) for t in np.asarray(tokens).reshape(-1)]
        text = self.decode(self.tokens)
        end = _printable_end(text) if self.open_words else (0 if text.endswith("\ufffd") else len(text))
        if end > len(self.sent) and text.startswith(self.sent):
            self.emit(text[len(self.sent) : end])
            self.sent = text[:end]

    def rest(self, text: str) -> str:
        """What the final ``text`` adds to what was sent (past their common start, should a later token have changed an
        earlier word)."""
        return text[common_start(text, self.sent) :]


class RowsStreamer:
    """A transformers streamer (``put`` / ``end``) over every row of a generate() call, batch after batch: a 2-D put
    ([rows, P], the decoder's prompts) begins the next batch's rows, a 1-D put ([rows]) is one step's tokens.
    ``emit(row, piece, step)`` gets each row's text pieces (TextPieces); where generate() gives each step's
    log-probabilities first (``put_logprobs``), it is called for every token of a row, ``step`` being (the token, its
    (logprob, top ids, top logprobs), where its text starts in the row's text) and ``piece`` what the token lets out
    (maybe nothing yet); else ``step`` is None. ``open_words=False``: each token's text goes out with it (as vLLM sends
    a token's text with its logprobs), not held back to the end of a word."""

    def __init__(self, decode: Callable[[list[int]], str], emit: Callable[[int, str, tuple | None], None], open_words: bool = True) -> None:
        self.decode, self.emit, self.open_words = decode, emit, open_words
        self.rows: dict[int, TextPieces] = {}
        self.first, self.count = 0, 0
        self.logprobs: list | None = None  # this step's entries, one per row of the batch (None after its end)
        self.pieces: list[str] = []

    def put_logprobs(self, entries: list) -> None:
        self.logprobs = entries

    def put(self, value) -> None:
        value = np.asarray(value)
        if value.ndim == 2:  # a batch begins
            self.first, self.count = self.first + self.count, len(value)
            return
        entries, self.logprobs = self.logprobs, None
        for j, token in enumerate(value.reshape(-1)):
            row = self.first + j
            if row not in self.rows:
                self.rows[row] = TextPieces(self.decode, self.pieces.append, self.open_words)
            self.pieces.clear()
            self.rows[row].add([token])
            piece = "".join(self.pieces)
            entry = entries[j] if entries is not None else None
            if entry is not None:
                self.emit(row, piece, (int(token), entry, len(self.decode(self.rows[row].tokens[:-1]))))
            elif piece:
                self.emit(row, piece, None)

    def end(self) -> None:
        pass

    def generated(self, row: int) -> int:
        """The tokens ``row`` has generated so far (exact while it emits: nothing is emitted after its end)."""
        return len(self.rows[row].tokens) if row in self.rows else 0

    def rest(self, row: int, text: str) -> str:
        return self.rows[row].rest(text) if row in self.rows else text

    def tokens(self, row: int) -> list[int]:
        """The tokens ``row`` has generated so far."""
        return self.rows[row].tokens if row in self.rows else []
