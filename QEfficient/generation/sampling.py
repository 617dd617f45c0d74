"""Next-token choice: greedy by default, or sampling with transformers' semantics and order
(repetition penalty, temperature, top-k, top-p, min-p), reproducible with a seed; optionally only among the tokens a
fixed mask allows (QEfficient's guided decoding, ``token_bitmasks``). OpenAI's and vLLM's ``logit_bias``,
``presence_penalty`` and ``frequency_penalty`` apply as vLLM applies them: the bias first, the two penalties with the
repetition penalty, counting the generated tokens only (the repetition penalty counts the prompt's too)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    do_sample: bool | None = None
    # bool [rows, vocab]: the tokens each row (batch row, or continuous-batching slot) may take; one row for all
    allowed_tokens: Any = field(default=None, compare=False, repr=False)
    presence_penalty: float | None = None  # subtracted once from each token generated so far
    frequency_penalty: float | None = None  # subtracted once per time a token was generated so far
    min_p: float | None = None  # tokens less likely than min_p times the likeliest are dropped (after top-p)
    logit_bias: tuple[tuple[int, float], ...] | None = None  # (token id, value added to its logit) pairs
    allowed_token_ids: tuple[int, ...] | None = None  # vLLM's: the only tokens that may be generated
    # vLLM's bad_words as token sequences: a sequence's last token is barred where the tokens generated before end
    # with the rest of it (a one-token sequence: always)
    bad_words_ids: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        for name in ("temperature", "top_p", "repetition_penalty", "presence_penalty", "frequency_penalty", "min_p"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}.")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}.")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, numbers.Integral) or self.top_k < 0):
            raise ValueError(f"top_k must be a non-negative integer, got {self.top_k!r}.")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}.")
        if self.min_p is not None and not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must be in [0, 1], got {self.min_p}.")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
        if self.do_sample is not None and not isinstance(self.do_sample, (bool, np.bool_)):
            raise ValueError(f"do_sample must be True or False, got {self.do_sample!r}.")

    @property
    def plain_greedy(self) -> bool:
        """Greedy on the logits as they are: no sampling, no bias, no penalty reading the tokens before (what
        speculative decoding verifies drafts against)."""
        penalties = self.repetition_penalty not in (None, 1.0) or self.presence_penalty or self.frequency_penalty
        return not self.sampling and not penalties and not self.logit_bias and not self.allowed_token_ids and not self.bad_words_ids

    @property
    def sampling(self) -> bool:
        """Sampling happens when asked for with do_sample=True or a temperature above zero."""
        if self.do_sample is not None:
            return self.do_sample and self.temperature != 0
        return bool(self.temperature)


@dataclass(frozen=True)
class RowSampling(SamplingParams):
    """Parameters that differ between rows (QEfficient's ``sampling_params``, one ``[batch, 1]`` array per parameter):
    ``rows[i]`` for batch row i, or with continuous batching for slot i (a prompt takes the parameters of the slot it
    runs in, as QEfficient feeds them). ``allowed_tokens`` stays here, shared by the rows."""

    rows: tuple[SamplingParams, ...] = ()

    @property
    def plain_greedy(self) -> bool:
        return all(row.plain_greedy for row in self.rows)

    @property
    def sampling(self) -> bool:
        return any(row.sampling for row in self.rows)


def with_checkpoint_warpers(params: SamplingParams, generation_config) -> SamplingParams:
    """``params`` of a sampling call with the warpers it leaves out taken from the checkpoint's ``generation_config``, as
    transformers' generate takes them (its temperature, top_k, top_p; where it leaves one unset, transformers' default:
    1.0, 50, 1.0); a greedy call's as they are."""
    if type(params) is not SamplingParams or not params.sampling:
        return params
    config = {"temperature": 1.0, "top_k": 50, "top_p": 1.0}  # transformers' defaults for what a config leaves unset
    for name in config:
        value = getattr(generation_config, name, None)
        config[name] = config[name] if value is None else value  # (a checkpoint's top_k of 0: none)
    filled = {name: value for name, value in config.items() if getattr(params, name) is None}
    if "temperature" in filled and not filled["temperature"]:  # (a checkpoint's 0 would turn the call greedy)
        filled.pop("temperature")
    return replace(params, **filled)


def seeded_apart(params: SamplingParams, offset: int) -> SamplingParams:
    """The parameters of the prompt (or batch) ``offset`` places into one call: a seeded call draws apart for each, as a
    batch's rows do, and the same on every run (the server's n choices take seed + j likewise); rows' own parameters
    (RowSampling) are left as they are."""
    if type(params) is not SamplingParams or params.seed is None or not offset:
        return params
    return replace(params, seed=int(params.seed) + offset)


def token_chooser(params: SamplingParams, batch_size: int, vocab_size: int, first_row: int = 0) -> TokenChooser | RowChooser:
    """The chooser for ``batch_size`` rows from ``first_row``: one for all rows, or one per row where they differ."""
    if isinstance(params, RowSampling):
        return RowChooser(params, batch_size, vocab_size, first_row)
    return TokenChooser(params, batch_size, vocab_size, first_row)


