"""Interleaved rounds for the every-engine table of bench_causal_lm.py.

The machines are shared VMs whose speed drifts by tens of percent within minutes, so engines measured
one after another can meet different spells and a ratio between them can say more about the hour than
about the engines. Here each round runs every engine once (one process each), in an order that flips
every round, and a ratio is taken between two engines *of the same round* (paired); the table prints the
median of those ratios and their range. Standard library only (the peers' interpreters import it too).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

TIMINGS = ("ttft_s", "ttft_long_s", "decode_tok_s", "cpu_ms_per_token")


def interleaved_rounds(engines: dict[str, Callable[[int], dict | None]], rounds: int) -> dict[str, list[dict | None]]:
    """Call ``engines[name](r)`` for every engine in each round r (the order reversed in odd rounds);
    returns each engine's rows by round (None where that run failed), so that rows of one round pair up."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    runs: dict[str, list[dict | None]] = {name: [] for name in engines}
    for r in range(rounds):
        for name in list(engines) if r % 2 == 0 else list(engines)[::-1]:
            runs[name].append(engines[name](r))
    return runs


def median_row(rows: list[dict | None]) -> dict | None:
    """One engine's figures over its rounds: the median of each timing, the largest peak RSS (while
    generating, and while loading), and the rest (perplexity, tokens, flags) from the first round that
    has them. None if every round failed."""
    ok = [r for r in rows if r]
    if not ok:
        return None
    out: dict = {}
    for row in ok:
        for key, value in row.items():
            out.setdefault(key, value)
    for key in TIMINGS:
        values = [r[key] for r in ok if r.get(key)]
        if values:
            out[key] = statistics.median(values)
    for key in ("peak_rss_mb", "load_peak_rss_mb"):
        if all(key in r for r in ok):
            out[key] = max(r[key] for r in ok)
    out["rounds"] = len(ok)
    return out


def paired_ratios(rows: list[dict | None], reference: list[dict | None], key: str = "decode_tok_s") -> list[float]:
    """rows[r][key] / reference[r][key] for every round where both engines ran."""
    return [a[key] / b[key] for a, b in zip(rows, reference) if a and b and a.get(key) and b.get(key)]


def ratio_text(ratios: list[float]) -> str:
    """'1.04' for one round, '1.04 (0.97-1.10)' (median, range) for several, '-' for none."""
    if not ratios:
        return "-"
    middle = f"{statistics.median(ratios):.2f}"
    return middle if len(ratios) == 1 else f"{middle} ({min(ratios):.2f}-{max(ratios):.2f})"
