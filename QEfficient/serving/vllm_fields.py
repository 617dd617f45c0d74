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
    "use_beam_search": ((None, False), "beam search is not served here: leave it out, or run generate(num_beams=...) in Python"),
    "length_penalty": ((None, 1, 1.0), "it applies to beam search, which is not served here: leave it out"),
    "early_stopping": ((None, False), "it applies to beam search, which is not served here: leave it out"),
    "prompt_embeds": ((None,), "send the prompt as text or token ids"),
    "logits_processors": ((None, []), "custom logits processors are not run here: leave them out"),
}


def refuse_unapplied(body: dict) -> None:
    """A 400 for a vLLM field set to something this server does not do."""
    for name, (off, instead) in _NOT_APPLIED.items():
        value = body.get(name)
        if not any(value is v or (v is not None and not isinstance(value, bool) and value == v) for v in off):
            raise APIError(400, f"'{name}' is not supported by this server: {instead}.", name)


def allowed_token_ids(body: dict, vocab_size: int) -> tuple[int, ...] | None:
    """vLLM's ``allowed_token_ids``: the only token ids that may be generated."""
    ids = body.get("allowed_token_ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not ids or not all(type(t) is int and 0 <= t < vocab_size for t in ids):
        message = f"'allowed_token_ids' must be a non-empty list of token ids of this model (0..{vocab_size - 1})."
        raise APIError(400, message, "allowed_token_ids")
    return tuple(sorted(set(ids)))


def bad_words_ids(body: dict, tokenizer) -> tuple[tuple[int, ...], ...] | None:
    """vLLM's ``bad_words`` as token sequences, tokenized as vLLM does: each word as written (leading spaces stripped),
    and again after a space where that gives another first token and as many tokens (a word inside the text)."""
    words = body.get("bad_words")
    if words is None or words == []:
        return None
    if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
        raise APIError(400, "'bad_words' must be a list of non-empty strings.", "bad_words")
    sequences: list[tuple[int, ...]] = []
    for word in words:
        plain = tuple(tokenizer.encode(word.lstrip(), add_special_tokens=False))
        spaced = tuple(tokenizer.encode(" " + word.lstrip(), add_special_tokens=False))
        sequences.append(plain)
        if spaced and spaced[0] != plain[0] and len(spaced) == len(plain):
            sequences.append(spaced)
    if len(sequences) > MAX_BAD_WORDS:
        raise APIError(400, f"'bad_words' makes {len(sequences)} token sequences; at most {MAX_BAD_WORDS} are taken.", "bad_words")
    return tuple(sequences)
