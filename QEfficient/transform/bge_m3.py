"""BGE-M3's heads inside its encoder's graph (loading/bge_m3.py reads them): one output holds every token's hidden state
(the dense vector is the first token's), its multi-vector head's output and its sparse head's weight, as FlagEmbedding
computes them; the host picks, masks and normalizes (models/bge_m3.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from QEfficient.loading.sentence_transformers_files import DenseLayer
from QEfficient.transform.colbert import torch_linear


class BGEM3Heads(nn.Module):
    """forward(last_hidden_states [B, S, H], attention_mask) -> [B, S, H + C + 1]: the hidden state, the multi-vector head
    (C wide) and the sparse head's relu weight, side by side (``split`` takes them apart)."""

    def __init__(self, colbert: DenseLayer, sparse: DenseLayer) -> None:
        super().__init__()
        self.colbert_linear, self.sparse_linear = torch_linear(colbert), torch_linear(sparse)

    def forward(self, last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = torch.relu(self.sparse_linear(last_hidden_states))
        return torch.cat([last_hidden_states, self.colbert_linear(last_hidden_states), weights], dim=-1)

    @staticmethod
    def split(output: np.ndarray, hidden_size: int, colbert_dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hidden states, multi-vector outputs, sparse weights [..., 1]) of the graph's output."""
        if output.shape[-1] != hidden_size + colbert_dim + 1:
            raise ValueError(f"The graph gives {output.shape[-1]} values per token, not BGE-M3's heads': compile without onnx_path.")
        hidden, vectors, weights = np.split(output, [hidden_size, hidden_size + colbert_dim], axis=-1)
        return hidden, vectors, weights
