"""Llava 1.5: CLIP vision tower, a chosen hidden layer (CLS dropped), an MLP projector."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class LlavaAdapter(VisionLanguageAdapter):
    def tokens_per_unit(self, config) -> int:
        side = config.vision_config.image_size // config.vision_config.patch_size
        return side * side + (0 if config.vision_feature_select_strategy == "default" else 1)

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        # Llava's own get_image_features splits its output per image with sizes fixed at trace
        # time; the same steps without the split keep the number of images dynamic.
        return hf.model.multi_modal_projector(selected_features(hf.model.vision_tower, hf.config, pixel_values))


def selected_features(tower: nn.Module, cfg, pixel_values: torch.Tensor, strategy: str | None = None) -> torch.Tensor:
    """The tower's hidden states at ``vision_feature_layer`` (several: concatenated), CLS dropped with the
    "default" strategy (``strategy`` overrides the config's)."""
    hidden = tower(pixel_values, output_hidden_states=True).hidden_states
    layer = cfg.vision_feature_layer
    features = hidden[layer] if isinstance(layer, int) else torch.cat([hidden[i] for i in layer], dim=-1)
    if (strategy or cfg.vision_feature_select_strategy) == "default":
        features = features[:, 1:]  # drop the CLS position
    return features