class NoTokenLeft(ValueError):
    """A request's own rules bar every token at a step."""


class TokenChooser:
    """Picks each row's next token from logits [B, V]; keeps the per-row token history it needs."""

    def __init__(self, params: SamplingParams, batch_size: int, vocab_size: int, first_row: int = 0) -> None:
        """``first_row``: the row of ``params.allowed_tokens`` this chooser's first row reads (a slot's)."""
        self.params = params
        self.allowed = _allowed_rows(params.allowed_tokens, first_row, batch_size, vocab_size)
        # greedy needs no generator (numpy.random and the hashlib it imports: ~7 MB of a run-time process)
        self.rng = np.random.default_rng(params.seed) if params.sampling else None
        penalty = params.repetition_penalty
        self.seen = np.zeros((batch_size, vocab_size), dtype=bool) if penalty and penalty != 1.0 else None
        # how often each row generated each token (presence and frequency penalties: generated tokens only)
        counted = params.presence_penalty or params.frequency_penalty
        self.counts = np.zeros((batch_size, vocab_size), dtype=np.int32) if counted else None
        self.only = None
        if params.allowed_token_ids:
            self.only = np.zeros(vocab_size, dtype=bool)
            self.only[_token_ids(params.allowed_token_ids, vocab_size, "allowed_token_ids")] = True
        words = params.bad_words_ids or ()
        self.barred = np.array(_token_ids([w[0] for w in words if len(w) == 1], vocab_size, "bad_words"), dtype=np.int64)
        self.bad_phrases = [w for w in words if len(w) > 1]
        _token_ids([t for w in self.bad_phrases for t in w], vocab_size, "bad_words")
        self.generated: list[list[int]] = [[] for _ in range(batch_size)]  # kept for bad_phrases only
        self.bias = None
        if params.logit_bias:
            self.bias = np.zeros(vocab_size, dtype=np.float32)
            for token, value in params.logit_bias:
                if not 0 <= token < vocab_size:
                    raise ValueError(f"logit_bias names token {token}; this model's tokens are 0..{vocab_size - 1}.")
                self.bias[token] = value

    def prime(self, token_lists: list[list[int]]) -> None:
        self.generated = [[] for _ in self.generated]
        if self.counts is not None:
            self.counts[:] = 0
        if self.seen is not None:
            self.seen[:] = False
            vocab = self.seen.shape[1]
            for row, tokens in enumerate(token_lists):
                ids = np.asarray(tokens, dtype=np.int64)
                self.seen[row, ids[ids < vocab]] = True  # ids past the head (Mllama's image token) are never scored

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        p = self.params
        if self.allowed is not None:
            logits = np.where(self.allowed, logits, -np.inf)
        if self.only is not None:  # vLLM's order: allowed ids, bad words, then the bias and penalties
            logits = np.where(self.only, logits, -np.inf)
        if len(self.barred) or self.bad_phrases:
            logits = self._bar_bad_words(logits)
        if self.only is not None or len(self.barred) or self.bad_phrases:
            if not np.isfinite(logits).any(-1).all():
                raise NoTokenLeft("allowed_token_ids and bad_words (with min_tokens, or a grammar) leave no token to write.")
        if self.bias is not None:
            logits = logits + self.bias
        if self.seen is None and self.counts is None and not p.sampling and not self.bad_phrases:
            return logits.argmax(-1)  # plain greedy: no history to keep
        scores = logits.astype(np.float32, copy=True)
        if self.seen is not None:  # transformers' RepetitionPenaltyLogitsProcessor
            penalised = np.where(scores < 0, scores * p.repetition_penalty, scores / p.repetition_penalty)
            scores = np.where(self.seen, penalised, scores)
        if self.counts is not None:  # vLLM's (and OpenAI's) frequency and presence penalties
            scores -= (p.frequency_penalty or 0.0) * self.counts + (p.presence_penalty or 0.0) * (self.counts > 0)
        tokens = self._sample(scores) if p.sampling else scores.argmax(-1)
        rows = np.arange(len(tokens))
        if self.seen is not None:
            self.seen[rows, tokens] = True
        if self.counts is not None:
            self.counts[rows, tokens] += 1
        if self.bad_phrases:
            for row, token in enumerate(tokens):
                self.generated[row].append(int(token))
        return tokens

    def _bar_bad_words(self, logits: np.ndarray) -> np.ndarray:
        """``logits`` with the bad words' tokens at -inf: the one-token words always, a longer word's last token where
        the row's generated tokens end with the word's other tokens."""
        logits = np.array(logits, dtype=np.float32)
        logits[:, self.barred] = -np.inf
        for row, done in enumerate(self.generated):
            for word in self.bad_phrases:
                if len(done) >= len(word) - 1 and tuple(done[len(done) - len(word) + 1 :]) == word[:-1]:
                    logits[row, word[-1]] = -np.inf
        return logits

    def _sample(self, scores: np.ndarray) -> np.ndarray:
        p = self.params
        return draw(warped(scores, p.temperature, p.top_k, p.top_p, p.min_p), self.rng)


