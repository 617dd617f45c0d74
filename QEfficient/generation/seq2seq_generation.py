"""Greedy or sampled decoding of an encoder-decoder (text, or an image's) over two sessions: the encoder (once per batch
of inputs, whatever named inputs its graph reads) and the decoder
step (a KVCacheSession, its cache updated in place), with the checkpoint's generation rules that change greedy tokens
(transformers' logits processors of the same names): ``forced_bos_token_id`` (mBART's, NLLB's target language),
``forced_eos_token_id``, ``min_length`` / ``min_new_tokens``, ``no_repeat_ngram_size``, ``bad_words_ids`` and
``suppress_tokens``; beam search as transformers' (generation/beam_search.py) where the checkpoint or the call asks for
it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from QEfficient.export.graph_names import ATTENTION_MASK, ENCODER_ATTENTION_MASK, INPUT_IDS
from QEfficient.generation.beam_search import BeamSearch, BeamSettings
from QEfficient.generation.logprobs import token_logprobs
from QEfficient.generation.metrics import CloudAI100ExecInfo, PerfMetrics
from QEfficient.generation.sampling import draw, warped

# generation-config fields that change greedy tokens and are not applied here (a warning names them)
UNAPPLIED = {"encoder_repetition_penalty": 1.0, "sequence_bias": None, "exponential_decay_length_penalty": None}
# ... and the sampling warpers that are not applied (when sampling)
UNAPPLIED_WARPERS = {"typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0}


@dataclass(frozen=True)
class Sampling:
    """transformers' sampling of a generate call: its warpers' settings and a seed (numpy's generator, one per input)."""

    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float | None = 1.0
    min_p: float | None = None
    seed: int | None = None


def _config_token(config, name: str):
    """A special token's id from the model's config, else its decoder's (an image encoder-decoder's config names few)."""
    value = getattr(config, name, None)
    return value if value is not None else getattr(getattr(config, "decoder", None), name, None)


def _ids(value) -> tuple[int, ...]:
    return () if value is None else tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))


# transformers' length where a checkpoint sets neither max_length nor max_new_tokens: 20 new tokens after any prompt
DEFAULT_NEW_TOKENS = 20


