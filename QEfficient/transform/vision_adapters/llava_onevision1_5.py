"""LLaVA-OneVision-1.5 (transformers 5.25): a RICE vision tower (2-D rotary, one class token per image, plain
Conv2d patches: no temporal pairs) under Qwen2-VL's processor, and a Qwen3 text model with 1-D positions.

Vision graph: Qwen2-VL's inputs (patches of every image, their grid positions and image index). HF prepends a
class token to each image's patches; here the class tokens follow all patches, one per image with that image's
index. Attention stays within an image through the mask, and every other step works per row, so the patches'
outputs are HF's (up to the order of the attention sums); the class tokens are dropped before the merger.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary, Qwen2VLAdapter, _vision_block


@dataclass(frozen=True)
class LlavaOnevision1_5Adapter(CachePositionsRotary, Qwen2VLAdapter):
    def image_features(self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None) -> torch.Tensor:
        visual = hf.model.visual
        n = pixel_values.shape[0]
        x = visual.patch_embed(pixel_values)
        cos, sin = visual.rotary_pos_emb(x, vision_position_ids)
        first = torch.cat([torch.ones_like(image_segment[:1], dtype=torch.bool), image_segment[1:] != image_segment[:-1]])
        images = image_segment[first]  # one class token per image, in image order
        cls = visual.cls_embeddings
        cls_freqs = torch.cat((cls.class_pos_emb, cls.class_pos_emb), dim=-1).to(cos.dtype)
        ones = torch.ones_like(images, dtype=x.dtype)[:, None]
        x = torch.cat([x, ones * cls.class_embedding[None, :].to(x.dtype)])
        cos, sin = torch.cat([cos, ones * cls_freqs.cos()]), torch.cat([sin, ones * cls_freqs.sin()])
        segment = torch.cat([image_segment, images])
        same_image = segment[:, None] == segment[None, :]
        x = visual.pre_layernorm(x)
        for block in visual.blocks:
            x = _vision_block(block, x, cos, sin, same_image)
        return visual.merger(x[:n]).unsqueeze(0)
