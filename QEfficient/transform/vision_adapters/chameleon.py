"""Chameleon: images become discrete tokens. A VQ-VAE encoder quantises each image to codebook entries, each
entry maps to its own text token, and the text model's embedding table embeds them (HF's ``get_image_features``):
the vision graph's output is those embeddings, a fixed number per image. The text model is the model itself
(no separate text config); its head never predicts an image-code token (HF sets their logits to the dtype's
minimum), which the language graph's head does with a bias of that minimum on those tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


def head_without(lm_head: nn.Linear, tokens: list[int]) -> nn.Linear:
    """``lm_head`` (its own weight, shared) with a bias of the dtype's minimum on ``tokens``: they are never chosen."""
    weight = lm_head.weight
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=True, device="meta")
    head.weight = weight
    bias = torch.zeros(weight.shape[0], dtype=weight.dtype) if lm_head.bias is None else lm_head.bias.detach().clone()
    bias[tokens] = torch.finfo(weight.dtype).min
    head.bias = nn.Parameter(bias, requires_grad=False)
    return head


@dataclass(frozen=True)
class ChameleonAdapter(VisionLanguageAdapter):
    def default_img_size(self, config) -> int:
        return int(config.vq_config.resolution)

    def tokens_per_unit(self, config) -> int:
        vq = config.vq_config
        return (vq.resolution // 2 ** (len(vq.channel_multiplier) - 1)) ** 2

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        return hf.model.get_image_features(pixel_values, return_dict=True).pooler_output

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return hf.model, head_without(hf.lm_head, hf.model.vocabulary_mapping.image_tokens), hf.config

    def image_token_id(self, config) -> int:
        return int(config.vocabulary_map["<image>"])
