"""Structured output: the tokens a request may take next, from a grammar (a JSON schema, a regular expression, a
choice of strings or a Lark grammar), as vLLM's structured outputs constrain them.

A ``GrammarConstraint`` wraps llguidance's matcher (the engine vLLM uses too): before each token is chosen, the
tokens the grammar does not allow get -inf logits; after, the chosen token advances the matcher. Greedy decoding
then picks the likeliest token the grammar allows, sampling samples among them. The tokenizer's grammar tables
(``GrammarTokenizer``) are built once per server: about a second for a large vocabulary. Needs the ``llguidance``
package (the ``serve`` extra); no torch.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np


class GrammarError(ValueError):
    """A grammar llguidance refuses (an invalid regex, schema or Lark grammar)."""


class GrammarTokenizer:
    """llguidance's view of a tokenizer (a fast tokenizer's ``backend_tokenizer``), for logits ``n_vocab`` wide (or
    fewer)."""

    def __init__(self, tokenizer: Any, n_vocab: int, eos_ids: list[int]) -> None:
        import llguidance

        backend = tokenizer.backend_tokenizer
        # the wider of the logits and the tokenizer (added tokens past the head: never chosen, masked by the width)
        self.n_vocab = max(n_vocab, backend.get_vocab_size(with_added_tokens=True))
        self.ll = llguidance.LLTokenizer(backend.to_str(), n_vocab=self.n_vocab, eos_token=list(eos_ids) or None)

    def grammar(self, kind: str, spec: Any) -> str:
        """llguidance's grammar for ``kind`` "json" (a JSON schema, or its text; True for any JSON object), "regex",
        "choice" (a list of strings), "grammar" (Lark, or llama.cpp's GBNF as vLLM takes it) or "structural_tag" (a
        list of {trigger, begin, schema, end}: free text in which a trigger starts one of the tags, as vLLM builds it)."""
        from llguidance import LLMatcher, StructTag, grammar_from

        if kind == "json":  # a schema's text is parsed by llguidance (no Python recursion on deep nesting)
            schema = {"type": "object"} if spec is True else spec
            return LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
        if kind == "regex":
            return LLMatcher.grammar_from_regex(spec)
        if kind == "choice":
            return LLMatcher.grammar_from_regex("|".join(f"({re.escape(choice)})" for choice in spec))
        if kind == "structural_tag":
            tags = [StructTag(trigger=t["trigger"], begin=t["begin"], grammar=_no_free_whitespace(t["schema"]), end=t["end"]) for t in spec]
            return StructTag.to_grammar(tags)
        return grammar_from("grammar", spec)

    def constraint(self, kind: str, spec: Any, after: tuple[str, ...] = ()) -> GrammarConstraint | AfterMarker:
        """A fresh constraint for one request, holding the answer from its start or only after one of the texts ``after``;
        GrammarError for a grammar that cannot be used."""
        from llguidance import LLMatcher, LLParserLimits

        try:
            grammar = self.grammar(kind, spec)
        except (ValueError, TypeError, RecursionError) as err:
            raise GrammarError(str(err)) from None
        matcher = LLMatcher(self.ll, grammar, log_level=0, limits=LLParserLimits(verbose_errors=False))
        if matcher.is_error():
            raise GrammarError(matcher.get_error())
        constraint = GrammarConstraint(matcher, self.n_vocab)
        return AfterMarker(constraint, after, lambda token: self.ll.decode_bytes([token])) if after else constraint


def _no_free_whitespace(schema: Any) -> Any:
    """A JSON schema (or its text) written without free whitespace unless it says otherwise, as the other JSON
    grammars here; a Lark grammar's text as it is."""
    import json

    if isinstance(schema, str):
        if not schema.lstrip().startswith("{"):
            return schema
        schema = json.loads(schema)
    return {**schema, "x-guidance": {"whitespace_flexible": False, **(schema.get("x-guidance") or {})}}


class GrammarConstraint:
    """One request's grammar state: ``mask`` the next token's logits, then ``advance`` with the token chosen."""

    def __init__(self, matcher: Any, n_vocab: int) -> None:
        from llguidance.numpy import allocate_token_bitmask

        self.matcher = matcher
        self.bitmask = allocate_token_bitmask(1, n_vocab)

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """A copy of ``logits`` [1, V] with -inf for every token the grammar does not allow next."""
        from llguidance.numpy import apply_token_bitmask_inplace, fill_next_token_bitmask

        fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        masked = np.array(logits, dtype=np.float32, copy=True).reshape(1, -1)
        apply_token_bitmask_inplace(masked, self.bitmask[:, : (masked.shape[1] + 31) // 32])
        return masked

    def drafts(self, proposed: list[int], budget: int) -> tuple[list[int], bool]:
        """Tokens worth verifying next (speculative decoding): those the grammar forces from here (up to ``budget``),
        else the longest prefix of ``proposed`` (a drafter's) that the grammar accepts; and whether they are forced
        (not the drafter's own)."""
        forced = self.matcher.compute_ff_tokens()
        if forced:
            return list(forced[:budget]), True
        return list(proposed[: self.matcher.validate_tokens(list(proposed))]), False

    def advance(self, token: int) -> bool:
        """Take ``token``; True when the grammar is complete and allows nothing more (the request stops)."""
        if not self.matcher.consume_token(token):
            raise GrammarError(f"The grammar did not accept token {token}: {self.matcher.get_error()}")
        return self.matcher.is_stopped()


class AfterMarker:
    """A grammar that holds an answer only after one of ``markers`` (a reasoning model's end-of-thinking tags): the
    tokens before it and the marker itself are free, as vLLM's structured outputs leave a reasoning parser's thinking."""

    def __init__(self, inner: GrammarConstraint, markers: tuple[str, ...], token_bytes: Any) -> None:
        """``token_bytes(token)``: the bytes a token writes (llguidance's decode_bytes of one token)."""
        self.inner, self.token_bytes = inner, token_bytes
        self.markers = tuple(marker.encode("utf-8") for marker in markers)
        self.keep = max(len(marker) for marker in self.markers) + 64  # the bytes a marker split over tokens may span
        self.tail = b""  # the last bytes written while a marker is awaited
        self.passed = False

    def mask(self, logits: np.ndarray) -> np.ndarray:
        return self.inner.mask(logits) if self.passed else logits

    def drafts(self, proposed: list[int], budget: int) -> tuple[list[int], bool]:
        return self.inner.drafts(proposed, budget) if self.passed else (list(proposed), False)

    def advance(self, token: int) -> bool:
        if self.passed:
            return self.inner.advance(token)
        self.tail = (self.tail + self.token_bytes(token))[-self.keep :]
        self.passed = any(marker in self.tail for marker in self.markers)
        return False
