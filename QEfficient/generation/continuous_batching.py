"""Continuous batching: F cache slots, each request prefilled alone into a free slot, every decode
step advancing all busy slots at once, a finished slot refilled from the queue at once.

Rows of the cache never mix: attention, the scatter and padding writes are per row, so a request
gives the same greedy tokens whatever shares the batch with it. Prefill runs on one row through a
view of that row's memory (``KVCacheSession.run_slot``); decode binds the whole cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from QEfficient.generation.beam_batching import BeamGroup
from QEfficient.generation.beam_search import BeamSettings
from QEfficient.generation.logprobs import PromptTokenScore, score_prompt, token_logprobs
from QEfficient.generation.sampling import NoTokenLeft, RowChooser, SamplingParams, TokenChooser, token_chooser
from QEfficient.generation.text_generation import prefill
from QEfficient.runtime.ort_session import KVCacheSession

logger = logging.getLogger(__name__)


@dataclass
class Request:
    """One prompt. ``on_token(request, token)`` is called for every new token (streaming)."""

    tokens: list[int]
    max_new_tokens: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    on_token: Callable[[Request, int], None] | None = None
    on_done: Callable[[Request], None] | None = None
    output: list[int] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    finish_reason: str | None = None
    submitted: float = field(default_factory=time.perf_counter)
    first_token_time: float | None = None
    extra: dict = field(default_factory=dict)  # what a model's prefill needs beyond tokens (images)
    error: Exception | None = None  # why the request failed (finish_reason "error")
    # top_logprobs=None records nothing (the decode step stays as cheap); N >= 0 records, for every
    # new token, its log-probability and the N likeliest alternatives (see token_logprobs)
    top_logprobs: int | None = None
    logprobs: list[tuple[float, list[int], list[float]]] = field(default_factory=list)
    # structured output (generation/constraints.GrammarConstraint): masks each step's logits, stops when complete
    constraint: Any = None
    # vLLM's stop controls: more ids that end the request, EOS generated like any token, and no ending id (their
    # logits masked) before min_tokens new tokens
    stop_token_ids: frozenset[int] = frozenset()
    ignore_eos: bool = False
    min_tokens: int = 0
    # prompt_logprobs=N scores the prompt as it is prefilled: prompt_scores gets one generation/logprobs.PromptTokenScore
    # per prompt token (None for the first), with the N likeliest alternatives
    prompt_logprobs: int | None = None
    prompt_scores: list[PromptTokenScore | None] = field(default_factory=list)
    # set by a reader that ends the request at a stop string, before it cancels it: the tokens that count (the engine
    # may write one more before it sees the cancel)
    stopped_at: int | None = None
    counted: bool = False  # in a server's metrics (serving/app.py), which count each request once
    prompt_only: bool = False  # the prompt alone is the answer (vLLM's echo with max_tokens 0): no token written counts
    finished_at: float | None = None  # when the engine ended it (perf_counter)
    # vLLM's use_beam_search: transformers' beam search over beams.num_beams slots (generation/beam_batching.py), its
    # best hypotheses' new tokens and finish reasons in beam_outputs / beam_finish_reasons once done
    beams: BeamSettings | None = None
    beam_outputs: list[list[int]] = field(default_factory=list)
    beam_finish_reasons: list[str] = field(default_factory=list)


class ContinuousBatchingEngine:
    supports_beams = True  # beam-search requests (generation/beam_batching.py); engines with more per slot do not

    def __init__(self, session: KVCacheSession, prefill_seq_len: int, eos_ids, pad_id: int) -> None:
        self.session = session
        self.slots: list[Request | None] = [None] * session.batch_size
        self.positions = np.full(session.batch_size, -1, dtype=np.int64)
        self.last = np.full(session.batch_size, pad_id, dtype=np.int64)
        self.choosers: list[TokenChooser | RowChooser | None] = [None] * session.batch_size
        self.waiting: deque[Request] = deque()
        self.prefill_seq_len = prefill_seq_len
        self.eos_ids = frozenset(int(i) for i in eos_ids)
        self.pad_id = pad_id
        self.vocab = session.slot_logits.shape()[-1]
        self.decode_steps = 0
        self.decode_time = 0.0
        self.groups: dict[int, BeamGroup] = {}  # slot -> the beam search holding it

    def submit(self, request: Request) -> None:
        if len(request.tokens) > self.session.ctx_len or not request.tokens:
            raise ValueError(f"The prompt has {len(request.tokens)} tokens; it must have 1 to ctx_len={self.session.ctx_len}.")
        if request.beams is not None and request.beams.num_beams > self.beam_slots:
            where = f"{self.beam_slots} slots" if self.beam_slots else f"this {type(self).__name__}, which runs no beam search"
            raise ValueError(f"A beam search of num_beams={request.beams.num_beams} cannot run on {where}.")
        self.waiting.append(request)

    @property
    def busy(self) -> bool:
        return bool(self.waiting) or any(s is not None for s in self.slots)

    def _choose(self, slot: int, logits: np.ndarray) -> tuple[int, np.ndarray]:
        """The slot's next token from its logits [1, V], within its grammar where it has one, and the logits it was
        chosen from: masked by the grammar, so a request's logprobs are those of what it may write (as vLLM's)."""
        request = self.slots[slot]
        held = logits
        if len(request.output) < request.min_tokens:  # an ending id cannot come yet (vLLM's min_tokens)
            held = logits.copy()
            held[..., sorted(self.ending_ids(request))] = -np.inf
        scored = held if request.constraint is None else request.constraint.mask(held)
        if held is not logits and request.constraint is not None and not np.isfinite(scored).any():  # only an ending id fits
            scored = request.constraint.mask(logits)
        try:
            return int(self.choosers[slot](scored)[0]), scored
        except NoTokenLeft as err:  # this request fails alone (_emit ends it)
            request.error = err
            return -1, scored

    def ending_ids(self, request: Request) -> frozenset[int]:
        """The ids that end ``request``: the model's EOS ids (unless it ignores them) and its own stop ids."""
        if not request.stop_token_ids:
            return frozenset() if request.ignore_eos else self.eos_ids
        return request.stop_token_ids if request.ignore_eos else request.stop_token_ids | self.eos_ids

    def _emit(self, slot: int, token: int, logits: np.ndarray | None = None) -> None:
        request = self.slots[slot]
        if token < 0:  # no token could be chosen (_choose): the request ends with its error
            self._finish(slot, "error")
            return
        if request.top_logprobs is not None and logits is not None:  # first: a reader never sees a token without its entry
            request.logprobs.append(token_logprobs(logits, token, request.top_logprobs))
        request.output.append(token)
        if request.first_token_time is None:
            request.first_token_time = time.perf_counter()
        if request.on_token is not None:
            request.on_token(request, token)
        limit = min(request.max_new_tokens, self.session.ctx_len - len(request.tokens) + 1)
        reason = "stop" if token in self.ending_ids(request) else ("length" if len(request.output) >= limit else None)
        if request.constraint is not None:
            try:
                if request.constraint.advance(token):  # the grammar allows nothing more
                    reason = "stop"
            except ValueError as err:  # the grammar refused a token it had allowed: this request fails alone
                request.error, reason = err, "error"
        if request.cancelled.is_set():
            reason = "cancelled"
        if reason is not None:
            self._finish(slot, reason)
        else:
            self.last[slot] = token

    def _finish(self, slot: int, reason: str) -> None:
        if slot in self.groups:  # a beam search's slot: the search ends, all its slots freed, answered once
            self.end_group(self.groups[slot], reason)
            return
        request = self.slots[slot]
        request.finish_reason, request.finished_at = reason, time.perf_counter()
        self._free(slot)
        if request.on_done is not None:
            request.on_done(request)

    def _free(self, slot: int) -> None:
        self.groups.pop(slot, None)
        self.slots[slot], self.choosers[slot], self.positions[slot], self.last[slot] = None, None, -1, self.pad_id

    def _admit(self) -> None:
        for slot in range(len(self.slots)):
            while self.slots[slot] is None and self.waiting:
                if self.waiting[0].beams is not None:  # in turn: it waits until it has its slots
                    if not self._admit_beams():
                        return
                    continue
                request = self.waiting.popleft()
                if request.cancelled.is_set():
                    request.finish_reason = "cancelled"
                    if request.on_done is not None:
                        request.on_done(request)
                    continue
                if not self.busy_slots():
                    self.session.reset()  # nothing else in flight: start from the smallest window again
                try:
                    chooser = token_chooser(request.sampling, 1, self.vocab, first_row=slot)
                    chooser.prime([request.tokens])
                    logits = self._prefill_request(slot, request)
                except Exception as err:  # this request fails alone: it is answered, and the slot stays free
                    if request.cancelled.is_set():  # its client left while its prompt was scored
                        request.finish_reason = "cancelled"
                    else:
                        logger.exception("prefill failed")
                        request.finish_reason, request.error = "error", err
                    if request.on_done is not None:
                        request.on_done(request)
                    continue
                self.slots[slot], self.choosers[slot] = request, chooser
                self.positions[slot] = len(request.tokens)
                self._emit(slot, *self._choose(slot, logits))  # may finish (EOS / length 1) and free the slot again

    def _admit_beams(self) -> bool:
        """The first waiting request, a beam search, into free slots if there are enough; False if there are not."""
        request = self.waiting[0]
        free = [i for i, s in enumerate(self.slots) if s is None]
        if len(free) < request.beams.num_beams and not request.cancelled.is_set():
            return False
        self.waiting.popleft()
        slots = free[: request.beams.num_beams]
        if request.cancelled.is_set():
            request.finish_reason = "cancelled"
        else:
            if not self.busy_slots():
                self.session.reset()
            try:
                logits = self._prefill_request(slots[0], request)
                for slot in slots:
                    self.slots[slot] = request
                BeamGroup(self, request, slots, logits)  # registers itself, or ends at once
                return True
            except Exception as err:  # this request fails alone
                logger.exception("beam search failed")
                for slot in slots:
                    self._free(slot)
                if request.finish_reason is not None:  # it ended, and its own callback failed: answered already
                    return True
                request.finish_reason, request.error = "error", err
        if request.on_done is not None:
            request.on_done(request)
        return True

    def end_group(self, group: BeamGroup, reason: str) -> None:
        """A beam search is over: its slots are freed, its request answered."""
        for slot in group.slots:
            self._free(slot)
        group.request.finish_reason, group.request.finished_at = reason, time.perf_counter()
        if group.request.on_done is not None:
            group.request.on_done(group.request)

    def _prefill_request(self, slot: int, request: Request) -> np.ndarray:
        """The request's prompt into cache row ``slot``; its next-token logits [1, V]."""
        return self._prefill_row(self.session.slot(slot), request)

    def _prefill_row(self, target, request: Request) -> np.ndarray:
        """The request's prompt through ``target`` (one cache row, with what it has bound), scored when it asks."""
        if request.prompt_logprobs is not None:
            scored = score_prompt(target, request.tokens, self.prefill_seq_len, request.prompt_logprobs, request.cancelled.is_set)
            request.prompt_scores, logits = scored
            return logits
        return prefill(target.run, [request.tokens], 1, self.prefill_seq_len, self.session.ctx_len, self.pad_id)

    def _before_decode(self) -> None:
        """Bind what a decode step needs beyond ids and positions (multimodal rotary positions)."""

    @property
    def beam_slots(self) -> int:
        """The most beams a beam-search request may have here: the slots, where the engine runs beam search and its
        cache rows move cheaply (in host memory; a device cache would cross to the host at every step)."""
        return len(self.slots) if self.supports_beams and getattr(self.session, "host_cache", False) else 0

    def busy_slots(self) -> list[int]:
        return [i for i, s in enumerate(self.slots) if s is not None]

    def step(self) -> None:
        """Admit waiting requests into free slots, then advance every busy slot by one token."""
        self._admit()
        active = self.busy_slots()
        if not active:
            return
        for slot in active:
            if self.slots[slot].cancelled.is_set() and slot not in self.groups:  # a beam search ends at its next step
                self._finish(slot, "cancelled")
        active = self.busy_slots()
        if not active:
            return
        start = time.perf_counter()
        self._before_decode()
        logits = self.session.run(self.last[:, None], self.positions[:, None])  # idle slots hold position -1 (padding)
        self.decode_steps += 1
        for slot in active:
            if slot in self.groups:
                continue
            token, scored = self._choose(slot, logits[slot : slot + 1])
            self.positions[slot] += 1
            self._emit(slot, token, scored)
        for group in {id(g): g for slot, g in self.groups.items() if slot in active}.values():
            group.advance(logits[group.slots])
        self.decode_time += time.perf_counter() - start

    def run_all(self, requests: list[Request]) -> list[Request]:
        for request in requests:
            self.submit(request)
        while self.busy:
            self.step()
        return requests
