"""vLLM's request fields that change what is generated, beyond OpenAI's: ``allowed_token_ids``, ``bad_words``,
``truncate_prompt_tokens`` and ``use_beam_search`` (applied, as vLLM applies them; the search is transformers'), and
those this server does not apply (a 400 that says so, rather than an answer that silently differs from vLLM's).
Fields vLLM reads that change nothing generated (``request_id``, ``priority``, ``cache_salt``, ...) are left alone,
as vLLM leaves unknown fields.
"""

from __future__ import annotations

from QEfficient.generation.beam_search import BeamSettings
from QEfficient.serving.errors import APIError
from QEfficient.serving.params import boolean, number

MAX_BAD_WORDS = 128  # vLLM's default limit (VLLM_MAX_NUM_BAD_WORDS), counted after tokenization

# field: (the values that mean "off", what to do instead)
_NOT_APPLIED = {
    "prompt_embeds": ((None,), "send the prompt as text or token ids"),
    "logits_processors": ((None, []), "custom logits processors are not run here: leave them out"),
}


# what beam search here does not read (the search alone, as vLLM's, on the model's own log-probabilities)
_NOT_WITH_BEAMS = {
    "logprobs": (None, False),
    "top_logprobs": (None,),
    "prompt_logprobs": (None,),
    "echo": (None, False),
    "stop": (None, [], ""),
    "min_tokens": (None, 0),
    "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "repetition_penalty": (None, 1, 1.0),
    "allowed_token_ids": (None,),
    "bad_words": (None, []),
    "response_format": (None, {"type": "text"}),
    "structured_outputs": (None,),
    "guided_json": (None,),
    "guided_regex": (None,),
    "guided_choice": (None,),
    "guided_grammar": (None,),
    "tools": (None, []),
    "return_token_ids": (None, False),
}


def is_off(value, off: tuple) -> bool:
    """Whether a field's ``value`` is one of the values ``off`` that mean "not used" (true is not 1, nor false 0)."""
    return any(value is v or (v is not None and not isinstance(value, bool) and not isinstance(v, bool) and value == v) for v in off)


def refuse_unapplied(body: dict) -> None:
    """A 400 for a vLLM field set to something this server does not do."""
    for name, (off, instead) in _NOT_APPLIED.items():
        if not is_off(body.get(name), off):
            raise APIError(400, f"'{name}' is not supported by this server; {instead}.", name)


def requested_beams(body: dict, n: int, supported: bool) -> BeamSettings | None:
    """vLLM's ``use_beam_search``: transformers' beam search of ``n`` beams (its n best hypotheses are the prompt's
    choices), with ``length_penalty`` and ``early_stopping``; None without it (then those two must be left out)."""
    if not boolean(body, "use_beam_search"):
        for name, off in (("length_penalty", (None, 1, 1.0)), ("early_stopping", (None, False))):
            if not is_off(body.get(name), off):
                raise APIError(400, f"'{name}' applies to beam search: send \"use_beam_search\": true too, or leave it out.", name)
        return None
    if not supported:
        message = (
            "This server runs no beam search (it does on a plain text model with its cache in host memory: not with LoRA "
            "adapters, speculative decoding, images or a GPU cache): leave 'use_beam_search' out."
        )
        raise APIError(400, message, "use_beam_search")
    for name, off in _NOT_WITH_BEAMS.items():
        if name == "tools" and body.get("tool_choice") == "none":  # tools offered, none called: only the prompt shows them
            continue
        if not is_off(body.get(name), off):
            raise APIError(400, f"'{name}' is not applied with beam search here: leave it out, or leave out 'use_beam_search'.", name)
    length_penalty = number(body, "length_penalty", float, 1.0, low=-10, high=10)
    early_stopping = body.get("early_stopping")
    early_stopping = False if early_stopping is None else early_stopping
    if not any(early_stopping is v for v in (True, False)) and early_stopping != "never":
        raise APIError(400, "'early_stopping' must be true, false or \"never\" (transformers' beam search).", "early_stopping")
    return BeamSettings(n, length_penalty, early_stopping, n)


