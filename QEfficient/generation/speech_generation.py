"""Whisper generation: the encoder graph once per batch of audio, then greedy decoding on the
retained-state decoder graph, with the cross-attention keys/values the encoder produced bound as
inputs for the whole batch (no copy per step) and the self-attention cache updated in place.

The logits rules are transformers' Whisper rules, restated in numpy and applied in its order:
tokens suppressed at the first step (``begin_suppress_tokens``), tokens always suppressed, then the
timestamp rules when timestamps are asked for (WhisperTimeStampLogitsProcessor). The prompt
(start, language, task, no-timestamps) is built as transformers' ``_retrieve_init_tokens`` does; a
multilingual model given no language detects it from the first step's logits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from QEfficient.export.graph_names import CROSS_ATTENTIONS, INPUT_FEATURES
from QEfficient.generation.beam_search import BeamSearch, BeamSettings
from QEfficient.generation.metrics import CloudAI100ExecInfo, PerfMetrics
from QEfficient.generation.sampling import draw, warped
from QEfficient.generation.whisper_alignment import token_timestamps
from QEfficient.generation.whisper_longform import (
    INPUT_STRIDE,
    TIME_PRECISION,
    LongFormSettings,
    Segment,
    compression_ratio,
    needs_fallback,
    no_speech_probability,
    token_logprobs,
    window_prefixes,
    window_segments,
)

_NEG = -np.inf


@dataclass(frozen=True)
class WhisperDecoding:
    """The generation-config values decoding needs (plain numbers: no transformers at run time)."""

    decoder_start_token_id: int
    eos_token_id: int
    pad_token_id: int
    no_timestamps_token_id: int | None = None
    suppress_tokens: tuple[int, ...] = ()
    begin_suppress_tokens: tuple[int, ...] = ()
    lang_to_id: dict[str, int] = field(default_factory=dict)
    task_to_id: dict[str, int] = field(default_factory=dict)
    forced_decoder_ids: tuple[tuple[int, int | None], ...] = ()
    task: str | None = None
    max_initial_timestamp_index: int | None = None
    prev_sot_token_id: int | None = None  # <|startofprev|>: the previous text (or a prompt) follows it
    max_target_positions: int = 448
    vocab_size: int = 51865
    top_k: int | None = 50  # transformers' sampling defaults where the checkpoint sets none
    top_p: float | None = 1.0
    median_filter_width: int = 7  # token timestamps: the attention's smoothing over frames

    @property
    def previous_text_tokens(self) -> int:
        """The most tokens of previous text before a window (transformers' cut-off)."""
        return self.max_target_positions // 2 - 1

    @property
    def timestamp_begin(self) -> int:
        return self.no_timestamps_token_id + 1 if self.no_timestamps_token_id else 1 << 62

    @classmethod
    def from_generation_config(cls, gen, config=None) -> WhisperDecoding:
        forced = getattr(gen, "forced_decoder_ids", None) or getattr(config, "forced_decoder_ids", None) or ()
        eos = gen.eos_token_id if not isinstance(gen.eos_token_id, list) else gen.eos_token_id[0]
        suppress = tuple(gen.suppress_tokens or ())
        prev_sot = getattr(gen, "prev_sot_token_id", None)  # transformers' fallback: the second to last suppressed token
        return cls(
            decoder_start_token_id=int(gen.decoder_start_token_id),
            eos_token_id=int(eos),
            pad_token_id=int(gen.pad_token_id if gen.pad_token_id is not None else eos),
            no_timestamps_token_id=getattr(gen, "no_timestamps_token_id", None),
            suppress_tokens=suppress,
            begin_suppress_tokens=tuple(gen.begin_suppress_tokens or ()),
            lang_to_id=dict(getattr(gen, "lang_to_id", None) or {}),
            task_to_id=dict(getattr(gen, "task_to_id", None) or {}),
            forced_decoder_ids=tuple((int(i), t) for i, t in forced),
            task=getattr(gen, "task", None),
            max_initial_timestamp_index=getattr(gen, "max_initial_timestamp_index", None),
            prev_sot_token_id=prev_sot if prev_sot is not None else (suppress[-2] if len(suppress) >= 2 else None),
            max_target_positions=int(getattr(config, "max_target_positions", None) or 448),
            vocab_size=int(getattr(config, "vocab_size", None) or 51865),
            top_k=getattr(gen, "top_k", None) if getattr(gen, "top_k", None) is not None else 50,
            top_p=getattr(gen, "top_p", None) if getattr(gen, "top_p", None) is not None else 1.0,
            median_filter_width=int(getattr(config, "median_filter_width", None) or 7),
        )

    def init_tokens(self, language_id: int | None, task: str | None, return_timestamps: bool) -> tuple[list[int], bool]:
        """The decoder prompt, and whether the language must be detected first (it then goes at index 1)."""
        tokens = [self.decoder_start_token_id]
        task = task or self.task
        if task is None and language_id is None:
            for index, token in self.forced_decoder_ids:  # the deprecated form: [[1, lang], [2, task], ...]
                if index != len(tokens):
                    break
                tokens.append(token)
        detect = False
        if language_id is not None:
            tokens[1:2] = [language_id]
        elif self.lang_to_id and (len(tokens) <= 1 or tokens[1] is None):
            detect = True
            tokens[1:2] = [-1]  # filled in after detection
        if task is not None:
            if task not in self.task_to_id:
                if not self.task_to_id:  # an English-only model: it transcribes, and names no task
                    raise ValueError(f"This model is English-only and takes no task ({task!r}): leave task unset (it transcribes).")
                raise ValueError(f"The task {task!r} is not supported by this model; use one of {sorted(self.task_to_id)}.")
            task_ids = set(self.task_to_id.values())
            if any(t in task_ids for t in tokens):
                tokens = [self.task_to_id[task] if t in task_ids else t for t in tokens]
            else:
                tokens.append(self.task_to_id[task])
        elif language_id is not None and self.task_to_id and not any(t in self.task_to_id.values() for t in tokens):
            tokens.append(self.task_to_id["transcribe"])
        if self.no_timestamps_token_id is not None:
            if not return_timestamps and tokens[-1] != self.no_timestamps_token_id:
                tokens.append(self.no_timestamps_token_id)
            elif return_timestamps and tokens[-1] == self.no_timestamps_token_id:
                tokens = tokens[:-1]
        return [int(t) if t is not None else -1 for t in tokens], detect


class WhisperLogitsRules:
    """transformers' Whisper logits processors for greedy decoding, in numpy."""

    def __init__(self, decoding: WhisperDecoding, begin_index: int, return_timestamps: bool) -> None:
        self.d = decoding
        self.begin_index = begin_index
        self.timestamps = return_timestamps and decoding.no_timestamps_token_id is not None
        self.suppress = np.array(decoding.suppress_tokens, np.int64)
        self.begin_suppress = np.array(decoding.begin_suppress_tokens, np.int64)

    def __call__(self, sequences: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """``sequences`` [B, n] (prompt + generated so far); ``scores`` [B, V] float32, changed in place."""
        if sequences.shape[1] == self.begin_index and len(self.begin_suppress):
            scores[:, self.begin_suppress] = _NEG
        if len(self.suppress):
            scores[:, self.suppress] = _NEG
        if self.timestamps:
            self._timestamp_rules(sequences, scores)
        return scores

    def _timestamp_rules(self, sequences: np.ndarray, scores: np.ndarray) -> None:
        begin = self.d.no_timestamps_token_id + 1
        scores[:, self.d.no_timestamps_token_id] = _NEG
        for k, row in enumerate(sequences):
            seq = row[self.begin_index :]
            last_was = len(seq) >= 1 and seq[-1] >= begin
            penultimate_was = len(seq) < 2 or seq[-2] >= begin
            if last_was:
                if penultimate_was:  # a timestamp pair is closed: text comes next
                    scores[k, begin:] = _NEG
                else:  # an open timestamp: another one (or the end) comes next
                    scores[k, : self.d.eos_token_id] = _NEG
            stamps = seq[seq >= begin]
            if len(stamps):  # timestamps never decrease (and <|0.00|> is not repeated)
                last = int(stamps[-1]) if last_was and not penultimate_was else int(stamps[-1]) + 1
                scores[k, begin:last] = _NEG
        if sequences.shape[1] == self.begin_index:
            scores[:, :begin] = _NEG
            if self.d.max_initial_timestamp_index is not None:
                scores[:, begin + self.d.max_initial_timestamp_index + 1 :] = _NEG
        # a timestamp when their total probability beats any single text token
        shifted = scores - scores.max(axis=-1, keepdims=True)
        logprobs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        stamp_mass = np.logaddexp.reduce(logprobs[:, begin:], axis=-1)
        best_text = logprobs[:, :begin].max(axis=-1)
        scores[stamp_mass > best_text, :begin] = _NEG


SEGMENT_FRAMES = 3000  # Whisper reads 30 s windows of 10 ms log-mel frames


class NoRoomForPrompt(ValueError):
    """A window's prompt (``prompt_ids``, the previous text) leaves no room in the compiled ``ctx_len``."""

    def __init__(self, prompt_tokens: int, start_tokens: int, ctx_len: int, max_positions: int, from_prompt: bool, message: str) -> None:
        """``prompt_tokens``: the longest a window's prompt gets; ``from_prompt``: whether that is the user's prompt (else
        the previous window's text, condition_on_prev_tokens)."""
        super().__init__(message)
        self.prompt_tokens, self.start_tokens, self.ctx_len, self.max_positions = prompt_tokens, start_tokens, ctx_len, max_positions
        self.from_prompt = from_prompt


@dataclass
class WindowResult:
    """One row's decoding of one window: its tokens (the end token included, where it came), their mean log-probability
    (where asked for), the no-speech probability (where asked for), its start tokens (language filled in) and the
    tokens' times in the window (where asked for)."""

    tokens: np.ndarray
    avg_logprob: float | None
    no_speech_prob: float | None
    init: list[int]
    token_times: np.ndarray | None = None


@dataclass
class _StartedWindow:
    real: int  # rows that are real audio (the rest fill the batch)
    prompt: np.ndarray  # [rows, width], left-padded
    offsets: np.ndarray  # [rows]: the padding before each row's prompt
    logits: np.ndarray  # after the prompt
    no_speech_logits: np.ndarray | None  # after the start token
    inits: list[list[int]]
    cross: list[np.ndarray]  # the encoder's cross keys/values, one row per audio (fill rows included)


class SpeechSeq2SeqGeneration:
    """Whisper decoding, greedy, sampled or beam search, over an encoder session and a KVCacheSession (the decoder).

    Audio is read in 30 s windows, as transformers' Whisper ``generate`` does for short and long
    form alike: a window whose tokens end inside a segment is decoded again from that segment's
    last timestamp; audio longer than 30 s is transcribed window after window, with transformers' long-form
    heuristics where asked for (generation/whisper_longform.py)."""

    def __init__(
        self, encoder_session, decoder_session, decoding: WhisperDecoding, cross_names: list[str], beams: BeamSettings | None = None
    ) -> None:
        """``beams``: beam search (one best hypothesis per audio), the decoder session holding num_beams rows per audio."""
        self.encoder = encoder_session
        self.decoder = decoder_session
        self.decoding = decoding
        self.cross_names = cross_names
        self.beams = beams
        per_row = beams.num_beams if beams else 1
        if beams is not None and beams.num_return_sequences != 1:
            raise ValueError("Whisper's beam search returns one transcript per audio: num_return_sequences must be 1.")
        if decoder_session.batch_size % per_row:
            raise ValueError(f"The decoder session has {decoder_session.batch_size} rows, not a multiple of num_beams={per_row}.")
        self.batch_size = decoder_session.batch_size // per_row
        self.ctx_len = decoder_session.ctx_len

    def generate(
        self,
        features: np.ndarray,
        generation_len: int | None,
        language_ids: list[int | None],
        task: str | None = None,
        return_timestamps: bool = False,
        decode=None,
        num_frames: np.ndarray | None = None,
        longform: LongFormSettings | None = None,
        token_timestamps: bool = False,
        alignment_frames: np.ndarray | None = None,
        on_segments=None,
    ) -> CloudAI100ExecInfo:
        """``features`` [N, n_mels, frames >= 3000]; ``num_frames`` each audio's real frames (default: all);
        ``language_ids`` one per audio (None: given by the config or detected); ``longform`` the fallback, silence and
        prompt options (default: none). ``token_timestamps``: each token's time (the decoder graph must output its
        alignment heads' attention), the attention read up to ``alignment_frames`` per audio (its attention mask's
        frames, as transformers reads them; default: the whole window). ``on_segments(audio, segments)`` is called as
        each window's segments are decided (after any fallback), in order: a stream's pieces."""
        start = time.perf_counter()
        d, lf = self.decoding, longform or LongFormSettings()
        n_audio = len(features)
        max_frames = np.full(n_audio, features.shape[-1], np.int64) if num_frames is None else np.asarray(num_frames, np.int64)
        seek = np.zeros(n_audio, np.int64)
        segments: list[list[Segment]] = [[] for _ in range(n_audio)]
        prompt_segment = lf.prompt_ids is not None and lf.prompt_condition_type == "first-segment"
        if prompt_segment:  # the prompt is the text before the first window (and is not returned)
            first = lf.prompt_ids[1:] if lf.prompt_ids[0] == d.prev_sot_token_id else lf.prompt_ids
            segments = [[Segment(np.array(first, np.int64))] for _ in range(n_audio)]
        self._check_room(lf, len(d.init_tokens(language_ids[0], task, return_timestamps)[0]), generation_len)
        conditioned = [lf.condition_on_prev_tokens] * n_audio
        inits: list[list[int] | None] = [None] * n_audio
        # one generator per audio (seeded by the seed and the audio's index): its draws do not depend on its batch
        rngs = [np.random.default_rng(None if lf.seed is None else [lf.seed, a]) for a in range(n_audio)] if any(lf.temperatures) else None
        stats = {"first_token": None, "decode_time": 0.0, "decode_tokens": 0, "new_tokens": 0}
        while (seek < max_frames).any():
            active = np.flatnonzero(seek < max_frames)
            cut_off = d.previous_text_tokens
            prefixes = window_prefixes(lf, list(active), segments, conditioned, d.prev_sot_token_id, d.timestamp_begin, cut_off)
            prefix_of = dict(zip(active.tolist(), prefixes))
            for first in range(0, len(active), self.batch_size):
                rows = active[first : first + self.batch_size]
                window = np.zeros((len(rows), features.shape[1], SEGMENT_FRAMES), np.float32)
                frames = np.minimum(max_frames[rows] - seek[rows], SEGMENT_FRAMES)
                for j, r in enumerate(rows):
                    window[j, :, : frames[j]] = features[r, :, seek[r] : seek[r] + frames[j]]
                    inits[r] = inits[r] or d.init_tokens(language_ids[r], task, return_timestamps)[0]
                prompts = [(prefix_of[int(r)], inits[r]) for r in rows]
                row_rngs = [rngs[r] for r in rows] if rngs is not None else None
                align = None
                if token_timestamps:  # transformers' num_frames - seek: the frames its attention is read over
                    align = alignment_frames[rows] - seek[rows] if alignment_frames is not None else np.full(len(rows), 2 * SEGMENT_FRAMES)
                results = self._decode_with_fallback(window, prompts, generation_len, return_timestamps, stats, start, lf, row_rngs, align)
                for j, r in enumerate(rows):
                    tokens, skip, temperature, out = results[j]
                    inits[r] = out.init
                    conditioned[r] = lf.conditions(temperature)
                    if skip:  # silence: the window adds nothing
                        seek[r] += frames[j]
                        continue
                    window_segs, offset = window_segments(tokens, d.timestamp_begin, int(frames[j]), int(seek[r]))
                    if out.token_times is not None:  # each segment's slice of the window's times, in audio time
                        at, shift = 0, np.float32(seek[r] * TIME_PRECISION / INPUT_STRIDE)
                        for segment in window_segs:
                            segment.token_timestamps = out.token_times[at : at + len(segment.tokens)] + shift
                            at += len(segment.tokens)
                    ratio = compression_ratio(out.tokens, d.vocab_size) if lf.window_stats else None
                    for segment in window_segs:
                        segment.temperature, segment.avg_logprob = temperature, out.avg_logprob
                        segment.no_speech_prob, segment.compression_ratio = out.no_speech_prob, ratio
                    segments[r].extend(window_segs)
                    if on_segments is not None:
                        on_segments(int(r), window_segs)
                    seek[r] += offset
        end = time.perf_counter()
        kept = [s[1:] if prompt_segment else s for s in segments]
        sequences = [np.concatenate([s.tokens for s in k]).astype(np.int64) if k else np.zeros(0, np.int64) for k in kept]
        width = max(len(s) for s in sequences)
        ids = np.full((n_audio, width), d.pad_token_id, np.int64)
        for r, seq in enumerate(sequences):
            ids[r, : len(seq)] = seq
        metrics = PerfMetrics(
            prefill_time=stats["first_token"] or 0.0,
            decode_perf=stats["decode_tokens"] / stats["decode_time"] if stats["decode_time"] else 0.0,
            total_perf=stats["new_tokens"] / (end - start),
            total_time=end - start,
        )
        batches = [ids[i : i + self.batch_size] for i in range(0, n_audio, self.batch_size)]
        texts = [
            [decode(row[: len(sequences[i + j])]) for j, row in enumerate(b)] if decode else []
            for i, b in zip(range(0, n_audio, self.batch_size), batches)
        ]
        codes = {token: name[2:-2] for name, token in d.lang_to_id.items()}
        languages = [codes.get(init[1]) if init and len(init) > 1 else None for init in inits]
        times = None
        if token_timestamps:
            times = [np.concatenate([s.token_timestamps for s in k]) if k else np.zeros(0, np.float32) for k in kept]
        return CloudAI100ExecInfo(self.batch_size, texts, batches, metrics, segments=kept, languages=languages, token_timestamps=times)

    def _check_room(self, lf: LongFormSettings, start_tokens: int, generation_len: int | None) -> None:
        """The longest prompt a window may get (previous text, user prompt, start tokens) must leave room in ctx_len:
        checked before the first window, not when a later one outgrows it."""
        d = self.decoding
        prompt = len(lf.prompt_ids) if lf.prompt_ids is not None else 0
        if lf.condition_on_prev_tokens:  # the previous text after <|startofprev|> (or after the prompt, all-segments)
            bos = prompt if lf.prompt_condition_type == "all-segments" else int(d.prev_sot_token_id is not None)
            longest = max(prompt, bos + d.previous_text_tokens)
        else:
            longest = prompt
        need = longest + start_tokens + (generation_len or 1) - 1
        if longest and need > self.ctx_len:
            what = "condition_on_prev_tokens puts up to" if lf.condition_on_prev_tokens else "prompt_ids put"
            raise NoRoomForPrompt(
                longest,
                start_tokens,
                self.ctx_len,
                d.max_target_positions,
                bool(prompt) and (longest == prompt or lf.prompt_condition_type == "all-segments"),  # the user's prompt in it
                f"{what} {longest} tokens before each window's {start_tokens} start tokens; with generation_len="
                f"{generation_len} that needs ctx_len >= {need}, and this model was compiled with ctx_len={self.ctx_len}: "
                f"compile(ctx_len={min(max(need, self.ctx_len), d.max_target_positions)}) (at most max_target_positions="
                f"{d.max_target_positions}), or shorten the prompt.",
            )

    def _decode_with_fallback(self, window, prompts, generation_len, return_timestamps, stats, start, lf: LongFormSettings, rngs, align):
        """transformers' ``generate_with_fallback``: each row's (tokens without the end token, skipped, the temperature
        of the result kept, its WindowResult). ``align``: each row's frames for token timestamps (None: none)."""
        d = self.decoding
        todo = list(range(len(window)))
        results: list = [None] * len(window)
        for temperature in lf.temperatures:
            outs = self._decode_window(
                window[todo],
                [prompts[j] for j in todo],
                generation_len,
                return_timestamps,
                stats,
                start,
                temperature,
                None if rngs is None else [rngs[j] for j in todo],
                lf,
                None if align is None else align[todo],
            )
            again = []
            for j, out in zip(todo, outs):
                prompts[j] = (prompts[j][0], out.init)  # a detected language stays for the next temperature
                fallback, skip = needs_fallback(lf, out.tokens, out.avg_logprob, out.no_speech_prob, d.vocab_size)
                tokens = out.tokens[:-1] if len(out.tokens) and out.tokens[-1] == d.eos_token_id else out.tokens
                results[j] = (tokens, skip, temperature, out)
                if fallback:
                    again.append(j)
            todo = again
            if not todo:
                break
        return results

    def _start_window(
        self, window: np.ndarray, prompts: list[tuple[list[int], list[int]]], per_row: int, no_speech: bool
    ) -> _StartedWindow:
        """Encode one 30 s window for up to batch_size rows (the batch padded with copies of the last row), decode each
        ``per_row`` times (its beams, adjacent; the decoder reads one copy of an audio's cross keys/values for all its
        rows), detect languages where asked and run the prompts (each row's prefix, then its start tokens; rows
        left-padded to one width, their positions counted from their own first token)."""
        d = self.decoding
        real = len(window)
        fill = self.batch_size - real
        if fill:
            window = np.concatenate([window, np.repeat(window[-1:], fill, 0)])
            prompts = prompts + [prompts[-1]] * fill
        cross = self.encoder.run(None, {INPUT_FEATURES: window})  # one row per audio, read by all its beams
        if per_row > 1:
            prompts = [p for p in prompts for _ in range(per_row)]
        self.decoder.reset()
        self.decoder.bind_inputs(**dict(zip(self.cross_names, cross)))
        rows = len(prompts)
        inits = [list(init) for _, init in prompts]
        detect_logits = None
        if any(len(init) > 1 and init[1] == -1 for init in inits):  # the start token's logits over the languages choose one
            # a copy: the session's logits are overwritten by its next run
            detect_logits = np.array(self.decoder.run(np.array([init[:1] for init in inits], np.int64), np.zeros((rows, 1), np.int64)))
            lang_ids = np.array(sorted(d.lang_to_id.values()), np.int64)
            detected = lang_ids[np.argmax(detect_logits[:, lang_ids], axis=-1)]
            for init, lang in zip(inits, detected):
                if len(init) > 1 and init[1] == -1:
                    init[1] = int(lang)
        full = [list(prefix) + init for (prefix, _), init in zip(prompts, inits)]
        width = max(len(f) for f in full)
        offsets = np.array([width - len(f) for f in full], np.int64)
        prompt = np.full((rows, width), d.pad_token_id, np.int64)
        for k, tokens in enumerate(full):
            prompt[k, offsets[k] :] = tokens
        positions = np.arange(width, dtype=np.int64)[None, :] - offsets[:, None]
        positions[positions < 0] = -1  # padding: never read
        sot = width - len(inits[0])  # the start token's column (every row's start tokens have one length)
        done = 1 if detect_logits is not None and sot == 0 and not offsets.any() else 0  # the start token already ran
        no_speech_logits = detect_logits if done else None
        if no_speech and not done and sot < width - 1:  # the logits after the start token: their own run
            no_speech_logits = np.array(self.decoder.run(prompt[:, : sot + 1], np.ascontiguousarray(positions[:, : sot + 1])))
            done = sot + 1
        logits = self.decoder.run(prompt[:, done:], np.ascontiguousarray(positions[:, done:]))
        if no_speech and no_speech_logits is None:
            no_speech_logits = np.array(logits)
        return _StartedWindow(real, prompt, offsets, logits, no_speech_logits, inits, cross)

    def _generation_len(self, generation_len: int | None, width: int) -> int:
        if generation_len is None:
            if width > self.ctx_len:
                raise ValueError(
                    f"A {width}-token decoder prompt does not fit the compiled ctx_len={self.ctx_len}: compile with a larger ctx_len."
                )
            # transformers stops a window at max_target_positions tokens, prompt included (Whisper's max_length)
            return min(self.ctx_len - width + 1, self.decoding.max_target_positions - width)
        if width + generation_len - 1 > self.ctx_len:
            raise ValueError(
                f"generation_len={generation_len} with a {width}-token prompt needs ctx_len >= {width + generation_len - 1}; "
                f"compiled ctx_len is {self.ctx_len}: compile with a larger ctx_len or ask for fewer tokens."
            )
        return generation_len

    def _no_speech(self, started: _StartedWindow, per_row: int, lf: LongFormSettings) -> np.ndarray | None:
        if not lf.no_speech_needed:
            return None
        return no_speech_probability(started.no_speech_logits[::per_row], self.decoding.no_timestamps_token_id - 1)

    def _decode_window(
        self, window, prompts, generation_len, return_timestamps, stats, start, temperature, rngs, lf: LongFormSettings, align=None
    ) -> list[WindowResult]:
        """One 30 s window for up to batch_size rows: greedy, or sampled at ``temperature`` (> 0) with each row's
        generator in ``rngs``, or beam search. A session holding num_beams rows per audio samples on each audio's first
        row (the others follow it)."""
        if self.beams is not None and not temperature:
            return self._beam_window(window, prompts, generation_len, return_timestamps, stats, start, lf, align)
        d = self.decoding
        per_row = self.beams.num_beams if self.beams is not None else 1
        started = self._start_window(window, prompts, per_row, lf.no_speech_needed)
        prompt, offsets, logits = started.prompt, started.offsets, started.logits
        rows, width = prompt.shape
        reps = np.arange(started.real) * per_row  # each real audio's row: only these draw random numbers
        generation_len = self._generation_len(generation_len, width)
        rules = WhisperLogitsRules(d, width, return_timestamps)
        sequences = np.full((rows, width + generation_len), d.pad_token_id, np.int64)
        sequences[:, :width] = prompt
        done = np.zeros(rows, bool)
        logprob_sum = np.zeros(rows, np.float32) if lf.scores_needed else None
        decode_start = time.perf_counter()
        n = width
        for step in range(generation_len):
            scores = rules(sequences[:, :n], np.array(logits, dtype=np.float32))
            chosen = scores.argmax(-1)
            if temperature:  # transformers' warpers (temperature, top-k, top-p), then one draw per audio
                kept = warped(scores[reps], temperature, d.top_k, d.top_p)
                chosen[reps] = [draw(kept[j : j + 1], rng)[0] for j, rng in enumerate(rngs)]
                chosen = np.repeat(chosen[::per_row], per_row)
                scores[reps] = kept * np.float32(temperature)  # the mean log-probability reads the warped scores
            token = np.where(done, d.pad_token_id, chosen)
            if logprob_sum is not None:
                logprob_sum += np.where(done, np.float32(0), token_logprobs(scores, chosen))
            sequences[:, n] = token
            n += 1
            done |= token == d.eos_token_id
            if step == 0:
                if stats["first_token"] is None:
                    stats["first_token"] = time.perf_counter() - start
                decode_start = time.perf_counter()
            if done[reps].all() or step == generation_len - 1:
                break
            logits = self.decoder.run(token[:, None], np.where(done, -1, n - 1 - offsets)[:, None].astype(np.int64))
        stats["decode_time"] += time.perf_counter() - decode_start
        stats["decode_tokens"] += int((sequences[reps, width + 1 : n] != d.pad_token_id).sum())
        stats["new_tokens"] += int((sequences[reps, width:n] != d.pad_token_id).sum())
        no_speech = self._no_speech(started, per_row, lf)
        # transformers reads the attention of every token fed, the padding after a row's end token included
        fed = sequences[reps, : n - 1]
        times = self._token_times(started, fed, np.full(len(reps), n - 1), offsets[reps], align) if align is not None else None
        results = []
        for j, row in enumerate(reps):
            generated = sequences[row, width:n]
            ends = np.flatnonzero(generated == d.eos_token_id)
            tokens = generated[: ends[0] + 1] if len(ends) else generated
            avg = float(logprob_sum[row] / len(tokens)) if logprob_sum is not None else None
            out = WindowResult(tokens, avg, None if no_speech is None else float(no_speech[j]), started.inits[row])
            results.append(out if times is None else replace(out, token_times=times[j][: len(tokens)]))
        return results

    def _token_times(self, started: _StartedWindow, fed: np.ndarray, lengths: np.ndarray, offsets: np.ndarray, align) -> list[np.ndarray]:
        """Each audio's generated tokens' times in its window (generation/whisper_alignment.py): the decoder re-reads
        ``fed`` [audios, T] (row j: its prompt, left-padded by ``offsets[j]``, then its generated tokens but the last,
        up to ``lengths[j]``), and its alignment heads' attention is warped onto the frames."""
        rows, total = fed.shape
        width = started.prompt.shape[1]
        columns = np.arange(total)[None, :]
        positions = columns - offsets[:, None]
        positions[(positions < 0) | (columns >= lengths[:, None])] = -1
        cross = {name: np.ascontiguousarray(c[:rows]) for name, c in zip(self.cross_names, started.cross)}
        (weights,) = self.decoder.run_detached(fed, positions, [CROSS_ATTENTIONS], **cross)
        width_filter = self.decoding.median_filter_width
        return [token_timestamps(weights[j, :, : lengths[j]], width, int(align[j]), width_filter)[width:] for j in range(rows)]

    def _beam_window(
        self, window, prompts, generation_len, return_timestamps, stats, start, lf: LongFormSettings, align=None
    ) -> list[WindowResult]:
        """transformers' beam search over one 30 s window: each row's best hypothesis (its generated tokens and their
        mean log-probability, read along the hypothesis' beams as transformers' fallback reads it)."""
        d, beams = self.decoding, self.beams.num_beams
        started = self._start_window(window, prompts, beams, lf.no_speech_needed)
        width = started.prompt.shape[1]
        generation_len = self._generation_len(generation_len, width)
        rules = WhisperLogitsRules(d, width, return_timestamps)
        fill = d.pad_token_id or d.eos_token_id  # transformers' filler after a hypothesis ends
        search = BeamSearch(started.prompt[::beams], self.beams, width + generation_len, (d.eos_token_id,), fill, lf.scores_needed)

        def first_token() -> None:
            if stats["first_token"] is None:
                stats["first_token"] = time.perf_counter() - start

        def process(_step: int, log_probs: np.ndarray) -> np.ndarray:
            return rules(search.running_flat, log_probs)

        stats["decode_time"] += search.run(self.decoder, started.logits, generation_len, process, first_token, started.offsets)
        real = started.real
        generated = [row[width:] for row in search.best()[:real]]
        ended = [g[: np.flatnonzero(g == d.eos_token_id)[0] + 1] if (g == d.eos_token_id).any() else g for g in generated]
        stats["decode_tokens"] += sum(max(len(g) - 1, 0) for g in ended)
        stats["new_tokens"] += sum(len(g) for g in ended)
        no_speech = self._no_speech(started, beams, lf)
        logprobs = search.best_token_logprobs() if lf.scores_needed else None
        times = None
        if align is not None:  # each best hypothesis' own tokens (transformers' rows past a shorter one are another beam's)
            lengths = np.array([width + max(len(g), 1) - 1 for g in ended])
            fed = np.full((real, lengths.max()), d.pad_token_id, np.int64)
            for j, g in enumerate(ended):
                fed[j, :width] = started.prompt[j * beams]
                fed[j, width : lengths[j]] = g[: lengths[j] - width]
            times = self._token_times(started, fed, lengths, started.offsets[::beams][:real], align)
        return [
            WindowResult(
                g,
                float(logprobs[j, : len(g)].sum() / len(g)) if logprobs is not None else None,
                None if no_speech is None else float(no_speech[j]),
                started.inits[j * beams],
                None if times is None else times[j][: len(g)],
            )
            for j, g in enumerate(ended)
        ]
