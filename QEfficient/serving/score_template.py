"""The chat template a sentence-transformers CrossEncoder saved by 5.4 or later scores its pairs through, as vLLM 0.34
scores them: the query and the document as two messages (roles "query" and "document"), rendered with the folder's
saved arguments under the request's ``chat_template_kwargs`` (``instruction`` among them), then tokenized with the
tokenizer's special tokens, as any prompt. Other folders score plain pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from QEfficient.loading.sentence_transformers_files import cross_encoder_chat_settings, warn_chat_formatting
from QEfficient.serving.protocol import APIError

# arguments the scorer sets itself, refused from a request as vLLM refuses them
RESERVED_KWARGS = frozenset({"chat_template", "tools", "tokenize"})
# a request's values that leave the folder's (vLLM's merge_kwargs)
_UNSET = (None, "auto")


@dataclass
class ScoreTemplate:
    """A chat template (its text) and the folder's arguments for it."""

    template: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def prompt(self, tokenizer: Any, query: str, document: str, request_kwargs: dict[str, Any]) -> str:
        """The rendered pair: the folder's arguments, overridden by the request's; a 400 with the template's reason where
        it rejects them (as vLLM answers)."""
        messages = [{"role": "query", "content": query}, {"role": "document", "content": document}]
        kwargs = self.kwargs | {k: v for k, v in request_kwargs.items() if v not in _UNSET}
        try:
            return tokenizer.apply_chat_template(messages, chat_template=self.template, tokenize=False, **kwargs)
        except Exception as err:  # the template's own checks (raise_exception), jinja errors, arguments it cannot take
            raise APIError(400, f"The chat template rejected this pair: {err}", "chat_template_kwargs") from None

    def request_kwargs(self, body: dict) -> dict[str, Any]:
        """A /score or /rerank request's ``chat_template_kwargs`` with its ``instruction`` folded in (the kwargs' own
        wins), as vLLM reads them; a 400 for the arguments the scorer sets itself."""
        kwargs = dict(body.get("chat_template_kwargs") or {})
        if reserved := sorted(RESERVED_KWARGS & kwargs.keys()):
            raise APIError(400, f"'chat_template_kwargs' may not set {reserved}: the scorer sets them.", "chat_template_kwargs")
        if body.get("instruction") is not None:
            kwargs.setdefault("instruction", body["instruction"])
        return kwargs


def check_template_fields(body: dict) -> None:
    """A 400 for ``chat_template_kwargs`` that is not an object or ``instruction`` that is not a string (vLLM's request
    types), whether or not the model scores through a template (a model without one ignores them, as vLLM does)."""
    given = body.get("chat_template_kwargs")
    if given is not None and not isinstance(given, dict):
        raise APIError(400, "'chat_template_kwargs' must be an object of the chat template's arguments.", "chat_template_kwargs")
    if body.get("instruction") is not None and not isinstance(body["instruction"], str):
        raise APIError(400, "'instruction' must be a string.", "instruction")


def saved_score_template(folder: Path | None, tokenizer: Any) -> ScoreTemplate | None:
    """The folder's template where vLLM scores through one (cross_encoder_chat_settings), a ValueError where the folder
    names a template the tokenizer lacks; None otherwise (a folder that takes chat messages in other ways is warned
    about: scored as plain pairs, as vLLM scores it)."""
    settings = cross_encoder_chat_settings(folder)
    if settings is None:
        warn_chat_formatting(folder)
        return None
    kwargs = dict(settings)
    name = kwargs.pop("chat_template", None)
    name = None if name == "default" else name
    try:
        template = tokenizer.get_chat_template(name)
    except ValueError:
        template = None
    if not template or template == name:  # transformers returns an unknown name as it is
        raise ValueError(
            f"{folder}'s sentence-transformers config scores pairs as chat messages, and its tokenizer has no "
            f"{name or 'default'!r} chat template: add it to the tokenizer (chat_template.jinja), or drop 'message' from "
            "its modality_config to score plain pairs."
        )
    return ScoreTemplate(template, kwargs)
