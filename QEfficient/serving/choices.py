"""One choice as the engine's tokens arrive: the text to send (cut at the first stop string), the
finish reason, and the logprobs of the tokens sent so far, in OpenAI's two shapes.

Completions: ``{"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}``,
each top dict holding the N likeliest tokens plus the chosen one (so up to N + 1 entries, as
OpenAI documents). Chat: ``{"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}``.
Log-probabilities are the log-softmax of the model's logits at each step (before temperature and
top-p), as vLLM reports by default. A completion's ``echo`` comes with its first piece (as vLLM streams it), with
the prompt's own logprobs first where logprobs are asked for (the first prompt token's are null: nothing precedes it).
"""

from __future__ import annotations

import bisect
import json
import re
from functools import lru_cache

from QEfficient.generation.continuous_batching import Request
from QEfficient.serving.protocol import Job
from QEfficient.serving.stop_strings import common_start, stop_written_first

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")  # sentencepiece byte fallback
LOGPROB_FLOOR = -9999.0  # JSON has no -inf; OpenAI's floor


def _uses_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return '"ByteLevel"' in json.dumps(json.loads(backend.to_str()).get("decoder"))


class TokenText:
    """A tokenizer's text and UTF-8 bytes for single token ids (cached: the vocabulary is bounded)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.byte_chars = None
        if _uses_byte_level(tokenizer):  # GPT-2's byte-level alphabet, reversed: token characters -> bytes
            from transformers.convert_slow_tokenizer import bytes_to_unicode

            self.byte_chars = {char: byte for byte, char in bytes_to_unicode().items()}
        self.text = lru_cache(maxsize=65536)(self._text)
        self.bytes = lru_cache(maxsize=65536)(self._bytes)

    def _text(self, token: int) -> str:
        return self.tokenizer.decode([token])

    def _bytes(self, token: int) -> list[int]:
        piece = self.tokenizer.convert_ids_to_tokens(token)
        if self.byte_chars is not None and isinstance(piece, str) and all(c in self.byte_chars for c in piece):
            return [self.byte_chars[c] for c in piece]  # the true bytes, also for half of a multi-byte character
        match = _BYTE_TOKEN.fullmatch(piece) if isinstance(piece, str) else None
        if match:
            return [int(match.group(1), 16)]
        return list(self._text(token).encode("utf-8"))


class TokenIdText:
    """vLLM's ``return_tokens_as_token_ids``: each token in logprobs written "token_id:N" (its bytes: that text's)."""

    @staticmethod
    def text(token: int) -> str:
        return f"token_id:{token}"

    @classmethod
    def bytes(cls, token: int) -> list[int]:
        return list(cls.text(token).encode())


class ChoiceText:
    """Feeds on engine events for one request; each ``update`` says what is new for the client."""

    def __init__(
        self, tokenizer, token_text: TokenText, request: Request, job: Job, chat: bool, ending_ids: frozenset[int] = frozenset()
    ) -> None:
        """``job``: what the request asked for (serving/protocol.py: stop strings, vLLM's end rules, echo);
        ``ending_ids``: the ids that end it (its EOS ids and stop_token_ids), whose text is left out unless
        ``job.end_rules.include_stop_str_in_output``."""
        self.tokenizer, self.request, self.job, self.chat = tokenizer, request, job, chat
        self.real_text = token_text  # the tokens' own text (vLLM's prompt_logprobs keep it)
        self.token_text = TokenIdText if job.tokens_as_ids else token_text
        self.stop = stop = job.stop
        self.rules = rules = job.end_rules
        self.echo_pending = bool(job.echo)  # the prompt's text still to go out, before the first piece
        self.ending_ids = ending_ids
        self.hidden_ending = frozenset() if rules.include_stop_str_in_output else ending_ids
        self.min_chars: int | None = None if rules.min_tokens else 0  # the text of the first min_tokens tokens
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.sent = ""
        self.stopped = False  # a stop string was found: the rest of the engine's output is not ours
        self.stop_string: str | None = None  # the one found
        self.offsets: list[int] = []  # where each token's text starts in the completion (logprobs only)
        self.released = 0  # tokens whose logprobs went out
        self.prompt_part: dict | None = None  # the echoed prompt's logprobs, formatted once
        self.ids_sent = 0  # return_token_ids: the generated ids sent so far
        self.ids_seen = 0  # the generated ids the text so far was made of (the engine runs ahead of the answer)

    def update(self, done: bool, reason: str | None) -> tuple[str, str | None, dict | None] | None:
        """(new text, finish reason or None, logprobs of the newly covered tokens or None), or None
        when there is nothing to send yet.

        The last len(longest stop) - 1 characters are held back until they can no longer begin a
        stop string, so a stop string split across tokens never reaches the client.
        """
        if self.job.echo_only:  # the prompt alone: what was generated is not the client's
            return (self.job.echo, reason, self._prompt_logprobs()) if done else None
        update = self._generated(done, reason)
        if update is None or not self.echo_pending:
            return update
        self.echo_pending = False
        piece, reason, logprobs = update
        return self.job.echo + piece, reason, self._with_prompt(logprobs)

    def _generated(self, done: bool, reason: str | None) -> tuple[str, str | None, dict | None] | None:
        """``update`` for the generated text alone."""
        if self.stopped:
            return ("", "stop", None) if done else None
        ids = list(self.request.output)
        self.ids_seen = len(ids)
        # an ending id comes last (the engine stops at it, and min_tokens masks it before): its text left out
        shown = ids[:-1] if ids and ids[-1] in self.hidden_ending else ids
        text = self._decode(shown)
        if not done and text.endswith("\ufffd"):
            return None  # half of a multi-byte character: wait for the rest
        if self.min_chars is None and len(ids) >= self.rules.min_tokens:
            # (as far as it is the start of the text: a character split at that token is not written yet)
            self.min_chars = common_start(self._decode(ids[: self.rules.min_tokens]), text)
        found = None
        if self.min_chars is not None and self.stop:  # a stop string counts once it ends after the first min_tokens tokens' text
            found = stop_written_first(self._decode, ids, text, self.stop, self.min_chars)  # the engine runs ahead
        if found:
            kept, at, string = found
            cut = max(at + len(string) if self.rules.include_stop_str_in_output else at, len(self.sent))
            self.request.stopped_at = kept  # before the cancel: the engine's metrics count these
            self.request.cancelled.set()
            self.stopped, self.stop_string = True, string  # "stop" is reported with the engine's done event
            piece, self.sent = text[len(self.sent) : cut], text[:cut]
            # found at that event itself (the text held back until the end, a split character at its end): now; the
            # logprobs of every token kept, those that wrote the hidden stop string too (vLLM's: one per token id)
            return piece, "stop" if done else None, self._logprobs(ids[:kept], cut, final=True)
        if done:
            piece, self.sent = text[len(self.sent) :], text
            return piece, reason, self._logprobs(ids, len(text), final=True)
        safe = len(text) - self.hold
        if safe <= len(self.sent):
            return None
        piece, self.sent = text[len(self.sent) : safe], text[:safe]
        return piece, None, self._logprobs(ids, safe, final=False)

    @property
    def generated(self) -> int:
        """The tokens of the answer: up to the one that completed its stop string; none for an echo of the prompt alone
        (max_tokens 0)."""
        if self.job.echo_only:
            return 0
        return self.ids_seen if self.request.stopped_at is None else min(self.ids_seen, self.request.stopped_at)

    def token_ids(self, with_prompt: bool = False) -> dict:
        """vLLM's ``return_token_ids`` (``{}`` where not asked): the generated ids not sent yet, and where
        ``with_prompt``, the prompt's."""
        if not self.job.return_token_ids:
            return {}
        ids = list(self.request.output)[: self.generated]
        new, self.ids_sent = ids[self.ids_sent :], max(self.ids_sent, len(ids))
        return ({"prompt_token_ids": list(self.job.tokens)} if with_prompt else {}) | {"token_ids": new}

    @property
    def stop_reason(self) -> str | int | None:
        """vLLM's ``stop_reason``: the stop string that ended the choice, or the stop token id that did (any ending id
        but the tokenizer's own EOS: vLLM counts generation_config's other EOS ids among the stop ids); else None."""
        if self.stopped:
            return self.stop_string
        ids = self.request.output
        if self.request.finish_reason == "stop" and ids and ids[-1] in self.ending_ids and ids[-1] != self.tokenizer.eos_token_id:
            return int(ids[-1])
        return None

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.rules.skip_special_tokens)

    def _logprobs(self, ids: list[int], sent_chars: int, final: bool) -> dict | None:
        """Logprobs for the tokens whose text now starts inside what was sent (all of them at the end)."""
        if self.request.top_logprobs is None:
            return None
        for i in range(len(self.offsets), len(ids)):
            self.offsets.append(len(self._decode(ids[:i])))
        upto = len(ids) if final else bisect.bisect_left(self.offsets, sent_chars)
        start, self.released = self.released, max(self.released, upto)
        return self._format(ids, range(start, self.released))

    def all_logprobs(self) -> dict | None:
        """Logprobs of every token sent, for a response that is not streamed."""
        if self.request.top_logprobs is None:
            return None
        if self.job.echo_only:
            return self._prompt_logprobs()
        return self._with_prompt(self._format(list(self.request.output), range(self.released)))

    def _with_prompt(self, logprobs: dict | None) -> dict | None:
        """A completion's logprobs after its echoed prompt's, where echo asked for them."""
        if not self.job.echo_logprobs or logprobs is None:
            return logprobs
        prompt = self._prompt_logprobs()
        return {key: prompt[key] + logprobs[key] for key in prompt}

    def _prompt_logprobs(self) -> dict | None:
        """The echoed prompt's tokens in completions' logprobs form; each offset is where the token's text starts in the
        echoed prompt, as the completion's are in the completion."""
        if not self.job.echo_logprobs:
            return None
        if self.prompt_part is None:  # once: a stream sends it with its first piece, an answer once more at the end
            self.prompt_part = self._format_prompt()
        return self.prompt_part

    def _format_prompt(self) -> dict:
        text, tokens, top = self.token_text.text, self.job.tokens, self.job.top_logprobs
        out: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for i, (token, score) in enumerate(zip(tokens, self.request.prompt_scores)):
            out["tokens"].append(text(token))
            out["text_offset"].append(min(len(self._decode(tokens[:i])), len(self.job.echo)))  # a string prompt is echoed as sent
            if score is None:
                out["token_logprobs"].append(None)
                out["top_logprobs"].append(None)
                continue
            entries = {text(t): max(lp, LOGPROB_FLOOR) for t, lp in zip(score.top_ids[:top], score.top_logprobs[:top])}
            entries.setdefault(text(token), max(score.logprob, LOGPROB_FLOOR))
            out["token_logprobs"].append(max(score.logprob, LOGPROB_FLOOR))
            out["top_logprobs"].append(entries)
        return out

    def vllm_prompt_logprobs(self) -> list[dict | None] | None:
        """vLLM's ``prompt_logprobs``: per prompt token, null for the first, else {id: {logprob, rank, decoded_token}}
        for the token itself and the N likeliest (N: the request's prompt_logprobs)."""
        top = self.job.prompt_logprobs
        if top is None:
            return None
        text = self.real_text.text
        out: list[dict | None] = []
        for token, score in zip(self.job.tokens, self.request.prompt_scores):
            if score is None:
                out.append(None)
                continue
            entry = {str(token): {"logprob": max(score.logprob, LOGPROB_FLOOR), "rank": score.rank, "decoded_token": text(token)}}
            for rank, (t, lp) in enumerate(zip(score.top_ids[:top], score.top_logprobs[:top]), start=1):
                entry.setdefault(str(t), {"logprob": max(lp, LOGPROB_FLOOR), "rank": rank, "decoded_token": text(t)})
            out.append(entry)
        return out

    def _format(self, ids: list[int], indices: range) -> dict:
        steps = [self.request.logprobs[i] for i in indices]
        chosen = [ids[i] for i in indices]
        if self.chat:
            return chat_logprobs(self.token_text, chosen, steps)
        offsets = [len(self.job.echo) + self.offsets[i] for i in indices]
        return completion_logprobs(self.token_text, chosen, steps, offsets)


