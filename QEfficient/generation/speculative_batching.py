"""Continuous batching with speculation: every step verifies each busy slot's drafts (its pending
token plus up to K tokens from prompt lookup or a draft model) in one run of the target graph.

Greedy requests keep the drafts the target agrees with, so each one's tokens are plain greedy
decoding's; a sampling request (or one with a repetition penalty) takes one token a step from the
first column, as in plain continuous batching. A request with a grammar (structured output) checks
its drafts one by one against the target's logits masked by the grammar as it stands after the
tokens kept before them, so its tokens are those of constrained greedy decoding; its drafts are what the grammar
forces next, else the drafter's up to the first token the grammar refuses. Rejected positions
are simply overwritten later: positions drive the cache writes and a query never sees slots past
its own position.
"""

from __future__ import annotations

import time

import numpy as np

from QEfficient.generation.continuous_batching import ContinuousBatchingEngine
from QEfficient.generation.speculative import ModelDrafter, PromptLookupDrafter


def greedy_request(request) -> bool:
    """Whether the request's drafts are verified by plain argmax: greedy, with no ending ids still masked (min_tokens)."""
    return request.sampling.plain_greedy and len(request.output) >= request.min_tokens


class SpeculativeBatchingEngine(ContinuousBatchingEngine):
    """A ContinuousBatchingEngine over a speculative target session (``run_all``), drafting by prompt
    lookup, or with ``drafter`` (a ModelDrafter over a draft session with the same slots)."""

    supports_beams = False

    def __init__(
        self,
        session,
        prefill_seq_len: int,
        eos_ids,
        pad_id: int,
        num_tokens: int,
        max_ngram_size: int = 2,
        drafter=None,
        min_ngram_size: int = 2,
    ) -> None:
        super().__init__(session, prefill_seq_len, eos_ids, pad_id)
        self.drafter = drafter or PromptLookupDrafter(num_tokens, max_ngram_size, min_ngram_size)
        self.num_tokens = num_tokens
        self.stats = {"drafted": 0, "accepted": 0, "verify_steps": 0}

    def _prefill_request(self, slot: int, request) -> np.ndarray:
        logits = super()._prefill_request(slot, request)
        if isinstance(self.drafter, ModelDrafter):
            self.drafter.start_slot(slot, request.tokens)
        return logits

    def step(self) -> None:
        self._admit()
        for slot in self.busy_slots():
            if self.slots[slot].cancelled.is_set():
                self._finish(slot, "cancelled")
        active_slots = self.busy_slots()
        if not active_slots:
            return
        start = time.perf_counter()
        rows = len(self.slots)
        greedy = np.zeros(rows, dtype=bool)
        greedy[[s for s in active_slots if greedy_request(self.slots[s])]] = True
        # The verify chunk's last position must stay inside the cache.
        k = int(min(self.num_tokens, self.session.ctx_len - 1 - self.positions[active_slots].max()))
        drafts = np.zeros((rows, max(k, 0)), dtype=np.int64)
        counts = np.zeros(rows, dtype=np.int64)
        if k > 0 and greedy.any():
            history = [self.slots[s].tokens + self.slots[s].output if greedy[s] else [] for s in range(rows)]
            drafts, counts = self.drafter.propose(history, greedy, k)
            own = drafts  # what the drafter proposed (its cache holds them); _grammar_drafts writes a new array
            drafts, counts, forced = self._grammar_drafts(drafts, counts, k, greedy)
            k = int(counts.max())
            drafts = drafts[:, :k]
            kept = np.full(rows, -1, dtype=np.int64)
        else:
            k = 0
            drafts = drafts[:, :0]
        ids = np.concatenate([self.last[:, None], drafts], axis=1)
        pos = self.positions[:, None] + np.arange(k + 1)
        pos[self.positions < 0] = -1  # idle slots: padding
        pos[~greedy, 1:] = -1  # sampling rows: one token, the rest padding
        logits = self.session.run_all(ids, pos)
        self.decode_steps += 1
        self.stats["verify_steps"] += 1
        for slot in active_slots:
            request = self.slots[slot]
            if not greedy[slot]:
                token, scored = self._choose(slot, logits[slot, :1])
                self.positions[slot] += 1
                self._emit(slot, token, scored)
                continue
            if request.constraint is not None:
                m = self._verify_constrained(slot, drafts[slot], logits[slot])
            else:
                target = logits[slot].argmax(-1)
                match = drafts[slot] == target[:k]
                m = k if match.all() else int(match.argmin())
                for i, token in enumerate([*drafts[slot, :m].tolist(), int(target[m])]):
                    self.positions[slot] += 1
                    self._emit(slot, token, logits[slot, i])
                    if self.slots[slot] is not request:  # finished (EOS, length, cancelled)
                        break
            if k > 0:  # a grammar's drafts count for the drafter while they are its own
                kept[slot] = m if request.constraint is None else _common_prefix(own[slot], drafts[slot, :m])
            self.stats["drafted"] += int(counts[slot])
            self.stats["accepted"] += min(m, int(counts[slot]))
        if k > 0:  # rows whose drafts the grammar forced say nothing of how far the drafter's own would have gone
            self.drafter.accepted(kept, judged=~forced)
        self.decode_time += time.perf_counter() - start

    def _grammar_drafts(
        self, drafts: np.ndarray, counts: np.ndarray, budget: int, greedy: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each greedy row with a grammar drafts what the grammar forces (a JSON schema's keys and punctuation), else
        the drafter's tokens up to the first one the grammar refuses, which would be rejected anyway. Returns the
        drafts, their counts and, per row, whether the grammar forced its drafts (the drafter's were not judged)."""
        forced = np.zeros(drafts.shape[0], dtype=bool)
        chosen = {}
        for slot in np.flatnonzero(greedy):
            constraint = self.slots[slot].constraint
            if constraint is not None:
                chosen[slot], forced[slot] = constraint.drafts(drafts[slot, : counts[slot]].tolist(), budget)
        if not chosen:
            return drafts, counts, forced
        width = max(drafts.shape[1], *(len(tokens) for tokens in chosen.values()))
        widened = np.zeros((drafts.shape[0], width), dtype=np.int64)
        widened[:, : drafts.shape[1]] = drafts
        counts = counts.copy()
        for slot, tokens in chosen.items():
            widened[slot, : len(tokens)] = tokens
            counts[slot] = len(tokens)
        return widened, counts, forced

    def _verify_constrained(self, slot: int, drafts: np.ndarray, logits: np.ndarray) -> int:
        """Emit the slot's tokens under its grammar: position i's logits masked after the tokens kept before it, its
        greedy choice kept, and the next position tried only while that choice is the draft. Returns the drafts kept."""
        request, kept = self.slots[slot], 0
        while True:
            token, scored = self._choose(slot, logits[kept : kept + 1])
            self.positions[slot] += 1
            self._emit(slot, token, scored)
            agrees = kept < len(drafts) and token == int(drafts[kept])
            if self.slots[slot] is not request:  # finished: a last token that was the draft counts, as unconstrained
                return kept + int(agrees)
            if not agrees:
                return kept
            kept += 1

    @property
    def acceptance_rate(self) -> float:
        return self.stats["accepted"] / self.stats["drafted"] if self.stats["drafted"] else 0.0


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n
