"""Beam search inside continuous batching (vLLM's ``use_beam_search`` on the server): one request holds ``num_beams``
slots of the engine, its prompt prefilled once and its cache row copied to the others; each decode step its rows'
logits go through transformers' beam search (generation/beam_search.py, no logits processors: the search alone, as
vLLM's has none) and the group's cache rows are reordered in place among its own slots, while the other slots go on.
"""

from __future__ import annotations

import time

import numpy as np

from QEfficient.generation.beam_search import BeamSearch, BeamSettings, log_softmax


class BeamGroup:
    """The beams of one request in the engine's ``slots`` (its cache rows), stepped with the engine's decode steps."""

    def __init__(self, engine, request, slots: list[int], logits: np.ndarray) -> None:
        """``logits`` [1, V]: the prompt's next-token logits, its cache already in ``slots[0]``."""
        self.engine, self.request, self.slots = engine, request, list(slots)
        settings: BeamSettings = request.beams
        prompt = np.asarray([request.tokens], np.int64)
        session = engine.session
        steps = max(1, min(request.max_new_tokens, session.ctx_len - len(request.tokens) + 1))
        self.ending = tuple(sorted(engine.ending_ids(request)))
        self.search = BeamSearch(prompt, settings, len(request.tokens) + steps, self.ending, engine.pad_id)
        for slot in self.slots:
            engine.groups[slot] = self
        self._reorder([0] * len(self.slots), len(request.tokens))  # every beam starts from the prompt's cache
        self.advance(np.repeat(logits, len(self.slots), 0))

    def _reorder(self, origins, length: int) -> None:
        """Beam i's cache row continues from beam ``origins[i]``'s (the first ``length`` slots); other rows stay."""
        rows = np.arange(self.engine.session.batch_size)
        rows[self.slots] = np.asarray(self.slots)[np.asarray(origins)]
        self.engine.session.reorder_rows(rows, length)

    def advance(self, logits: np.ndarray) -> None:
        """One step of the search from the beams' logits [num_beams, V]; the group ends when the search does."""
        search = self.search
        going = search.step(log_softmax(logits)) and not self.request.cancelled.is_set()
        if self.request.first_token_time is None:
            self.request.first_token_time = time.perf_counter()
        if not going:
            self.end()
            return
        self._reorder(search.cache_rows, search.cur_len - 1)  # the slots written so far
        tokens = search.next_tokens
        for i, slot in enumerate(self.slots):
            self.engine.last[slot], self.engine.positions[slot] = tokens[i], search.cur_len - 1

    def end(self) -> None:
        """The best num_return_sequences hypotheses into the request (``beam_outputs``: each one's new tokens, up to and
        with its end token, ``beam_finish_reasons``: "stop" where it ends so, else "length"; ``output``: the best's),
        its slots freed."""
        request, prompt_len = self.request, len(self.request.tokens)
        outputs = []
        for sequence in self.search.best():
            new = [int(t) for t in sequence[prompt_len:]]
            end = next((i for i, t in enumerate(new) if t in self.ending), None)
            outputs.append(new if end is None else new[: end + 1])
        request.beam_finish_reasons = ["stop" if out and out[-1] in self.ending else "length" for out in outputs]
        request.beam_outputs = outputs
        request.output[:] = outputs[0]
        self.engine.end_group(self, "cancelled" if request.cancelled.is_set() else request.beam_finish_reasons[0])
