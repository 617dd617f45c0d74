"""LightOnOCR: Mistral 3's vision side (Pixtral tower, 2x2 patch merger) under other module names, the last
layer's features, and a Qwen3 text model."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from QEfficient.transform.vision_adapters.mistral3 import Mistral3Adapter


@dataclass(frozen=True)
class LightOnOcrAdapter(Mistral3Adapter):
    def vision_modules(self, hf: nn.Module) -> tuple[nn.Module, nn.Module]:
        return hf.model.vision_encoder, hf.model.vision_projection
