"""HyperCLOVA X SEED Vision (v2): Qwen2.5-VL's vision tower (as ``vision_model``) and a linear projector into
a HyperCLOVA X text model with ordinary 1-D rotary positions (no multimodal rotary rule on the host)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.qwen2_5_vl import Qwen2_5_VLAdapter


@dataclass(frozen=True)
class HyperClovaXVisionAdapter(Qwen2_5_VLAdapter):
    # the cache positions are the rotary positions: the language graph takes no 3-D positions
    prompt_positions = VisionLanguageAdapter.prompt_positions
    decoder_example = VisionLanguageAdapter.decoder_example
    decoder_axes = VisionLanguageAdapter.decoder_axes
    language_kwargs = VisionLanguageAdapter.language_kwargs

    def vision_tower(self, hf: nn.Module) -> nn.Module:
        return hf.model.vision_model

    def image_features(self, hf: nn.Module, *vision_inputs: torch.Tensor) -> torch.Tensor:
        return hf.model.projector(super().image_features(hf, *vision_inputs))
