"""Log-probabilities from the model's logits: a new token's (token_logprobs), and the prompt's own (score_prompt):
for each prompt token after the first, log p(token | the tokens before it), with its rank and the likeliest
alternatives (vLLM's ``prompt_logprobs``, and OpenAI's completions ``echo`` with ``logprobs``: what evaluation
harnesses score answers by).

The plain graph returns the logits of a chunk's last position only, so a prompt is fed one token a step there (its
cache ends as a prefill's would); a speculative target's graph scores every position of a chunk, so there the
prompt goes through in chunks, as fast as a prefill.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np


def token_logprobs(logits: np.ndarray, token: int, top: int) -> tuple[float, list[int], list[float]]:
    """(log p(token), the ``top`` likeliest ids, their log p), from the log-softmax of the model's
    logits for this step: the scores the sampler started from, before temperature or top-k/top-p."""
    row = logits.astype(np.float64).reshape(-1)
    peak = row.max()
    log_norm = peak + np.log(np.exp(row - peak).sum())
    top = min(top, row.size)
    ids = np.argpartition(-row, top - 1)[:top] if top else np.zeros(0, dtype=np.int64)
    ids = ids[np.argsort(-row[ids], kind="stable")]
    return float(row[token] - log_norm), ids.tolist(), (row[ids] - log_norm).tolist()


class PromptTokenScore(NamedTuple):
    """One prompt token's score: its log-probability, its rank among all tokens (1: the likeliest), and the ``top``
    likeliest ids with their log-probabilities."""

    logprob: float
    rank: int
    top_ids: list[int]
    top_logprobs: list[float]


def score_token(logits: np.ndarray, token: int, top: int) -> PromptTokenScore:
    """``token``'s score under one position's logits [V]."""
    logprob, ids, logprobs = token_logprobs(logits, token, top)
    row = logits.reshape(-1)
    return PromptTokenScore(logprob, int(np.count_nonzero(row > row[token])) + 1, ids, logprobs)


class ScoringCancelled(RuntimeError):
    pass


def score_prompt(
    target, tokens: list[int], chunk: int, top: int, cancelled: Callable[[], bool] = lambda: False
) -> tuple[list[PromptTokenScore | None], np.ndarray]:
    """Prefill ``tokens`` into ``target`` (a runtime.ort_session.SlotTarget: one cache row), scoring each of them;
    ScoringCancelled where ``cancelled()`` turns true between runs (a client that left frees the engine).

    Returns (one entry per prompt token, None for the first, which nothing precedes; the next-token logits [1, V], as
    a prefill returns them)."""
    scores: list[PromptTokenScore | None] = [None]
    if target.every_position:
        for start in range(0, len(tokens), chunk):
            if cancelled():
                raise ScoringCancelled("the request was cancelled while its prompt was scored")
            piece = tokens[start : start + chunk]
            logits = target.run_all(np.array([piece], dtype=np.int64), np.arange(start, start + len(piece), dtype=np.int64)[None])[0]
            following = tokens[start + 1 : start + len(piece) + 1]  # the token each position predicts
            scores += [score_token(logits[j], token, top) for j, token in enumerate(following)]
            last = logits[len(piece) - 1 : len(piece)].copy()
        return scores, last
    for position, token in enumerate(tokens):
        if cancelled():
            raise ScoringCancelled("the request was cancelled while its prompt was scored")
        logits = target.run(np.array([[token]], dtype=np.int64), np.array([[position]], dtype=np.int64))
        if position + 1 < len(tokens):
            scores.append(score_token(logits[0], tokens[position + 1], top))
    return scores, logits.copy()