def allowed_token_ids(body: dict, vocab_size: int) -> tuple[int, ...] | None:
    """vLLM's ``allowed_token_ids``: the only token ids that may be generated (``vocab_size``: the ids the model can
    write, its head's and its tokenizer's)."""
    ids = body.get("allowed_token_ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not ids or not all(type(t) is int and 0 <= t < vocab_size for t in ids):
        message = f"'allowed_token_ids' must be a non-empty list of token ids of this model (0..{vocab_size - 1})."
        raise APIError(400, message, "allowed_token_ids")
    return tuple(sorted(set(ids)))


def bad_words_ids(body: dict, tokenizer, vocab_size: int) -> tuple[tuple[int, ...], ...] | None:
    """vLLM's ``bad_words`` as token sequences, tokenized as vLLM does: each word as written (leading spaces stripped),
    and again after a space where that gives another first token and as many tokens (a word inside the text)."""
    words = body.get("bad_words")
    if words is None or words == []:
        return None
    if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
        raise APIError(400, "'bad_words' must be a list of non-empty strings.", "bad_words")
    if len(words) > MAX_BAD_WORDS:
        raise APIError(400, f"'bad_words' has {len(words)} words; at most {MAX_BAD_WORDS} are taken.", "bad_words")
    sequences: list[tuple[int, ...]] = []
    for word in words:
        plain = tuple(tokenizer.encode(word.lstrip(), add_special_tokens=False))
        spaced = tuple(tokenizer.encode(" " + word.lstrip(), add_special_tokens=False))
        if not plain or any(not 0 <= t < vocab_size for t in plain + spaced):
            raise APIError(400, f"The bad word {word!r} is not made of tokens this model can write.", "bad_words")
        sequences.append(plain)
        if spaced and spaced[0] != plain[0] and len(spaced) == len(plain):
            sequences.append(spaced)
    if len(sequences) > MAX_BAD_WORDS:
        raise APIError(400, f"'bad_words' makes {len(sequences)} token sequences; at most {MAX_BAD_WORDS} are taken.", "bad_words")
    return tuple(sequences)


def check_allowed_tokens_left(allowed: tuple[int, ...] | None, bad: tuple[tuple[int, ...], ...] | None) -> None:
    """A 400 where the bad words bar every allowed token."""
    barred = {w[0] for w in bad or () if len(w) == 1}
    if allowed and barred.issuperset(allowed):
        raise APIError(400, "'bad_words' bar every token of 'allowed_token_ids': nothing could be written.", "bad_words")


def truncate_prompt_tokens(body: dict, ctx_len: int) -> int | None:
    """vLLM's ``truncate_prompt_tokens``: the prompt's last N tokens are kept (-1: as many as the context holds)."""
    value = body.get("truncate_prompt_tokens")
    if value is None:
        return None
    if type(value) is not int or not (value == -1 or 1 <= value <= ctx_len):
        message = f"'truncate_prompt_tokens' must be a number of tokens from 1 to the context's {ctx_len}, or -1 (the context)."
        raise APIError(400, message, "truncate_prompt_tokens")
    return ctx_len if value == -1 else value


def text_span(tokenizer, text: str, ids: list[int]) -> tuple[list[int], list[int], list[int]] | None:
    """``ids``, the tokens of ``text`` with the special tokens the tokenizer adds, split as (those before the text's own
    tokens, the text's, those after); None where the text's own tokens are not found among them."""
    body = tokenizer(text, add_special_tokens=False)["input_ids"]
    at = next((i for i in range(len(ids) - len(body) + 1) if ids[i : i + len(body)] == body), None) if body else None
    return None if at is None else (ids[:at], body, ids[at + len(body) :])


def truncated(tokenizer, prompt: str | list[int], ids: list[int], keep: int) -> list[int]:
    """vLLM's truncate_prompt_tokens on ``ids``, the prompt's tokens: the last ``keep`` (of a string, as the tokenizer
    truncates on the left: the special tokens it adds, a BOS, stay)."""
    span = text_span(tokenizer, prompt, ids) if isinstance(prompt, str) else None
    if span is None:
        return ids[-keep:]
    head, text, tail = span
    if keep <= len(head) + len(tail):
        message = f"'truncate_prompt_tokens' ({keep}) leaves no room beside the {len(head) + len(tail)} special tokens the tokenizer adds."
        raise APIError(400, message, "truncate_prompt_tokens")
    return head + text[len(text) - (keep - len(head) - len(tail)) :] + tail


def refuse_prompt_fields(body: dict, chat: bool) -> None:
    """A 400 for the vLLM prompt fields a vision-language server does not apply (its processor tokenizes), unless they
    are vLLM's defaults."""
    for name, default in (("truncate_prompt_tokens", None), ("add_special_tokens", not chat)):
        if not is_off(body.get(name), (None, default)):
            raise APIError(400, f"'{name}' is not applied by this vision-language server: leave it out.", name)
