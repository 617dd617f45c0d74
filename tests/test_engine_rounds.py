"""benchmarks/engine_rounds.py: the every-engine table's interleaved rounds and paired ratios."""

import pytest

from benchmarks.engine_rounds import interleaved_rounds, median_row, paired_ratios, ratio_text


def test_rounds_flip_the_order_and_keep_failed_runs_in_place():
    calls = []

    def engine(name, fail_round=None):
        def run(r):
            calls.append((r, name))
            return None if r == fail_round else {"decode_tok_s": 10.0 * (r + 1), "ttft_s": 0.1, "peak_rss_mb": 100 + r}

        return run

    runs = interleaved_rounds({"a": engine("a"), "b": engine("b", fail_round=1), "c": engine("c")}, 3)
    assert calls == [(0, "a"), (0, "b"), (0, "c"), (1, "c"), (1, "b"), (1, "a"), (2, "a"), (2, "b"), (2, "c")]
    assert runs["b"][1] is None and len(runs["b"]) == 3  # a failed run keeps its round's place
    assert paired_ratios(runs["a"], runs["b"]) == [1.0, 1.0]  # round 1 has no pair
    with pytest.raises(ValueError, match="at least 1"):
        interleaved_rounds({"a": engine("a")}, 0)


def test_median_row_and_ratio_text():
    rows = [
        {"decode_tok_s": 90.0, "ttft_s": 0.05, "peak_rss_mb": 260, "load_peak_rss_mb": 300, "perplexity": 21.9},
        None,
        {"decode_tok_s": 100.0, "ttft_s": 0.04, "peak_rss_mb": 262, "load_peak_rss_mb": 290},
        {"decode_tok_s": 120.0, "ttft_s": 0.07, "peak_rss_mb": 261, "load_peak_rss_mb": 295},
    ]
    row = median_row(rows)
    assert row["decode_tok_s"] == 100.0 and row["ttft_s"] == 0.05
    assert row["peak_rss_mb"] == 262 and row["load_peak_rss_mb"] == 300
    assert row["perplexity"] == 21.9 and row["rounds"] == 3
    assert median_row([None, None]) is None
    assert ratio_text([]) == "-"
    assert ratio_text([1.04]) == "1.04"
    assert ratio_text([0.97, 1.1, 1.04]) == "1.04 (0.97-1.10)"