@dataclass(frozen=True)
class Seq2SeqRules:
    """What a checkpoint's generation config asks of greedy decoding (transformers' fields and processors)."""

    decoder_start_token_id: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    max_new_tokens: int  # transformers' max_new_tokens, its max_length less the start token, or 20 (neither set)
    forced_bos_token_id: int | None = None
    forced_eos_token_ids: tuple[int, ...] = ()
    min_length: int = 0  # of the decoder's sequence, its start token included (transformers' min_length)
    no_repeat_ngram_size: int = 0
    encoder_no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    bad_words_ids: tuple[tuple[int, ...], ...] = field(default_factory=tuple)
    suppress_tokens: tuple[int, ...] = ()
    begin_suppress_tokens: tuple[int, ...] = ()
    min_new_tokens: int | None = None  # given: the minimum counts from the end of the decoder prompt
    max_length: int | None = None  # where the limit is a length (no max_new_tokens): the prompt counts in it
    positions: int | None = None  # neither set: transformers' default length stops at max_position_embeddings

    def new_tokens(self, prompt_len: int) -> int:
        """The most new tokens after a ``prompt_len``-token decoder prompt (transformers' max_new_tokens, else its
        max_length less the prompt)."""
        if self.max_length is not None:
            return max(1, self.max_length - prompt_len)
        return self.max_new_tokens if self.positions is None else max(1, min(self.max_new_tokens, self.positions - prompt_len))

    @classmethod
    def from_generation_config(cls, g, config, min_new_tokens: int | None = None, forced_bos_token_id: int | None = None) -> Seq2SeqRules:
        """The rules of generation config ``g`` (``config``'s tokens where it names none); ``min_new_tokens`` and
        ``forced_bos_token_id`` given here replace the checkpoint's (mBART's, NLLB's and M2M100's target language)."""
        candidates = (
            g.decoder_start_token_id,
            getattr(config, "decoder_start_token_id", None),
            g.bos_token_id,
            getattr(config, "bos_token_id", None),
        )
        start = next((v for v in candidates if v is not None), None)
        if start is None:
            raise ValueError("The model names no decoder_start_token_id (its generation config or config): set one.")
        eos = _ids(g.eos_token_id if g.eos_token_id is not None else _config_token(config, "eos_token_id"))
        pad = g.pad_token_id if g.pad_token_id is not None else _config_token(config, "pad_token_id")
        min_new_tokens = min_new_tokens if min_new_tokens is not None else g.min_new_tokens
        # transformers: min_new_tokens, where given, sets the minimum length in place of min_length
        min_length = 1 + min_new_tokens if min_new_tokens is not None else (g.min_length or 0)
        bad_words = tuple(tuple(int(t) for t in word) for word in (g.bad_words_ids or ()) if list(word) not in [[e] for e in eos])
        return cls(
            int(_ids(start)[0]),
            eos,
            int(pad if pad is not None else (eos[0] if eos else 0)),
            g.max_new_tokens or (max(1, g.max_length - 1) if g.max_length else DEFAULT_NEW_TOKENS),
            forced_bos_token_id if forced_bos_token_id is not None else g.forced_bos_token_id,
            _ids(g.forced_eos_token_id),
            min_length,
            g.no_repeat_ngram_size or 0,
            g.encoder_no_repeat_ngram_size or 0,
            float(g.repetition_penalty or 1.0),
            bad_words,
            _ids(g.suppress_tokens),
            _ids(g.begin_suppress_tokens),
            min_new_tokens,
            None if g.max_new_tokens else g.max_length,
            None if g.max_new_tokens or g.max_length else getattr(config, "max_position_embeddings", None),
        )

    def scores(
        self,
        logits: np.ndarray,
        sequences: np.ndarray,
        step: int,
        last_step: bool,
        encoder_ids: np.ndarray,
        padding: np.ndarray | None = None,
        prompt_len: int = 1,
    ) -> np.ndarray:
        """The logits of the next tokens [rows, vocab] after the rules, for ``sequences`` [rows, n] so far (their
        inputs ``encoder_ids``); ``last_step``: the token at transformers' maximum length (forced EOS); ``padding``: each
        row's leading pad tokens, which the repetition penalty does not count (transformers' ``prompt_ignore_length``);
        ``prompt_len``: the decoder prompt's tokens (forced BOS and the first step's suppression apply after a single
        start token only, as transformers' processors read the length)."""
        scores = np.array(logits, dtype=np.float32)
        n = sequences.shape[1]
        rows = range(len(scores))
        if self.repetition_penalty != 1.0:
            for row in rows:
                seen = np.unique(sequences[row, 0 if padding is None else padding[row] :])
                scores[row, seen] = np.where(
                    scores[row, seen] < 0, scores[row, seen] * self.repetition_penalty, scores[row, seen] / self.repetition_penalty
                )
        minimum = self.min_length if self.min_new_tokens is None else prompt_len + self.min_new_tokens
        if n < minimum and self.eos_token_ids:
            scores[:, list(self.eos_token_ids)] = -np.inf
        for row in rows:
            for token in _banned_by_ngrams(sequences[row], self.no_repeat_ngram_size, sequences[row]):
                scores[row, token] = -np.inf
            for token in _banned_by_ngrams(encoder_ids[row], self.encoder_no_repeat_ngram_size, sequences[row], own=False):
                scores[row, token] = -np.inf
            for *head, last in self.bad_words_ids:
                if not head or tuple(sequences[row, n - len(head) :]) == tuple(head):
                    scores[row, last] = -np.inf
        if last_step and self.forced_eos_token_ids:  # after forced BOS: at one new token, EOS wins (transformers' order)
            scores[:] = -np.inf
            scores[:, list(self.forced_eos_token_ids)] = 0.0
        elif step == 0 and self.forced_bos_token_id is not None and prompt_len == 1:
            scores[:] = -np.inf
            scores[:, self.forced_bos_token_id] = 0.0
        if self.suppress_tokens:
            scores[:, list(self.suppress_tokens)] = -np.inf
        # transformers: the first token after a forced BOS
        begin = 1 if self.forced_bos_token_id is not None and prompt_len == 1 else 0
        if step == begin and self.begin_suppress_tokens:
            scores[:, list(self.begin_suppress_tokens)] = -np.inf
        return scores


def _banned_by_ngrams(source: np.ndarray, size: int, sequence: np.ndarray, own: bool = True) -> list[int]:
    """The tokens that would repeat an n-gram of ``size`` from ``source`` after the end of ``sequence``
    (transformers' no_repeat_ngram_size with ``own``, its encoder_no_repeat_ngram_size with the encoder's ids)."""
    n = len(sequence)
    if not size or n + 1 < size or (not own and n < size - 1):
        return []
    tail = tuple(sequence[n - size + 1 :]) if size > 1 else ()
    return [int(source[i + size - 1]) for i in range(len(source) - size + 1) if tuple(source[i : i + size - 1]) == tail]


