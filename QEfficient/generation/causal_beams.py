"""Beam search for a causal LM, as transformers' ``generate(num_beams=...)``: each prompt prefilled into its num_beams
cache rows, then transformers' search (generation/beam_search.py) with the checkpoint's logits processors, the rows
reordered in place each step.

A batch of prompts of different lengths is laid out as transformers lays it out (left-padded, so that the processors
and the length penalty see the same sequences), while each row's cache holds its own tokens from position 0: a row's
positions count from its first real token, as transformers' do from the attention mask.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from QEfficient.generation.beam_search import BeamSearch, BeamSettings
from QEfficient.generation.seq2seq_generation import Seq2SeqRules, _ids
from QEfficient.generation.text_generation import TextGeneration, prefill

# generation-config fields transformers' beam search would apply that are not applied here (a warning names them)
UNAPPLIED = {"encoder_repetition_penalty": 1.0, "sequence_bias": None, "exponential_decay_length_penalty": None, "do_sample": False}


def causal_rules(generation_config, eos_ids, pad_id: int, min_new_tokens: int | None = None) -> tuple[Seq2SeqRules, int | None]:
    """The checkpoint's logits processors as a causal LM's generate applies them (``min_length`` counts the prompt, no
    forced BOS: transformers forces it at the first position only; the prompt is the "encoder" input of
    ``encoder_no_repeat_ngram_size``), and the ``min_new_tokens`` that replaces ``min_length`` where given."""
    g = generation_config
    min_new = min_new_tokens if min_new_tokens is not None else getattr(g, "min_new_tokens", None)
    bad_words = tuple(tuple(int(t) for t in word) for word in (g.bad_words_ids or ()) if list(word) not in [[e] for e in eos_ids])
    rules = Seq2SeqRules(
        decoder_start_token_id=0,  # not read: the prompt starts the sequence
        eos_token_ids=tuple(sorted(eos_ids)),
        pad_token_id=pad_id,
        max_new_tokens=g.max_new_tokens or 0,
        forced_eos_token_ids=_ids(g.forced_eos_token_id),
        min_length=g.min_length or 0,
        no_repeat_ngram_size=g.no_repeat_ngram_size or 0,
        encoder_no_repeat_ngram_size=g.encoder_no_repeat_ngram_size or 0,
        repetition_penalty=float(g.repetition_penalty or 1.0),
        bad_words_ids=bad_words,
        suppress_tokens=_ids(g.suppress_tokens),
        begin_suppress_tokens=_ids(g.begin_suppress_tokens),
    )
    return rules, min_new


def unapplied(generation_config) -> list[str]:
    """The checkpoint's fields that would change transformers' beam search and are not applied here."""
    return [name for name, default in UNAPPLIED.items() if getattr(generation_config, name, default) not in (default, None)]


class BeamTextGeneration(TextGeneration):
    """TextGeneration whose prompts each run ``beams.num_beams`` cache rows (the session's rows: batch_size x num_beams)
    and return their ``num_return_sequences`` best hypotheses."""

    def __init__(
        self, session, tokenizer, prefill_seq_len: int, eos_ids, beams: BeamSettings, rules: Seq2SeqRules, min_new: int | None
    ) -> None:
        super().__init__(session, tokenizer, prefill_seq_len, eos_ids)
        self.rows_per_prompt = beams.num_return_sequences  # each prompt's best hypotheses, in turn
        if session.batch_size % beams.num_beams:
            raise ValueError(f"The session has {session.batch_size} rows, not a multiple of num_beams={beams.num_beams}.")
        self.beams, self.rules, self.min_new = beams, rules, min_new
        self.batch_size = session.batch_size // beams.num_beams  # prompts per batch

    def generate_batch(self, prompts, generation_len, streamer=None, token_lists=None, first_index: int = 0):
        start = time.perf_counter()
        token_lists = token_lists if token_lists is not None else self.tokenize(prompts, first_index)
        beams = self.beams.num_beams
        self.session.reset()
        lengths = np.array([len(t) for t in token_lists], np.int64)
        width = int(lengths.max())
        room = self.ctx_len - width + 1  # the longest prompt's last token needs no slot of its own
        steps = room if generation_len is None else min(room, generation_len)
        rows = [t for t in token_lists for _ in range(beams)]
        logits = prefill(self.session.run, rows, self.session.batch_size, self.prefill_seq_len, self.ctx_len, self.pad_id)
        first_token = time.perf_counter()
        padded = np.full((len(token_lists), width), self.pad_id, np.int64)  # transformers' left-padded batch
        for r, tokens in enumerate(token_lists):
            padded[r, width - len(tokens) :] = tokens
        # transformers: min_new_tokens, where given, sets min_length to the prompt's width plus it
        rules = self.rules if self.min_new is None else replace(self.rules, min_length=width + self.min_new)
        search = BeamSearch(padded, self.beams, width + steps, rules.eos_token_ids, self.pad_id)
        prompts = np.repeat(padded, beams, 0)
        offsets = np.repeat(width - lengths, beams)

        def process(step: int, log_probs: np.ndarray) -> np.ndarray:
            return rules.scores(log_probs, search.running_flat, step, step == steps - 1, prompts, offsets)

        search.run(self.session, logits, steps, process, lambda: None, offsets)
        generated = [row[width:] for row in search.best()]  # each prompt's num_return_sequences best, in turn
        out = np.full((len(generated), max(1, max(len(g) for g in generated))), self.pad_id, np.int64)
        eos = np.array(rules.eos_token_ids or (-1,))
        counts = []
        for r, tokens in enumerate(generated):
            ends = np.flatnonzero(np.isin(tokens, eos))
            tokens = tokens[: ends[0] + 1] if len(ends) else tokens
            out[r, : len(tokens)] = tokens
            counts.append(len(tokens))
        end = time.perf_counter()
        if streamer is not None:  # the best hypothesis is known at the end only
            streamer.put(out[0, : counts[0]])
            streamer.end()
        texts = [self.tokenizer.decode(out[r, : counts[r]], skip_special_tokens=True) for r in range(len(generated))]
        timing = {"start": start, "first_token": first_token, "end": end, "decode_steps": max(counts) - 1}
        return texts, out, timing
