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
from dataclasses import dataclass, field

import numpy as np

from QEfficient.export.graph_specs import INPUT_FEATURES
from QEfficient.generation.beam_search import BeamSearch, BeamSettings
from QEfficient.generation.metrics import CloudAI100ExecInfo, PerfMetrics

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

    @classmethod
    def from_generation_config(cls, gen, config=None) -> WhisperDecoding:
        forced = getattr(gen, "forced_decoder_ids", None) or getattr(config, "forced_decoder_ids", None) or ()
        eos = gen.eos_token_id if not isinstance(gen.eos_token_id, list) else gen.eos_token_id[0]
        return cls(
            decoder_start_token_id=int(gen.decoder_start_token_id),
            eos_token_id=int(eos),
            pad_token_id=int(gen.pad_token_id if gen.pad_token_id is not None else eos),
            no_timestamps_token_id=getattr(gen, "no_timestamps_token_id", None),
            suppress_tokens=tuple(gen.suppress_tokens or ()),
            begin_suppress_tokens=tuple(gen.begin_suppress_tokens or ()),
            lang_to_id=dict(getattr(gen, "lang_to_id", None) or {}),
            task_to_id=dict(getattr(gen, "task_to_id", None) or {}),
            forced_decoder_ids=tuple((int(i), t) for i, t in forced),
            task=getattr(gen, "task", None),
            max_initial_timestamp_index=getattr(gen, "max_initial_timestamp_index", None),
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
INPUT_STRIDE = 2  # encoder frames per timestamp step (0.02 s)


def split_segments(tokens: np.ndarray, timestamp_begin: int, window_frames: int) -> tuple[np.ndarray, int]:
    """transformers' ``_retrieve_segment`` for greedy tokens: the tokens kept from one window and the
    frames to move forward. Two timestamps in a row close a segment; when the window does not end on a
    single timestamp, what follows the last closed segment is dropped and decoding resumes from there."""
    is_stamp = tokens >= timestamp_begin
    closing = [i + 1 for i in range(len(tokens) - 1) if is_stamp[i] and is_stamp[i + 1]]
    if not closing:
        return tokens, window_frames
    if len(tokens) >= 2 and not is_stamp[-2] and is_stamp[-1]:  # a single timestamp at the end: no speech after it
        return tokens, window_frames
    end = closing[-1] + 1
    return tokens[:end], int(tokens[end - 2] - timestamp_begin) * INPUT_STRIDE


class SpeechSeq2SeqGeneration:
    """Whisper decoding, greedy or beam search, over an encoder session and a KVCacheSession (the decoder).

    Audio is read in 30 s windows, as transformers' Whisper ``generate`` does for short and long
    form alike: a window whose tokens end inside a segment is decoded again from that segment's
    last timestamp; audio longer than 30 s is transcribed window after window."""

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
    ) -> CloudAI100ExecInfo:
        """``features`` [N, n_mels, frames >= 3000]; ``num_frames`` each audio's real frames (default: all);
        ``language_ids`` one per audio (None: given by the config or detected)."""
        start = time.perf_counter()
        d = self.decoding
        n_audio = len(features)
        max_frames = np.full(n_audio, features.shape[-1], np.int64) if num_frames is None else np.asarray(num_frames, np.int64)
        seek = np.zeros(n_audio, np.int64)
        kept: list[list[np.ndarray]] = [[] for _ in range(n_audio)]
        prompts: list[list[int] | None] = [None] * n_audio
        stats = {"first_token": None, "decode_time": 0.0, "decode_tokens": 0, "new_tokens": 0}
        while (seek < max_frames).any():
            active = np.flatnonzero(seek < max_frames)
            for first in range(0, len(active), self.batch_size):
                rows = active[first : first + self.batch_size]
                window = np.zeros((len(rows), features.shape[1], SEGMENT_FRAMES), np.float32)
                frames = np.minimum(max_frames[rows] - seek[rows], SEGMENT_FRAMES)
                for j, r in enumerate(rows):
                    window[j, :, : frames[j]] = features[r, :, seek[r] : seek[r] + frames[j]]
                row_prompts = [prompts[r] or d.init_tokens(language_ids[r], task, return_timestamps)[0] for r in rows]
                generated, row_prompts = self._decode_window(window, row_prompts, generation_len, return_timestamps, stats, start)
                for j, r in enumerate(rows):
                    prompts[r] = row_prompts[j]
                    tokens = generated[j]
                    eos = np.flatnonzero(tokens == d.eos_token_id)
                    tokens = tokens[: eos[0]] if len(eos) else tokens
                    tokens, offset = split_segments(
                        tokens, d.no_timestamps_token_id + 1 if d.no_timestamps_token_id else 1 << 62, int(frames[j])
                    )
                    kept[r].append(tokens)
                    seek[r] += offset
        end = time.perf_counter()
        sequences = [np.concatenate(k).astype(np.int64) for k in kept]
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
        return CloudAI100ExecInfo(self.batch_size, texts, batches, metrics)

    def _start_window(self, window: np.ndarray, prompts: list[list[int]], per_row: int = 1) -> tuple[int, np.ndarray, np.ndarray]:
        """Encode one 30 s window for up to batch_size rows (the batch padded with copies of the last row), decode each
        ``per_row`` times (its beams, adjacent; the decoder reads one copy of an audio's cross keys/values for all its
        rows), detect languages where asked and run the prompt: the real rows, the prompts [rows, width] (languages
        filled in) and the logits after them."""
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
        prompt = np.array(prompts, dtype=np.int64)
        width = prompt.shape[1]
        done_upto = 0
        if (prompt[:, 1:2] == -1).any():  # the first step's logits over the language tokens choose the language
            logits = self.decoder.run(prompt[:, :1], np.zeros((rows, 1), np.int64))
            lang_ids = np.array(sorted(d.lang_to_id.values()), np.int64)
            detected = lang_ids[np.argmax(logits[:, lang_ids], axis=-1)]
            prompt[:, 1] = np.where(prompt[:, 1] == -1, detected, prompt[:, 1])
            done_upto = 1
        positions = np.ascontiguousarray(np.broadcast_to(np.arange(done_upto, width, dtype=np.int64), (rows, width - done_upto)))
        return real, prompt, self.decoder.run(prompt[:, done_upto:], positions)

    def _generation_len(self, generation_len: int | None, width: int) -> int:
        if generation_len is None:
            return self.ctx_len - width + 1
        if width + generation_len - 1 > self.ctx_len:
            raise ValueError(
                f"generation_len={generation_len} with a {width}-token prompt needs ctx_len >= {width + generation_len - 1}; "
                f"compiled ctx_len is {self.ctx_len}: compile with a larger ctx_len or ask for fewer tokens."
            )
        return generation_len

    def _decode_window(self, window, prompts, generation_len, return_timestamps, stats, start) -> tuple[list[np.ndarray], list[list[int]]]:
        """Greedy tokens of one 30 s window for up to batch_size rows; returns each row's generated tokens and its
        prompt (language filled in)."""
        if self.beams is not None:
            return self._beam_window(window, prompts, generation_len, return_timestamps, stats, start)
        d = self.decoding
        real, prompt, logits = self._start_window(window, prompts)
        rows, width = prompt.shape
        generation_len = self._generation_len(generation_len, width)
        rules = WhisperLogitsRules(d, width, return_timestamps)
        sequences = np.full((rows, width + generation_len), d.pad_token_id, np.int64)
        sequences[:, :width] = prompt
        done = np.zeros(rows, bool)
        decode_start = time.perf_counter()
        n = width
        for step in range(generation_len):
            scores = rules(sequences[:, :n], np.array(logits, dtype=np.float32))
            token = np.where(done, d.pad_token_id, scores.argmax(-1))
            sequences[:, n] = token
            n += 1
            done |= token == d.eos_token_id
            if step == 0:
                if stats["first_token"] is None:
                    stats["first_token"] = time.perf_counter() - start
                decode_start = time.perf_counter()
            if done.all() or step == generation_len - 1:
                break
            logits = self.decoder.run(token[:, None], np.where(done, -1, n - 1)[:, None].astype(np.int64))
        stats["decode_time"] += time.perf_counter() - decode_start
        stats["decode_tokens"] += int((sequences[:real, width + 1 : n] != d.pad_token_id).sum())
        stats["new_tokens"] += int((sequences[:real, width:n] != d.pad_token_id).sum())
        return [sequences[j, width:n] for j in range(real)], [prompt[j].tolist() for j in range(real)]

    def _beam_window(self, window, prompts, generation_len, return_timestamps, stats, start) -> tuple[list[np.ndarray], list[list[int]]]:
        """transformers' beam search over one 30 s window: each row's best hypothesis (generated tokens) and prompt."""
        d, beams = self.decoding, self.beams.num_beams
        real, prompt, logits = self._start_window(window, prompts, beams)
        width = prompt.shape[1]
        generation_len = self._generation_len(generation_len, width)
        rules = WhisperLogitsRules(d, width, return_timestamps)
        fill = d.pad_token_id or d.eos_token_id  # transformers' filler after a hypothesis ends
        search = BeamSearch(prompt[::beams], self.beams, width + generation_len, (d.eos_token_id,), fill)

        def first_token() -> None:
            if stats["first_token"] is None:
                stats["first_token"] = time.perf_counter() - start

        def process(_step: int, log_probs: np.ndarray) -> np.ndarray:
            return rules(search.running_flat, log_probs)

        stats["decode_time"] += search.run(self.decoder, logits, generation_len, process, first_token)
        generated = [row[width:] for row in search.best()[:real]]
        ended = [g[: np.flatnonzero(g == d.eos_token_id)[0] + 1] if (g == d.eos_token_id).any() else g for g in generated]
        stats["decode_tokens"] += sum(max(len(g) - 1, 0) for g in ended)
        stats["new_tokens"] += sum(len(g) for g in ended)
        return ended, [prompt[j * beams].tolist() for j in range(real)]
