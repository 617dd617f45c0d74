"""How the encoder servers group a request's texts into model calls."""

from __future__ import annotations


def length_batches(lengths: list[int], batch_size: int, same_length: bool = False) -> list[list[int]]:
    """The rows' indices in calls of at most ``batch_size``, shortest first, so that padding stays short; with
    ``same_length``, each call holds texts of one length only: a model that reads every column (FNet's Fourier mixing
    reads the padding too) then answers each text as it would alone, whatever it is batched with."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if not same_length:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for i in order:
        if not batches or len(batches[-1]) == batch_size or lengths[batches[-1][0]] != lengths[i]:
            batches.append([])
        batches[-1].append(i)
    return batches
