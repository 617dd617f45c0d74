"""An encoder graph over a batch of token ids: cut to the smallest compiled length that holds every real column,
run ``batch_size`` rows at a time (a short last batch padded with copies of its last row, dropped after).
No torch: the servers run it from a compiled artifact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from QEfficient.export.graph_names import ATTENTION_MASK, GLOBAL_ATTENTION_MASK, INPUT_IDS, PIXEL_VALUES, TOKEN_TYPE_IDS

# What a Longformer head marks for global attention when it is given no global_attention_mask, as transformers' do
GLOBAL_NONE = "none"  # the base model, the token classifier
GLOBAL_FIRST_TOKEN = "first_token"  # the sequence classifier: <s>
GLOBAL_QUESTION = "question"  # the QA head: the tokens before the first separator


def global_attention_rule(head_name: str) -> str:
    """The default global attention of a Longformer model class (``LongformerForQuestionAnswering``, ...)."""
    if head_name.endswith("ForSequenceClassification"):
        return GLOBAL_FIRST_TOKEN
    return GLOBAL_QUESTION if head_name.endswith("ForQuestionAnswering") else GLOBAL_NONE


def global_attention_mask(rule: str, ids: np.ndarray, given, sep_token_id: int | None) -> np.ndarray:
    """The global attention mask [B, S] (int64) to run ``ids`` with: ``given`` (the user's), or ``rule``'s."""
    if given is not None:
        given = np.asarray(given).astype(np.int64)
        given = given[None] if given.ndim == 1 else given
        if given.shape != ids.shape:
            raise ValueError(f"global_attention_mask has shape {list(given.shape)}; it must be input_ids' {list(ids.shape)}.")
        return given
    if rule not in (GLOBAL_NONE, GLOBAL_FIRST_TOKEN, GLOBAL_QUESTION):
        raise ValueError(f"Unknown default global attention {rule!r} (an artifact of a newer version?): compile it again here.")
    marked = np.zeros_like(ids)
    if rule == GLOBAL_FIRST_TOKEN:
        marked[:, 0] = 1
    elif rule == GLOBAL_QUESTION:
        is_sep = ids == sep_token_id
        counts = is_sep.sum(1)
        if (counts != 3).any():
            raise ValueError(
                f"Longformer's question answering marks the question (the tokens before the first separator, id "
                f"{sep_token_id}) for global attention and needs exactly three separators in each row, as transformers does; "
                f"the rows have {counts.tolist()}. Tokenize each question and context as a pair (tokenizer(question, "
                "context)), or pass global_attention_mask."
            )
        marked = (np.arange(ids.shape[1])[None, :] < is_sep.argmax(1)[:, None]).astype(np.int64)
    return marked


def right_padded(token_lists: list[list[int]], pad_id: int, width: int | None = None) -> dict[str, np.ndarray]:
    """The token lists as a right-padded batch (input_ids, attention_mask), ``width`` columns (the longest list's by
    default)."""
    width = max(len(ids) for ids in token_lists) if width is None else width
    ids = np.full((len(token_lists), width), pad_id, np.int64)
    mask = np.zeros((len(token_lists), width), np.int64)
    for row, tokens in enumerate(token_lists):
        ids[row, : len(tokens)], mask[row, : len(tokens)] = tokens, 1
    return {INPUT_IDS: ids, ATTENTION_MASK: mask}


def run_encoder(
    session: Any,
    compile_params: dict,
    token_types: bool,
    ids: np.ndarray,
    mask: np.ndarray,
    types: np.ndarray,
    global_mask: np.ndarray | None = None,
    reads_padding: bool = False,
    token_inputs: dict[str, np.ndarray] | None = None,
    pixels: np.ndarray | None = None,
) -> np.ndarray:
    """The graph's output for ids/mask/types [B, S] (int64); ``token_types``: whether the graph takes them;
    ``global_mask``: a Longformer graph's global attention mask; ``reads_padding``: a graph whose outputs read
    padding columns (FNet's every column, ConvBERT's and Nystromformer's neighbours), run at the input's own width,
    up to the longest compiled length; ``token_inputs``: more inputs per token [B, S, ...] (a document model's
    boxes, MarkupLM's XPaths); ``pixels`` [B, 3, H, W]: a document model's page images."""
    lengths, batch = compile_params["seq_len"], compile_params["batch_size"]
    if reads_padding:  # every column, padding included
        need = ids.shape[1]
        fit = need if need <= lengths[-1] else None
    else:  # up to the last real column, then zeros up to a compiled length
        need = int(np.nonzero(mask.any(0))[0].max()) + 1 if mask.any() else 1
        fit = next((n for n in lengths if n >= need), None)
    if fit is None:
        counted = " (padding included: this model reads every column)" if reads_padding else ""
        raise ValueError(
            f"The input has {need} tokens{counted} but the longest compiled seq_len is {lengths[-1]}: compile with a "
            f"larger seq_len (e.g. seq_len=[{', '.join(map(str, lengths))}, {need}]) or truncate the input."
        )
    columns = {INPUT_IDS: ids, ATTENTION_MASK: mask}
    if token_types:
        columns[TOKEN_TYPE_IDS] = types
    if global_mask is not None:
        columns[GLOBAL_ATTENTION_MASK] = global_mask
    columns |= token_inputs or {}
    graph_inputs = {i.name for i in session.get_inputs()}  # a graph that reads no mask has none (FNet's, unpooled)
    columns = {name: values for name, values in columns.items() if name in graph_inputs}
    padded = {}
    for name, values in columns.items():  # cut to the real columns, then zeros up to the compiled length
        padded[name] = np.zeros((ids.shape[0], fit, *values.shape[2:]), values.dtype if name in (token_inputs or {}) else np.int64)
        padded[name][:, : min(fit, values.shape[1])] = values[:, :fit]
    if pixels is not None:  # one per row, not per column
        padded[PIXEL_VALUES] = pixels
    out = run_in_batches(session, padded, batch)[0]
    if pixels is not None and out.ndim >= 3 and out.shape[1] > fit:  # LayoutLMv3's image patches after the text columns
        text, patches = out[:, :fit], out[:, fit:]
        text = text[:, : ids.shape[1]]
        text = np.pad(text, [(0, 0), (0, ids.shape[1] - text.shape[1])] + [(0, 0)] * (out.ndim - 2))
        return np.concatenate([text, patches], axis=1)
    if out.ndim >= 3 and out.shape[1] == fit != ids.shape[1]:  # per-token outputs: the input's columns, not the compiled length's
        out = out[:, : ids.shape[1]]
        if out.shape[1] < ids.shape[1]:  # columns past the last real token (padding="max_length"): zeros
            out = np.pad(out, [(0, 0), (0, ids.shape[1] - out.shape[1])] + [(0, 0)] * (out.ndim - 2))
    return out


def encoder_inputs(inputs, vocab_size: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids, mask and token types [B, S] as int64 from a tokenizer's output (numpy or lists; a missing mask is all
    ones, missing types all zeros); what is not such an output is refused, saying what to pass, and so are ids outside
    the model's ``vocab_size`` (another model's tokenizer)."""
    if not hasattr(inputs, "keys") or INPUT_IDS not in inputs:
        got = f"a {type(inputs).__name__}" if not hasattr(inputs, "keys") else f"the keys {sorted(inputs.keys())}"
        raise ValueError(f"Pass a tokenizer's output (input_ids, attention_mask) to run the model, not {got}: tokenize the texts first.")
    ids = np.asarray(inputs[INPUT_IDS])
    if ids.dtype.kind not in "iu" or ids.ndim not in (1, 2) or not ids.size:
        raise ValueError(
            f"input_ids must be token ids [batch, tokens] (integers, at least one), got {ids.dtype} of shape {list(ids.shape)}."
        )
    ids = ids.astype(np.int64)
    mask = np.asarray(inputs[ATTENTION_MASK]).astype(np.int64) if inputs.get(ATTENTION_MASK) is not None else np.ones_like(ids)
    types = np.asarray(inputs[TOKEN_TYPE_IDS]).astype(np.int64) if inputs.get(TOKEN_TYPE_IDS) is not None else np.zeros_like(ids)
    if ids.ndim == 1:
        ids, mask, types = ids[None], mask[None] if mask.ndim == 1 else mask, types[None] if types.ndim == 1 else types
    for name, values in ((ATTENTION_MASK, mask), (TOKEN_TYPE_IDS, types)):
        if values.shape != ids.shape:
            raise ValueError(f"{name} has the shape {list(values.shape)}, input_ids {list(ids.shape)}: pass one tokenizer output.")
    check_token_ids(ids, vocab_size)
    return ids, mask, types


def check_token_ids(ids: np.ndarray, vocab_size: int | None, name: str = "input_ids") -> None:
    """A clear error for an id outside [0, ``vocab_size``) (another model's tokenizer), before a graph's embedding
    lookup reads past its table; None: not checked."""
    if vocab_size is None or not ids.size or (ids.min() >= 0 and ids.max() < vocab_size):
        return
    bad = int(ids.max() if ids.max() >= vocab_size else ids.min())
    raise ValueError(
        f"{name} holds the id {bad}, outside this model's vocabulary [0, {vocab_size}): tokenize with the model's own tokenizer."
    )


def run_image_encoder(session: Any, compile_params: dict, pixels: np.ndarray) -> np.ndarray:
    """An image graph's (first) output for pixels [N, C, H, W] (run_image_graph)."""
    return run_image_graph(session, compile_params, pixels)[0]


def run_image_graph(session: Any, compile_params: dict, pixels: np.ndarray) -> list[np.ndarray]:
    """An image graph's outputs for pixels [N, C, H, W] at the compiled ``image_size``, ``batch_size`` at a time (a short
    last batch filled with copies of its last image, their rows dropped); a ValueError for another size."""
    size, batch = tuple(compile_params["image_size"]), compile_params["batch_size"]
    if tuple(pixels.shape[2:]) != size:
        raise ValueError(
            f"The images are {pixels.shape[2]}x{pixels.shape[3]} but the model was compiled for {size[0]}x{size[1]}: have the "
            f"image processor write {size[0]}x{size[1]} images (keep_aspect_ratio=False where it keeps each image's aspect "
            f"ratio), or compile(img_size={tuple(pixels.shape[2:])})."
        )
    return run_in_batches(session, {PIXEL_VALUES: pixels}, batch)


def run_in_batches(session: Any, inputs: Mapping[str, np.ndarray], batch: int) -> list[np.ndarray]:
    """A graph's outputs for ``inputs`` (named arrays with the same rows on axis 0), ``batch`` rows at a time, as the
    artifact was compiled: a short last batch is filled with copies of its last row, whose outputs are dropped."""
    counts = {name: len(values) for name, values in inputs.items()}
    rows, outputs = max(counts.values(), default=0), []
    if not rows or len(set(counts.values())) > 1:
        raise ValueError(f"Each input needs the same number of rows, at least one; got {counts}.")
    for start in range(0, rows, batch):
        real = min(batch, rows - start)
        # a full batch as a slice (no copy); a short one with its last row repeated past the end
        picked = slice(start, start + batch) if real == batch else np.minimum(np.arange(start, start + batch), rows - 1)
        feed = {name: np.ascontiguousarray(values[picked]) for name, values in inputs.items()}
        outputs.append([value[:real] for value in session.run(None, feed)])
    return [np.concatenate(parts) for parts in zip(*outputs)]
