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


def first_start(text: str, stops: list[str], start: int = 0) -> int | None:
    """Where the first stop string found in ``text`` from ``start`` begins; None where there is none."""
    found = [at for s in stops if (at := text.find(s, start)) >= 0]
    return min(found) if found else None


def cut_at_stop(decode: Callable[[list[int]], str], ids: list[int], stops: list[str], include: bool) -> tuple[str, int, str | None]:
    """The answer's text, tokens and stop string: ``ids`` (what generate() wrote, up to and with its end) as text, cut
    where vLLM would have stopped it (stop_written_first); its tokens up to the one that ended it."""
    text = decode(ids)
    found = stop_written_first(decode, ids, text, stops)
    if found is None:
        return text, len(ids), None
    kept, at, string = found
    return text[: at + len(string) if include else at], kept, string


def stop_written_first(decode: Callable[[list[int]], str], ids: list[int], text: str, stops: list[str], floor: int = 0) -> tuple | None:
    """(tokens, where it begins, which) of the stop string vLLM stops ``ids`` at (``text``: their text): the first token
    whose text completes one, and the first of the request's ``stops`` found in what that token added (vLLM's
    check_stop_strings); None where none is written. ``floor``: a string counts only where it ends past that many
    characters (min_tokens' text)."""
    ends = [(at + len(s), at, s) for s in stops if (at := text.find(s, max(0, floor - len(s) + 1))) >= 0]
    if not ends:
        return None
    first = min(ends)
    kept = tokens_through(decode, ids, text, first[0])
    written = decode(ids[:kept])
    before = common_start(decode(ids[: kept - 1]), written)  # (a split character, a space cleaned up, changes its end)
    for string in stops:
        at = written.find(string, max(0, before + 1 - len(string), floor - len(string) + 1))
        if at >= 0:
            return kept, at, string
    return kept, first[1], first[2]  # (a tokenizer whose text of fewer tokens is no start of the whole)


def tokens_through(decode: Callable[[list[int]], str], ids: list[int], text: str, end: int) -> int:
    """The fewest of ``ids`` (whose text is ``text``) that write ``text[:end]`` (a binary search: a token's text never
    changes the text before it)."""
    low, high = 1, len(ids)  # decode(ids[:high]) writes it
    while low < high:
        mid = (low + high) // 2
        if decode(ids[:mid])[:end] == text[:end]:
            high = mid
        else:
            low = mid + 1
    return high


def common_start(a: str, b: str) -> int:
    """How many characters ``a`` and ``b`` begin with alike."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@dataclass
class StopStream:
    """One streamed answer's text pieces and per-token log-probability steps ((token, entry, where its text starts)),
    let out as far as no stop string can begin in what is held back; once one is written, the answer as cut_at_stop
    cuts it (``tokens``: the tokens it is written from, so far); a token's step goes out once its text begins in what
    was sent (as the causal-LM server's)."""

    stops: list[str]
    include: bool
    decode: Callable[[list[int]], str]
    text: str = ""
    sent: str = ""
    kept: int | None = None  # the answer's tokens, once a stop string ended it
    steps: list[tuple] = field(default_factory=list)

    @property
    def hold(self) -> int:
        return max((len(s) for s in self.stops), default=1) - 1

    def feed(self, piece: str, step: tuple | None, tokens: list[int]) -> tuple[str, list[tuple]]:
        """What goes out now of a new piece (and its token's step): text, steps."""
        if self.kept is not None:
            return "", []
        self.text += piece
        if step is not None:
            self.steps.append(step)
        if first_start(self.text, self.stops, max(0, len(self.sent) - self.hold)) is None:
            return self._release(self.text[: max(len(self.sent), len(self.text) - self.hold)])
        answer, self.kept, _ = cut_at_stop(self.decode, tokens, self.stops, self.include)
        return self._release(answer)

    def finish(self, answer: str, cut: bool) -> tuple[str, list[tuple]]:
        """What goes out at the end: the rest of ``answer`` (the whole answer: cut_at_stop's text; ``cut``: at a stop
        string) and the steps of its tokens (with a cut, those whose text begins in it)."""
        if self.kept is not None:
            return "", []
        return self._release(answer, every_step=not cut)

    def _release(self, upto: str, every_step: bool = False) -> tuple[str, list[tuple]]:
        piece = upto[common_start(upto, self.sent) :]  # past their common start, should a later token change a word
        self.sent = upto
        n = len(self.steps) if every_step else bisect.bisect_left([s[2] for s in self.steps], len(upto))
        steps, self.steps = self.steps[:n], self.steps[n:]
        return piece, steps
