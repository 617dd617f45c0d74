"""vLLM's request fields that change what is generated, beyond OpenAI's: ``allowed_token_ids`` and ``bad_words``
(applied, as vLLM applies them), and those this server does not apply (a 400 that says so, rather than an answer
that silently differs from vLLM's). Fields vLLM reads that change nothing generated (``request_id``, ``priority``,
``cache_salt``, ...) are left alone, as vLLM leaves unknown fields.
"""

from __future__ import annotations

from QEfficient.serving.errors import APIError

MAX_BAD_WORDS = 128  # vLLM's default limit (VLLM_MAX_NUM_BAD_WORDS), counted after tokenization

# field: (the values that mean "off", what to do instead)
_NOT_APPLIED = {
    "use_beam_search": ((None, False), "leave it out (QEFFAutoModelForCausalLM.generate(num_beams=...) runs beam search offline)"),
    "length_penalty": ((None, 1, 1.0), "it applies to beam search, which is not served here: leave it out"),
    "early_stopping": ((None, False), "it applies to beam search, which is not served here: leave it out"),
    "prompt_embeds": ((None,), "send the prompt as text or token ids"),
    "logits_processors": ((None, []), "custom logits processors are not run here: leave them out"),
}


def is_off(value, off: tuple) -> bool:
    """Whether a field's ``value`` is one of the values ``off`` that mean "not used" (true is not 1, nor false 0)."""
    return any(value is v or (v is not None and not isinstance(value, bool) and not isinstance(v, bool) and value == v) for v in off)


def refuse_unapplied(body: dict) -> None:
    """A 400 for a vLLM field set to something this server does not do."""
    for name, (off, instead) in _NOT_APPLIED.items():
        if not is_off(body.get(name), off):
            raise APIError(400, f"'{name}' is not supported by this server; {instead}.", name)


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
