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
    return np.asarray(value)
