"""How sentence-transformers turns texts into its Transformer module's inputs, read from the model folder without the
sentence-transformers package: the prompt before each text, lowercased where its Transformer module says so (not
stripped, as 5.4 and later), truncated at its ``max_seq_length``; and for a Transformer that takes chat messages
(``modality_config`` listing "message", as sentence-transformers 5.4 and later save a model whose tokenizer has a chat
template), each text rendered through the chat template as sentence-transformers 6 renders it: a user message, the
prompt as a system message before it, ``processing_kwargs``' chat-template arguments, and the template's tail written
back over the end of a truncated row.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS
from QEfficient.loading.sentence_transformers_files import token_limit, transformer_module_config

# model types whose chat templates take a message's content as plain text, as sentence-transformers lists them
FLAT_MESSAGE_MODEL_TYPES = frozenset({"apertus", "deepseek_v3", "gpt_oss", "minicpm3", "seed_oss"})
# what in a chat template shows that it reads a message's content as a list of typed parts (sentence-transformers' test)
_STRUCTURED_TEMPLATE_MARKS = ("content[0]", ".type", "'type'", '"type"', "item.type", "message.content[")
# tokenizer arguments the chat path passes itself (from processing_kwargs' "text" group, or its "chat_template" one)
_SIZE_KEYS = frozenset({"padding", "truncation", "max_length"})


def text_token_limit(folder: Path | None, config: Any, tokenizer: Any) -> int | None:
    """The longest input sentence-transformers tokenizes: the folder's ``max_seq_length``, else the tokenizer's
    ``model_max_length`` within the model's positions (both 5.3 and 6 read it so); None where neither bounds it."""
    saved = transformer_module_config(folder).get("max_seq_length")
    if isinstance(saved, int) and saved > 0:
        return saved
    limits = [token_limit(getattr(tokenizer, "model_max_length", None)), token_limit(getattr(config, "max_position_embeddings", None))]
    limits = [n for n in limits if n is not None]
    return min(limits) if limits else None


def _reads_task(templates: list[str]) -> bool:
    """Whether a chat template uses a ``task`` variable (transformers' own reading of a template's variables; without it
    every template gets the task, as sentence-transformers then gives it)."""
    try:
        from transformers.utils.chat_template_utils import _get_template_variables
    except ImportError:
        return True
    return any("task" in _get_template_variables(template) for template in templates)


@dataclass
class ChatRendering:
    """sentence-transformers' "message" modality for text: each text one user message (its content plain or as a list of
    typed parts, as the template reads it), the prompt as a system message before it, rendered by the tokenizer's chat
    template with ``template_kwargs`` (``sizes``: the tokenizer arguments among them, which win over the text group's);
    rows cut by truncation get the template's tail back (``restore_suffix``)."""

    structured: bool
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    restore_suffix: bool = True
    takes_task: bool = False
    _tails: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def read(cls, settings: dict, tokenizer: Any, model_type: str | None) -> ChatRendering:
        template = getattr(tokenizer, "chat_template", None)
        templates = [t for t in (template.values() if isinstance(template, dict) else [template]) if isinstance(t, str) and t]
        if not templates:
            raise ValueError(
                "This sentence-transformers model takes its texts as chat messages (its sentence_bert_config.json's "
                "modality_config lists 'message'), and the tokenizer given has no chat template to render them: pass the "
                "tokenizer saved with the model (AutoTokenizer.from_pretrained on its folder)."
            )
        message_format = ((settings.get("modality_config") or {}).get("message") or {}).get("format", "auto")
        if message_format in ("auto", None):  # sentence-transformers' inference: named templates read typed parts
            flat = model_type in FLAT_MESSAGE_MODEL_TYPES or (
                isinstance(template, str) and not any(mark in template for mark in _STRUCTURED_TEMPLATE_MARKS)
            )
        else:
            flat = message_format == "flat"
        kwargs = dict((settings.get("processing_kwargs") or {}).get("chat_template") or {})
        restore = kwargs.pop("restore_suffix", True)
        kwargs.pop("return_tensors", None)  # numpy's, here
        sizes = {key: kwargs.pop(key) for key in _SIZE_KEYS & kwargs.keys()}
        return cls(not flat, kwargs, sizes, bool(restore), _reads_task(templates))

    def message(self, role: str, text: str) -> dict[str, Any]:
        return {"role": role, "content": [{"type": "text", "text": text}] if self.structured else text}

    def conversation(self, text: str, prompt: str) -> list[dict[str, Any]]:
        return ([self.message("system", prompt)] if prompt else []) + [self.message("user", text)]

    def kwargs_for(self, task: str | None) -> dict[str, Any]:
        """The template's arguments; a template that reads ``task`` gets encode_query's or encode_document's."""
        return {"task": task, **self.template_kwargs} if task is not None and self.takes_task else dict(self.template_kwargs)

    def tail(self, tokenizer: Any, conversation: list[dict], kwargs: dict, tokenizer_kwargs: dict) -> list[int]:
        """The tokens the template writes after the content (an end-of-turn token, an assistant header): the longest common
        end of two renders with different contents, as sentence-transformers derives it; [] where none is found."""

        def render(filler: str) -> list[int]:
            skeleton = [m if m["role"] == "system" else self.message(m["role"], filler) for m in conversation]
            out = tokenizer.apply_chat_template(
                skeleton, tokenize=True, return_dict=True, padding=False, truncation=False, tokenizer_kwargs=tokenizer_kwargs, **kwargs
            )
            return list(out[INPUT_IDS])

        key = repr((sorted(kwargs.items()), sorted(tokenizer_kwargs.items()), [m["role"] for m in conversation], conversation[:-1]))
        if key not in self._tails:
            first, second = render("0"), render("1 2 3 4")
            count = 0
            for a, b in zip(reversed(first), reversed(second)):
                if a != b:
                    break
                count += 1
            self._tails[key] = first[len(first) - count :] if 0 < count < min(len(first), len(second)) else []
        return self._tails[key]


