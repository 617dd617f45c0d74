"""SPLADE's pooling inside a masked LM's graph: the logits of the attended tokens through log(1 + relu(.)) (twice for
``log1p_relu``), then their max or sum, as sentence-transformers' SpladePooling computes it: one vocabulary-sized vector
per text instead of every token's logits."""

from __future__ import annotations

import torch
from torch import nn


class SpladePooling(nn.Module):
    """forward(last_hidden_states: the masked LM's logits [B, S, V], attention_mask [B, S]) -> [B, V]."""

    reads_logits = True  # QEffEncoder pools a masked LM's logits with it (its other poolings read hidden states)

    def __init__(self, pooling_strategy: str = "max", activation_function: str = "relu") -> None:
        super().__init__()
        self.pooling_strategy, self.activation_function = pooling_strategy, activation_function

    def extra_repr(self) -> str:  # part of the export's key
        return f"pooling_strategy={self.pooling_strategy}, activation_function={self.activation_function}"

    def forward(self, last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        values = torch.log1p(torch.relu(last_hidden_states * attention_mask.unsqueeze(-1).to(last_hidden_states.dtype)))
        if self.activation_function == "log1p_relu":
            values = torch.log1p(values)
        return values.amax(dim=1) if self.pooling_strategy == "max" else values.sum(dim=1)
