"""Ovis2.5 (transformers 5.25): a SigLIP-like tower on flattened patches of any image size (a learned position table
resampled bicubically to each image's grid, 2-D axial rotary, windows of merged tokens in the window-attention
layers), Ovis' visual tokenizer (each 2x2 merged token a probability over a visual vocabulary, embedded as a
weighted sum of its table), and a Qwen3 text model with plain 1-D positions.

Qwen2.5-VL's host side: the host orders the patches window by window (the embedding works patch by patch, so
reordering before it is the same) and gives each patch's taps into the position table. HF feeds the visual
tokenizer the last layer's output in that window order (not restored, and before the tower's final norm), so the
image tokens take the features in window order here too. The image start and end tokens take the visual table's
indicator rows instead of their text embeddings in a step given images (HF's prefill of a prompt with one); a
start or end token the model generates, or in a prompt without images, keeps its text embedding, as in HF.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.qwen2_5_vl import Qwen2_5_VLAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary
from QEfficient.transform.vision_adapters.video_llama_3 import _siglip_rotary_block


@dataclass(frozen=True)
class Ovis2_5Adapter(CachePositionsRotary, Qwen2_5_VLAdapter):
    per_patch_inputs = ("pixel_values", "vision_position_ids", "image_segment", "interp_indices", "interp_weights")
    table_side: int = 32  # from the vision config (for_config): the learned position table is table_side^2

    def for_config(self, config) -> Ovis2_5Adapter:
        vc = config.vision_config
        return dataclasses.replace(super().for_config(config), table_side=vc.image_size // vc.patch_size)

    def vision_tower(self, hf: nn.Module) -> nn.Module:
        return hf.model.vision_tower

    def image_placeholder(self, processor) -> str:
        return processor.image_token  # the processor adds the image start and end tokens

    def _per_patch(self, grid: torch.Tensor) -> dict[str, np.ndarray]:
        from transformers.vision_utils import get_vision_interpolation_indices_and_weights, get_vision_position_ids

        merge = self.spatial_merge_size
        if not len(grid):  # no image (HF's helpers need one)
            taps = 16  # bicubic: 4 x 4 table entries per patch
            empty = {"vision_position_ids": (2, np.int64), "interp_indices": (taps, np.int64), "interp_weights": (taps, np.float32)}
            return {name: np.zeros((0, width), dtype) for name, (width, dtype) in empty.items()}
        indices, weights = get_vision_interpolation_indices_and_weights(
            grid, self.table_side, mode="bicubic", align_corners=False, spatial_merge_size=merge
        )
        return {
            "vision_position_ids": get_vision_position_ids(grid, merge).numpy().astype(np.int64),
            "interp_indices": indices.numpy().astype(np.int64),
            "interp_weights": weights.numpy().astype(np.float32),
        }

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        adapter = self.for_config(config)
        grid = np.array([[1, 4, 4], [1, 2, 6]])  # two images of different grids
        vision = {
            "pixel_values": np.zeros((int(grid.prod(-1).sum()), self.patch_width(config)), np.float32),
            **adapter._per_patch(torch.as_tensor(grid)),
            "_grid_thw": grid,
        }
        return {k: torch.as_tensor(v) for k, v in adapter.graph_inputs(vision).items()}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        patches = {0: "num_patches"}
        return {**dict.fromkeys((*self.per_patch_inputs, "window_segment"), patches), "vision_embeds": {1: "num_image_tokens"}}

    def image_features(
        self,
        hf: nn.Module,
        pixel_values,
        vision_position_ids=None,
        interp_indices=None,
        interp_weights=None,
        image_segment=None,
        window_segment=None,
    ) -> torch.Tensor:
        """In the order of ``graph_inputs``' keys, which the graph passes positionally."""
        from transformers.models.ovis2_5.modeling_ovis2_5 import apply_rotary_pos_emb_vision

        tower = hf.model.vision_tower
        vc, embed = tower.config, tower.embeddings
        patches = pixel_values.view(-1, vc.num_channels * vc.temporal_patch_size, vc.patch_size, vc.patch_size)
        x = embed.patch_embedding(patches.to(embed.patch_embedding.weight.dtype)).flatten(1)
        table = embed.position_embedding.weight
        x = x + (table[interp_indices] * interp_weights[:, :, None].to(table.dtype)).sum(1).to(x.dtype)
        cos, sin = tower.rotary_emb(x, vision_position_ids)
        same = {
            "full_attention": image_segment[:, None] == image_segment[None, :],
            "window_attention": window_segment[:, None] == window_segment[None, :],
        }
        for layer, kind in zip(tower.layers, vc.layer_types):
            x = _siglip_rotary_block(layer, x, cos, sin, same[kind], apply_rotary=apply_rotary_pos_emb_vision)
        return hf.model.multi_modal_projector(x).unsqueeze(0)

    def text_embeddings(self, hf: nn.Module, input_ids: torch.Tensor, embeds: torch.Tensor, with_images: torch.Tensor) -> torch.Tensor:
        projector, config = hf.model.multi_modal_projector, hf.config
        table = projector.visual_embeddings_table.weight  # [hidden, visual vocabulary]: a row is a column here
        indicators = projector.visual_tokenizer.visual_indicator_token_ids
        for token, indicator in zip((config.image_start_token_id, config.image_end_token_id), indicators[:2]):
            embeds = torch.where(((input_ids == token) & with_images).unsqueeze(-1), table[:, indicator].to(embeds.dtype), embeds)
        return embeds

    # --- host side -----------------------------------------------------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        if inputs.get("pixel_values_videos") is not None:
            raise NotImplementedError("Ovis2.5: images only; videos are not supported yet.")
        pixels = inputs.get("pixel_values")
        if pixels is None:  # a text-only prompt: zero patches
            pixels = np.zeros((0, self.patch_width(config)), np.float32)
        grid = torch.as_tensor(np.asarray(inputs.get("image_grid_thw", np.zeros((0, 3), np.int64)))).reshape(-1, 3)
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(pixels, dtype=np.float32)),
            **self._per_patch(grid),
            "_grid_thw": grid.numpy().astype(np.int64),
            "_tokens": (grid.prod(-1) // self.spatial_merge_size**2).numpy().astype(np.int64),
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = super().graph_inputs(vision)
        inputs.pop("window_reverse")  # HF keeps the window order (see above)
        return inputs
