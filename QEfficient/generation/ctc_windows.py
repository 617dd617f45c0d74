"""Audio longer than a CTC model's compiled length, read in overlapping windows whose edges only give context: each
window's frames over its edges are dropped and the rest joined, as transformers' speech-recognition pipeline reads
audio with ``chunk_length_s`` and ``stride_length_s`` (its window sizes, rounding and edge frames), so the ids, and the
text and times decoded from them, are the pipeline's. Pure arithmetic on sample and frame counts."""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_SECONDS = 30  # the window `infer` and the server read a CTC model's long audio in (and compile it for)


@dataclass(frozen=True)
class Window:
    """One window of the audio: samples [start, end), of which the first ``left`` and the last ``right`` only give
    context (0 at the audio's ends)."""

    start: int
    end: int
    left: int
    right: int


def window_sizes(
    chunk_length_s: float, stride_length_s: float | tuple[float, float] | None, sampling_rate: int, samples_per_frame: int
) -> tuple[int, int, int]:
    """(window, left edge, right edge) in samples, each a whole number of frames; the edges default to a sixth of the
    window each."""
    if stride_length_s is None:
        stride_length_s = chunk_length_s / 6
    left_s, right_s = (stride_length_s, stride_length_s) if isinstance(stride_length_s, (int, float)) else stride_length_s

    def samples(seconds: float) -> int:
        return int(round(seconds * sampling_rate / samples_per_frame) * samples_per_frame)

    window, left, right = samples(chunk_length_s), samples(left_s), samples(right_s)
    if min(left, right) < 0 or window <= left + right:
        raise ValueError(
            f"chunk_length_s={chunk_length_s} must be longer than its strides together ({left_s} s on the left, {right_s} s "
            "on the right), and they must not be negative."
        )
    return window, left, right


def windows(samples: int, window: int, left: int, right: int) -> list[Window]:
    """The windows over ``samples`` samples, each starting ``window - left - right`` after the one before; a window
    holding nothing past its left edge is skipped."""
    out = []
    for start in range(0, samples, window - left - right):
        end = min(start + window, samples)
        last = start + window >= samples
        edge_left = 0 if start == 0 else left
        if end - start > edge_left:
            out.append(Window(start, end, edge_left, 0 if last else right))
        if last:
            break
    return out


def kept_frames(window: Window, samples_per_frame: int) -> slice:
    """The frames of ``window``'s output that its edges do not cover, counted as the pipeline counts them: from the
    window's length over the frame's (a frame the model writes past that count is dropped)."""
    length = window.end - window.start
    frames = int(round(length / samples_per_frame))
    left = int(round(window.left / length * frames))
    right = int(round(window.right / length * frames))
    return slice(left, frames - right)
