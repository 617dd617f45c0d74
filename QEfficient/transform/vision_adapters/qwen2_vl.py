"""Qwen2-VL: images of any size (the processor picks a patch grid per image), 2-D rotary positions in
the vision tower, 3-D (temporal, height, width) rotary positions in the language model.

* Vision graph: patches [N, C*T*P*P] of every image, their (h, w) grid positions [N, 2] and the image
  each belongs to [N]. Everything that depends on the grids is computed on the host, so one graph
  serves every image size; attention stays inside each image through a mask built from the image
  index (HF splits the sequence per image instead, which would fix the sizes at trace time).
* Language graph: ``rope_position_ids`` [3, B, S] besides the cache positions. The host computes them
  with the model's own ``get_rope_index``; a decode step's are its cache position plus the prompt's
  offset (``rope_deltas``), as in HF's generate.
* Videos (``takes_videos``): ``pixel_values_videos`` / ``video_grid_thw`` go through the same tower as
  units of t frame groups, each group attending within itself (HF's per-frame ``cu_seqlens``). Images and
  videos become one stream of units in prompt order, and the language graph reads video tokens as image
  tokens (both are placeholders replaced by their unit's embeddings); each unit keeps what the rotary
  rule needs of it: its temporal spacing (Qwen2.5-VL) and how many token runs it spans (Qwen3-VL's
  per-frame timestamps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


def within_images(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scaling: float, same_image: torch.Tensor) -> torch.Tensor:
    """Attention of [N, heads, d] patches to the patches of their own image ([N, N] mask) -> [N, heads * d]."""
    n = q.shape[0]
    q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # [heads, N, d]
    scores = torch.matmul(q, k.transpose(-1, -2)) * scaling
    scores = torch.where(same_image, scores, torch.finfo(scores.dtype).min)
    return torch.matmul(torch.softmax(scores.float(), dim=-1).to(v.dtype), v).transpose(0, 1).reshape(n, -1)


def _vision_block(block: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, same_image: torch.Tensor) -> torch.Tensor:
    from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb_vision

    attn = block.attn
    n = x.shape[0]
    h = block.norm1(x)
    if hasattr(attn, "kv_dim"):  # EXAONE 4.5: grouped-query attention (fewer key/value heads)
        q, k, v = (t.reshape(n, -1, attn.head_dim) for t in attn.qkv(h).split([attn.q_dim, attn.kv_dim, attn.kv_dim], -1))
        k, v = (t.repeat_interleave(attn.num_key_value_groups, dim=1) for t in (k, v))
    elif hasattr(attn, "qkv"):
        q, k, v = attn.qkv(h).reshape(n, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    else:  # projected separately: Qwen2.5-Omni (q, k, v), Kimi K2.5 (q_proj, k_proj, v_proj)
        projections = (attn.q, attn.k, attn.v) if hasattr(attn, "q") else (attn.q_proj, attn.k_proj, attn.v_proj)
        q, k, v = (proj(h).reshape(n, attn.num_heads, -1) for proj in projections)
    if hasattr(attn, "q_norm"):  # GLM-OCR normalises each head's queries and keys
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    x = x + attn.proj(within_images(q, k, v, attn.scaling, same_image))
    return x + block.mlp(block.norm2(x))


def vision_unit_order(kinds: np.ndarray, tokens: dict[int, np.ndarray]) -> list[tuple[int, int]]:
    """(kind, index) of each vision unit in prompt order, from the kinds (1 image, 2 video) of the prompts'
    vision tokens in order and each unit's token count per kind (a unit's tokens may be split by text)."""
    order, pending, taken = [], {1: 0, 2: 0}, {1: 0, 2: 0}
    for kind in kinds.tolist():
        if pending[kind] == 0:
            if taken[kind] >= len(tokens[kind]):
                name = "image" if kind == 1 else "video"
                raise ValueError(f"The prompts hold more {name} tokens than the {name}s give: one {name} per placeholder.")
            order.append((kind, taken[kind]))
            pending[kind], taken[kind] = int(tokens[kind][taken[kind]]), taken[kind] + 1
        pending[kind] -= 1
    return order


@dataclass(frozen=True)
class Qwen2VLAdapter(VisionLanguageAdapter):
    flat_embeddings = True
    vision_per_unit = True
    takes_videos: bool = False  # pixel_values_videos in (the types proven in tests/test_vlm_video.py)
    video_runs_per_frame = False  # a video's frame groups are separate token runs (Qwen3-VL's timestamps)

    def default_img_size(self, config) -> int:
        return 0  # any size: the processor chooses each image's grid

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        per_patch = self.patch_width(config)
        grid = torch.tensor([[1, 4, 4], [1, 2, 6]])  # two images of different grids
        from transformers.vision_utils import get_vision_position_ids

        n = int(grid.prod(-1).sum())
        return {
            "pixel_values": torch.zeros(n, per_patch),
            "vision_position_ids": get_vision_position_ids(grid, vc.spatial_merge_size),
            "image_segment": torch.repeat_interleave(torch.arange(2), grid.prod(-1)),
        }

    def patch_width(self, config) -> int:
        """Values per flattened patch (channels x frames x pixels) the vision graph takes."""
        vc = config.vision_config
        channels = getattr(vc, "in_channels", None) or vc.num_channels
        return channels * getattr(vc, "temporal_patch_size", 1) * vc.patch_size**2  # LLaVA-OneVision-1.5: no frame pairs

    def image_placeholder(self, processor) -> str:
        return f"<|vision_start|>{processor.image_token}<|vision_end|>"

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {
            "pixel_values": {0: "num_patches"},
            "vision_position_ids": {0: "num_patches"},
            "image_segment": {0: "num_patches"},
            "vision_embeds": {1: "num_image_tokens"},
        }

    def image_features(self, hf: nn.Module, pixel_values, vision_position_ids=None, image_segment=None) -> torch.Tensor:
        visual = hf.model.visual
        x = visual.patch_embed(pixel_values.to(visual.patch_embed.proj.weight.dtype))
        cos, sin = visual.rotary_pos_emb(x, vision_position_ids)
        same_image = image_segment[:, None] == image_segment[None, :]
        for block in visual.blocks:
            x = _vision_block(block, x, cos, sin, same_image)
        # [1, N / merge^2, hidden]: 2x2 neighbouring patches are adjacent rows; one row of every image's
        # tokens, as the number of tokens differs from image to image
        return visual.merger(x).unsqueeze(0)

    def decoder_example(self, batch: int, seq: int) -> dict[str, torch.Tensor]:
        return {"rope_position_ids": torch.arange(seq)[None, None].repeat(3, batch, 1)}

    def decoder_axes(self) -> dict[str, dict[int, str]]:
        return {"rope_position_ids": {1: "batch_size", 2: "seq_len"}}

    def language_kwargs(self, position_ids: torch.Tensor, rope_position_ids: torch.Tensor) -> dict[str, Any]:
        return {"rotary_position_ids": rope_position_ids}

    # --- host side (keys starting with "_" stay on the host) ---------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        from transformers.vision_utils import get_vision_position_ids

        pixels, grid, interval, runs = self._units(inputs, config)
        grid = torch.as_tensor(grid)
        merge = config.vision_config.spatial_merge_size
        positions = np.zeros((0, 2), np.int64)  # a text-only prompt: no grid (HF's helper needs one)
        positions = get_vision_position_ids(grid, merge).numpy().astype(np.int64) if len(grid) else positions
        return {
            "pixel_values": np.ascontiguousarray(pixels),
            "vision_position_ids": positions,
            "_grid_thw": grid.numpy().astype(np.int64),
            "_tokens": (grid.prod(-1) // merge**2).numpy().astype(np.int64),
            "_time_interval": interval,
            "_runs": runs,
        }

    def video_time_intervals(self, inputs, config, videos: int) -> np.ndarray:
        """Temporal rotary step between a video's frame groups (HF's ``time_interval``): 1 (Qwen2-VL, Qwen3-VL)."""
        return np.ones(videos, np.float32)

    def _units(self, inputs, config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Patches, grids, temporal steps and token runs of the images and videos, in prompt order."""

        def part(pixels, grid) -> tuple[np.ndarray, np.ndarray]:
            grid = np.zeros((0, 3), np.int64) if grid is None else np.asarray(grid, np.int64).reshape(-1, 3)
            return np.zeros((0, self.patch_width(config)), np.float32) if pixels is None else np.asarray(pixels, np.float32), grid

        pixels, grid = part(inputs.get("pixel_values"), inputs.get("image_grid_thw"))
        videos = inputs.get("pixel_values_videos")
        if videos is None:
            return pixels, grid, np.ones(len(grid), np.float32), np.ones(len(grid), np.int64)
        if not self.takes_videos:
            raise NotImplementedError(f"Video input is not supported for {self.model_type} yet: pass images.")
        video_pixels, video_grid = part(videos, inputs.get("video_grid_thw"))
        merge = config.vision_config.spatial_merge_size
        ids = np.asarray(inputs["input_ids"])
        mask = np.asarray(inputs["attention_mask"]).astype(bool) if "attention_mask" in inputs else np.ones(ids.shape, bool)
        ids = ids[mask]  # row after row, padding dropped
        kinds = np.where(ids == config.image_token_id, 1, np.where(ids == config.video_token_id, 2, 0))
        tokens = {1: grid.prod(-1) // merge**2, 2: video_grid.prod(-1) // merge**2}
        order = vision_unit_order(kinds[kinds > 0], tokens)
        per_patch = video_pixels.shape[-1]
        starts = {1: np.r_[0, np.cumsum(grid.prod(-1))], 2: np.r_[0, np.cumsum(video_grid.prod(-1))]}
        sources = {1: (pixels.reshape(-1, per_patch), grid), 2: (video_pixels, video_grid)}
        interval = {1: np.ones(len(grid), np.float32), 2: self.video_time_intervals(inputs, config, len(video_grid))}
        runs = {1: np.ones(len(grid), np.int64), 2: video_grid[:, 0] if self.video_runs_per_frame else np.ones(len(video_grid), np.int64)}
        return (
            np.concatenate([sources[k][0][starts[k][u] : starts[k][u + 1]] for k, u in order] + [np.zeros((0, per_patch), np.float32)]),
            np.array([sources[k][1][u] for k, u in order], np.int64).reshape(-1, 3),
            np.array([interval[k][u] for k, u in order], np.float32),
            np.array([runs[k][u] for k, u in order], np.int64),
        )

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # which frame group each patch belongs to (an image is one), numbered within the units at hand
        grid = vision["_grid_thw"]
        frames = np.repeat(grid[:, 1] * grid[:, 2], grid[:, 0])
        segment = np.repeat(np.arange(len(frames)), frames).astype(np.int64)
        return {**{k: v for k, v in vision.items() if not k.startswith("_")}, "image_segment": segment}

    def select_units(self, vision: dict[str, np.ndarray], units: np.ndarray) -> dict[str, np.ndarray]:
        starts = np.r_[0, np.cumsum(vision["_grid_thw"].prod(-1))]
        rows = np.concatenate([np.arange(starts[u], starts[u + 1]) for u in units] + [np.zeros(0, np.int64)])
        return {k: v[units] if k.startswith("_") else v[rows] for k, v in vision.items()}

    def prompt_positions(self, hf: nn.Module, tokens: list[int], vision: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        ids = torch.tensor([tokens])
        token_types = (ids == hf.config.image_token_id).to(torch.int32)
        grid = torch.as_tensor(vision["_grid_thw"]) if len(vision["_grid_thw"]) else None
        with torch.no_grad():
            positions, deltas = hf.model.get_rope_index(ids, token_types, image_grid_thw=grid, attention_mask=torch.ones_like(ids))
        return positions[:, 0].numpy().astype(np.int64), int(deltas.reshape(-1)[0])


class CachePositionsRotary:
    """For a Qwen2-VL-style adapter whose text model takes plain 1-D positions: the cache positions are the rotary
    positions, so the language graph takes no 3-D positions and the host computes none (list it first among the bases)."""

    prompt_positions = VisionLanguageAdapter.prompt_positions
    decoder_example = VisionLanguageAdapter.decoder_example
    decoder_axes = VisionLanguageAdapter.decoder_axes
    language_kwargs = VisionLanguageAdapter.language_kwargs
