"""Granite divides the LM-head output by ``logits_scaling`` in GraniteForCausalLM."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from QEfficient.transform.adapters.base import ArchAdapter


@dataclass(frozen=True)
class GraniteAdapter(ArchAdapter):
    def postprocess_logits(self, logits: torch.Tensor, config) -> torch.Tensor:
        return logits / config.logits_scaling
