"""Whisper's token timestamps, as transformers' ``generate(return_token_timestamps=True)`` computes them: the
cross-attention of the checkpoint's alignment heads over the audio frames, normalized over the tokens, median-filtered
over the frames and averaged over the heads, then aligned to the frames by dynamic time warping; each token's time is
where the path first reaches it.

transformers collects the attention while it generates. Here the decoder graph re-reads the window's tokens in one
pass (``KVCacheSession.run_detached``): each position's attention depends only on the tokens before it, so the rows are
the same. Host-side numpy only.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from QEfficient.generation.whisper_longform import TIME_PRECISION


def median_filter(values: np.ndarray, width: int) -> np.ndarray:
    """transformers' ``_median_filter``: the median over ``width`` neighbours along the last axis, edges reflected."""
    if width <= 0 or width % 2 != 1:
        raise ValueError(f"median_filter_width must be an odd number, got {width}.")
    pad = width // 2
    if values.shape[-1] <= pad:
        return values
    padded = np.pad(values, [(0, 0)] * (values.ndim - 1) + [(pad, pad)], mode="reflect")
    return np.partition(sliding_window_view(padded, width, axis=-1), pad, axis=-1)[..., pad]


def dynamic_time_warping(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """transformers' ``_dynamic_time_warping`` (float32 costs, its tie order), filled one anti-diagonal at a time:
    the (token, frame) index pairs of the cheapest monotonic path through ``matrix`` [tokens, frames]."""
    rows, cols = matrix.shape
    matrix = np.asarray(matrix, np.float64)
    cost = np.full((rows + 1, cols + 1), np.inf, np.float32)
    trace = np.full((rows + 1, cols + 1), -1.0, np.float32)
    cost[0, 0] = 0
    for diagonal in range(2, rows + cols + 1):
        i = np.arange(max(1, diagonal - cols), min(rows, diagonal - 1) + 1)
        j = diagonal - i
        c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
        first = (c0 < c1) & (c0 < c2)
        second = ~first & (c1 < c0) & (c1 < c2)
        best = np.where(first, c0, np.where(second, c1, c2))
        cost[i, j] = (matrix[i - 1, j - 1] + best.astype(np.float64)).astype(np.float32)
        trace[i, j] = np.where(first, 0, np.where(second, 1, 2))
    trace[0, :] = 2
    trace[:, 0] = 1
    i, j = rows, cols
    text, time = [], []
    while i > 0 or j > 0:
        text.append(i - 1)
        time.append(j - 1)
        step = trace[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return np.array(text[::-1]), np.array(time[::-1])


def token_timestamps(weights: np.ndarray, num_input_ids: int, num_frames: int | None, filter_width: int = 7) -> np.ndarray:
    """One sequence's token times in seconds (transformers' ``_extract_token_timestamps``), float32, one more than the
    rows of ``weights`` [heads, rows, encoder frames]: the attention of each fed token (the decoder prompt, padding
    included, then each generated token but the last). The prompt's tokens get 0, the last token repeats the time before
    it. ``num_frames``: the audio's log-mel frames in the window (None: all of them)."""
    heads, rows, _ = weights.shape
    stamps = np.zeros(rows + 1, np.float32)
    if num_frames is not None:
        weights = weights[..., : num_frames // 2]
    weights = np.asarray(weights[:, num_input_ids:], np.float32)
    if weights.shape[1] == 0:  # one token generated: no attention was read for it
        return stamps
    with np.errstate(divide="ignore", invalid="ignore"):  # a single row has no spread: NaN, as in transformers
        weights = (weights - weights.mean(axis=-2, keepdims=True)) / weights.std(axis=-2, keepdims=True)
    matrix = median_filter(weights, filter_width).mean(axis=0)
    text, time = dynamic_time_warping(-matrix.astype(np.float64))
    jumps = np.pad(np.diff(text), (1, 0), constant_values=1).astype(bool)
    jump_times = time[jumps] * TIME_PRECISION
    stamps[num_input_ids:] = np.concatenate([jump_times, jump_times[-1:]])
    return stamps


def word_timestamps(tokenizer, tokens: np.ndarray, times: np.ndarray, language: str | None = None) -> list[dict]:
    """The words of one transcript with their start and end in seconds ({"word", "start", "end"}, as OpenAI's
    ``verbose_json`` gives them), grouped as transformers' speech-recognition pipeline groups them for
    ``return_timestamps="word"``: a word runs from the end of the token before it to the end of its last token.
    ``tokens`` and ``times`` as ``generate(return_token_timestamps=True)`` gives them (decode with ``return_timestamps``
    for the pipeline's times); ``tokenizer`` a transformers Whisper tokenizer; ``language`` the audio's code (words of
    languages without spaces are split on characters)."""
    tokens = np.asarray(tokens, np.int64)
    times = np.asarray(times, np.float32)
    if language:  # transformers reads the language from a language token before the text
        language_id = tokenizer.convert_tokens_to_ids(f"<|{language}|>")
        if language_id is not None and language_id != tokenizer.unk_token_id:
            tokens, times = np.concatenate([[language_id], tokens]), np.concatenate([np.zeros(1, np.float32), times])
    output = {"tokens": tokens[None], "token_timestamps": times[None]}
    _, extra = tokenizer._decode_asr([output], return_timestamps="word", return_language=False, time_precision=TIME_PRECISION)
    return [{"word": c["text"].strip(), "start": c["timestamp"][0], "end": c["timestamp"][1]} for c in extra["chunks"]]
