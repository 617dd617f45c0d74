"""Llama 4: tiles through a ViT with 2-D rotary positions (complex numbers in HF, which ONNX cannot
express: rewritten here in real arithmetic while the vision graph is traced), a pixel-shuffle MLP and a
linear projector; the Llama 4 text model (chunked attention, MoE) sits in ``language_model`` with its
own head. Units are tiles, each giving (tile / patch * shuffle ratio)^2 image tokens: a large image's
tiles row-major, then its global tile (the processor writes ``<|tile_x_separator|>`` / ``<|tile_y_separator|>``
and ``<|image|>`` between their runs of image tokens: text tokens, embedded as such).

HF's processor rescales and normalises in bfloat16 and returns bfloat16 pixels, which numpy cannot hold: the
processor is asked for torch tensors, and the pixels are widened to float32 (exactly) on the host."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.rewrites import _rotate_pairs
from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


def _real_vision_rotary(query: torch.Tensor, key: torch.Tensor, freqs_ci: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # freqs_ci: the table as (cos, sin) pairs [patches + 1, 1, D/2, 2]; q/k are [tiles, patches + 1, heads, D]
    cos, sin = freqs_ci[..., 0].reshape(1, query.shape[1], 1, -1), freqs_ci[..., 1].reshape(1, query.shape[1], 1, -1)
    return _rotate_pairs(query, cos, sin), _rotate_pairs(key, cos, sin)


@contextlib.contextmanager
def _real_rotary(visual: nn.Module) -> Iterator[None]:
    from transformers.models.llama4 import modeling_llama4

    table = torch.view_as_real(visual.rotary_embedding.freqs_ci)  # a real constant in the graph
    original = modeling_llama4.vision_apply_rotary_emb
    modeling_llama4.vision_apply_rotary_emb = _real_vision_rotary
    visual.rotary_embedding.forward = lambda hidden_states: table
    try:
        yield
    finally:
        modeling_llama4.vision_apply_rotary_emb = original
        del visual.rotary_embedding.forward


@dataclass(frozen=True)
class Llama4Adapter(VisionLanguageAdapter):
    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        with _real_rotary(hf.vision_model):
            features = hf.get_image_features(pixel_values, return_dict=True).last_hidden_state
        return hf.multi_modal_projector(features)

    processor_tensors = "pt"

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        pixels = inputs["pixel_values"]
        if isinstance(pixels, torch.Tensor):
            pixels = pixels.float().numpy()
        return super().vision_inputs({**inputs, "pixel_values": pixels}, img_size, config)

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return hf.language_model.model, hf.language_model.lm_head, hf.config.text_config

    def tokens_per_unit(self, config) -> int:
        vc = config.vision_config
        side = vc.image_size // vc.patch_size * vc.pixel_shuffle_ratio
        return int(side * side)
