"""Qwen3-VL (dense and MoE): Qwen2-VL's layout (any image size, 3-D rotary positions made on the host)
with a learned position table resampled to each image's grid, and DeepStack: the outputs of a few vision
blocks, each through its own merger, are added to the image tokens' hidden states after the first text
layers.

* Vision graph: as Qwen2-VL's, plus each patch's interpolation taps into the position table
  (``interp_indices`` / ``interp_weights``, computed on the host by transformers' own helper). Its
  output row of an image token holds the main embedding followed by the DeepStack features,
  ``[1, N, hidden * (1 + k)]``, so the language graph takes them through the same ``vision_embeds`` /
  ``image_idx`` indexing, and image tokens may span prefill chunks.
* Language graph: splits each image token's row; the DeepStack parts go to the text model's own
  ``deepstack_visual_embeds`` argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter, _vision_block


def _add_deepstack(hidden: torch.Tensor, visual_pos_masks: torch.Tensor, visual_embeds: torch.Tensor) -> torch.Tensor:
    # HF adds at ``hidden[mask]`` (a data-dependent count, which the traced graph would fix); here the
    # features come as [B, S, hidden], zero outside image tokens
    return hidden + visual_embeds.to(hidden.dtype)


class OneMaskTextModel(nn.Module):
    """The text model as the static-KV path calls it: the per-layer-type masks given as the one tensor it
    reads (its config lists layer types, all full attention, but its forward takes no mapping; Qwen3-VL,
    GLM-4V), and DeepStack features, if any, added without boolean indexing."""

    def __init__(self, text_model: nn.Module, takes_mapping: bool = False) -> None:
        super().__init__()
        self.text_model = text_model
        self.takes_mapping = takes_mapping  # its forward reads the per-layer-type masks (Cohere Compass: sliding layers)

    def get_input_embeddings(self) -> nn.Module:
        return self.text_model.get_input_embeddings()

    def forward(self, attention_mask=None, **kwargs):
        if isinstance(attention_mask, dict) and not self.takes_mapping:
            attention_mask = attention_mask["full_attention"]
        if "deepstack_visual_embeds" not in kwargs:
            return self.text_model(attention_mask=attention_mask, **kwargs)
        self.text_model._deepstack_process = _add_deepstack  # on the instance, only while this runs
        try:
            return self.text_model(attention_mask=attention_mask, **kwargs)
        finally:
            del self.text_model._deepstack_process


@dataclass(frozen=True)
class Qwen3VLAdapter(Qwen2VLAdapter):
    video_runs_per_frame = True  # "<t seconds><|vision_start|>frame group<|vision_end|>" per frame group

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        base, head, text_config = super().language(hf)
        return (
            OneMaskTextModel(base, takes_mapping="sliding_attention" in (getattr(text_config, "layer_types", None) or ())),
            head,
            text_config,
        )

    def embedding_width(self, config, hidden_size: int) -> int:
        return hidden_size * (1 + len(config.vision_config.deepstack_visual_indexes))

    def _interpolation(self, grid: torch.Tensor, vc) -> tuple[torch.Tensor, torch.Tensor]:
        from transformers.vision_utils import get_vision_interpolation_indices_and_weights

        if not len(grid):  # a text-only prompt (HF's helper needs a grid): no taps; bilinear reads 4 per patch
            return torch.zeros((0, 4), dtype=torch.int64), torch.zeros((0, 4), dtype=torch.float32)
        return get_vision_interpolation_indices_and_weights(
            grid, int(vc.num_position_embeddings**0.5), mode="bilinear", align_corners=True, spatial_merge_size=vc.spatial_merge_size
        )

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        example = super().vision_example(config, img_size)
        indices, weights = self._interpolation(torch.tensor([[1, 4, 4], [1, 2, 6]]), config.vision_config)
        return {**example, "interp_indices": indices, "interp_weights": weights}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {**super().vision_axes(), "interp_indices": {0: "num_patches"}, "interp_weights": {0: "num_patches"}}

    def image_features(
        self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None, interp_indices=None, interp_weights=None
    ) -> torch.Tensor:
        visual = hf.model.visual
        x = visual.patch_embed(pixel_values.to(visual.patch_embed.proj.weight.dtype))
        x = x + (visual.pos_embed(interp_indices) * interp_weights[:, :, None]).sum(1).to(x.dtype)
        cos, sin = visual.rotary_pos_emb(x, vision_position_ids)
        same_image = image_segment[:, None] == image_segment[None, :]
        deepstack = []
        for i, block in enumerate(visual.blocks):
            x = _vision_block(block, x, cos, sin, same_image)
            if i in getattr(visual, "deepstack_visual_indexes", ()):  # Qwen3.5 has no DeepStack
                deepstack.append(visual.deepstack_merger_list[visual.deepstack_visual_indexes.index(i)](x))
        return torch.cat([visual.merger(x), *deepstack], dim=-1).unsqueeze(0)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vision = super().vision_inputs(inputs, img_size, config)
        indices, weights = self._interpolation(torch.as_tensor(vision["_grid_thw"]), config.vision_config)
        return {**vision, "interp_indices": indices.numpy().astype(np.int64), "interp_weights": weights.numpy().astype(np.float32)}

    def image_token_rows(self, is_image: torch.Tensor, rows: torch.Tensor, hidden: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """Each position's main embedding, and the DeepStack features of the image positions for the text model."""
        parts = rows.split(hidden, dim=-1)
        features = [torch.where(is_image.unsqueeze(-1), p, torch.zeros_like(p)) for p in parts[1:]]
        return parts[0], {"visual_pos_masks": is_image, "deepstack_visual_embeds": features}
