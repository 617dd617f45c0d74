"""ColBERT's head inside the encoder's graph (loading/colbert.py reads it): every token's last hidden state through the
folder's projection, then L2-normalized, as PyLate's encode and vLLM's ``token_embed`` pooling give it."""

from __future__ import annotations

import torch
from torch import nn

from QEfficient.loading.sentence_transformers_files import DenseLayer

_ACTIVATIONS = {"Identity": nn.Identity, "Tanh": nn.Tanh, "ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid}


class ColBERTProjection(nn.Module):
    """forward(last_hidden_states [B, S, H], attention_mask [B, S]) -> [B, S, dim], each row of unit length. The mask is not read:
    which tokens count is the host's choice (a query keeps its expansion tokens, a document drops its skiplist)."""

    def __init__(self, layers: tuple[DenseLayer, ...]) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(module for layer in layers for module in (torch_linear(layer), _ACTIVATIONS[layer.activation]())))

    def forward(self, last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.layers(last_hidden_states), p=2, dim=-1)


def torch_linear(layer: DenseLayer) -> nn.Linear:
    """The layer's weight and bias as a torch Linear."""
    out_features, in_features = layer.weight.shape
    linear = nn.Linear(in_features, out_features, bias=layer.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(layer.weight))
        if layer.bias is not None:
            linear.bias.copy_(torch.from_numpy(layer.bias))
    return linear
