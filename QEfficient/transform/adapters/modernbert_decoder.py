"""ModernBERT-decoder's head runs a prediction head (dense, activation, norm) before the output embedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from QEfficient.transform.adapters.base import ArchAdapter


@dataclass(frozen=True)
class PredictionHeadAdapter(ArchAdapter):
    def head_input(self, hf_model, hidden: torch.Tensor) -> torch.Tensor:
        return hf_model.lm_head(hidden)  # ModernBertDecoderPredictionHead; the output embedding is `decoder`
