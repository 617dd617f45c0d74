"""vLLM's fields of a pooling request beside OpenAI's, as vLLM applies them: /score's and /rerank's
``max_tokens_per_query`` and ``max_tokens_per_doc`` (token_limits, text_within); an embeddings request's
``truncate_prompt_tokens`` with ``truncation_side`` (truncation), ``embed_dtype`` with ``endianness`` (how base64 and
the binary answers pack the values: packing; ``encoding_format`` "bytes" and "bytes_only": bytes_answer), and the fields
not applied here refused (refuse_unapplied). (``use_activation`` and
``add_special_tokens`` are plain booleans: serving/params.boolean.)"""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from dataclasses import dataclass

import numpy as np
from fastapi import Response

from QEfficient.serving.protocol import APIError
from QEfficient.serving.vllm_fields import text_span

# vLLM's embed_dtype: the values' type in base64 (numpy has no bfloat16 or 8-bit floats: ml_dtypes, onnx's dependency)
EMBED_DTYPES = ("float32", "float16", "bfloat16", "fp8_e4m3", "fp8_e5m2")
_ML_DTYPES = {"bfloat16": "bfloat16", "fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}
ENDIANNESS = ("native", "big", "little")


@dataclass(frozen=True)
class Packing:
    """How base64 and the binary answers pack a vector: its values as ``dtype`` (one of EMBED_DTYPES), bytes in
    ``endianness``'s order ("little", "big", or "native": this machine's)."""

    dtype: str = "float32"
    endianness: str = "little"

    @property
    def byteorder(self) -> str:
        return sys.byteorder if self.endianness == "native" else self.endianness

    def pack(self, vector: np.ndarray) -> bytes:
        vector = vector.astype(np.float32)
        if self.dtype == "fp8_e4m3":  # torch saturates at its largest finite value, 448 (ml_dtypes would give NaN)
            vector = np.clip(vector, -448.0, 448.0)
        with np.errstate(over="ignore"):  # float16's overflow is inf, as torch's
            if self.dtype in _ML_DTYPES:
                import ml_dtypes

                values = vector.astype(getattr(ml_dtypes, _ML_DTYPES[self.dtype]))  # rounded to nearest even, as torch
            else:
                values = vector.astype(self.dtype)
        raw = values.view(f"u{values.itemsize}")
        return raw.astype(raw.dtype.newbyteorder("<" if self.byteorder == "little" else ">")).tobytes()


FLOAT32 = Packing()  # OpenAI's


def packing(body: dict) -> Packing:
    """The request's ``embed_dtype`` (default float32) and ``endianness`` (default native: this machine's order)."""
    dtype = body.get("embed_dtype")
    dtype = "float32" if dtype is None else dtype
    if dtype not in EMBED_DTYPES:
        raise APIError(400, f"'embed_dtype' must be one of {list(EMBED_DTYPES)}, got {dtype!r}.", "embed_dtype")
    order = body.get("endianness")
    order = "native" if order is None else order
    if order not in ENDIANNESS:
        raise APIError(400, f"'endianness' must be one of {list(ENDIANNESS)}, got {order!r}.", "endianness")
    return Packing(dtype, order)


# vLLM's binary answers: the packed values as the body, with (bytes) or without (bytes_only) a metadata header
BYTES_FORMATS = ("bytes", "bytes_only")


ENCODING_FORMATS = ("float", "base64", *BYTES_FORMATS)


def encoding_format(body: dict) -> str:
    """The request's ``encoding_format``: "float" (the default), "base64", or vLLM's binary "bytes" and "bytes_only"."""
    encoding = body.get("encoding_format")
    encoding = "float" if encoding is None else encoding
    if encoding not in ENCODING_FORMATS:
        raise APIError(400, f"'encoding_format' must be one of {list(ENCODING_FORMATS)}, got {encoding!r}.", "encoding_format")
    return encoding


def pooling_answer(rows, encoding: str, packed: Packing, model: str, tokens: int) -> dict | Response:
    """vLLM's /pooling answer: each row an item (its values as a (nested) list, or for "base64" its bytes, row after
    row, packed as ``packed`` says), or the binary answer for "bytes" and "bytes_only" (bytes_answer)."""
    if encoding in BYTES_FORMATS:
        return bytes_answer(list(rows), encoding, packed, "pooling", model, tokens)
    data = [base64.b64encode(packed.pack(row)).decode() if encoding == "base64" else np.asarray(row).tolist() for row in rows]
    items = [{"index": i, "object": "pooling", "data": d} for i, d in enumerate(data)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}
    answer = {"id": f"pooling-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()), "model": model}
    return answer | {"data": items, "usage": usage}


def bytes_answer(rows: list[np.ndarray], encoding: str, packed: Packing, kind: str, model: str, tokens: int) -> Response:
    """vLLM's answer in ``encoding`` "bytes" or "bytes_only": each row's values packed (``packed``), one row after another,
    as application/octet-stream; "bytes" adds the ``metadata`` header (JSON: id, created, model, each row's index,
    embed_dtype, endianness, start and end offsets and shape, and the usage) that says where each row lies."""
    body, items, offset = [], [], 0
    for index, row in enumerate(rows):
        body.append(packed.pack(row))
        size = len(body[-1])
        items.append({"index": index, "embed_dtype": packed.dtype, "endianness": packed.endianness, "start": offset, "end": offset + size})
        items[-1]["shape"] = list(np.shape(row))
        offset += size
    headers = None
    if encoding == "bytes":
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        metadata = {"id": f"{kind}-{uuid.uuid4().hex}", "created": int(time.time()), "model": model, "data": items, "usage": usage}
        headers = {"metadata": json.dumps(metadata)}
    return Response(b"".join(body), media_type="application/octet-stream", headers=headers)


@dataclass(frozen=True)
class Truncation:
    """vLLM's truncation of a pooling request's inputs: each to its first (side "right") or last ("left") ``keep``
    tokens; with no side given, a text keeps its special tokens (the tokenizer truncates it, on its own truncation side,
    as vLLM's pooling tokenizer does) and token ids are cut on the tokenizer's side."""

    keep: int
    side: str | None = None

    def apply(self, tokenizer, text: str | None, ids: list[int]) -> list[int]:
        if len(ids) <= self.keep:
            return ids
        side = self.side or ("left" if getattr(tokenizer, "truncation_side", "right") == "left" else "right")
        if self.side is None and text is not None:
            return _truncated_text(tokenizer, text, ids, self.keep, side)
        return ids[-self.keep :] if side == "left" else ids[: self.keep]


def truncation(body: dict, max_len: int) -> Truncation | None:
    """``truncate_prompt_tokens`` (a number of tokens up to ``max_len``, or -1 for ``max_len``) and ``truncation_side``."""
    keep, side = body.get("truncate_prompt_tokens"), body.get("truncation_side")
    if side not in (None, "left", "right"):
        raise APIError(400, f'\'truncation_side\' must be "left" or "right", got {side!r}.', "truncation_side")
    if keep is None:
        return None
    if type(keep) is not int or not (keep == -1 or 1 <= keep <= max_len):
        message = f"'truncate_prompt_tokens' must be a number of tokens from 1 to this model's maximum of {max_len}, or -1 (that maximum)."
        raise APIError(400, message, "truncate_prompt_tokens")
    return Truncation(max_len if keep == -1 else keep, side)


def refuse_unapplied(body: dict) -> None:
    """A 400 for vLLM's pooling fields that would change the vectors and are not applied here, and for ``normalize``,
    which vLLM refuses too (its ``use_activation`` replaced it)."""
    if body.get("normalize") is not None:
        raise APIError(400, "Parameter 'normalize' was removed (as in vLLM); use 'use_activation' instead.", "normalize")
    if body.get("padding") not in (None, "do_not_pad"):
        raise APIError(400, "'padding' other than \"do_not_pad\" is not applied by this server: leave it out.", "padding")


def _truncated_text(tokenizer, text: str, ids: list[int], keep: int, side: str) -> list[int]:
    """``ids``, the tokens of ``text``, as a transformers tokenizer truncates them to ``keep`` on ``side`` (vLLM's): the
    special tokens it adds around the text stay and the text's last (or first) tokens go; where ``keep`` leaves the
    text no room, the specials alone, and where it cannot hold even those, the tokenizer leaves them uncut and vLLM
    keeps the first (or last) ``keep``."""
    span = text_span(tokenizer, text, ids)
    if span is None or keep < len(span[0]) + len(span[2]):  # (specials that change the text's own: cut as token ids are)
        return ids[-keep:] if side == "left" else ids[:keep]
    head, body, tail = span
    room = keep - len(head) - len(tail)
    return head + (body[len(body) - room :] if side == "left" else body[:room]) + tail


def token_limits(body: dict, max_len: int) -> tuple[int, int]:
    """vLLM's ``max_tokens_per_query`` and ``max_tokens_per_doc`` of a /score or /rerank request: each side's texts cut
    to that many tokens before they are paired (0, the default: not cut)."""
    limits = []
    for name in ("max_tokens_per_query", "max_tokens_per_doc"):
        value = body.get(name)
        value = 0 if value is None else value
        if type(value) is not int or not 0 <= value < max_len:
            message = f"'{name}' must be a number of tokens from 0 (no limit) to less than this model's maximum of {max_len}."
            raise APIError(400, message, name)
        limits.append(value)
    return limits[0], limits[1]


def text_within(tokenizer, text: str, max_tokens: int) -> str:
    """``text`` cut to its first ``max_tokens`` tokens (0: as it is) at a character boundary, as vLLM's
    truncate_text_to_tokens cuts a query or document: the text before the next token's start (or the last kept token's
    end), again until the cut text tokenizes within the limit."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if max_tokens <= 0:
        return text
    if backend is None:
        raise APIError(400, "'max_tokens_per_query' and 'max_tokens_per_doc' need a fast tokenizer (tokenizer.json).", "max_tokens_per_doc")
    while text:
        encoding = backend.encode(text, add_special_tokens=False)
        if len(encoding.ids) <= max_tokens:
            break
        end = min(encoding.offsets[max_tokens - 1][1], encoding.offsets[max_tokens][0])
        text = text[: min(end, len(text) - 1)]
    return text
