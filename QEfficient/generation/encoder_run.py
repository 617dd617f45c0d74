"""An encoder graph over a batch of token ids: cut to the smallest compiled length that holds every real column,
run ``batch_size`` rows at a time (a short last batch padded with copies of its last row, dropped after).
No torch: the servers run it from a compiled artifact."""

from __future__ import annotations

from typing import Any

import numpy as np

from QEfficient.export.graph_specs import ATTENTION_MASK, INPUT_IDS, TOKEN_TYPE_IDS


def run_encoder(session: Any, compile_params: dict, token_types: bool, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
    """The graph's output for ids/mask/types [B, S] (int64); ``token_types``: whether the graph takes them."""
    lengths, batch = compile_params["seq_len"], compile_params["batch_size"]
    need = int(np.nonzero(mask.any(0))[0].max()) + 1 if mask.any() else 1  # last real column
    fit = next((n for n in lengths if n >= need), None)
    if fit is None:
        raise ValueError(
            f"The input has {need} tokens but the longest compiled seq_len is {lengths[-1]}: compile with a larger "
            f"seq_len (e.g. seq_len=[{', '.join(map(str, lengths))}, {need}]) or truncate the input."
        )
    columns = {INPUT_IDS: ids, ATTENTION_MASK: mask}
    if token_types:
        columns[TOKEN_TYPE_IDS] = types
    padded = {}
    for name, values in columns.items():  # cut to the real columns, then zeros up to the compiled length
        padded[name] = np.zeros((ids.shape[0], fit), np.int64)
        padded[name][:, : min(fit, values.shape[1])] = values[:, :fit]
    outputs = []
    for start in range(0, len(ids), batch):
        chunk = {name: values[start : start + batch] for name, values in padded.items()}
        real = len(chunk[INPUT_IDS])
        if real < batch:  # pad with copies of the last row, dropped below
            chunk = {name: np.concatenate([v, np.repeat(v[-1:], batch - real, 0)]) for name, v in chunk.items()}
        outputs.append(session.run(None, chunk)[0][:real])
    out = np.concatenate(outputs)
    if out.ndim >= 3 and out.shape[1] == fit != ids.shape[1]:  # per-token outputs: the input's columns, not the compiled length's
        out = out[:, : ids.shape[1]]
        if out.shape[1] < ids.shape[1]:  # columns past the last real token (padding="max_length"): zeros
            out = np.pad(out, [(0, 0), (0, ids.shape[1] - out.shape[1])] + [(0, 0)] * (out.ndim - 2))
    return out


def encoder_inputs(inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids, mask and token types [B, S] as int64 from a tokenizer's output (numpy or lists; a missing mask is all
    ones, missing types all zeros)."""
    ids = np.asarray(inputs[INPUT_IDS]).astype(np.int64)
    mask = np.asarray(inputs[ATTENTION_MASK]).astype(np.int64) if ATTENTION_MASK in inputs else np.ones_like(ids)
    types = np.asarray(inputs[TOKEN_TYPE_IDS]).astype(np.int64) if TOKEN_TYPE_IDS in inputs else np.zeros_like(ids)
    if ids.ndim == 1:
        ids, mask, types = ids[None], mask[None], types[None]
    return ids, mask, types
