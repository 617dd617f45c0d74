"""vLLM's stop strings for the servers that write each answer in one generate() call (the encoder-decoders): the answer
ends before the first stop string (with it, where ``include_stop_str_in_output``), its finish reason is "stop" and its
``stop_reason`` that string, and it counts its tokens up to the one that completed the string. generate() still runs
to its end token or length; the answer is cut afterwards, and a stream holds back the last characters that may begin a
stop string, so none ever reaches the client. (The causal-LM server's engine stops a request at its stop string:
serving/choices.py.)"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from QEfficient.serving.params import boolean
from QEfficient.serving.protocol import stop_strings


def requested_stops(body: dict) -> tuple[list[str], bool]:
    """A request's stop strings and vLLM's ``include_stop_str_in_output``."""
    return stop_strings(body), boolean(body, "include_stop_str_in_output")


def first_stop(text: str, stops: list[str], start: int = 0) -> tuple[int, str] | None:
    """(where, which) of the stop string that begins first in ``text`` from ``start``; None where there is none."""
    found = [(at, s) for s in stops if (at := text.find(s, start)) >= 0]
    return min(found) if found else None


def cut_at_stop(decode: Callable[[list[int]], str], ids: list[int], stops: list[str], include: bool) -> tuple[str, int, str | None]:
    """The answer's text, tokens and stop string: ``ids`` (what generate() wrote, up to and with its end) as text, cut
    at the first stop string; the tokens up to the one that completed it."""
    text = decode(ids)
    found = first_stop(text, stops) if stops else None
    if found is None:
        return text, len(ids), None
    at, string = found
    return text[: at + len(string) if include else at], tokens_through(decode, ids, text, at + len(string)), string


def tokens_through(decode: Callable[[list[int]], str], ids: list[int], text: str, end: int) -> int:
    """How many of ``ids`` (whose text is ``text``) it takes to write ``text[:end]``: found from the end (a generator
    runs a token or two past a stop string), the text without a token must still hold all of it."""
    kept = len(ids)
    while kept > 1 and decode(ids[: kept - 1])[:end] == text[:end]:
        kept -= 1
    return kept


def _common_start(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@dataclass
class StopStream:
    """One streamed answer's text pieces and per-token log-probability steps ((token, entry, where its text starts)),
    let out as far as no stop string can begin in what is held back; a token's step goes out once its text begins in
    what was sent (as the causal-LM server's)."""

    stops: list[str]
    include: bool = False
    text: str = ""
    sent: str = ""
    stopped: bool = False
    steps: list[tuple] = field(default_factory=list)

    @property
    def hold(self) -> int:
        return max((len(s) for s in self.stops), default=1) - 1

    def feed(self, piece: str, step: tuple | None) -> tuple[str, list[tuple]]:
        """What goes out now of a new piece (and its token's step): text, steps."""
        if self.stopped:
            return "", []
        self.text += piece
        if step is not None:
            self.steps.append(step)
        found = first_stop(self.text, self.stops, max(0, len(self.sent) - self.hold)) if self.stops else None
        if found is not None:
            self.stopped = True
            at, string = found
            return self._release(self.text[: at + len(string) if self.include else at])
        return self._release(self.text[: max(len(self.sent), len(self.text) - self.hold)])

    def finish(self, answer: str, cut: bool) -> tuple[str, list[tuple]]:
        """What goes out at the end: the rest of ``answer`` (the whole answer: cut_at_stop's text; ``cut``: at a stop
        string) and the steps of its tokens (with a cut, those whose text begins in it)."""
        if self.stopped:
            return "", []
        return self._release(answer, every_step=not cut)

    def _release(self, upto: str, every_step: bool = False) -> tuple[str, list[tuple]]:
        piece = upto[_common_start(upto, self.sent) :]  # past their common start, should a later token change a word
        self.sent = upto
        n = len(self.steps) if every_step else bisect.bisect_left([s[2] for s in self.steps], len(upto))
        steps, self.steps = self.steps[:n], self.steps[n:]
        return piece, steps
