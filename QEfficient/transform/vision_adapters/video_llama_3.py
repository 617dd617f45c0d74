"""VideoLLaMA3 (images): Qwen2-VL's host side (any image size, a patch grid per image, 2-D rotary positions in the
tower, attention kept inside each image by a mask) with a SigLIP-like tower and an MLP projector; images are not
merged (merge size 1, the processor's), and the Qwen2 text model takes plain 1-D positions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import two_image_patch_example
from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary, Qwen2VLAdapter, within_images


def _siglip_rotary_block(
    layer: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, same_image: torch.Tensor, apply_rotary=None
) -> torch.Tensor:
    """A SigLIP/CLIP encoder layer (q/k/v/out projections) with 2-D rotary, attending within each image (a mask)."""
    from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb_vision

    apply_rotary = apply_rotary or apply_rotary_pos_emb_vision
    attn, n = layer.self_attn, x.shape[0]
    h = layer.layer_norm1(x)
    q, k, v = (proj(h).reshape(n, attn.num_heads, attn.head_dim) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
    q, k = apply_rotary(q, k, cos, sin)
    x = x + attn.out_proj(within_images(q, k, v, attn.scaling, same_image))
    return x + layer.mlp(layer.layer_norm2(x))


@dataclass(frozen=True)
class VideoLlama3Adapter(CachePositionsRotary, Qwen2VLAdapter):
    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        return two_image_patch_example(vc.num_channels, vc.patch_size, 1)

    def image_placeholder(self, processor) -> str:
        return processor.image_token

    def image_features(self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None) -> torch.Tensor:
        tower = hf.model.vision_model
        x = tower.embeddings(pixel_values.to(tower.embeddings.patch_embedding.weight.dtype))
        cos, sin = tower.rotary_pos_emb(x, vision_position_ids)
        same_image = image_segment[:, None] == image_segment[None, :]
        for layer in tower.encoder.layers:
            x = _siglip_rotary_block(layer, x, cos, sin, same_image)
        return hf.model.projector(tower.post_layernorm(x)).unsqueeze(0)  # merge size 1: one token per patch

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        from transformers.vision_utils import get_vision_position_ids

        merge = np.asarray(inputs["image_merge_sizes"])
        if (merge != 1).any():
            raise ValueError(f"image_merge_sizes are {merge.tolist()}: VideoLLaMA3's images are unmerged (1); merged frames are video")
        grid = torch.as_tensor(np.asarray(inputs["image_grid_thw"]))
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(inputs["pixel_values"], dtype=np.float32)),
            "vision_position_ids": get_vision_position_ids(grid, 1).numpy().astype(np.int64),
            "_grid_thw": grid.numpy().astype(np.int64),
            "_tokens": grid.prod(-1).numpy().astype(np.int64),
        }
