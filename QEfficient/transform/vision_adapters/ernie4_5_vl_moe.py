"""ERNIE-4.5-VL (ernie4_5_vl_moe): Qwen2-VL's host side (any image size, 3-D rotary positions by the same rule) with
a Qwen2-VL-like tower (2-D rotary, attention within each image, a final LayerNorm), a resampler after it, and an MoE
text model whose sparse layers keep text and vision experts apart.

* Vision graph: the tower as Qwen2-VL's, then the resampler: each 2x2 block of patches (adjacent rows, the processor's
  order) through ``spatial_linear``; its temporal merge pairs frame groups, and an image's single frame is paired
  with itself (HF's ``_temporal_slicing``), so ``temporal_linear`` reads the row twice. Images only.
* Language graph: HF's sparse layers take ``moe_mm_token_type_ids`` from the processor, 1 on the image tokens and on
  their start/end tokens, and send those rows to ``vision_moe``, the others to ``text_moe`` (boolean indexing: data-
  dependent shapes). The graph derives that mask from its own ``input_ids`` (the image token and the config's start/
  end ids, the processor's rule) and each sparse layer runs both expert sets on every row and picks per row, which is
  the same per-token result with static shapes. The 3-D rotary positions come in as Qwen2-VL's
  (``rope_position_ids``); ERNIE's own rotary reads them (its axis order and pre-rotated frequencies are the text
  model's).
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import two_image_patch_example
from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter, _vision_block


def _modality_moe_forward(self: nn.Module, hidden_states: torch.Tensor, moe_mm_token_type_ids: torch.Tensor | None = None):
    """Ernie4_5_VLMoeMoeBlock.forward with static shapes: both expert sets over every row, each row keeping its
    modality's (HF runs each set over its own rows only; a row's result does not depend on the others)."""
    batch, seq, hidden = hidden_states.shape
    out, _ = self.text_moe(hidden_states)
    out = out.reshape(batch, seq, hidden)
    if moe_mm_token_type_ids is not None:
        vision, _ = self.vision_moe(hidden_states)
        out = torch.where(moe_mm_token_type_ids.bool()[..., None], vision.reshape(batch, seq, hidden), out)
    if self.shared_experts is not None:
        out = out + self.shared_experts(hidden_states)
    return out, None


@dataclass(frozen=True)
class Ernie4_5_VLMoeAdapter(Qwen2VLAdapter):
    # the ids whose rows go to the vision experts besides the image token (set by for_config): image and video
    # start/end tokens, the video token (the processor's ``create_moe_mm_token_type_ids``)
    vision_expert_ids: tuple[int, ...] = ()

    def for_config(self, config) -> Ernie4_5_VLMoeAdapter:
        names = ("image_start_token_id", "image_end_token_id", "video_token_id", "video_start_token_id", "video_end_token_id")
        return dataclasses.replace(self, vision_expert_ids=tuple(int(getattr(config, n)) for n in names))

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        return two_image_patch_example(vc.in_channels, vc.patch_size, vc.spatial_merge_size)

    def image_placeholder(self, processor) -> str:
        return f"{processor.image_start_token}{processor.image_token}{processor.image_end_token}"

    def image_features(self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None) -> torch.Tensor:
        tower, resampler = hf.model.vision_tower, hf.model.resampler_model
        x = tower.patch_embed(pixel_values)
        cos, sin = tower.rotary_pos_emb(x, vision_position_ids)
        same_image = image_segment[:, None] == image_segment[None, :]
        for block in tower.blocks:
            x = _vision_block(block, x, cos, sin, same_image)
        x = tower.ln(x)
        x = resampler.spatial_linear(x.reshape(-1, x.shape[-1] * resampler.spatial_merge_size**2))
        x = resampler.temporal_linear(torch.cat([x, x], dim=-1))  # an image's frame is its own temporal pair
        return resampler.after_norm(resampler.mlp(x)).unsqueeze(0)

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        from transformers.models.ernie4_5_vl_moe.modeling_ernie4_5_vl_moe import Ernie4_5_VLMoeMoeBlock

        text = hf.model.language_model
        for layer in text.layers:
            if isinstance(layer.mlp, Ernie4_5_VLMoeMoeBlock):
                layer.mlp.forward = types.MethodType(_modality_moe_forward, layer.mlp)
        return text, hf.lm_head, hf.config.text_config

    def text_kwargs(
        self,
        base: nn.Module,
        input_ids: torch.Tensor,
        is_image: torch.Tensor,
        takes_row: torch.Tensor,
        prefill: torch.Tensor,
        with_images: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        # HF's processor marks these ids in any prompt, and its decode gives no modality ids: an image, start, end or
        # video token the model generates goes to the text experts
        marks = torch.zeros_like(is_image)
        for token in self.vision_expert_ids:
            marks = marks | (input_ids == token)
        return {"moe_mm_token_type_ids": (takes_row | (marks & prefill)).to(torch.int64)}

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        grid = np.asarray(inputs.get("image_grid_thw", np.zeros((0, 3), np.int64))).reshape(-1, 3)
        if (grid[:, 0] != 1).any():
            raise NotImplementedError("ERNIE-4.5-VL: images only (one frame each); videos are not supported yet.")
        return super().vision_inputs(inputs, img_size, config)
