"""Inputs as numpy arrays, whatever form a user's processor gave them in (torch tensors, numpy arrays, lists)."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_numpy(value: Any) -> np.ndarray:
    """``value`` as a numpy array: a torch tensor detached and moved to the CPU (bfloat16, which numpy lacks, as float32;
    torch is not imported here), anything else through ``np.asarray``."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
        return (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()
    if isinstance(value, (list, tuple)) and value and all(isinstance(row, (list, tuple)) for row in value):
        if len({len(row) for row in value}) > 1:  # a tokenizer's lists, unpadded: numpy's own error says less
            raise ValueError("The rows have different lengths: pad the batch (the tokenizer's padding=True) or pass one text at a time.")
    return np.asarray(value)
