"""Speculative decoding with exact greedy output: drafts are verified K+1 positions at a time.

Each round a drafter proposes up to K tokens per row; the target graph (compiled with
``qaic_config={"speculative_model_type": "target"}``) scores the row's pending token and the K
drafts in one run, through the same in-place cache. A row keeps the drafts that equal the target's
own greedy choice, plus the target's token after them, so the output is plain greedy decoding's,
token for token.

Rejected positions need no rollback: the cache is written at ``position_ids`` and a query at
position p only sees slots 0..p (transform/static_kv.py), so a stale entry past a row's accepted
length is invisible until the next step rewrites its slot (writes precede reads in every step).
The draft model's cache works the same way.
"""

from __future__ import annotations

import time

import numpy as np

from QEfficient.generation.text_generation import TextGeneration, prefill
from QEfficient.runtime.ort_session import KVCacheSession


class SpeculativeUnsupportedError(ValueError):
    pass


class PromptLookupDrafter:
    """transformers' prompt lookup: the tokens that followed the latest n-gram's earliest earlier
    occurrence in the row's own tokens (prompt and generated), longest n-gram first, down to
    ``min_ngram_size`` (1 as in transformers; 2 skips single-token matches, which are mostly wrong
    guesses that only lengthen the verify step)."""

    def __init__(self, num_tokens: int, max_ngram_size: int = 2, min_ngram_size: int = 1) -> None:
        self.num_tokens = num_tokens
        self.max_ngram_size = max_ngram_size
        self.min_ngram_size = max(1, min(min_ngram_size, max_ngram_size))

    def start(self, token_lists: list[list[int]]) -> None:
        pass

    def propose(self, seqs: list[list[int]], active: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        drafts = np.zeros((len(seqs), k), dtype=np.int64)
        counts = np.zeros(len(seqs), dtype=np.int64)
        for row in np.flatnonzero(active):
            found = self._lookup(np.asarray(seqs[row], dtype=np.int64), k)
            drafts[row, : len(found)] = found
            drafts[row, len(found) :] = seqs[row][-1]  # filler: kept only if the target picks it too
            counts[row] = len(found)
        return drafts, counts

    def _lookup(self, tokens: np.ndarray, k: int) -> np.ndarray:
        for n in range(min(self.max_ngram_size, len(tokens) - 1), self.min_ngram_size - 1, -1):
            windows = np.lib.stride_tricks.sliding_window_view(tokens[:-1], n)
            hits = np.flatnonzero((windows == tokens[-n:]).all(axis=1))
            for start in hits + n:
                if start < len(tokens):
                    return tokens[start : start + k]
        return tokens[:0]

    def accepted(self, kept: np.ndarray, judged: np.ndarray | None = None) -> None:
        pass


class DraftLength:
    """How many tokens a draft model proposes next: ``schedule="constant"`` keeps ``start``;
    ``"heuristic"`` (transformers' num_assistant_tokens_schedule) adds 2 after a round whose drafts
    were all kept and takes 1 off otherwise, within 1..``budget``."""

    SCHEDULES = ("constant", "heuristic")

    def __init__(self, start: int, budget: int, schedule: str = "heuristic") -> None:
        if schedule not in self.SCHEDULES:
            raise ValueError(f"num_assistant_tokens_schedule must be one of {self.SCHEDULES}, got {schedule!r}.")
        self.k, self.budget, self.adaptive = min(start, budget), budget, schedule == "heuristic"

    def update(self, kept: np.ndarray, active: np.ndarray, k: int) -> None:
        if self.adaptive and k > 0 and active.any():
            self.k = min(self.budget, self.k + 2) if bool((kept[active] >= k).all()) else max(1, self.k - 1)


class ModelDrafter:
    """A draft model's greedy tokens, from its own in-place cache (any artifact with the target's
    batch size and at least its ctx_len: a smaller model, or the same model's compressed artifact)."""

    def __init__(
        self,
        session: KVCacheSession,
        prefill_seq_len: int,
        num_tokens: int,
        pad_id: int,
        schedule: str = "heuristic",
        budget: int | None = None,
    ) -> None:
        self.session = session
        self.prefill_seq_len = prefill_seq_len
        self.num_tokens = num_tokens
        self.length = DraftLength(num_tokens, budget or num_tokens, schedule)  # budget: the most a round may draft
        self.pad_id = pad_id
        self.fed = np.zeros(session.batch_size, dtype=np.int64)  # draft cache holds positions < fed
        self._base = np.zeros(session.batch_size, dtype=np.int64)
        self._k = 0

    def start_slot(self, slot: int, tokens: list[int]) -> None:
        """One request's prompt into draft cache row ``slot`` (continuous batching; the other rows
        may be mid-request, so the cache window is never reset here)."""
        prefill(self.session.slot(slot).run, [tokens], 1, self.prefill_seq_len, self.session.ctx_len, self.pad_id)
        self.fed[slot] = len(tokens)

    def start(self, token_lists: list[list[int]]) -> None:
        self.session.reset()
        prefill(self.session.run, token_lists, self.session.batch_size, self.prefill_seq_len, self.session.ctx_len, self.pad_id)
        self.fed[:] = [len(t) for t in token_lists]

    def propose(self, seqs: list[list[int]], active: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.length.k)
        rows = self.session.batch_size
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        pending = [seqs[r][self.fed[r] :] if active[r] else [] for r in range(rows)]
        width = max(len(p) for p in pending)
        ids = np.full((rows, width), self.pad_id, dtype=np.int64)
        pos = np.full((rows, width), -1, dtype=np.int64)
        for r, tokens in enumerate(pending):
            ids[r, : len(tokens)] = tokens
            pos[r, : len(tokens)] = np.arange(self.fed[r], self.fed[r] + len(tokens))
        drafts = np.zeros((rows, k), dtype=np.int64)
        drafts[:, 0] = self.session.run(ids, pos).argmax(-1)
        step_pos = np.where(active, lengths, -1)[:, None]
        for i in range(1, k):
            drafts[:, i] = self.session.run(drafts[:, i - 1 : i], step_pos).argmax(-1)
            step_pos = np.where(active[:, None], step_pos + 1, -1)
        self._base, self._k = lengths, k
        return drafts, np.where(active, k, 0)

    def accepted(self, kept: np.ndarray, judged: np.ndarray | None = None) -> None:
        """``kept``: per row, how many of its drafts stay in this drafter's cache (-1: the row did not draft).
        ``judged``: the rows whose verification judged this drafter's own tokens (not those a grammar forced instead),
        the only ones the adaptive draft length learns from (default: every row that drafted)."""
        # Draft i (1-based, i < k) was fed at position base + i - 1; the kept ones stay valid.
        self.fed = np.where(kept >= 0, self._base + np.minimum(kept, self._k - 1), self.fed)
        self.length.update(kept, (kept >= 0) if judged is None else (kept >= 0) & judged, self._k)


class SpeculativeGeneration(TextGeneration):
    """Greedy generation over an ``AllLogitsKVSession`` (a speculative target artifact), drafting
    with ``drafter``; ``stats`` counts drafted and accepted tokens."""

    def __init__(self, session, tokenizer, prefill_seq_len: int, eos_ids, drafter, num_tokens: int) -> None:
        if not hasattr(session, "run_all"):
            raise SpeculativeUnsupportedError(
                "Speculative decoding needs a target artifact that scores every position: load the model with "
                "from_pretrained(..., qaic_config={'speculative_model_type': 'target'}) and compile(num_speculative_tokens=K)."
            )
        super().__init__(session, tokenizer, prefill_seq_len, eos_ids)
        self.drafter = drafter
        self.num_tokens = num_tokens
        self.stats = {"drafted": 0, "accepted": 0, "verify_steps": 0}

    def generate_batch(self, prompts, generation_len, streamer=None, token_lists=None, first_index: int = 0):
        start = time.perf_counter()
        token_lists = token_lists if token_lists is not None else self.tokenize(prompts, first_index)
        self.session.reset()
        lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
        capacity = self.ctx_len - lengths + 1  # as plain generation: the last token needs no slot
        limit = capacity if generation_len is None else np.minimum(capacity, generation_len)
        first = self._prefill(token_lists).argmax(-1)
        self.drafter.start(token_lists)
        first_token_time = time.perf_counter()
        seqs = [list(t) + [int(first[r])] for r, t in enumerate(token_lists)]
        outputs = [[int(first[r])] for r in range(self.batch_size)]
        done = np.array([first[r] in self.eos_ids or limit[r] <= 1 for r in range(self.batch_size)])
        if streamer is not None:
            streamer.put(first[:1])
        steps = 0
        while not done.all():
            active = ~done
            seq_len = np.array([len(s) for s in seqs], dtype=np.int64)
            # Verify positions run to L-1+k: they must stay inside the cache.
            k = int(min(self.num_tokens, self.ctx_len - seq_len[active].max()))
            drafts, counts = self.drafter.propose(seqs, active, k) if k > 0 else (np.zeros((self.batch_size, 0), np.int64), None)
            if counts is not None:
                k = int(counts[active].max())  # no row has more real drafts: don't verify filler
                drafts = drafts[:, :k]
            ids = np.concatenate([np.array([s[-1] for s in seqs], dtype=np.int64)[:, None], drafts], axis=1)
            pos = np.where(active[:, None], (seq_len - 1)[:, None] + np.arange(k + 1), -1)
            target = self.session.run_all(ids, pos).argmax(-1)  # [B, k+1]
            steps += 1
            kept = np.full(self.batch_size, -1, dtype=np.int64)
            for r in np.flatnonzero(active):
                match = drafts[r] == target[r, :k]
                m = k if match.all() else int(match.argmin())
                kept[r] = m
                self.stats["drafted"] += int(counts[r]) if counts is not None else 0
                self.stats["accepted"] += min(m, int(counts[r])) if counts is not None else 0
                for token in [*drafts[r, :m].tolist(), int(target[r, m])]:
                    seqs[r].append(token)
                    outputs[r].append(token)
                    if streamer is not None and r == 0:
                        streamer.put(np.array([token]))
                    if token in self.eos_ids or len(outputs[r]) >= limit[r]:
                        done[r] = True
                        break
            if k > 0:
                self.drafter.accepted(kept)
        self.stats["verify_steps"] += steps
        end = time.perf_counter()
        if streamer is not None:
            streamer.end()
        out = np.full((self.batch_size, int(limit.max())), self.pad_id, dtype=np.int64)
        for r, tokens in enumerate(outputs):
            out[r, : len(tokens)] = tokens
        texts = [self.tokenizer.decode(t, skip_special_tokens=True) for t in outputs]
        # decode_steps counts generated tokens after the first, so decode_perf is tokens per second
        timing = {
            "start": start,
            "first_token": first_token_time,
            "end": end,
            "decode_steps": sum(len(o) for o in outputs) // self.batch_size - 1,
        }
        return texts, out, timing

    @property
    def acceptance_rate(self) -> float:
        return self.stats["accepted"] / self.stats["drafted"] if self.stats["drafted"] else 0.0
