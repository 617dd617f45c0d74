"""LFM3-VL: Qwen2-VL's patches (any image size, 2x2 merge blocks, the processor's grids), a vision tower of gated
2-D short convolutions and bidirectional attention layers with axial 2-D rotary positions, a LayerNorm + MLP
projector; an LFM3 text model (short-convolution layers whose conv state the language graph retains, beside
attention layers), with plain 1-D positions.

HF convolves each image on its own patch grid (host-side sizes, which a traced graph would fix). Here the
depthwise k x k convolution is a gather: the host lists each patch's k x k neighbours (``conv_taps``, an
index past the last patch for a neighbour outside the image, which reads a zero row), and the graph sums the
taps times the kernel. Attention stays inside each image through a mask, as in Qwen2-VL's adapter."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter


def conv_taps(grid_thw: np.ndarray, positions: np.ndarray, kernel: int) -> np.ndarray:
    """[N, kernel²]: each patch's neighbours (row-major over the kernel) within its frame, N where outside.
    ``positions`` [N, 2]: each patch's (row, column), in the processor's merge-block order."""
    n = len(positions)
    taps = np.full((n, kernel * kernel), n, dtype=np.int64)
    offsets = np.arange(kernel) - kernel // 2
    start = 0
    for t, h, w in grid_thw:
        for frame in range(t):
            base = start + frame * h * w
            pos = positions[base : base + h * w]
            index = np.empty((h, w), dtype=np.int64)
            index[pos[:, 0], pos[:, 1]] = np.arange(base, base + h * w)
            for a, dy in enumerate(offsets):
                for b, dx in enumerate(offsets):
                    rows, cols = pos[:, 0] + dy, pos[:, 1] + dx
                    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
                    taps[base : base + h * w, a * kernel + b] = np.where(inside, index[rows.clip(0, h - 1), cols.clip(0, w - 1)], n)
        start += t * h * w
    return taps


def _short_conv(conv: nn.Module, x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Lfm3VlVisionShortConv: out_proj(output_gate * depthwise_conv2d(input_gate * x)), the convolution as a gather."""
    input_gate, output_gate, conv_input = conv.in_proj(x).chunk(3, dim=-1)
    gated = input_gate * conv_input
    padded = torch.cat([gated, torch.zeros_like(gated[:1])])  # row N: the zero outside every image
    weight = conv.spatial_conv.weight.reshape(gated.shape[-1], -1).transpose(0, 1)  # [k², C]
    return conv.out_proj(output_gate * (padded[taps] * weight).sum(dim=1))


def _attention(attn: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, same_image: torch.Tensor) -> torch.Tensor:
    from transformers.models.lfm3_vl.modeling_lfm3_vl import apply_rotary_pos_emb_vision

    n = x.shape[0]
    q = attn.q_norm(attn.q_proj(x).view(n, -1, attn.head_dim))
    k = attn.k_norm(attn.k_proj(x).view(n, -1, attn.head_dim))
    v = attn.v_proj(x).view(n, -1, attn.head_dim)
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # [heads, N, d]
    k, v = (t.repeat_interleave(attn.num_key_value_groups, dim=0) for t in (k, v))
    scores = torch.matmul(q, k.transpose(-1, -2)) * attn.scaling
    scores = torch.where(same_image, scores, torch.finfo(scores.dtype).min)
    out = torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype), v)
    return attn.out_proj(out.transpose(0, 1).reshape(n, -1))


@dataclass(frozen=True)
class Lfm3VlAdapter(Qwen2VLAdapter):
    conv_kernel: int = 3

    def for_config(self, config) -> Lfm3VlAdapter:
        return dataclasses.replace(self, conv_kernel=int(config.vision_config.conv_kernel_size))

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        example = super().vision_example(config, img_size)
        grid = np.array([[1, 4, 4], [1, 2, 6]])
        return {**example, "conv_taps": torch.from_numpy(conv_taps(grid, example["vision_position_ids"].numpy(), self.conv_kernel))}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {**super().vision_axes(), "conv_taps": {0: "num_patches"}}

    def image_features(self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None, conv_taps=None) -> torch.Tensor:
        tower = hf.model.vision_tower
        x = tower.embedding_norm(tower.patch_embed(pixel_values.to(tower.patch_embed.weight.dtype)))
        cos, sin = tower.rotary_pos_emb(x, vision_position_ids)
        same_image = image_segment[:, None] == image_segment[None, :]
        for layer in tower.layers:
            h = layer.operator_norm(x)
            h = _attention(layer.self_attn, h, cos, sin, same_image) if layer.is_attention_layer else _short_conv(layer.conv, h, conv_taps)
            x = x + h
            x = x + layer.feed_forward(layer.ffn_norm(x))
        return hf.model.multi_modal_projector(x).unsqueeze(0)

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        taps = conv_taps(vision["_grid_thw"], vision["vision_position_ids"], self.conv_kernel)
        return {**super().graph_inputs(vision), "conv_taps": taps}

    # 1-D positions in the text model: the base adapter's language graph and host side
    image_placeholder = VisionLanguageAdapter.image_placeholder
    decoder_example = VisionLanguageAdapter.decoder_example
    decoder_axes = VisionLanguageAdapter.decoder_axes
    language_kwargs = VisionLanguageAdapter.language_kwargs
    prompt_positions = VisionLanguageAdapter.prompt_positions
