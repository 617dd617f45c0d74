"""Mixture-of-experts layers that transformers runs with a data-dependent loop over experts, rewritten
to gather each token's selected experts' weights (``W[expert_ids]``) and multiply them in one batched
matmul: no loop, no ``nonzero``, so the graph exports, and a decode step reads only the selected
experts' weights. (Layers built with transformers' ``use_experts_implementation`` need no rewrite:
static_kv selects its "batched_mm" implementation, the same computation.)
"""

from __future__ import annotations

import types

import torch
from torch import nn


def dbrx_experts_forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
    """DbrxExperts: w1/v1/w2 stored as [E * ffn, H]; out = sum_k weight_k * (act(x w1_k^T) * (x v1_k^T)) w2_k."""
    batch_size = hidden_states.shape[0]
    x = hidden_states.reshape(-1, self.hidden_size)  # [T, H]
    shape = (self.num_experts, self.ffn_hidden_size, self.hidden_size)
    w1 = self.mlp.w1.view(shape)[top_k_index]  # [T, k, F, H]
    v1 = self.mlp.v1.view(shape)[top_k_index]
    w2 = self.mlp.w2.view(shape)[top_k_index]
    xk = x[:, None, None, :]  # [T, 1, 1, H]
    gate = torch.matmul(xk, w1.transpose(-1, -2))  # [T, k, 1, F]
    up = torch.matmul(xk, v1.transpose(-1, -2))
    down = torch.matmul(self.mlp.activation_fn(gate) * up, w2).squeeze(-2)  # [T, k, H]
    out = (down * top_k_weights[..., None].to(down.dtype)).sum(dim=1)
    return out.view(batch_size, -1, self.hidden_size)


# class name -> forward that replaces it
REWRITES = {
    "DbrxExperts": dbrx_experts_forward,
}


def rewrite_moe_layers(model: nn.Module) -> int:
    """Swap the forward of every MoE layer listed in REWRITES (on this instance only); returns how many."""
    count = 0
    for module in model.modules():
        forward = REWRITES.get(type(module).__name__)
        if forward is not None:
            module.forward = types.MethodType(forward, module)
            count += 1
    return count
