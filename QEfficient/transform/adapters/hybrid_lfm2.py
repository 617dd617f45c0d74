"""LFM2 (lfm2, lfm2_moe, lfm3): gated short convolutions beside attention layers. A short convolution has a
conv state and no scan, so no SSM state."""

from __future__ import annotations

import torch
from torch import nn

from QEfficient.transform.adapters.recurrent import Mixer
from QEfficient.transform.recurrent_state import causal_conv


def short_conv_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    """Lfm2ShortConv.forward's torch path: out_proj(C * conv(B * x)), the conv continuing from the layer's state."""
    B, C, x = self.in_proj(hidden_states).transpose(-1, -2).chunk(3, dim=-2)
    out, conv_state = causal_conv(B * x, cache.conv[self.layer_idx], self.conv.weight.squeeze(1), self.conv.bias, cache.n_real)
    cache.set_states(self.layer_idx, conv_state)
    return self.out_proj((C * out).transpose(-1, -2).contiguous())


def short_conv_state_shapes(mixer: nn.Module) -> tuple[tuple[int, ...], None]:
    channels, _, kernel = mixer.conv.weight.shape
    return (channels, kernel - 1), None


SHORT_CONV_MIXER = Mixer(short_conv_forward, short_conv_state_shapes)
