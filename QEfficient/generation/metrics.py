"""Result objects of generate(), named and printed as QEfficient does."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PerfMetrics:
    prefill_time: float  # seconds from the call to the first token (time to first token)
    decode_perf: float  # decode tokens per second, per sequence
    total_perf: float  # generated tokens per second over the whole call, per sequence
    total_time: float  # seconds, end to end

    def __repr__(self) -> str:
        return (
            f"Average Prefill time a.k.a TTFT is= {round(self.prefill_time, 4)} sec\n"
            f"Decode is= {round(self.decode_perf, 2)} tokens/sec\n"
            f"Total is= {round(self.total_perf, 2)} tokens/sec\n"
            f"Total (E2E) inference time is= {round(self.total_time, 2)} sec"
        )


@dataclass
class CloudAI100ExecInfo:
    """What generate() returns: one entry per batch of prompts, as in QEfficient.

    ``generated_texts[i][j]`` is the completion of the j-th prompt of batch i (with continuous batching, as in
    QEfficient, ``generated_texts[i]`` is the i-th prompt's completion); ``generated_ids[i]`` is an int64 array
    ``[batch_size, n]`` padded with the pad token id after each row's end. ``texts``: every completion, flat.
    """

    batch_size: int
    generated_texts: list[list[str]] | list[str]
    generated_ids: list[np.ndarray]
    perf_metrics: PerfMetrics
    prompts: list[str] = field(default_factory=list, repr=False)
    vision_time: float | None = field(default=None, repr=False)  # image-text models: seconds in the vision graph
    segments: list | None = field(default=None, repr=False)  # speech models: each audio's transcript segments
    languages: list | None = field(default=None, repr=False)  # speech models: each audio's language code, where known
    token_timestamps: list | None = field(default=None, repr=False)  # speech models: each token's time (s), where asked
    words: list | None = field(default=None, repr=False)  # speech models: each audio's timed words, where asked
    logprobs: list | None = field(default=None, repr=False)  # where asked: each output row's (logprob, top ids, top logprobs) per token

    @property
    def texts(self) -> list[str]:
        """All completions, flat and in prompt order."""
        return [t for entry in self.generated_texts for t in ([entry] if isinstance(entry, str) else entry)]

    def __repr__(self) -> str:
        m = self.perf_metrics
        # image-text models with two graphs (with one, the encoder's time is part of the prefill's)
        vision = f"Vision encoder time is= {round(self.vision_time, 4)} sec\n" if self.vision_time is not None else ""
        return (
            vision + f"Average Prefill time a.k.a TTFT is= {round(m.prefill_time, 4)} sec\n"
            f"Decode is= {round(m.decode_perf * self.batch_size, 2)} tokens/sec\n"
            f"Total is= {round(m.total_perf * self.batch_size, 2)} tokens/sec\n"
            f"Total (E2E) inference time is= {round(m.total_time, 2)} sec"
        )