class Seq2SeqGeneration:
    """Greedy or beam-search tokens for batches of ``batch_size`` inputs (a last batch padded with copies of its last
    input); with ``beams``, the decoder session's cache has ``num_beams`` rows per input."""

    def __init__(
        self,
        encoder_session,
        decoder_session,
        rules: Seq2SeqRules,
        cross_names: list[str],
        beams: BeamSettings | None = None,
        shared_cross: bool = False,
        sampling: Sampling | None = None,
    ) -> None:
        """``shared_cross``: the decoder graph reads one row of cross keys/values per input for all its beams (else
        they are repeated per beam); ``sampling``: draw each token (transformers' warpers) instead of the likeliest."""
        self.encoder, self.decoder, self.rules, self.cross_names = encoder_session, decoder_session, rules, cross_names
        self.beams, self.shared_cross, self.sampling = beams, shared_cross, sampling
        outputs = [output.name for output in encoder_session.get_outputs()]
        # an audio encoder's own positions' mask (subsampled by its convolutions), which the cross-attention reads
        self.encoder_mask = outputs.index(ENCODER_ATTENTION_MASK) if ENCODER_ATTENTION_MASK in outputs else None
        if beams is not None and sampling is not None:
            raise NotImplementedError(
                "Sampling with beams (transformers' beam sampling) is not supported: pass num_beams=1 or do_sample=False."
            )
        per_input = beams.num_beams if beams else 1
        if decoder_session.batch_size % per_input:
            raise ValueError(f"The decoder session has {decoder_session.batch_size} rows, not a multiple of num_beams={per_input}.")
        self.batch_size, self.ctx_len = decoder_session.batch_size // per_input, decoder_session.ctx_len
        # transformers fills a beam's sequence after its end with pad_token_id or, where that is 0 or unset, the end token
        self.fill = (rules.pad_token_id or rules.eos_token_ids[0]) if beams and rules.eos_token_ids else rules.pad_token_id

    def generate(
        self,
        encoder_inputs: dict[str, np.ndarray],
        generation_len: int | None,
        decode=None,
        streamer=None,
        decoder_prompt: np.ndarray | None = None,
        top_logprobs: int | None = None,
    ) -> CloudAI100ExecInfo:
        """``encoder_inputs``: the encoder graph's inputs by name, one row per input (token ids and their mask, an
        image's pixels, or both); its ``attention_mask``, where it has one, is what the decoder's cross-attention
        reads (else every encoder position), unless the encoder graph outputs its positions' own mask
        (``encoder_attention_mask``: an audio encoder's, subsampled by its convolutions), and its ``input_ids`` what
        the encoder n-gram rule reads.
        ``generation_len``: the most new tokens (None: the checkpoint's maximum, within the compiled ctx_len).
        ``decoder_prompt`` [inputs, P]: the decoder's first tokens, as transformers' ``decoder_input_ids`` once its
        start token rule is applied (None: the start token alone); the outputs begin with it.
        ``streamer`` (greedy or sampled only): transformers' streamer protocol, ``put`` given each batch's decoder prompts
        [inputs, P], then each step's token per input [inputs] (the pad token after an input's end), ``end`` at the
        end. ``top_logprobs`` N (greedy or sampled only): each new token's log-probability and the N likeliest
        alternatives, from the decoder's logits before the rules and warpers (generation/logprobs.py), in
        ``info.logprobs`` (a list per output row, up to and with its end token); a streamer with ``put_logprobs`` gets
        each step's entries (one per input, None after its end) before the step's tokens."""
        if top_logprobs is not None and self.beams is not None:
            raise NotImplementedError("Log-probabilities are not given with beam search: pass num_beams=1 (greedy or sampled).")
        if streamer is not None and self.beams is not None:
            raise ValueError("A streamer cannot be used with beam search: pass num_beams=1 (greedy or sampled decoding).")
        start = time.perf_counter()
        # transformers forces its end token at its maximum length: the length asked for, else the checkpoint's
        inputs = len(next(iter(encoder_inputs.values())))
        if decoder_prompt is None:
            decoder_prompt = np.full((inputs, 1), self.rules.decoder_start_token_id, np.int64)
        width = decoder_prompt.shape[1]
        force_eos_at = generation_len if generation_len is not None else self.rules.new_tokens(width)
        if generation_len is None:
            generation_len = min(self.rules.new_tokens(width), self.ctx_len - width + 1)
        if generation_len < 1:
            raise ValueError(
                f"A {width}-token decoder prompt leaves no room for new tokens within the compiled ctx_len={self.ctx_len} "
                "(or the checkpoint's max_length): shorten the prompt or compile a larger ctx_len."
            )
        if width + generation_len - 1 > self.ctx_len:
            raise ValueError(
                f"generation_len={generation_len} after a {width}-token decoder prompt needs ctx_len >= "
                f"{width + generation_len - 1} decoder slots; compiled ctx_len is {self.ctx_len}: compile with a larger "
                "ctx_len or ask for fewer tokens."
            )
        stats = {"first": None, "decode": 0.0, "decode_tokens": 0, "new": 0}
        rows: list[np.ndarray] = []
        logprobs: list[list] | None = None if top_logprobs is None else []
        s = self.sampling
        # one generator per input (seeded by the seed and the input's index): its draws do not depend on its batch
        rngs = [np.random.default_rng(None if s.seed is None else [s.seed, i]) for i in range(inputs)] if s else None
        for first in range(0, inputs, self.batch_size):
            batch = {name: value[first : first + self.batch_size] for name, value in encoder_inputs.items()}
            prompt = decoder_prompt[first : first + self.batch_size]
            if self.beams:
                rows += self._beam_batch(batch, prompt, generation_len, force_eos_at, stats, start)
            else:
                batch_rngs = rngs[first : first + self.batch_size] if rngs else None
                rows += self._batch(batch, prompt, generation_len, force_eos_at, stats, start, batch_rngs, streamer, top_logprobs)
                if logprobs is not None:
                    logprobs += self.step_logprobs
        if streamer is not None:
            streamer.end()
        end = time.perf_counter()
        width = max(len(r) for r in rows)
        padded = np.full((len(rows), width), self.fill, np.int64)
        for i, row in enumerate(rows):
            padded[i, : len(row)] = row
        per_batch = self.batch_size * (self.beams.num_return_sequences if self.beams else 1)
        batches = [padded[i : i + per_batch] for i in range(0, len(rows), per_batch)]
        texts = [[decode(row) for row in rows[i : i + per_batch]] for i in range(0, len(rows), per_batch)] if decode else []
        metrics = PerfMetrics(
            prefill_time=stats["first"] or 0.0,
            decode_perf=stats["decode_tokens"] / stats["decode"] if stats["decode"] else 0.0,
            total_perf=stats["new"] / (end - start),
            total_time=end - start,
        )
        return CloudAI100ExecInfo(self.batch_size, texts, batches, metrics, logprobs=logprobs)

    def _start(self, batch: dict[str, np.ndarray], per_input: int = 1) -> np.ndarray:
        """Encode a batch (padded to ``batch_size`` inputs with copies of its last) and bind its cross keys/values to
        the decoder, each input's ``per_input`` times (its beams, adjacent); returns the padded encoder token ids that
        the encoder n-gram rule reads (none where the encoder reads no tokens)."""
        real = len(next(iter(batch.values())))
        if real < self.batch_size:
            batch = {name: np.concatenate([v, np.repeat(v[-1:], self.batch_size - real, 0)]) for name, v in batch.items()}
        outputs = self.encoder.run(None, batch)
        cross = outputs[: len(self.cross_names)]
        mask = batch.get(ATTENTION_MASK) if self.encoder_mask is None else outputs[self.encoder_mask]
        if mask is None:  # every encoder position (an image's patches)
            mask = np.ones((self.batch_size, cross[0].shape[2]), np.int64)
        if per_input > 1 and not self.shared_cross:
            cross = [np.repeat(value, per_input, 0) for value in cross]
        self.decoder.reset()
        self.decoder.bind_inputs(**dict(zip(self.cross_names, cross)))
        if self.decoder.reads(ENCODER_ATTENTION_MASK):  # BLIP's cross-attention reads no mask (transformers' code drops it)
            self.decoder.bind_inputs(**{ENCODER_ATTENTION_MASK: np.repeat(mask, per_input, 0)})
        return batch.get(INPUT_IDS, np.zeros((self.batch_size, 0), np.int64))

    def _batch(
        self,
        batch: dict[str, np.ndarray],
        prompt: np.ndarray,
        generation_len: int,
        force_eos_at: int,
        stats: dict,
        start: float,
        rngs=None,
        streamer=None,
        top_logprobs: int | None = None,
    ) -> list[np.ndarray]:
        """Each input's decoder sequence (its prompt first, up to and with its end token); sampled with each real
        input's generator in ``rngs`` where sampling; with ``top_logprobs``, each real input's token entries in
        ``self.step_logprobs``."""
        real, width = len(prompt), prompt.shape[1]
        encoder_ids = self._start(batch)
        rows = self.batch_size
        sequences = np.full((rows, width + generation_len), self.rules.pad_token_id, np.int64)
        sequences[:, :width] = np.concatenate([prompt, np.repeat(prompt[-1:], rows - real, 0)])
        done = np.zeros(rows, bool)
        eos = np.array(self.rules.eos_token_ids or (-1,))
        self.step_logprobs = [[] for _ in range(real)]
        # every row steps at the same position (the decoder places its tokens by the cache's length)
        logits = self.decoder.run(sequences[:, :width], np.tile(np.arange(width, dtype=np.int64), (rows, 1)))
        if streamer is not None:
            streamer.put(sequences[:real, :width].copy())
        decode_start, n = time.perf_counter(), width
        for step in range(generation_len):
            last = step == force_eos_at - 1
            scores = self.rules.scores(logits, sequences[:, :n], step, last, encoder_ids, prompt_len=width)
            chosen = scores.argmax(-1)
            if rngs:  # transformers' warpers after its processors, then one draw per real input
                s = self.sampling
                kept = warped(scores[:real], s.temperature, s.top_k, s.top_p, s.min_p)
                chosen[:real] = [draw(kept[j : j + 1], rng)[0] for j, rng in enumerate(rngs)]
            token = np.where(done, self.rules.pad_token_id, chosen)
            sequences[:, n] = token
            if top_logprobs is not None:  # from the logits the rules started from, as vLLM's raw logprobs
                entries = [None if done[j] else token_logprobs(logits[j], int(token[j]), top_logprobs) for j in range(real)]
                for j, entry in enumerate(entries):
                    if entry is not None:
                        self.step_logprobs[j].append(entry)
                if hasattr(streamer, "put_logprobs"):
                    streamer.put_logprobs(entries)
            if streamer is not None:
                streamer.put(token[:real].copy())
            n += 1
            done |= np.isin(token, eos)
            if step == 0:
                stats["first"] = stats["first"] or time.perf_counter() - start
                decode_start = time.perf_counter()
            if done[:real].all() or step == generation_len - 1:
                break
            logits = self.decoder.run(token[:, None], np.full((rows, 1), n - 1, np.int64))
        stats["decode"] += time.perf_counter() - decode_start
        return self._ended(sequences[:real, :n], stats, width)

    def _beam_batch(
        self, batch: dict[str, np.ndarray], prompt: np.ndarray, generation_len: int, force_eos_at: int, stats: dict, start: float
    ) -> list[np.ndarray]:
        """Each input's ``num_return_sequences`` best hypotheses (prompt first), as transformers' beam search."""
        real, beams, width = len(prompt), self.beams.num_beams, prompt.shape[1]
        encoder_ids = np.repeat(self._start(batch, beams), beams, 0)
        prompt = np.concatenate([prompt, np.repeat(prompt[-1:], self.batch_size - real, 0)])
        search = BeamSearch(prompt, self.beams, width + generation_len, self.rules.eos_token_ids, self.fill)
        rows = self.batch_size * beams
        logits = self.decoder.run(np.repeat(prompt, beams, 0), np.tile(np.arange(width, dtype=np.int64), (rows, 1)))

        def process(step: int, log_probs: np.ndarray) -> np.ndarray:
            return self.rules.scores(log_probs, search.running_flat, step, step == force_eos_at - 1, encoder_ids, prompt_len=width)

        def first_token() -> None:
            stats["first"] = stats["first"] or time.perf_counter() - start

        stats["decode"] += search.run(self.decoder, logits, generation_len, process, first_token)
        return self._ended(search.best()[: real * self.beams.num_return_sequences], stats, width)

    def _ended(self, sequences, stats: dict, width: int = 1) -> list[np.ndarray]:
        """Each sequence up to and with its first end token after its ``width``-token prompt; counts the new tokens."""
        eos = np.array(self.rules.eos_token_ids or (-1,))
        out = []
        for row in sequences:
            ends = np.flatnonzero(np.isin(row[width:], eos))
            out.append(row[: ends[0] + width + 1] if len(ends) else row)
        stats["new"] += sum(len(r) - width for r in out)
        stats["decode_tokens"] += sum(max(len(r) - width - 1, 0) for r in out)
        return out
