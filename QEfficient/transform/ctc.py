"""CTC speech models (Wav2Vec2, HuBERT, WavLM, Data2VecAudio) as one graph: raw audio in, logits out."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel


class QEffCTC(nn.Module):
    """forward(input_values [B, samples]) -> logits [B, frames, vocab] (float32)."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.hf = hf_model
        self.config = hf_model.config

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.hf(input_values).logits.float()
