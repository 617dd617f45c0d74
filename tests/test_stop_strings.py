"""Stop strings cut as vLLM cuts them (serving/stop_strings.py), on a tokenizer-free decode: the first token whose text
completes a stop string ends the answer, at the first of the request's strings found in what that token added; a
stream never lets out text past where the answer will end."""

from __future__ import annotations

import pytest

from QEfficient.serving.stop_strings import StopStream, cut_at_stop, stop_written_first, tokens_through

PIECES = ["say", " hel", "lo", " wor", "ld", " now"]


def decode(ids: list[int]) -> str:
    return "".join(PIECES[i] for i in ids)


IDS = list(range(len(PIECES)))


@pytest.mark.parametrize(
    "stops, include, expected",
    [
        (["hello world", "wor"], False, ("say hello ", 4, "wor")),  # "wor" is written first, though it begins later
        (["hello world", "wor"], True, ("say hello wor", 4, "wor")),
        (["d now", "ld"], False, ("say hello wor", 5, "ld")),  # the first to end
        (["o", "l"], False, ("say he", 2, "l")),  # two in one token's text: the request's order, as vLLM
        (["l", "o"], False, ("say he", 2, "l")),
        (["o", "hel"], False, ("say ", 2, "hel")),  # "hel" ends at the second token, "o" at the third
        (["missing"], False, ("say hello world now", 6, None)),
        (["say"], True, ("say", 1, "say")),
        (["say"], False, ("", 1, "say")),
    ],
)
def test_the_answer_ends_where_vllm_stops_it(stops, include, expected):
    assert cut_at_stop(decode, IDS, stops, include) == expected


def test_tokens_through_finds_the_fewest_tokens():
    text = decode(IDS)
    assert [tokens_through(decode, IDS, text, end) for end in (1, 3, 4, 7, 8, len(text))] == [1, 1, 2, 2, 3, 6]


@pytest.mark.parametrize("stops", [["hello world", "wor"], ["o w", "ld"], ["missing"], ["now"]])
def test_a_stream_never_sends_past_the_answer(stops):
    """Token by token, with each token's step (token, entry, where its text starts): what goes out is always a start of
    the answer, all of it once the token that ends it is in, with the steps of the tokens whose text begins in it."""
    answer, kept, reason = cut_at_stop(decode, IDS, stops, False)
    stream, sent, steps = StopStream(stops, False, decode), "", []
    for i in IDS:
        piece, released = stream.feed(PIECES[i], (i, None, len(decode(IDS[:i]))), IDS[: i + 1])
        sent += piece
        steps += released
        assert answer.startswith(sent)
        if reason is not None and i + 1 >= kept:
            assert sent == answer and stream.kept == kept
    piece, released = stream.finish(answer, cut=reason is not None)
    assert sent + piece == answer
    assert [s[0] for s in steps + released] == ([i for i in IDS if len(decode(IDS[:i])) < len(answer)] if reason else IDS)


def test_the_first_stop_string_is_chosen_as_vllm_chooses_it():
    """Both end in the fourth token's text: the request's order decides, not where each begins; a string that ends
    within the first ``floor`` characters (min_tokens' text) does not count."""
    text = decode(IDS)
    assert stop_written_first(decode, IDS, text, ["wor", "lo wor"]) == (4, text.index("wor"), "wor")
    assert stop_written_first(decode, IDS, text, ["lo wor", "wor"]) == (4, text.index("lo wor"), "lo wor")
    assert stop_written_first(decode, IDS, text, ["say", "now"], floor=3) == (6, text.index("now"), "now")
    assert stop_written_first(decode, IDS, text, ["say"], floor=2) == (1, 0, "say")


def test_a_character_split_across_tokens_does_not_move_the_window():
    """One byte per token (byte fallback): the token before the one that completes a string may end in half a
    character, which the next token rewrites; vLLM's order among the strings that token completes still holds."""
    ids = list("ab中c".encode())

    def as_text(part: list[int]) -> str:
        return bytes(part).decode("utf-8", errors="replace")

    assert cut_at_stop(as_text, ids, ["中", "b中"], False) == ("ab", 5, "中")
    assert cut_at_stop(as_text, ids, ["b中", "中"], False) == ("a", 5, "b中")
