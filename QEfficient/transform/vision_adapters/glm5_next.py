"""GLM-5.3-Flash (glm5_next): GLM-OCR's vision tower (no position table; its SwiGLU MLPs and merger clamp their gate
and up projections, which run as HF's modules) and GLM-4.6V's host side; a NoPE text model (Kimi delta attention
beside pooled-DSA multi-latent attention: transform/adapters/glm5_next.py) with no rotary table, so the host
computes no 3-D positions and the language graph takes the cache positions only. Its text model reads the
per-layer-type masks itself (the indexed-attention layers' and the recurrent layers'), so the language graph
hands it the mapping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.glm4v import Glm4vAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary
from QEfficient.transform.vision_adapters.qwen3_vl import OneMaskTextModel


@dataclass(frozen=True)
class Glm5NextAdapter(CachePositionsRotary, Glm4vAdapter):
    position_table: bool = False

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        base, head, text_config = VisionLanguageAdapter.language(self, hf)
        return OneMaskTextModel(base, takes_mapping=True), head, text_config
