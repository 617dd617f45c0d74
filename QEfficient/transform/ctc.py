"""CTC speech models (Wav2Vec2, Wav2Vec2-Conformer, HuBERT, WavLM, Data2VecAudio, UniSpeech) as one graph: raw audio in,
logits out."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.rewrites import apply_rewrites, rewritten_functions

# models whose audio comes with a channel axis ([B, 1, samples]: Omnilingual ASR's feature extractor adds it); the
# graph takes [B, samples] as for the others
CHANNEL_AXIS_TYPES = frozenset({"omniasr_ctc"})


class QEffCTC(nn.Module):
    """forward(input_values [B, samples]) -> logits [B, frames, vocab] (float32)."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.hf = hf_model
        self.config = hf_model.config
        apply_rewrites(hf_model)  # Wav2Vec2-Conformer's relative positions (transform/rewrites.py)

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        if self.config.model_type in CHANNEL_AXIS_TYPES:
            input_values = input_values[:, None, :]
        with rewritten_functions(self.hf):
            return self.hf(input_values).logits.float()
