"""DeepSeek-V4's compressed attention on the static cache (adapters/deepseek_v4.py). Token parity on the sweep's
prompt is the architecture sweep's job; here, what it does not reach: two rows at different positions with padded
chunks, a ctx_len that is not a multiple of either compression rate, the session's window growing past its first
rung (128 -> 150 slots) and a row restarting at position 0 over a used cache, each step against HF's logits."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.arch_sweep import tiny_model
from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.generation.exec_kv import open_session
from tests.tiny_models import sweep_config

CHUNK = 8


def test_padded_batched_restarted_steps_equal_hf():
    config = sweep_config("deepseek_v4")
    model = tiny_model(config)
    g = torch.Generator().manual_seed(5)
    seqs = [torch.randint(3, config.vocab_size, (n,), generator=g) for n in (140, 37, 61)]
    with torch.no_grad():
        refs = [model(s[None]).logits[0].numpy() for s in seqs]
    qpc = QEFFAutoModelForCausalLM(model).compile(prefill_seq_len=CHUNK, ctx_len=150, batch_size=2, num_cores=1)
    session = open_session(qpc, 1)
    worst = 0.0

    def step(rows: list[tuple[int, int, int] | None]) -> None:  # per row: (sequence, start, count) or idle
        nonlocal worst
        ids, pos = np.zeros((2, CHUNK), np.int64), np.full((2, CHUNK), -1, np.int64)
        for r, (s, start, n) in ((r, x) for r, x in enumerate(rows) if x):
            ids[r, :n], pos[r, :n] = seqs[s][start : start + n].numpy(), np.arange(start, start + n)
        logits = session.run(ids, pos)
        for r, (s, start, n) in ((r, x) for r, x in enumerate(rows) if x):
            worst = max(worst, float(np.abs(logits[r].reshape(-1) - refs[s][start + n - 1]).max()))

    a = b = 0
    while a < 37 or b < 140:  # row 0: chunks of 5, then single tokens; row 1: chunks of 8, then of 3
        n0, n1 = min(5 if a < 20 else 1, 37 - a), min(8 if b < 120 else 3, 140 - b)
        step([(1, a, n0) if n0 > 0 else None, (0, b, n1) if n1 > 0 else None])
        a, b = a + max(n0, 0), b + max(n1, 0)
    for start in range(0, 61, 7):  # row 0 starts a new sequence over its used cache
        step([(2, start, min(7, 61 - start)), None])
    assert worst < 1e-4


def test_context_shorter_than_a_window_equals_hf():
    """ctx_len below the HCA rate (the real model's 128): no window ever closes, the graph still runs."""
    config = sweep_config("deepseek_v4")
    model = tiny_model(config)
    seq = torch.randint(3, config.vocab_size, (7,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(seq[None]).logits[0].numpy()
    qpc = QEFFAutoModelForCausalLM(model).compile(prefill_seq_len=4, ctx_len=7, batch_size=1, num_cores=1)
    session = open_session(qpc, 1)
    for start, n in ((0, 4), (4, 2), (6, 1)):
        ids, pos = np.zeros((1, 4), np.int64), np.full((1, 4), -1, np.int64)
        ids[0, :n], pos[0, :n] = seq[start : start + n].numpy(), np.arange(start, start + n)
        assert np.abs(session.run(ids, pos)[0].reshape(-1) - ref[start + n - 1]).max() < 1e-4
