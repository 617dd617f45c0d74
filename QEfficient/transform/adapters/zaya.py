"""ZAYA (Zyphra): every decoder layer is "hybrid", i.e. grouped-query attention whose q/k/v come from a
Compressed Convolutional Attention (CCA) projection, followed by a top-1 MoE with a skip expert.

The CCA projection is what makes a layer stateful beside its KV cache:

* q and k are mixed over time by two stacked causal convolutions (depthwise, kernel ``cca_time0``, then
  per-head grouped, kernel ``cca_time1``), so each layer keeps the last ``cca_time0 + cca_time1 - 2``
  raw q/k projections as its conv state;
* half of each value head is the *previous* token's ``v_proj_delayed`` projection, so each layer keeps
  that projection of its last token as a second state (``ssm_state`` in the graph's names).

transformers keeps both in its hybrid cache layers; here they follow the retained-state contract of
transform/recurrent_state.py. The adapter also hands the model its masks under ZAYA's layer kinds
("hybrid", "hybrid_sliding") and marks every layer as having a KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from QEfficient.transform.adapters.recurrent import Mixer, RecurrentAdapter


def _last_real(values: torch.Tensor, state: torch.Tensor, n_real: torch.Tensor) -> torch.Tensor:
    """values [B, S, D], state [B, D] -> [B, D]: each row's last real value, or ``state`` for a row without any."""
    full = torch.cat([state[:, None].to(values.dtype), values], dim=1)
    return torch.gather(full, 1, n_real[:, None, None].expand(-1, 1, full.shape[-1]))[:, 0]


def cca_projection_forward(self, hidden_states: torch.Tensor, cache=None, conv_mask=None):
    """ZayaCCAProjection.forward on the retained states: (query, key, value) [B, S, heads, head_dim].

    ``conv_mask`` (HF's 2-D padding mask) is not needed: padding is right padding, which no real
    position's causal convolution reads, and the states are gathered after each row's last real token.
    """
    bsz, seq, _ = hidden_states.shape
    hidden_shape = (bsz, seq, -1, self.head_dim)

    projected_queries = self.q_proj(hidden_states)
    projected_keys = self.k_proj(hidden_states)
    # The residual paths, as HF computes them: q and (repeated) k averaged, k the mean over each group.
    query_residual = projected_queries.view(*hidden_shape)
    key_residual = projected_keys.view(*hidden_shape).repeat_interleave(self.num_key_value_groups, dim=2)
    query_residual = (query_residual + key_residual) * 0.5
    key_residual = query_residual.view(bsz, seq, -1, self.num_key_value_groups, self.head_dim).mean(dim=-2)

    # Both convolutions continue from the last conv_kernel_size raw q/k projections (zeros for a new sequence).
    qk_states = torch.cat([projected_queries, projected_keys], dim=-1).transpose(1, 2)
    conv_state = cache.conv[self.layer_idx]
    full = torch.cat([conv_state.to(qk_states.dtype), qk_states], dim=-1)
    width = conv_state.shape[-1]
    index = (cache.n_real[:, None, None] + torch.arange(width, device=full.device)).expand(bsz, full.shape[1], width)
    new_conv_state = torch.gather(full, 2, index)
    qk_states = self.conv_qk_grouped(self.conv_qk_depthwise(full)).transpose(1, 2)

    query_hidden_size = projected_queries.shape[-1]
    query = qk_states[..., :query_hidden_size].reshape(hidden_shape) + query_residual
    key = qk_states[..., query_hidden_size:].reshape(hidden_shape) + key_residual

    # The delayed half of each value head reads the previous token's projection. The state keeps it without
    # the bias, so a new sequence's zero state reads v_proj_delayed(0) = bias, as HF's first step does.
    delayed = F.linear(hidden_states, self.v_proj_delayed.weight)
    previous = torch.cat([cache.ssm[self.layer_idx][:, None].to(delayed.dtype), delayed[:, :-1]], dim=1)
    value_delayed = previous if self.v_proj_delayed.bias is None else previous + self.v_proj_delayed.bias
    value = torch.cat([self.v_proj_current(hidden_states), value_delayed], dim=-1).view(*hidden_shape)

    cache.set_states(self.layer_idx, new_conv_state, _last_real(delayed, cache.ssm[self.layer_idx], cache.n_real))
    return query, key, value


def cca_state_shapes(projection: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    channels = projection.conv_qk_depthwise.in_channels
    return (channels, projection.conv_kernel_size), (projection.v_proj_delayed.out_features,)


CCA_PROJECTION = Mixer(cca_projection_forward, cca_state_shapes)


@dataclass(frozen=True)
class ZayaAdapter(RecurrentAdapter):
    """Every layer has attention (a KV cache) and a CCA projection (two states)."""

    def attention_layers(self, config) -> list[int]:
        return list(range(config.num_hidden_layers))

    def recurrent_masks(self, masks):
        # ZAYA looks its attention masks up by its own layer kinds; its CCA padding mask ("conv") stays None.
        masks = super().recurrent_masks(masks)
        return {**masks, "hybrid": masks["full_attention"], "hybrid_sliding": masks.get("sliding_attention")}
