"""The run-time tokenizer: the ``tokenizers`` library plus the chat template, without torch.

transformers' ``AutoTokenizer`` imports torch (tokenization_auto -> configuration_utils ->
modeling_rope_utils -> torch: 170 MB and a second of start-up) and, for model-specific classes,
rebuilds the backend from the vocabulary. So ``compile()`` saves the tokenizer as transformers built
it into the artifact (``<artifact>/tokenizer``: the backend as ``tokenizer.json``, the special tokens,
chat template and decode options in ``tokenizer_config.json``, the generation config's EOS ids), and
``RuntimeTokenizer`` runs that backend as it is. The folder is also a normal transformers tokenizer
folder: ``AutoTokenizer.from_pretrained(artifact / "tokenizer")`` gives the same tokens.

The chat template is rendered by transformers' own ``render_jinja_template`` (jinja2, with its
``raise_exception``, ``tojson`` and ``strftime_now`` helpers), which imports without torch.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from QEfficient.runtime.resident_memory import return_freed_heap

TOKENIZER_SUBDIR = "tokenizer"  # inside a compiled artifact
RUNTIME_RECORD = "qeff_runtime.json"  # what generation needs besides the tokenizer: EOS ids
# what a model folder's tokenizer and EOS ids are read from (tokenizer_digest)
TOKENIZER_SOURCE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
)
# what the saved run-time tokenizer holds, in tokenizer_digest: a new format gives new artifacts (2: the padding side)
RUNTIME_TOKENIZER_FORMAT = 2
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class RuntimeTokenizer:
    """The subset of a transformers tokenizer that generation and the server use, on ``tokenizers``.

    Encoding and decoding are the backend's (what transformers' fast tokenizers call); padding is on
    ``padding_side``: the side of the tokenizer compile() saved (``from_hf``), right where a tokenizer_config.json
    read by ``from_pretrained`` names none; generation sets right, as transformers' callers do.
    """

    def __init__(
        self,
        backend: Tokenizer,
        special_tokens: dict[str, str] | None = None,
        chat_template: str | dict[str, str] | None = None,
        clean_up_tokenization_spaces: bool = False,
        name_or_path: str = "",
        eos_token_ids: Sequence[int] | None = None,
        model_max_length: int | None = None,
        model_input_names: Sequence[str] | None = None,
    ) -> None:
        backend.no_padding()  # transformers pads and truncates only when a call asks for it
        backend.no_truncation()
        self.backend_tokenizer = backend
        self._special = {k: v for k, v in (special_tokens or {}).items() if k in SPECIAL_TOKEN_NAMES and v is not None}
        self.chat_template = chat_template
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.name_or_path = name_or_path
        self.generation_eos_token_ids = list(eos_token_ids) if eos_token_ids else None
        self.padding_side = "right"
        self.model_max_length = model_max_length  # transformers' (an encoder server's input limit)
        self.model_input_names = list(model_input_names or ("input_ids", "attention_mask"))  # token_type_ids: BERT pairs
        self.truncation_side = "right"  # which end transformers' truncation cuts (tokenizer_config's truncation_side)
        self._truncating: dict[tuple[str, str], tuple[Tokenizer, threading.Lock]] = {}  # copies of the backend that truncate
        self._truncating_lock = threading.Lock()

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> RuntimeTokenizer:
        """Load ``tokenizer.json`` + ``tokenizer_config.json`` (+ ``chat_template.jinja``/``.json``,
        ``special_tokens_map.json``) from a folder; an artifact folder means its ``tokenizer`` subfolder."""
        folder = Path(folder)
        if (folder / TOKENIZER_SUBDIR / "tokenizer.json").is_file():
            folder = folder / TOKENIZER_SUBDIR
        if not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(
                f"No tokenizer.json in '{folder}': the run-time tokenizer needs the fast-tokenizer file. Recompile the "
                "model (compile() saves it into the artifact), or save one with tokenizer.save_pretrained(folder)."
            )
        config = _read_json(folder / "tokenizer_config.json")
        special = {**_read_json(folder / "special_tokens_map.json"), **config}
        record = _read_json(folder / RUNTIME_RECORD)
        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        return_freed_heap()  # parsing the JSON left ~half of what it allocated free in the heap
        tokenizer = cls(
            backend,
            {name: _token_text(special.get(name)) for name in SPECIAL_TOKEN_NAMES},
            _read_chat_template(folder, config),
            bool(config.get("clean_up_tokenization_spaces", False)),
            str(folder),
            record.get("eos_token_ids"),
            config.get("model_max_length"),
            config.get("model_input_names"),
        )
        tokenizer.truncation_side = "left" if config.get("truncation_side") == "left" else "right"
        tokenizer.padding_side = "left" if config.get("padding_side") == "left" else "right"  # (generation sets its own)
        return tokenizer

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the folder ``from_pretrained`` (and transformers' ``AutoTokenizer``) reads back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend_tokenizer.save(str(folder / "tokenizer.json"))
        config: dict[str, Any] = {"tokenizer_class": "TokenizersBackend", "backend": "tokenizers", **self._special}
        config["clean_up_tokenization_spaces"] = self.clean_up_tokenization_spaces
        config["model_input_names"] = self.model_input_names
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        if self.truncation_side == "left":
            config["truncation_side"] = "left"
        if self.padding_side == "left":
            config["padding_side"] = "left"
        if isinstance(self.chat_template, dict):  # named templates: transformers' list form
            config["chat_template"] = [{"name": k, "template": v} for k, v in self.chat_template.items()]
        elif self.chat_template is not None:
            (folder / "chat_template.jinja").write_text(self.chat_template, encoding="utf-8")
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1, ensure_ascii=False), encoding="utf-8")
        if self.generation_eos_token_ids:
            (folder / RUNTIME_RECORD).write_text(json.dumps({"eos_token_ids": self.generation_eos_token_ids}))
        return folder

    @classmethod
    def from_hf(cls, tokenizer: Any, generation_config: Any = None, copy_backend: bool = True) -> RuntimeTokenizer:
        """The tokenizer transformers built (compile time), as a run-time tokenizer: same backend state,
        special tokens, chat template and decode option; EOS ids from ``generation_config`` when given.
        ``copy_backend=False`` shares transformers' backend (its padding and truncation are cleared)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TypeError(f"{type(tokenizer).__name__} has no fast (tokenizers) backend; the run-time tokenizer needs one.")
        clean_up = bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))
        if clean_up and type(backend.model).__name__ == "BPE":  # transformers skips the clean-up for BPE (it corrupts text)
            clean_up = bool(getattr(tokenizer, "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", False))
        eos = getattr(generation_config, "eos_token_id", None)
        eos_ids = None if eos is None else ([int(eos)] if isinstance(eos, int) else [int(i) for i in eos])
        copied = Tokenizer.from_str(backend.to_str()) if copy_backend else backend
        copied.encode_special_tokens = backend.encode_special_tokens  # (transformers' split_special_tokens: not in its JSON)
        runtime = cls(
            copied,
            dict(tokenizer.special_tokens_map),
            getattr(tokenizer, "chat_template", None),
            clean_up,
            str(getattr(tokenizer, "name_or_path", "")),
            eos_ids,
            _bounded(getattr(tokenizer, "model_max_length", None)),
            getattr(tokenizer, "model_input_names", None),
        )
        runtime.truncation_side = "left" if getattr(tokenizer, "truncation_side", None) == "left" else "right"
        runtime.padding_side = "left" if getattr(tokenizer, "padding_side", None) == "left" else "right"
        return runtime

    # ------------------------------------------------------------------ special tokens
    def _token_id(self, name: str) -> int | None:
        text = self._special.get(name)
        return None if text is None else self.backend_tokenizer.token_to_id(text)

    bos_token = property(lambda self: self._special.get("bos_token"))
    eos_token = property(lambda self: self._special.get("eos_token"))
    unk_token = property(lambda self: self._special.get("unk_token"))
    bos_token_id = property(lambda self: self._token_id("bos_token"))
    eos_token_id = property(lambda self: self._token_id("eos_token"))
    unk_token_id = property(lambda self: self._token_id("unk_token"))
    pad_token_id = property(lambda self: self._token_id("pad_token"))

    @property
    def pad_token(self) -> str | None:
        return self._special.get("pad_token")

    @pad_token.setter
    def pad_token(self, value: str | None) -> None:
        self._special["pad_token"] = value

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """Named special tokens, as transformers passes them to a chat template."""
        return {name: self._special[name] for name in SPECIAL_TOKEN_NAMES if self._special.get(name) is not None}

    @property
    def all_special_ids(self) -> list[int]:
        """The named special tokens' ids, as transformers 5 lists them."""
        ids = (self._token_id(name) for name in self.special_tokens_map)
        return list(dict.fromkeys(i for i in ids if i is not None))

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def vocab_size(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=False)

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    # ------------------------------------------------------------------ encode / decode
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(
        self,
        text: str | list[str],
        text_pair: str | list[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        return_tensors: str | None = None,
        return_attention_mask: bool = True,
        truncation: bool | str = False,
        max_length: int | None = None,
    ) -> dict[str, Any]:
        """``{"input_ids", "attention_mask"}`` (and ``token_type_ids`` where the model takes them) for one text or a
        batch, each with its ``text_pair`` if given; ``padding=True`` pads to the longest ("max_length": to ``max_length``
        at least; with ``pad_token``, on ``padding_side``); ``truncation`` (True: "longest_first") to ``max_length``
        tokens (else ``model_max_length``), as transformers truncates on the backend; ``return_tensors="np"`` gives int64
        arrays."""
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: the run-time tokenizer returns lists or numpy arrays ('np').")
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if text_pair is not None:
            pairs = [text_pair] if isinstance(text_pair, str) else list(text_pair)
            if isinstance(text_pair, str) != single or len(pairs) != len(texts):
                raise ValueError(f"text_pair must match text: {len(texts)} text(s) and {len(pairs)} pair(s), one string each or lists.")
            texts = list(zip(texts, pairs))
        encodings = self._encode(texts, add_special_tokens, truncation, max_length)
        columns = {"input_ids": [e.ids for e in encodings]}
        if "token_type_ids" in self.model_input_names:
            columns["token_type_ids"] = [e.type_ids for e in encodings]
        columns["attention_mask"] = [[1] * len(row) for row in columns["input_ids"]]
        if padding and padding != "do_not_pad" and encodings:
            columns = self._pad(columns, max_length if padding == "max_length" else None)
        out = {}
        for name, rows in columns.items():
            if name == "attention_mask" and not return_attention_mask:
                continue
            out[name] = np.asarray(rows, dtype=np.int64) if return_tensors == "np" else (rows[0] if single else rows)
        return out

    def __getstate__(self) -> dict:  # (pickled without its truncating copies and their locks: made again when needed)
        return {k: v for k, v in self.__dict__.items() if k not in ("_truncating", "_truncating_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _truncating={}, _truncating_lock=threading.Lock())

    def _encode(self, texts: list, add_special_tokens: bool, truncation: bool | str, max_length: int | None) -> list:
        """The backend's encodings; truncated (``truncation``: True is "longest_first") to ``max_length`` (else
        ``model_max_length``) on ``truncation_side`` by a copy of the backend kept per strategy and side, its length set
        under that copy's lock (the backend itself never truncates: calls may run at once)."""
        length = max_length if max_length is not None else self.model_max_length
        if truncation in (False, None, "do_not_truncate") or length is None:
            return self.backend_tokenizer.encode_batch(texts, add_special_tokens=add_special_tokens)
        key = ("longest_first" if truncation is True else str(truncation), self.truncation_side)
        with self._truncating_lock:
            if key not in self._truncating:
                copy_ = copy.deepcopy(self.backend_tokenizer)
                copy_.encode_special_tokens = self.backend_tokenizer.encode_special_tokens
                self._truncating[key] = (copy_, threading.Lock())
        backend, lock = self._truncating[key]
        with lock:
            backend.enable_truncation(int(length), strategy=key[0], direction=key[1])
            return backend.encode_batch(texts, add_special_tokens=add_special_tokens)

    def _pad(self, columns: dict[str, list[list[int]]], length: int | None = None) -> dict[str, list[list[int]]]:
        """Every column padded to the longest row (to ``length`` where it is longer: padding="max_length"): ids with
        ``pad_token``, masks and token types with 0."""
        if self.pad_token_id is None:
            raise ValueError("padding needs a pad token; set tokenizer.pad_token (e.g. to tokenizer.eos_token).")
        width = max(max(len(row) for row in columns["input_ids"]), length or 0)
        padded = {}
        for name, rows in columns.items():
            value = self.pad_token_id if name == "input_ids" else 0
            if self.padding_side == "left":
                padded[name] = [[value] * (width - len(r)) + r for r in rows]
            else:
                padded[name] = [r + [value] * (width - len(r)) for r in rows]
        return padded

    def decode(
        self, token_ids: int | Iterable[int], skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> str:
        ids = [int(token_ids)] if isinstance(token_ids, int | np.integer) else np.asarray(token_ids).reshape(-1).tolist()
        text = self.backend_tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        return _clean_up_tokenization(text) if clean else text

    def batch_decode(self, sequences: Iterable[Iterable[int]], **kwargs: Any) -> list[str]:
        return [self.decode(seq, **kwargs) for seq in sequences]

    def convert_ids_to_tokens(self, ids: int | Iterable[int], skip_special_tokens: bool = False) -> str | list[str]:
        if isinstance(ids, int | np.integer):
            return self.backend_tokenizer.id_to_token(int(ids))
        special = set(self.all_special_ids) if skip_special_tokens else set()
        return [self.backend_tokenizer.id_to_token(int(i)) for i in ids if int(i) not in special]

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | None | list[int | None]:
        if isinstance(tokens, str):
            return self.backend_tokenizer.token_to_id(tokens)
        return [self.backend_tokenizer.token_to_id(t) for t in tokens]

    # ------------------------------------------------------------------ chat template
    def get_chat_template(self, chat_template: str | None = None, tools: list | None = None) -> str:
        """transformers' choice: a named template, the tool-use one when tools are given, else the default."""
        templates = self.chat_template
        if isinstance(templates, dict):
            if chat_template is not None and chat_template in templates:
                return templates[chat_template]
            if chat_template is None:
                if tools is not None and "tool_use" in templates:
                    return templates["tool_use"]
                if "default" in templates:
                    return templates["default"]
                raise ValueError(f"This tokenizer has several chat templates and no default; pass one of {sorted(templates)}.")
        if chat_template is None:
            if templates is None:
                raise ValueError("This tokenizer has no chat template (tokenizer.chat_template is not set); pass chat_template=.")
            return templates
        return chat_template

    def apply_chat_template(
        self,
        conversation: list[dict[str, Any]] | list[list[dict[str, Any]]],
        tools: list | None = None,
        documents: list[dict[str, str]] | None = None,
        chat_template: str | None = None,
        add_generation_prompt: bool = False,
        continue_final_message: bool | str = False,
        tokenize: bool = True,
        return_dict: bool = True,
        padding: bool | str = False,
        truncation: bool | str = False,
        max_length: int | None = None,
        return_tensors: str | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> str | list[str] | list[int] | list[list[int]] | dict[str, Any]:
        """The conversation rendered as transformers renders it (the same jinja2 environment and helpers,
        the named special tokens as template variables), then tokenized without special tokens, with ``padding``,
        ``truncation``, ``max_length``, ``return_tensors`` and ``tokenizer_kwargs`` as this tokenizer's call takes them."""
        from transformers.utils.chat_template_utils import render_jinja_template  # no torch: jinja2 and json only

        for name in ("sanitize_control_tokens", "return_assistant_tokens_mask"):  # transformers' own, not template variables
            if kwargs.pop(name, False):
                raise ValueError(f"The run-time tokenizer does not take {name}: use transformers' tokenizer for it.")
        template = self.get_chat_template(chat_template, tools)
        if not conversation:
            raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
        batched = isinstance(conversation[0], list | tuple)
        conversations = conversation if batched else [conversation]
        # as transformers: keys whose value is None are dropped (APIs send content=None)
        conversations = [[{k: v for k, v in m.items() if v is not None} for m in conv] for conv in conversations]
        if continue_final_message and add_generation_prompt:
            raise ValueError("continue_final_message and add_generation_prompt are not compatible.")
        rendered, _ = render_jinja_template(
            conversations=conversations,
            tools=tools,
            documents=documents,
            chat_template=template,
            continue_final_message=continue_final_message,
            add_generation_prompt=add_generation_prompt,
            **{**self.special_tokens_map, **kwargs},
        )
        texts = rendered if batched else rendered[0]
        if not tokenize:
            return texts
        call = {"add_special_tokens": False, "padding": padding, "truncation": truncation, "max_length": max_length}
        call["return_tensors"] = return_tensors
        tokenizer_kwargs = dict(tokenizer_kwargs or {})
        if twice := sorted(tokenizer_kwargs.keys() & call.keys()):  # as transformers: an argument given twice
            raise ValueError(f"tokenizer_kwargs repeat apply_chat_template's own {', '.join(twice)}: pass each once.")
        check_call_arguments(self, tokenizer_kwargs, "tokenizer_kwargs")
        out = self(texts, **call, **tokenizer_kwargs)
        return out if return_dict else out["input_ids"]


def check_call_arguments(tokenizer: RuntimeTokenizer, arguments: dict[str, Any], where: str) -> None:
    """Refuse arguments that transformers' tokenizers take and the run-time tokenizer's call does not (``where``: where
    they came from, for the message)."""
    unknown = sorted(arguments.keys() - set(inspect.signature(tokenizer.__call__).parameters) - {"text"})
    if unknown:
        raise ValueError(f"The run-time tokenizer takes no {', '.join(unknown)} ({where}): use transformers' tokenizer for them.")


def load_tokenizer(path: str | os.PathLike) -> RuntimeTokenizer:
    """The run-time tokenizer of a compiled artifact (its ``tokenizer`` folder, else the model folder
    recorded at compile time) or of a tokenizer folder."""
    path = Path(path)
    if not (path / TOKENIZER_SUBDIR).is_dir() and (path / "qconfig.json").is_file():  # an artifact built before tokenizers were saved
        recorded = json.loads((path / "qconfig.json").read_text()).get("local_model_dir")
        if recorded:
            return RuntimeTokenizer.from_pretrained(recorded)
    return RuntimeTokenizer.from_pretrained(path)


def has_runtime_tokenizer(artifact_dir: str | os.PathLike) -> bool:
    """Whether compile() saved the tokenizer into this artifact."""
    return (Path(artifact_dir) / TOKENIZER_SUBDIR / "tokenizer.json").is_file()


def artifact_tokenizer(artifact_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike) -> Any:
    """The tokenizer compile() saved in the artifact (no torch); for an artifact compiled before tokenizers
    were saved in it, transformers' tokenizer from ``tokenizer_dir``."""
    if has_runtime_tokenizer(artifact_dir):
        return load_tokenizer(artifact_dir)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def save_artifact_tokenizer(tokenizer: Any, artifact_dir: str | os.PathLike, generation_config: Any = None) -> Path | None:
    """Save transformers' ``tokenizer`` into ``artifact_dir/tokenizer`` for the run-time process; returns
    the folder, or None for a tokenizer without a fast backend (the run time then needs transformers)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    # The copy from_hf makes (through the backend's JSON: seconds for a 262k vocabulary) keeps the caller's
    # tokenizer as it was when padding or truncation is cleared; with neither set there is nothing to clear.
    copy = backend.padding is not None or backend.truncation is not None
    runtime = RuntimeTokenizer.from_hf(tokenizer, generation_config, copy_backend=copy)
    return runtime.save_pretrained(Path(artifact_dir) / TOKENIZER_SUBDIR)


def tokenizer_digest(folder: str | os.PathLike) -> str:
    """A short hash of the files a tokenizer and its EOS ids are read from, and of the format the artifact saves them in:
    compile() puts it into the artifact's hash, so a changed tokenizer or chat template (or a run-time tokenizer that
    keeps more of it) gives a new artifact, never a stale one."""
    folder = Path(folder)
    names = (*TOKENIZER_SOURCE_FILES, *(f"additional_chat_templates/{p.name}" for p in sorted(folder.glob("additional_chat_templates/*"))))
    import hashlib  # not at import: OpenSSL's libcrypto costs a run-time process ~4 MB it never uses

    digest = hashlib.sha256(f"format {RUNTIME_TOKENIZER_FORMAT}".encode())
    for name in names:
        if (folder / name).is_file():
            digest.update(name.encode() + b"\0" + hashlib.sha256((folder / name).read_bytes()).digest())
    return digest.hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _token_text(value: Any) -> str | None:
    """A special token as written by transformers: a string, or an AddedToken dict with ``content``."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_chat_template(folder: Path, config: dict[str, Any]) -> str | dict[str, str] | None:
    """transformers' places, newest first: chat_template.jinja (+ additional_chat_templates/), chat_template.json, tokenizer_config."""
    templates: dict[str, str] = {}
    extra = folder / "additional_chat_templates"
    if extra.is_dir():
        templates = {p.stem: p.read_text(encoding="utf-8") for p in sorted(extra.glob("*.jinja"))}
    template: Any = None
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    elif (folder / "chat_template.json").is_file():
        template = _read_json(folder / "chat_template.json").get("chat_template")
    else:
        template = config.get("chat_template")
    if isinstance(template, list):  # [{"name": ..., "template": ...}]
        templates = {**{t["name"]: t["template"] for t in template}, **templates}
        template = None
    if templates:
        if template is not None:
            templates["default"] = template
        return templates
    return template


def _clean_up_tokenization(text: str) -> str:
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase  # no torch; the same replacements as transformers

    return PreTrainedTokenizerBase.clean_up_tokenization(None, text)


__all__ = ["RuntimeTokenizer", "artifact_tokenizer", "has_runtime_tokenizer", "load_tokenizer", "save_artifact_tokenizer"]


def _bounded(length) -> int | None:
    """transformers' model_max_length, None where it is its "no limit" sentinel (about 1e30)."""
    return int(length) if isinstance(length, int) and 0 < length < 1_000_000_000 else None