def _token_ids(ids, vocab_size: int, name: str) -> list[int]:
    """``ids`` as a list, each checked to be one of the model's tokens."""
    ids = [int(t) for t in ids]
    if any(not 0 <= t < vocab_size for t in ids):
        raise ValueError(f"{name} names a token outside this model's 0..{vocab_size - 1}.")
    return ids


def warped(scores: np.ndarray, temperature: float | None, top_k: int | None, top_p: float | None, min_p: float | None = None) -> np.ndarray:
    """transformers' sampling warpers in its order: temperature, top-k, top-p, min-p (dropped tokens at -inf)."""
    if temperature:
        scores = scores / temperature
    if top_k:
        k = min(top_k, scores.shape[-1])
        kth = np.partition(scores, -k, axis=-1)[:, -k][:, None]
        scores = np.where(scores < kth, -np.inf, scores)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-scores, axis=-1)
        ranked = np.take_along_axis(scores, order, -1)
        probs = np.exp(ranked - ranked[:, :1])
        probs /= probs.sum(-1, keepdims=True)
        # keep the smallest prefix whose mass reaches top_p (always at least the top token)
        drop = np.cumsum(probs, -1) - probs >= top_p
        ranked[drop] = -np.inf
        scores = np.full_like(scores, -np.inf)
        np.put_along_axis(scores, order, ranked, -1)
    if min_p:  # transformers' MinPLogitsWarper: probability relative to the likeliest token's
        scores = np.where(scores - scores.max(-1, keepdims=True) < np.log(min_p), -np.inf, scores)
    return scores


def draw(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One token per row from softmax(scores), with ``rng``'s numbers."""
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    cumulative = probs.cumsum(-1)
    draws = rng.random((len(scores), 1)) * cumulative[:, -1:]
    return (cumulative < draws).sum(-1).clip(max=scores.shape[-1] - 1)


class RowChooser:
    """Each row its own ``TokenChooser`` with its own parameters, random generator and history."""

    def __init__(self, params: RowSampling, batch_size: int, vocab_size: int, first_row: int = 0) -> None:
        if first_row + batch_size > len(params.rows):
            raise ValueError(
                f"sampling_params' arrays have {len(params.rows)} rows; this generation needs {first_row + batch_size} "
                "(one per batch row or continuous-batching slot), or the same value in every row."
            )
        self.rows = [
            TokenChooser(replace(params.rows[row], allowed_tokens=params.allowed_tokens), 1, vocab_size, row)
            for row in range(first_row, first_row + batch_size)
        ]

    def prime(self, token_lists: list[list[int]]) -> None:
        for chooser, tokens in zip(self.rows, token_lists):
            chooser.prime([tokens])

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return np.concatenate([chooser(logits[i : i + 1]) for i, chooser in enumerate(self.rows)])


def check_rows(params: SamplingParams | None, rows: int, what: str) -> None:
    """Parameters that differ between rows have one row per batch row (``what``: "batch rows") or per slot."""
    if isinstance(params, RowSampling) and len(params.rows) != rows:
        raise ValueError(
            f"sampling_params' arrays have {len(params.rows)} rows; this model runs {rows} {what}: give one row each "
            "([rows, 1] arrays), or the same value in every row."
        )


def check_allowed_tokens(params: SamplingParams | None, slots: int, vocab_size: int) -> None:
    """Before continuous batching starts: a token mask has one row per slot (QEfficient's ``[full_batch_size, vocab]``:
    a prompt takes the mask of the slot it runs in) or one row for all, and one column per token; parameters that
    differ between rows have one row per slot."""
    check_rows(params, slots, "continuous-batching slots")
    allowed = params.allowed_tokens if params is not None else None
    if allowed is None:
        return
    _check_width(allowed, vocab_size)
    if len(allowed) not in (1, slots):
        raise ValueError(
            f"token_bitmasks has {len(allowed)} rows; with continuous batching its rows are the {slots} slots' (a prompt takes "
            "the mask of the slot it runs in): give one row per slot, or one row for every prompt."
        )


def _allowed_rows(allowed: Any, first_row: int, batch_size: int, vocab_size: int) -> np.ndarray | None:
    """The rows of a token mask a chooser of ``batch_size`` rows reads from ``first_row`` (a one-row mask serves all)."""
    if allowed is None:
        return None
    _check_width(allowed, vocab_size)
    if len(allowed) == 1:
        return allowed
    if first_row + batch_size > len(allowed):
        raise ValueError(
            f"token_bitmasks has {len(allowed)} rows; this generation needs {first_row + batch_size} (one per batch row or "
            "continuous-batching slot), or a single row for all."
        )
    return allowed[first_row : first_row + batch_size]


def _check_width(allowed: np.ndarray, vocab_size: int) -> None:
    if allowed.shape[1] != vocab_size:
        raise ValueError(
            f"token_bitmasks is {allowed.shape[1]} tokens wide; this model's logits are {vocab_size}: give one column per token."
        )
