"""Muse Glimmer: a ViT on flattened patches of any image size (Qwen2.5-VL's packing: windows of patches in most
layers, whole images in the others; 2-D axial rotary) with a learned position table resampled bilinearly to each
image's grid; 2x2 neighbouring patches folded into channels, an MLP adapter, a projection and a scaleless RMS norm;
the text model (gated attention, sliding and NoPE layers) with plain 1-D positions, its logits scaled then soft-capped.

Kimi K2.5's host side: the host gives each patch's taps into the position table (transformers' helper), and orders
the patches window by window (HF reorders them inside its tower; the patch embedding works patch by patch, so
reordering before it is the same), with the inverse order and the 2x2 grouping order for the graph."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.adapters.base import ArchAdapter
from QEfficient.transform.vision_adapters.kimi_k25 import KimiK25Adapter
from QEfficient.transform.vision_adapters.qwen2_vl import _vision_block

_PER_PATCH = ("pixel_values", "vision_position_ids", "interp_indices", "interp_weights", "image_segment")


@dataclass(frozen=True)
class _ScaledSoftcapLogits(ArchAdapter):
    """The head's logits times ``output_multiplier``, then the soft cap (MuseGlimmerForConditionalGeneration)."""

    def postprocess_logits(self, logits: torch.Tensor, config) -> torch.Tensor:
        return super().postprocess_logits(logits * config.output_multiplier, config)


@dataclass(frozen=True)
class MuseGlimmerAdapter(KimiK25Adapter):
    # from the vision config (for_config): the host computes windows and position taps
    merge_size: int = 2
    window_size: int = 448
    patch_size: int = 14
    pos_side: int = 32

    def for_config(self, config) -> MuseGlimmerAdapter:
        vc = config.vision_config
        return dataclasses.replace(
            self,
            merge_size=vc.merge_size,
            window_size=vc.pos_emb_height * vc.patch_size,
            patch_size=vc.patch_size,
            pos_side=vc.pos_emb_height,
        )

    def cache_adapter(self, text_config) -> ArchAdapter:
        return _ScaledSoftcapLogits(text_config.model_type)

    def _geometry(self, grid: np.ndarray) -> dict[str, np.ndarray]:
        from transformers.models.muse_glimmer.modeling_muse_glimmer import get_vision_pixel_shuffle_index
        from transformers.vision_utils import get_vision_window_index

        grid = torch.as_tensor(grid)
        order, cu_windows = get_vision_window_index(grid, 1, self.window_size, self.patch_size)
        sizes = np.diff(cu_windows.numpy())
        return {
            "_order": order.numpy().astype(np.int64),  # patch order that makes windows contiguous
            "window_segment": np.repeat(np.arange(len(sizes)), sizes).astype(np.int64),
            "window_reverse": np.argsort(order.numpy()).astype(np.int64),
            "shuffle_index": get_vision_pixel_shuffle_index(grid, self.merge_size).numpy().astype(np.int64),
        }

    def _vision(self, grid: torch.Tensor, config) -> dict[str, np.ndarray]:
        from transformers.vision_utils import get_vision_interpolation_indices_and_weights, get_vision_position_ids

        # patch (h, w) reads the table at (w, h), as HF's (its reference passes an "xy" meshgrid to grid_sample)
        indices, weights = get_vision_interpolation_indices_and_weights(
            grid[:, [0, 2, 1]], self.pos_side, mode="bilinear", align_corners=False, spatial_merge_size=1, padding="zeros"
        )
        return {
            "vision_position_ids": (get_vision_position_ids(grid, spatial_merge_size=1).flip(-1) + 1).numpy().astype(np.int64),
            "interp_indices": indices.numpy().astype(np.int64),
            "interp_weights": weights.numpy().astype(np.float32),
        }

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        adapter = self.for_config(config)
        grid = np.array([[1, 4, 4], [1, 2, 6]])  # two images of different grids
        vision = {
            "pixel_values": np.zeros((int(grid.prod(-1).sum()), vc.patch_temporal * 3 * vc.patch_size**2), np.float32),
            **adapter._vision(torch.as_tensor(grid), config),
            "_grid_thw": grid,
        }
        return {k: torch.as_tensor(v) for k, v in adapter.graph_inputs(vision).items()}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        patches = {0: "num_patches"}
        names = (*_PER_PATCH, "window_segment", "window_reverse", "shuffle_index")
        return {**dict.fromkeys(names, patches), "vision_embeds": {1: "num_image_tokens"}}

    def image_features(
        self,
        hf: nn.Module,
        pixel_values,
        vision_position_ids=None,
        interp_indices=None,
        interp_weights=None,
        image_segment=None,
        window_segment=None,
        window_reverse=None,
        shuffle_index=None,
    ) -> torch.Tensor:
        tower = hf.model.vision_tower
        embed = tower.patch_embedder
        x = embed.patch_embedding(pixel_values.to(embed.patch_embedding.weight.dtype))
        table = embed.position_embedding_table.weight
        x = tower.ln_pre(x + (table[interp_indices] * interp_weights[:, :, None].to(table.dtype)).sum(1).to(x.dtype))
        cos, sin = tower.rotary_emb(x, vision_position_ids)
        same = {
            "full_attention": image_segment[:, None] == image_segment[None, :],
            "window_attention": window_segment[:, None] == window_segment[None, :],
        }
        for block, kind in zip(tower.layers, tower.config.layer_types):
            x = _vision_block(block, x, cos, sin, same[kind])
        x = tower.ln_post(x[window_reverse])
        unit, dim = self.merge_size**2, x.shape[-1]
        x = x[shuffle_index].view(-1, unit, dim).permute(0, 2, 1).reshape(-1, dim * unit)
        model = hf.model
        features = model.perception_emb_norm(model.vision_projection(model.vision_adapter(x)))
        return features.unsqueeze(0)

    # --- host side -----------------------------------------------------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        grid = torch.as_tensor(np.asarray(inputs["image_grid_thw"]))
        if (grid[:, 0] != 1).any():
            raise ValueError("Muse Glimmer here takes images (one frame each), not video.")
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(inputs["pixel_values"], dtype=np.float32)),
            **self._vision(grid, config),
            "_grid_thw": grid.numpy().astype(np.int64),
            "_tokens": (grid[:, 1:].prod(-1) // self.merge_size**2).numpy().astype(np.int64),
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        patches = vision["_grid_thw"].prod(-1)
        inputs = {k: v for k, v in vision.items() if not k.startswith("_")}
        inputs["image_segment"] = np.repeat(np.arange(len(patches)), patches).astype(np.int64)
        if not len(patches):  # no image (HF's window helper needs one)
            empty = np.zeros(0, np.int64)
            return {**inputs, "window_segment": empty, "window_reverse": empty, "shuffle_index": empty}
        geometry = self._geometry(vision["_grid_thw"])
        for name in _PER_PATCH:
            inputs[name] = np.ascontiguousarray(inputs[name][geometry["_order"]])
        return {**inputs, **{k: v for k, v in geometry.items() if not k.startswith("_")}}

    def image_placeholder(self, processor) -> str:
        return processor.image_token  # the processor adds the image start and end tokens
