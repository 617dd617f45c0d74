"""Perplexity of a token sequence under a compiled artifact, to measure what compression costs."""

from __future__ import annotations

import numpy as np

from QEfficient.runtime.ort_session import KVCacheSession


def perplexity(session: KVCacheSession, token_ids: list[int]) -> float:
    """exp(mean negative log-likelihood) of token_ids[1:], feeding one token per step.

    The graph returns the logits of the last position only, so each position is a decode step
    (every batch row carries the same sequence).
    """
    if len(token_ids) < 2 or len(token_ids) > session.ctx_len:
        raise ValueError(f"Need 2..{session.ctx_len} tokens, got {len(token_ids)}.")
    ids = np.empty((session.batch_size, 1), dtype=np.int64)
    pos = np.empty((session.batch_size, 1), dtype=np.int64)
    session.reset()
    nll = 0.0
    for i, (tok, nxt) in enumerate(zip(token_ids[:-1], token_ids[1:])):
        ids[:] = tok
        pos[:] = i
        logits = session.run(ids, pos)[0].astype(np.float64)
        top = logits.max()
        nll += top + np.log(np.exp(logits - top).sum()) - logits[nxt]
    return float(np.exp(nll / (len(token_ids) - 1)))