def completion_logprobs(token_text: TokenText, ids: list[int], steps: list, offsets: list[int]) -> dict:
    """Completions' ``logprobs`` for tokens ``ids``: ``steps`` their (logprob, top ids, top logprobs) entries,
    ``offsets`` where each token's text starts in the choice's text."""
    text = token_text.text
    out: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": list(offsets)}
    for token, (logprob, top_ids, top_lps) in zip(ids, steps):
        top = {text(t): max(lp, LOGPROB_FLOOR) for t, lp in zip(top_ids, top_lps)}
        top.setdefault(text(token), max(logprob, LOGPROB_FLOOR))
        out["tokens"].append(text(token))
        out["token_logprobs"].append(max(logprob, LOGPROB_FLOOR))
        out["top_logprobs"].append(top)
    return out


def chat_logprobs(token_text: TokenText, ids: list[int], steps: list) -> dict:
    """Chat's ``logprobs`` for tokens ``ids`` (``steps``: their (logprob, top ids, top logprobs) entries)."""
    text, raw = token_text.text, token_text.bytes

    def entry(token: int, logprob: float) -> dict:
        return {"token": text(token), "logprob": max(logprob, LOGPROB_FLOOR), "bytes": raw(token)}

    content = [
        {**entry(token, logprob), "top_logprobs": [entry(t, lp) for t, lp in zip(top_ids, top_lps)]}
        for token, (logprob, top_ids, top_lps) in zip(ids, steps)
    ]
    return {"content": content, "refusal": None}
