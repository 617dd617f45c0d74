"""Ergo (Amazon, transformers 5.25): norms through ``F.rms_norm``, and an RMSNorm scale per routed expert.

Why an adapter: the TorchScript exporter takes only a constant ``normalized_shape`` for ``rms_norm``, and
Ergo's norms pass shapes read from tensors while tracing (the weight's, or the hidden states' width). The
forwards below compute the same root-mean-square normalisation over the last axis from operators that need
no shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from QEfficient.transform.adapters.base import ArchAdapter


def _normalized(hidden_states: torch.Tensor, eps: float) -> torch.Tensor:
    x = hidden_states.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def rms_norm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """ErgoRMSNorm.forward: the weight applied in float32, then rounded to the input's dtype."""
    return (_normalized(hidden_states, self.eps) * self.weight.float()).to(hidden_states.dtype)


def expert_norm_forward(self, hidden_states: torch.Tensor, expert_ids: torch.Tensor) -> torch.Tensor:
    """ErgoExpertNorm.forward: each row scaled by the weight of the expert that computed it."""
    return (_normalized(hidden_states, self.eps) * self.weight[expert_ids]).to(hidden_states.dtype)


class ErgoAdapter(ArchAdapter):
    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {**super().module_forwards, "ErgoRMSNorm": rms_norm_forward, "ErgoExpertNorm": expert_norm_forward}
