"""Beam search in numpy, step for step transformers' (``GenerationMixin._beam_search``, transformers 5): the same
candidates (the top ``max(2, 1 + number of end tokens) * num_beams`` continuations of all beams of an input), the same
running beams, the same finished hypotheses with their length penalty, and the same stopping rule (``early_stopping``
True, False or ``"never"``), so that its sequences are transformers' on the same log-probabilities.

The caller owns the model: it computes each step's log-probabilities (after its logits processors) for the running
beams, reorders its cache rows by :attr:`BeamSearch.cache_rows` and feeds :attr:`BeamSearch.next_tokens`.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEAD = np.float32(-1.0e9)  # transformers' score for a beam or hypothesis that must not be chosen


@dataclass(frozen=True)
class BeamSettings:
    """transformers' generation-config fields of beam search."""

    num_beams: int
    length_penalty: float = 1.0
    early_stopping: bool | str = False  # True: stop at num_beams hypotheses; "never": the canonical search
    num_return_sequences: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.num_beams, bool) or not isinstance(self.num_beams, numbers.Integral) or self.num_beams < 1:
            raise ValueError(f"num_beams must be a positive integer, got {self.num_beams!r}.")
        if not 1 <= self.num_return_sequences <= self.num_beams:
            raise ValueError(
                f"num_return_sequences={self.num_return_sequences} must be between 1 and num_beams={self.num_beams}: "
                "beam search returns at most one sequence per beam."
            )
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}.")


def beam_settings(
    generation_config, num_beams=None, length_penalty=None, early_stopping=None, num_return_sequences=None
) -> BeamSettings | None:
    """Beam search as the call asks, else as the checkpoint's generation config does (transformers' defaults where
    neither says); None for a single beam."""
    g = generation_config

    def given(value, name, default):
        if value is not None:
            return value
        return getattr(g, name, None) if getattr(g, name, None) is not None else default

    num_beams, num_return_sequences = given(num_beams, "num_beams", 1), given(num_return_sequences, "num_return_sequences", 1)
    if num_beams == 1:
        if num_return_sequences != 1:
            raise ValueError(f"num_return_sequences={num_return_sequences} needs beam search: pass num_beams >= {num_return_sequences}.")
        return None
    penalty = given(length_penalty, "length_penalty", 1.0)
    if isinstance(penalty, bool) or not isinstance(penalty, numbers.Real):
        raise ValueError(f"length_penalty must be a number (the exponent of the length beams are scored by), got {penalty!r}.")
    return BeamSettings(num_beams, float(penalty), given(early_stopping, "early_stopping", False), num_return_sequences)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """float32 log-probabilities of ``logits`` [rows, vocab] (a new array)."""
    out = np.array(logits, np.float32)
    out -= out.max(-1, keepdims=True)
    out -= np.log(np.exp(out).sum(-1, keepdims=True))
    return out


def top_k(scores: np.ndarray, k: int, floor: np.ndarray | None = None) -> np.ndarray:
    """The indices of the ``k`` largest scores of each row, largest first (ties: the lower index first). ``floor``
    [rows]: a value each row's k-th largest is known not to be below (else it is found); only the scores at or
    above it are sorted."""
    if floor is None:
        floor = -np.partition(-scores, k - 1, axis=-1)[:, k - 1]
    out = np.empty((len(scores), k), np.int64)
    for row, (values, bound) in enumerate(zip(scores, floor)):
        index = np.flatnonzero(values >= bound)
        out[row] = index[np.lexsort((index, -values[index]))[:k]]
    return out


