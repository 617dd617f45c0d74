"""Granite 4 Vision: LLaVA-NeXT's any-resolution tiling with DeepStack in place of a projector into the prompt.
Window Q-Former projectors read chosen vision layers (and four spatial-offset groups of one layer), each
downsampling a tile's patches; the image tokens' input embeddings are zero, and each projector's features are
added to the image tokens' hidden states before its own text layer.

The vision graph returns, per image token, every projector's row side by side ([1, N, hidden * projectors], the
rows laid out by LLaVA-NeXT's gather, at the downsampled tile size); the language graph splits them and adds
each before its layer."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPast

from QEfficient.transform.vision_adapters.llava_next import LlavaNextAdapter


class DeepStackGraniteText(nn.Module):
    """Granite4VisionTextModel's forward with each layer's DeepStack features given as [B, S, hidden] (zero outside
    image tokens) and added, where HF adds them at the image positions by boolean indexing (not exportable)."""

    def __init__(self, text_model: nn.Module) -> None:
        super().__init__()
        self.text_model = text_model

    def get_input_embeddings(self) -> nn.Module:
        return self.text_model.get_input_embeddings()

    def forward(self, inputs_embeds, attention_mask=None, position_ids=None, cache=None, use_cache=True, deepstack=None, **kwargs):
        text = self.text_model
        hidden = inputs_embeds * text.embedding_multiplier
        position_embeddings = text.rotary_emb(hidden, position_ids=position_ids)
        for i, layer in enumerate(text.layers[: text.config.num_hidden_layers]):
            if deepstack is not None and i in deepstack:
                hidden = hidden + deepstack[i].to(hidden.dtype)
            hidden = layer(
                hidden,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=use_cache,
                position_embeddings=position_embeddings,
                **kwargs,
            )
        return BaseModelOutputWithPast(last_hidden_state=text.norm(hidden), cache=cache)


@dataclass(frozen=True)
class Granite4VisionAdapter(LlavaNextAdapter):
    def _targets(self) -> list[int]:
        """The text layer of each projector, in HF's order (a later one replaces an earlier one of the same layer)."""
        return [layer for _, layer in self.config.deepstack_layer_map] + list(self.config.spatial_target_layers)

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        return {**super().vision_example(config, img_size), "gather": torch.arange(3 * self.for_config(config)._tile_tokens() + 1)}

    def embedding_width(self, config, hidden_size: int) -> int:
        return hidden_size * (len(config.deepstack_layer_map) + len(config.spatial_target_layers))

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor, gather: torch.Tensor) -> torch.Tensor:
        model, cfg = hf.model, hf.config
        hidden = model.vision_tower(pixel_values, output_hidden_states=True).hidden_states
        skip = 1 if cfg.vision_feature_select_strategy == "default" else 0  # the CLS position
        features = [proj(hidden[layer][:, skip:]) for proj, (layer, _) in zip(model.layerwise_projectors, cfg.deepstack_layer_map)]
        features += [proj(hidden[cfg.spatial_vision_layer][:, skip:]) for proj in model.spatial_projectors]
        newline = model.image_newline[None]
        rows = [torch.cat([f.reshape(-1, f.shape[-1]), newline.to(f.dtype)])[gather] for f in features]
        return torch.cat(rows, dim=-1).unsqueeze(0)

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return DeepStackGraniteText(hf.model.language_model), hf.lm_head, hf.config.text_config

    def image_token_rows(self, is_image: torch.Tensor, rows: torch.Tensor, hidden: int) -> tuple[torch.Tensor, dict[str, Any]]:
        parts = rows.split(hidden, dim=-1)
        deepstack = {}
        for layer, part in zip(self._targets(), parts):
            deepstack[layer] = torch.where(is_image.unsqueeze(-1), part, torch.zeros_like(part))
        return torch.zeros_like(parts[0]), {"deepstack": deepstack}  # HF zeroes the image tokens' input embeddings

    # --- host side ------------------------------------------------------------------------------
    def _tile_tokens(self) -> int:
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        return int(side * Fraction(self.config.downsample_rate)) ** 2

    def _pack(self, rows: torch.Tensor, image_size) -> torch.Tensor:
        from transformers.models.granite4_vision.modeling_granite4_vision import Granite4VisionModel

        model = SimpleNamespace(config=self.config, layerwise_projectors=True, downsample_rate=self.config.downsample_rate)
        packed = Granite4VisionModel.pack_image_features(
            model,
            [rows],
            torch.as_tensor([list(image_size)]),
            self.config.vision_feature_select_strategy,
            torch.tensor([-1.0], dtype=rows.dtype),
        )
        return packed[0]
