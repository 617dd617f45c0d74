"""Falcon-H1: every layer runs attention and a Mamba-2 mixer side by side (KV cache and states in each layer).
Its mixer scales the input and the projection (muP multipliers) and gates with or without an RMS norm."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from QEfficient.transform.adapters.mamba2 import MAMBA2_MIXER, mamba2_scan
from QEfficient.transform.adapters.recurrent import Mixer


def falcon_h1_mixer_forward(self, hidden_states: torch.Tensor, cache=None, attention_mask=None, **kwargs) -> torch.Tensor:
    projected = self.in_proj(hidden_states * self.ssm_in_multiplier) * self.mup_vector
    y, gate = mamba2_scan(self, projected, cache)
    y = self.norm(y, gate) if self.mamba_rms_norm else y * F.silu(gate)
    return self.out_proj(y.to(hidden_states.dtype))


FALCON_H1_MIXER = Mixer(falcon_h1_mixer_forward, MAMBA2_MIXER.state_shapes)