def _gather(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array`` [batch, beams, ...] at beams ``index`` [batch, k] (transformers' ``_gather_beams``)."""
    return np.take_along_axis(array, index.reshape(index.shape + (1,) * (array.ndim - 2)), 1)


class BeamSearch:
    """The state of a beam search over ``batch`` inputs, each with ``num_beams`` rows (rows of one input adjacent)."""

    def __init__(
        self,
        prompts: np.ndarray,
        settings: BeamSettings,
        max_length: int,
        eos_token_ids: tuple[int, ...],
        fill: int,
        track_token_logprobs: bool = False,
    ) -> None:
        """``prompts`` [batch, prompt_len]: each input's decoder prompt (an encoder-decoder's start token);
        ``max_length``: of the sequences, prompt included; ``fill``: the token after a sequence's end;
        ``track_token_logprobs``: keep each token's log-probability after the logits processors (renormalized), as
        transformers' ``scores`` along ``beam_indices`` give it (see :meth:`best_token_logprobs`)."""
        self.settings, self.max_length = settings, max_length
        batch, self.prompt_len = prompts.shape
        beams = settings.num_beams
        self.batch, self.beams, self.cur_len = batch, beams, self.prompt_len
        self.eos = np.array(eos_token_ids or (-1,), np.int64)
        self.keep = max(2, 1 + len(eos_token_ids)) * beams
        self.top_beams = np.arange(self.keep) < beams  # only these candidates may become hypotheses
        self.running = np.full((batch, beams, max_length), fill, np.int64)
        self.running[:, :, : self.prompt_len] = prompts[:, None, :]
        self.sequences = self.running.copy()
        self.running_scores = np.zeros((batch, beams), np.float32)
        self.running_scores[:, 1:] = DEAD  # the beams start equal: only the first one's continuations count
        self.scores = np.full((batch, beams), DEAD, np.float32)
        self.finished = np.zeros((batch, beams), bool)
        self.improvable = np.ones((batch, 1), bool)
        self.running_origins = np.full((batch, beams, max_length - self.prompt_len), -1, np.int64)
        self.origins = self.running_origins.copy()
        self.cache_rows = np.arange(batch * beams)
        steps = (batch, beams, max_length - self.prompt_len)
        self.running_logprobs = np.zeros(steps, np.float32) if track_token_logprobs else None
        self.token_logprobs = self.running_logprobs.copy() if track_token_logprobs else None

    @property
    def running_flat(self) -> np.ndarray:
        """The running sequences so far [batch * beams, cur_len] (what logits processors read)."""
        return self.running[:, :, : self.cur_len].reshape(self.batch * self.beams, self.cur_len)

    @property
    def next_tokens(self) -> np.ndarray:
        """Each row's last token [batch * beams] (the next step's input, after the cache rows are reordered)."""
        return self.running[:, :, self.cur_len - 1].reshape(-1)

    def step(self, log_probs: np.ndarray) -> bool:
        """Advance by one token given the rows' processed log-probabilities [batch * beams, vocab]; False when the
        search is over. Then :attr:`cache_rows` names, per row, the row whose cache it continues."""
        b, k, n, s = self.batch, self.beams, self.cur_len, self.settings
        vocab = log_probs.shape[-1]
        per_beam = log_probs.reshape(b, k, vocab) + self.running_scores[:, :, None]
        # the k-th best continuation of an input's leading beam bounds the k-th best of all its beams from below
        floor = -np.partition(-per_beam[:, 0], self.keep - 1, axis=-1)[:, self.keep - 1] if self.keep <= vocab else None
        total = per_beam.reshape(b, k * vocab)
        picked = top_k(total, self.keep, floor)
        top_scores = np.take_along_axis(total, picked, -1)
        from_beam, tokens = picked // vocab, picked % vocab
        top_running = _gather(self.running, from_beam)
        top_running[:, :, n] = tokens
        top_origins = _gather(self.running_origins, from_beam)
        top_origins[:, :, n - self.prompt_len] = from_beam + np.arange(b)[:, None] * k
        top_logprobs = None
        if self.running_logprobs is not None:  # the token's log-probability, renormalized after the processors
            top = log_probs.max(-1, keepdims=True)
            norm = (np.log(np.exp(log_probs - top).sum(-1, keepdims=True)) + top).reshape(b, k)
            chosen_logprob = np.take_along_axis(log_probs.reshape(b, k * vocab), picked, -1) - np.take_along_axis(norm, from_beam, -1)
            top_logprobs = _gather(self.running_logprobs, from_beam)
            top_logprobs[:, :, n - self.prompt_len] = chosen_logprob
        hits = np.isin(tokens, self.eos) | (n + 1 >= self.max_length)
        # the running beams: the best continuations that did not end
        alive = top_scores + hits.astype(np.float32) * DEAD
        chosen = top_k(alive, k)
        self.running, self.running_scores = _gather(top_running, chosen), _gather(alive, chosen)
        self.running_origins = _gather(top_origins, chosen)
        if top_logprobs is not None:
            self.running_logprobs = _gather(top_logprobs, chosen)
        self._add_hypotheses(top_running, top_scores, top_origins, hits & self.top_beams[None, :], top_logprobs)
        self.cache_rows = self.running_origins[:, :, n - self.prompt_len].reshape(-1)
        self.cur_len = n + 1
        self._update_improvable()
        return bool(self.improvable.any()) and not (self.finished.all() and s.early_stopping is True) and not hits.all()

    def _add_hypotheses(self, top_running, top_scores, top_origins, just_finished, top_logprobs=None) -> None:
        s = self.settings
        penalized = top_scores / np.float32((self.cur_len + 1 - self.prompt_len) ** s.length_penalty)
        full = self.finished.all(-1, keepdims=True) & (s.early_stopping is True)
        penalized = penalized + full * DEAD + (~self.improvable) * DEAD + (~just_finished) * DEAD
        merged_scores = np.concatenate([self.scores, penalized.astype(np.float32)], 1)
        best = top_k(merged_scores, self.beams)
        self.sequences = _gather(np.concatenate([self.sequences, top_running], 1), best)
        self.scores = _gather(merged_scores, best)
        self.origins = _gather(np.concatenate([self.origins, top_origins], 1), best)
        if top_logprobs is not None:
            self.token_logprobs = _gather(np.concatenate([self.token_logprobs, top_logprobs], 1), best)
        self.finished = _gather(np.concatenate([self.finished, just_finished], 1), best)

    def _update_improvable(self) -> None:
        """transformers' early-stop heuristic: can a running beam still beat the worst hypothesis?"""
        s = self.settings
        if s.early_stopping == "never" and s.length_penalty > 0.0:
            length = self.max_length - self.prompt_len
        else:
            length = self.cur_len - self.prompt_len
        best_possible = self.running_scores[:, :1] / np.float32(length**s.length_penalty)
        worst = np.where(self.finished, self.scores.min(1, keepdims=True), DEAD)
        self.improvable &= (best_possible > worst).any(-1, keepdims=True)

    def run(
        self,
        session,
        logits: np.ndarray,
        steps: int,
        process: Callable,
        on_first_token: Callable[[], None],
        offsets: np.ndarray | None = None,
    ) -> float:
        """Search for up to ``steps`` tokens from the prompt's ``logits`` [rows, vocab], over ``session`` (a
        KVCacheSession holding one cache row per beam, reordered each step); ``process(step, log_probs)`` applies the
        logits processors; ``offsets`` [rows]: each row's left padding (its positions count from its first token).
        Returns the seconds after the first token."""
        rows = self.batch * self.beams
        shift = np.zeros(rows, np.int64) if offsets is None else np.asarray(offsets, np.int64)
        decode_start = time.perf_counter()
        for step in range(steps):
            going = self.step(process(step, log_softmax(logits)))
            if step == 0:
                on_first_token()
                decode_start = time.perf_counter()
            if not going:
                break
            session.reorder_rows(self.cache_rows, self.cur_len - 1)  # the slots written so far
            logits = session.run(self.next_tokens[:, None], (self.cur_len - 1 - shift)[:, None])
        return time.perf_counter() - decode_start

    def best_token_logprobs(self) -> np.ndarray:
        """Each input's best hypothesis: its tokens' log-probabilities [batch, generated] (``track_token_logprobs``)."""
        return self.token_logprobs[:, 0]

    def best(self) -> list[np.ndarray]:
        """The ``num_return_sequences`` best hypotheses of each input, in order [batch * num_return_sequences rows],
        cut to the longest (as transformers returns them)."""
        n = self.settings.num_return_sequences
        sequences = self.sequences[:, :n].reshape(self.batch * n, -1)
        generated = int((self.origins[:, :n] >= 0).sum(-1).max())
        return list(sequences[:, : self.prompt_len + generated])
