"""Gemma 2 / Gemma 3 (text) cap the LM-head output with ``tanh`` in their *ForCausalLM head."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from QEfficient.transform.adapters.base import ArchAdapter


@dataclass(frozen=True)
class FinalSoftcapAdapter(ArchAdapter):
    def postprocess_logits(self, logits: torch.Tensor, config) -> torch.Tensor:
        cap = getattr(config, "final_logit_softcapping", None)
        return logits if cap is None else torch.tanh(logits / cap) * cap
