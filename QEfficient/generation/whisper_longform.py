"""transformers' Whisper long-form heuristics, in numpy: temperature fallback (``temperature`` as a sequence,
``compression_ratio_threshold``, ``logprob_threshold``), silence detection (``no_speech_threshold``), text of the
windows before as the next window's prompt (``condition_on_prev_tokens``) and a user prompt (``prompt_ids``,
``prompt_condition_type``), as ``WhisperGenerationMixin.generate`` applies them to every 30 s window.

The rules kept from transformers, so that the same audio gives the same tokens:
- a window is decoded at the first temperature; a row whose tokens compress too well (repetition) or whose mean
  log-probability is too low is decoded again at the next temperature, until one passes or none is left (the last
  result is kept);
- a row whose first-step probability of the no-speech token beats ``no_speech_threshold`` while its mean
  log-probability is below ``logprob_threshold`` is skipped: the window adds no text;
- the previous text (the last ``max_target_positions // 2 - 1`` tokens of the segments so far, a closing pair of
  timestamps read as one) follows the ``<|startofprev|>`` token (or the prompt, with ``prompt_condition_type=
  "all-segments"``) before the window's start tokens, for rows whose last result came from a temperature below 0.5;
  whether any row is conditioned is decided from the first audio's segments, as transformers does.
"""

from __future__ import annotations

import math
import numbers
import zlib
from dataclasses import dataclass

import numpy as np

CONDITION_TYPES = ("first-segment", "all-segments")
LOW_TEMPERATURE = 0.5  # a result sampled at this temperature or above does not condition the next window


@dataclass(frozen=True)
class LongFormSettings:
    """The options of transformers' Whisper ``generate`` that change how windows are decoded and chained."""

    temperatures: tuple[float | None, ...] = (None,)
    compression_ratio_threshold: float | None = None
    logprob_threshold: float | None = None
    no_speech_threshold: float | None = None
    condition_on_prev_tokens: bool = False
    prompt_ids: tuple[int, ...] | None = None
    prompt_condition_type: str = "first-segment"
    seed: int | None = None
    window_stats: bool = False  # measure every window's mean log-probability and no-speech probability

    @property
    def scores_needed(self) -> bool:
        """Whether each row's mean log-probability must be kept."""
        return self.logprob_threshold is not None or self.window_stats

    @property
    def no_speech_needed(self) -> bool:
        return self.no_speech_threshold is not None or self.window_stats

    def conditions(self, temperature: float | None) -> bool:
        """Whether a result decoded at ``temperature`` conditions the next window."""
        return self.condition_on_prev_tokens and (temperature is None or temperature < LOW_TEMPERATURE)


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


def _token_list(prompt_ids, vocab_size: int) -> tuple[int, ...]:
    if hasattr(prompt_ids, "detach"):  # a torch tensor (processor.get_prompt_ids(..., return_tensors="pt"))
        prompt_ids = prompt_ids.detach().cpu().numpy()
    ids = np.asarray(prompt_ids)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"prompt_ids must be a non-empty 1-D sequence of token ids (processor.get_prompt_ids(text, return_tensors='np')), "
            f"got {ids.dtype} of shape {list(ids.shape)}."
        )
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"prompt_ids holds ids outside this model's vocabulary (0..{vocab_size - 1}).")
    return tuple(int(t) for t in ids)


