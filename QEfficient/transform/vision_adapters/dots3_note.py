"""Dots 3 Note (images only: no audio, no video): Qwen2-VL's layout (any image size, patches and their 2-D grid positions
made on the host, attention within each image) with GLM-OCR's q/k-normed vision heads, routed-expert MLPs in its
deeper vision blocks, an RMS norm and Qwen2-VL's 2x2 merger; its text model takes plain 1-D positions (the cache's)
and is DeepSeek sparse attention (adapters/sparse_attention.py: its indexer runs in the graph).

The tower's expert layers run the same experts implementation as the language graph's (moe_op.py): HF's default
loops over the experts a batch happens to hit, which a trace would freeze to the example image's choice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from QEfficient.transform import moe_op
from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary, Qwen2VLAdapter, _vision_block


@contextlib.contextmanager
def _experts_implementation(module: nn.Module, name: str) -> Iterator[None]:
    """Every experts module under ``module`` (each holds its own per-layer config) runs ``name`` while the block runs."""
    configs = {id(m.config): m.config for m in module.modules() if hasattr(m, "_apply_gate") and hasattr(m, "config")}
    old = {key: getattr(config, "_experts_implementation", None) for key, config in configs.items()}
    try:
        for config in configs.values():
            config._experts_implementation = name
        yield
    finally:
        for key, config in configs.items():
            config._experts_implementation = old[key]


@dataclass(frozen=True)
class Dots3NoteAdapter(CachePositionsRotary, Qwen2VLAdapter):
    def image_placeholder(self, processor) -> str:
        return f"<|img|>{processor.image_token}<|endofimg|>"

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        from transformers.vision_utils import get_vision_position_ids

        vc = config.vision_config
        grid = torch.tensor([[1, 4, 4], [1, 2, 6]])  # two images of different grids
        n = int(grid.prod(-1).sum())
        return {
            "pixel_values": torch.zeros(n, vc.num_channels * vc.patch_size**2),  # no temporal patches
            "vision_position_ids": get_vision_position_ids(grid, vc.spatial_merge_size),
            "image_segment": torch.repeat_interleave(torch.arange(2), grid.prod(-1)),
        }

    def image_features(self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None) -> torch.Tensor:
        tower = hf.model.vision_tower
        with _experts_implementation(tower, moe_op.IMPLEMENTATION):
            x = tower.patch_embed(pixel_values)
            cos, sin = tower.rotary_pos_emb(x, vision_position_ids)
            same_image = image_segment[:, None] == image_segment[None, :]
            for block in tower.blocks:
                x = _vision_block(block, x, cos, sin, same_image)
            return tower.merger(tower.norm(x)).unsqueeze(0)
