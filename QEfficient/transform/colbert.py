"""Per-token heads inside an encoder's graph (loading/colbert.py reads them): ColBERT's projection, L2-normalized, as
PyLate's encode and vLLM's ``token_embed`` pooling give it; BGE-M3's multi-vector and sparse heads beside its hidden
states."""

from __future__ import annotations

import torch
from torch import nn

from QEfficient.loading.colbert import ProjectionLayer

_ACTIVATIONS = {"Identity": nn.Identity, "Tanh": nn.Tanh, "ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid}


class ColBERTProjection(nn.Module):
    """forward(last_hidden_states [B, S, H], attention_mask [B, S]) -> [B, S, dim], each row of unit length. The mask is not read:
    which tokens count is the host's choice (a query keeps its expansion tokens, a document drops its skiplist)."""

    def __init__(self, layers: tuple[ProjectionLayer, ...]) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(module for layer in layers for module in (_linear(layer), _ACTIVATIONS[layer.activation]())))

    def forward(self, last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.layers(last_hidden_states), p=2, dim=-1)


def _linear(layer: ProjectionLayer) -> nn.Linear:
    out_features, in_features = layer.weight.shape
    linear = nn.Linear(in_features, out_features, bias=layer.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(layer.weight))
        if layer.bias is not None:
            linear.bias.copy_(torch.from_numpy(layer.bias))
    return linear


class BGEM3Heads(nn.Module):
    """BGE-M3's three outputs from one graph: forward(last_hidden_states [B, S, H], attention_mask) -> [B, S, H + C + 1],
    every token's hidden state (the dense vector is the first token's), its multi-vector head's output (C wide) and its
    sparse head's weight (relu), as FlagEmbedding computes them; the host picks, masks and normalizes (models/bge_m3.py)."""

    def __init__(self, colbert: ProjectionLayer, sparse: ProjectionLayer) -> None:
        super().__init__()
        self.colbert_linear, self.sparse_linear = _linear(colbert), _linear(sparse)

    def forward(self, last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        weights = torch.relu(self.sparse_linear(last_hidden_states))
        return torch.cat([last_hidden_states, self.colbert_linear(last_hidden_states), weights], dim=-1)
