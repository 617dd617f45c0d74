"""RecurrentGemma (Griffin): RG-LRU recurrent blocks beside local-attention blocks. A block's state is its
temporal convolution's last inputs and the LRU's hidden vector [lru_width]."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from QEfficient.transform.adapters.recurrent import Mixer, RecurrentAdapter
from QEfficient.transform.recurrent_state import causal_conv, causal_decay


def _gate(lru: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """sigmoid of the block-diagonal gate projection, as RecurrentGemmaRglru computes it."""
    bsz, seq, width = x.shape
    blocks = x.reshape(bsz * seq, lru.num_attention_heads, lru.block_width).permute(1, 0, 2)
    return torch.sigmoid(torch.baddbmm(bias[:, None, :], blocks, weight).transpose(0, 1).reshape(bsz, seq, width))


def recurrent_block_forward(
    self, input_states: torch.Tensor, position_ids: torch.Tensor, attention_mask=None, use_cache=True, cache=None, **kwargs
):
    """RecurrentGemmaRecurrentBlock.forward continuing from the block's retained states: h_t = a_t h_{t-1} + x_t,
    x_t the gated input scaled by sqrt(1 - a_t^2) (by 1 at position 0), in closed form over the chunk."""
    y_branch = self.act_fn(self.linear_y(input_states))
    x, conv_state = causal_conv(
        self.linear_x(input_states).transpose(1, 2),
        cache.conv[self.layer_idx],
        self.conv_1d.weight.squeeze(1),
        self.conv_1d.bias,
        cache.n_real,
    )
    x = x.transpose(1, 2)  # [B, S, W]
    lru = self.rg_lru
    input_gate = _gate(lru, x, lru.input_gate_weight, lru.input_gate_bias)
    log_a = -8.0 * _gate(lru, x, lru.recurrent_gate_weight, lru.recurrent_gate_bias) * F.softplus(lru.recurrent_param)
    start = (position_ids == 0)[..., None]
    multiplier = torch.where(start, torch.ones((), dtype=log_a.dtype), torch.sqrt(1 - torch.exp(2 * log_a)))
    valid = cache.step_mask(x)[..., None]  # padding: no input, no decay
    inputs = (x * input_gate * multiplier.to(x.dtype) * valid).float()
    log_a = (log_a * valid).float().transpose(1, 2)  # [B, W, S]
    state = cache.ssm[self.layer_idx].float()
    hidden = (
        torch.einsum("bwts,bsw->btw", causal_decay(log_a), inputs) + torch.exp(torch.cumsum(log_a, -1)).transpose(1, 2) * state[:, None]
    )
    cache.set_states(self.layer_idx, conv_state, hidden[:, -1])
    return self.linear_out(hidden.to(x.dtype) * y_branch), None


def recurrent_block_state_shapes(block: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    channels, _, kernel = block.conv_1d.weight.shape
    return (channels, kernel - 1), (block.lru_width,)


RG_LRU_BLOCK = Mixer(recurrent_block_forward, recurrent_block_state_shapes)


@dataclass(frozen=True)
class RecurrentGemmaAdapter(RecurrentAdapter):
    """Its head soft-caps the logits (``logits_soft_cap``); its recurrent blocks do not record their layer index."""

    def recurrent_layers(self, hf_model):
        for index, layer in enumerate(hf_model.model.layers):
            if type(layer.temporal_block).__name__ in self.mixers:
                layer.temporal_block.layer_idx = index  # the index the retained states are keyed by
        return super().recurrent_layers(hf_model)

    def postprocess_logits(self, logits: torch.Tensor, config) -> torch.Tensor:
        cap = config.logits_soft_cap
        return torch.tanh(logits / cap) * cap if cap else logits