@dataclass
class SentenceInputs:
    """A sentence-transformers folder's tokenization of texts: ``tokenizer`` truncating at ``max_length`` (a task's at
    ``task_lengths``': its query_length, document_length), the texts lowercased where the folder says so, rendered by
    ``chat`` where its Transformer takes chat messages, with ``processing_kwargs``' text arguments (``tokenizer_kwargs``;
    5.4 on). Where a compiled graph's longest input (``compiled``) is shorter than sentence-transformers' own limit, texts
    are cut there, with a warning."""

    tokenizer: Any
    max_length: int | None
    lowercase: bool = False
    chat: ChatRendering | None = None
    tokenizer_kwargs: dict[str, Any] = field(default_factory=dict)
    task_lengths: dict[str, int] = field(default_factory=dict)
    compiled: int | None = None
    _warned: bool = field(default=False, init=False, repr=False)

    @classmethod
    def read(cls, folder: Path | None, tokenizer: Any, config: Any, compiled_length: int | None = None) -> SentenceInputs:
        """The folder's settings for ``tokenizer``; ``compiled_length``, the longest input a compiled graph takes, caps the
        length (sentence-transformers' own limit where the graph takes longer)."""
        settings = transformer_module_config(folder)
        processing = settings.get("processing_kwargs") or {}
        if not isinstance(processing, dict):
            raise ValueError(f"sentence_bert_config.json's processing_kwargs is {processing!r:.60}, not a mapping.")
        # the lengths, first that wins: plain text "common", "text", a task's (query_length, document_length), the model's;
        # chat messages "chat_template", "text", a task's, "common", the model's (sentence-transformers 6's order)
        text, common = dict(processing.get("text") or {}), dict(processing.get("common") or {})
        chats = "message" in (settings.get("modality_config") or {})
        fallback = common.pop("max_length", None) if chats else None
        if chats:  # the chat path takes the sizes of both, the text group's first
            text = {k: v for k, v in common.items() if k in _SIZE_KEYS} | text
        else:  # a plain text's tokenizer call: "common" over "text"
            text |= common
        text.pop("logits_to_keep", None)  # the causal LM's argument, not the tokenizer's
        text.pop("return_tensors", None)
        saved_length = text.pop("max_length", None)
        tasks = {task: settings[f"{task}_length"] for task in ("query", "document") if isinstance(settings.get(f"{task}_length"), int)}
        lowercase = bool(settings.get("do_lower_case"))
        chat = None
        if chats:
            chat = ChatRendering.read(settings, tokenizer, getattr(config, "model_type", None))
            if lowercase:  # sentence-transformers 6 lowercases the rendered text (template included) in the tokenizer
                raise ValueError(
                    "This sentence-transformers model renders its texts through the chat template and lowercases them "
                    "(do_lower_case): that pair is not reproduced here. Set do_lower_case to false in its "
                    "sentence_bert_config.json if its texts need no lowercasing."
                )
            saved_length = chat.sizes.pop("max_length", None) or saved_length  # the chat-template group's length wins
        if saved_length:  # over a task's
            tasks = {}
        limit = saved_length or fallback or text_token_limit(folder, config, tokenizer)
        return cls(tokenizer, limit, lowercase, chat, text, tasks, compiled_length)

    def as_tokenized(self, text: str) -> str:
        """A text as sentence-transformers' Transformer reads it: lowercased where it says so; not stripped (5.4 and later
        tokenize it as sent, 5.3 stripped it)."""
        return text.lower() if self.lowercase else text

    def prompt_length(self, prompt: str) -> int:
        """The prompt's tokens, less its last where that is a special one (an end token), as sentence-transformers counts
        them for a Pooling that leaves them out; 0 for chat messages (sentence-transformers keeps their prompt in)."""
        if not prompt or self.chat is not None:
            return 0
        ids = self.tokenizer(self.as_tokenized(prompt))[INPUT_IDS]
        return len(ids) - (ids[-1] in set(getattr(self.tokenizer, "all_special_ids", ())))

    def __call__(self, texts: list[str], prompt: str = "", task: str | None = None) -> dict[str, np.ndarray]:
        """input_ids and attention_mask (numpy, padded) for ``texts`` after ``prompt``; ``task`` ("query", "document")
        picks its length where the folder sets one and its chat template's branch."""
        model_length = self.task_lengths.get(task, self.max_length)
        limit = model_length if self.compiled is None or (model_length or 1 << 30) <= self.compiled else self.compiled
        enc = self._tokenized(texts, prompt, task, limit)
        if limit != model_length and not self._warned:  # the compiled graph's length binds: was a text cut there?
            lengths = enc[ATTENTION_MASK].sum(axis=1)
            full = [texts[i] for i in np.flatnonzero(lengths >= limit)]
            if full and self._tokenized(full, prompt, task, model_length)[ATTENTION_MASK].sum(axis=1).max() > limit:
                self._warned = True
                warnings.warn(  # a Python warning: scripts see it without configuring logging
                    f"Some texts were cut at {limit} tokens, the longest compiled seq_len, where sentence-transformers reads "
                    f"{f'up to {model_length}' if model_length else 'them whole'}: compile with a longer seq_len for its "
                    "embeddings of them.",
                    UserWarning,
                    stacklevel=3,
                )
        return enc

    def _tokenized(self, texts: list[str], prompt: str, task: str | None, limit: int | None) -> dict[str, np.ndarray]:
        if self.chat is None:
            kwargs = {"padding": True, "truncation": True, **self.tokenizer_kwargs}
            texts = [self.as_tokenized(prompt + text) for text in texts]
            return dict(self.tokenizer(texts, max_length=limit, return_tensors="np", **kwargs))
        return self._chats(texts, prompt, task, limit)

    def _chats(self, texts: list[str], prompt: str, task: str | None, limit: int | None) -> dict[str, np.ndarray]:
        conversations = [self.chat.conversation(text, prompt) for text in texts]
        kwargs = self.chat.kwargs_for(task)
        given = {k: v for k, v in self.tokenizer_kwargs.items() if k in _SIZE_KEYS} | self.chat.sizes
        sizes = {"padding": True, "truncation": "longest_first"} | given
        rest = {k: v for k, v in self.tokenizer_kwargs.items() if k not in _SIZE_KEYS}
        enc = self.tokenizer.apply_chat_template(
            conversations, tokenize=True, return_dict=True, max_length=limit, return_tensors="np", tokenizer_kwargs=rest, **sizes, **kwargs
        )
        ids, mask = np.array(enc[INPUT_IDS]), np.array(enc[ATTENTION_MASK])
        truncating = sizes["truncation"] not in (False, "do_not_truncate") and limit is not None
        if self.chat.restore_suffix and truncating:  # rows cut at the limit lost the template's tail: written back
            lengths = mask.sum(axis=1)
            for row in np.flatnonzero(lengths >= limit):
                tail = self.chat.tail(self.tokenizer, conversations[row], kwargs, rest)
                keep = min(len(tail), int(lengths[row]))
                end = ids.shape[1] if mask[row, 0] == 0 else int(lengths[row])
                if keep:
                    ids[row, end - keep : end] = tail[-keep:]
        return {INPUT_IDS: ids, ATTENTION_MASK: mask}
