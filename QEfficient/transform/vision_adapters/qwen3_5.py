"""Qwen3.5 (dense and MoE): Qwen3-VL's vision tower (a learned position table resampled to each image's grid,
2-D rotary, a 2x2 merger) without DeepStack, and Qwen3-VL's host-side 3-D rotary positions; a hybrid text
model whose Gated DeltaNet layers carry conv and SSM states, retained in the language graph after the KV
cache of its attention layers (transform/image_text.py). The text model takes the per-layer-type masks itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.qwen3_vl import Qwen3VLAdapter


@dataclass(frozen=True)
class Qwen3_5Adapter(Qwen3VLAdapter):
    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return VisionLanguageAdapter.language(self, hf)

    def embedding_width(self, config, hidden_size: int) -> int:
        return hidden_size

    def image_token_rows(self, is_image: torch.Tensor, rows: torch.Tensor, hidden: int) -> tuple[torch.Tensor, dict[str, Any]]:
        return rows, {}