def longform_settings(
    generation_config,
    vocab_size: int,
    temperature=None,
    compression_ratio_threshold=None,
    logprob_threshold=None,
    no_speech_threshold=None,
    condition_on_prev_tokens=None,
    prompt_ids=None,
    prompt_condition_type=None,
    seed=None,
    window_stats: bool = False,
) -> LongFormSettings:
    """The call's options, else the checkpoint generation config's (thresholds and ``condition_on_prev_tokens``, as
    transformers reads them), checked."""
    g = generation_config

    def given(value, name):
        return value if value is not None else getattr(g, name, None)

    if temperature is None or isinstance(temperature, numbers.Real):
        temperatures = (temperature,)
    elif isinstance(temperature, (list, tuple)) and temperature:
        temperatures = tuple(temperature)
    else:
        raise ValueError(f"temperature must be a number or a non-empty list of numbers (the fallback sequence), got {temperature!r}.")
    temperatures = tuple(t if t is None else _number(t, "temperature") for t in temperatures)
    if any(t is not None and t < 0 for t in temperatures):
        raise ValueError(f"temperature must be >= 0, got {temperature!r}.")
    thresholds = {}
    for name, value in (
        ("compression_ratio_threshold", compression_ratio_threshold),
        ("logprob_threshold", logprob_threshold),
        ("no_speech_threshold", no_speech_threshold),
    ):
        value = given(value, name)
        thresholds[name] = None if value is None else _number(value, name)
    if thresholds["no_speech_threshold"] is not None and thresholds["logprob_threshold"] is None:
        raise ValueError(
            "no_speech_threshold skips a window when its no-speech probability is high *and* its mean log-probability is below "
            "logprob_threshold: pass logprob_threshold too (transformers' and OpenAI's usual value is -1.0)."
        )
    condition = given(condition_on_prev_tokens, "condition_on_prev_tokens")
    if condition not in (None, True, False):
        raise ValueError(f"condition_on_prev_tokens must be True or False, got {condition!r}.")
    condition_type = prompt_condition_type or CONDITION_TYPES[0]
    if condition_type not in CONDITION_TYPES:
        raise ValueError(f"prompt_condition_type must be one of {list(CONDITION_TYPES)}, got {prompt_condition_type!r}.")
    if condition_type == "all-segments" and condition is not True:
        raise ValueError(
            "prompt_condition_type='all-segments' prompts every window after the previous text: pass condition_on_prev_tokens=True."
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return LongFormSettings(
        temperatures=temperatures,
        condition_on_prev_tokens=bool(condition),
        prompt_ids=None if prompt_ids is None else _token_list(prompt_ids, vocab_size),
        prompt_condition_type=condition_type,
        seed=seed,
        window_stats=window_stats,
        **thresholds,
    )


def compression_ratio(tokens: np.ndarray, vocab_size: int) -> float:
    """transformers' ``_retrieve_compression_ratio``: raw bytes of the token ids over their zlib-compressed bytes."""
    width = int(math.log2(vocab_size) / 8) + 1
    data = b"".join(int(t).to_bytes(width, "little") for t in np.asarray(tokens).tolist())
    return len(data) / len(zlib.compress(data))


def needs_fallback(
    settings: LongFormSettings, tokens: np.ndarray, avg_logprob: float | None, no_speech_prob: float | None, vocab_size: int
):
    """transformers' ``_need_fallback``: (decode again at the next temperature, skip the window). ``tokens``: the
    window's generated tokens up to and including the end token."""
    fallback = skip = False
    if settings.compression_ratio_threshold is not None and compression_ratio(tokens, vocab_size) > settings.compression_ratio_threshold:
        fallback = True
    if settings.logprob_threshold is not None and avg_logprob < settings.logprob_threshold:
        fallback = True
    if settings.no_speech_threshold is not None:
        if avg_logprob < settings.logprob_threshold and no_speech_prob > settings.no_speech_threshold:
            fallback, skip = False, True
    return fallback, skip


TIME_PRECISION = 0.02  # seconds per timestamp step
INPUT_STRIDE = 2  # encoder frames per timestamp step (log-mel frames: 10 ms)


@dataclass
class Segment:
    """A piece of transcript, as transformers' ``generate(return_segments=True)`` gives it: its tokens, its start and
    end in seconds, the log-mel frame its window started at, and its window's decoding figures (where measured)."""

    tokens: np.ndarray
    start: float = 0.0
    end: float = 0.0
    seek: int = 0
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None
    token_timestamps: np.ndarray | None = None  # each token's time in seconds (where asked for)


def window_segments(tokens: np.ndarray, timestamp_begin: int, window_frames: int, seek: int = 0) -> tuple[list[Segment], int]:
    """transformers' ``_retrieve_segment``: the segments one window's tokens (end token removed) make, the window
    starting at log-mel frame ``seek``, and the frames to move forward. Two timestamps in a row close a segment; when
    the window does not end on a single timestamp, what follows the last closed segment is dropped and decoding resumes
    from there."""
    time_offset = seek * TIME_PRECISION / INPUT_STRIDE
    is_stamp = tokens >= timestamp_begin
    closing = [i + 1 for i in range(len(tokens) - 1) if is_stamp[i] and is_stamp[i + 1]]
    if not closing:  # one segment, to the window's end or its last timestamp
        stamps = np.flatnonzero(is_stamp)
        last = int(np.float32(window_frames) * np.float32(0.01) / np.float32(TIME_PRECISION))  # in float32, as transformers
        if len(stamps) and tokens[stamps[-1]] != timestamp_begin:
            last = float(tokens[stamps[-1]] - timestamp_begin)
        return [Segment(tokens, time_offset, time_offset + last * TIME_PRECISION, seek)], window_frames
    single_ending = len(tokens) >= 2 and not is_stamp[-2] and is_stamp[-1]
    if single_ending:  # no speech after the last timestamp
        cuts, offset = [*closing, len(tokens)], window_frames
    else:  # the last closed segment keeps both of its timestamps
        cuts = [*closing[:-1], closing[-1] + 1]
        offset = int(tokens[cuts[-1] - 2] - timestamp_begin) * INPUT_STRIDE
    segments = []
    for i, (a, b) in enumerate(zip([0, *cuts[:-1]], cuts)):
        piece = tokens[a:b]
        end_index = -2 if i == len(cuts) - 1 and not single_ending else -1
        start = time_offset + float(piece[0] - timestamp_begin) * TIME_PRECISION
        segments.append(Segment(piece, start, time_offset + float(piece[end_index] - timestamp_begin) * TIME_PRECISION, seek))
    return segments, offset


def previous_text(segments: list[Segment], timestamp_begin: int, cut_off: int) -> np.ndarray:
    """The text before a window, as it prompts the window: the segments' tokens (a segment closing on two timestamps
    read up to the first), the last ``cut_off`` of them."""
    parts = [s.tokens[:-1] if len(s.tokens) > 2 and s.tokens[-2] >= timestamp_begin else s.tokens for s in segments]
    tokens = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return tokens[-cut_off:] if cut_off else tokens[:0]


def window_prefixes(
    settings: LongFormSettings,
    audios: list[int],
    segments: list[list[Segment]],
    conditioned: list[bool],
    prev_sot: int | None,
    timestamp_begin: int,
    cut_off: int,
) -> list[list[int]]:
    """transformers' ``_prepare_decoder_input_ids``: the tokens before each audio's start tokens in this window."""
    prompt = list(settings.prompt_ids) if settings.prompt_ids is not None else None
    if any(conditioned) and segments[0]:
        bos = (
            prompt
            if prompt is not None and settings.prompt_condition_type == "all-segments"
            else ([prev_sot] if prev_sot is not None else [])
        )
        out = []
        for a in audios:
            text = previous_text(segments[a], timestamp_begin, cut_off).tolist() if conditioned[a] and segments[a] else []
            out.append(bos + [int(t) for t in text])
        return out
    return [list(prompt) if prompt is not None else [] for _ in audios]


def token_logprobs(scores: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """log softmax(scores)[token] per row (float32, as transformers computes the mean log-probability)."""
    s = scores.astype(np.float32)
    top = s.max(-1, keepdims=True)
    log_norm = np.log(np.exp(s - top).sum(-1)) + top[:, 0]
    return s[np.arange(len(tokens)), tokens] - log_norm


def no_speech_probability(logits: np.ndarray, no_speech_token: int) -> np.ndarray:
    """transformers' ``WhisperNoSpeechDetection``: softmax of the raw logits after the start token, at the no-speech token."""
    x = logits.astype(np.float32)
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e[:, no_speech_token] / e.sum(-1)
