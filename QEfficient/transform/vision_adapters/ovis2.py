"""Ovis2: a SigLIP-like tower whose patches (merged hidden_stride x hidden_stride) become a probability over a
visual vocabulary, embedded as a weighted sum of its table; the image's wrapper tokens (<IMG_START>, <IMG_GRID>,
..., ``visual_indicator_token_ids``) take the table's last rows instead of their text embeddings in a prompt with
images (HF's prefill); one the model generates, or in a prompt without images, keeps its text embedding. HF's own
``get_image_features`` keeps the number of images dynamic."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class Ovis2Adapter(VisionLanguageAdapter):
    def tokens_per_unit(self, config) -> int:
        vc = config.vision_config
        side = -(-(vc.image_size // vc.patch_size) // vc.hidden_stride)  # HF pads the patch grid to the stride
        return side * side

    def text_embeddings(self, hf: nn.Module, input_ids: torch.Tensor, embeds: torch.Tensor, with_images: torch.Tensor) -> torch.Tensor:
        # HF replaces them in steps given images (a prefill): not in a text-only prompt, nor one the model generates
        table = hf.model.visual_embeddings_table.weight
        indicators = hf.config.visual_indicator_token_ids
        for i, token in enumerate(indicators):
            row = table[len(table) - len(indicators) + i].to(embeds.dtype)
            embeds = torch.where(((input_ids == token) & with_images).unsqueeze(-1), row, embeds)
        return embeds
