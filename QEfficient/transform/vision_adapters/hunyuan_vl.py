"""HunYuanVL (HunyuanOCR): a ViT over each image's patches (any size: a learned position table resized to the grid,
attention inside each image), a patch merger (a 2x2 convolution, a 1x1 one, a learned newline token after each
row of merged tokens, an MLP, learned begin/end rows around the image), and a HunYuan dense text model whose
rotary positions have several axes: the last three are (width, height, image index) over each image's merged grid,
the others the sequence position (HF's ``HunYuanVLModel.get_rope_index``).

Every grid-dependent index is made on the host (position-table taps, the 2x2 blocks, where newlines and begin/end
rows go), so one vision graph serves every image size. The rotary rule is ``ImageGridRope`` (numpy), taken by the
language graph as ``rope_position_ids`` [axes, B, S]."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.minicpmv import _encoder_layer, block_order
from QEfficient.transform.vision_adapters.qwen2_vl import Qwen2VLAdapter


@dataclass(frozen=True)
class ImageGridRope:
    """HF's rule for one unpadded prompt: each run of image tokens is an image's [begin, h x (w + 1) grid, end]
    (or the grid alone); its grid tokens take (column, row, image number) on the last three axes, everything else
    its sequence position on every axis."""

    image_token_id: int
    merge: int
    axes: int

    def __call__(self, tokens: list[int], vision: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        pos = np.broadcast_to(np.arange(len(tokens)), (self.axes, len(tokens))).copy()
        grids = np.asarray(vision.get("_grid_thw", np.zeros((0, 3), np.int64))).reshape(-1, 3)
        runs = [list(run) for is_image, run in itertools.groupby(enumerate(tokens), lambda t: t[1] == self.image_token_id) if is_image]
        if len(runs) != len(grids):
            raise ValueError(f"the prompt has {len(runs)} image spans but {len(grids)} images: give one image per placeholder")
        for number, (run, (_, h, w)) in enumerate(zip(runs, grids)):
            h, w = h // self.merge, w // self.merge
            grid_tokens, span = h * (w + 1), len(run)
            if span not in (grid_tokens, grid_tokens + 2):
                raise ValueError(
                    f"an image span of {span} tokens does not match its {h}x{w} merged grid ({grid_tokens} or {grid_tokens + 2})"
                )
            start = run[0][0] + (span - grid_tokens) // 2
            rows, cols = np.meshgrid(np.arange(h), np.arange(w + 1), indexing="ij")
            pos[-3:, start : start + grid_tokens] = np.stack([cols.reshape(-1), rows.reshape(-1), np.full(grid_tokens, number)])
        return pos, int(pos.max(initial=-1)) + 1 - len(tokens)


def _token_order(grids: np.ndarray, merge: int) -> np.ndarray:
    """Rows of [merged tokens of every image; newline; begin; end] in the order of the image tokens: per image,
    begin, each row of merged tokens followed by a newline, end."""
    merged = (grids[:, 1] // merge) * (grids[:, 2] // merge)
    newline, begin, end = (int(merged.sum()) + k for k in range(3))
    order, start = [], 0
    for (_, h, w), n in zip(grids, merged):
        h, w = h // merge, w // merge
        rows = np.arange(start, start + n).reshape(h, w)
        order += [[begin], np.concatenate([rows, np.full((h, 1), newline)], 1).reshape(-1), [end]]
        start += n
    return np.concatenate(order + [np.zeros(0, np.int64)]).astype(np.int64)


def _merger(merger: nn.Module, x: torch.Tensor, block_index: torch.Tensor, token_index: torch.Tensor) -> torch.Tensor:
    """HunYuanVLVisionPatchMerger over every image at once: its convolutions as linears over 2x2 blocks of rows."""
    x = merger.before_rms(x)
    blocks = x[block_index].reshape(-1, 4 * x.shape[-1])
    conv = merger.proj_conv
    x = nn.functional.linear(blocks, conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1), conv.bias)
    x = merger.proj_act(x)
    x = nn.functional.linear(x, merger.proj_out.weight.flatten(1), merger.proj_out.bias)
    x = merger.mlp(torch.cat([x, merger.image_newline[None].to(x.dtype)]))
    x = torch.cat([x, merger.image_begin[None].to(x.dtype), merger.image_end[None].to(x.dtype)])
    return merger.after_rms(x[token_index])


@dataclass(frozen=True)
class HunYuanVLAdapter(Qwen2VLAdapter):
    rope_axes: int = 3
    merge: int = 2  # patches per merged token side

    def for_config(self, config) -> HunYuanVLAdapter:
        axes = len((config.text_config.rope_parameters or {}).get("mrope_section") or [])
        if axes < 3:
            from QEfficient.transform.adapters import UnsupportedArchitectureError

            raise UnsupportedArchitectureError(
                f"'{self.model_type}': its rotary positions need at least 3 axes "
                f"(text_config.rope_parameters['mrope_section']), got {axes}."
            )
        return dataclasses.replace(self, rope_axes=axes, merge=int(config.vision_config.spatial_merge_size))

    def image_placeholder(self, processor) -> str:
        return f"{processor.image_start_token}{processor.image_token}{processor.image_end_token}"

    def _interpolation(self, grid: np.ndarray, vc) -> tuple[np.ndarray, np.ndarray]:
        from transformers.vision_utils import get_vision_interpolation_indices_and_weights

        side = vc.max_image_size // vc.patch_size
        indices, weights = get_vision_interpolation_indices_and_weights(
            torch.as_tensor(grid), side, mode=vc.interpolate_mode, align_corners=False
        )
        return indices.numpy().astype(np.int64) + 1, weights.numpy().astype(np.float32)  # row 0 of the table: the class token's

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        grids = np.array([[1, 4, 4], [1, 2, 6]])
        n = int(grids.prod(-1).sum())
        vision = {"pixel_values": np.zeros((n, vc.num_channels * vc.patch_size**2), np.float32), "_grid_thw": grids}
        indices, weights = self._interpolation(grids, vc)
        vision |= {"interp_indices": indices, "interp_weights": weights}
        return {k: torch.from_numpy(v) for k, v in self.graph_inputs(vision).items()}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        patches = {
            name: {0: "num_patches"} for name in ("pixel_values", "interp_indices", "interp_weights", "image_segment", "block_index")
        }
        return {**patches, "token_index": {0: "num_image_tokens"}, "vision_embeds": {1: "num_image_tokens"}}

    def image_features(
        self, hf: nn.Module, pixel_values, interp_indices, interp_weights, image_segment, block_index, token_index
    ) -> torch.Tensor:
        tower = hf.model.vision_tower
        embed = tower.embeddings
        conv = embed.patch_embedding
        x = conv(pixel_values.reshape(-1, conv.in_channels, *conv.kernel_size).to(conv.weight.dtype)).flatten(1)
        x = x + (embed.position_embedding(interp_indices) * interp_weights[:, :, None]).sum(1).to(x.dtype)
        visible = image_segment[:, None] == image_segment[None, :]
        for layer in tower.layers:
            x = _encoder_layer(layer, x, visible)
        return _merger(tower.patch_merger, x, block_index, token_index).unsqueeze(0)

    def decoder_example(self, batch: int, seq: int) -> dict[str, torch.Tensor]:
        return {"rope_position_ids": torch.arange(seq)[None, None].repeat(self.rope_axes, batch, 1)}

    # --- host side (keys starting with "_" stay on the host) ---------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        grids = np.asarray(inputs["image_grid_thw"]).astype(np.int64)
        indices, weights = self._interpolation(grids, config.vision_config)
        merge = self.merge
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(inputs["pixel_values"], dtype=np.float32)),
            "interp_indices": indices,
            "interp_weights": weights,
            "_grid_thw": grids,
            "_tokens": (grids[:, 1] // merge) * (grids[:, 2] // merge + 1) + 2,
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        grids = vision["_grid_thw"]
        inputs = Qwen2VLAdapter.graph_inputs(self, vision)
        return inputs | {"block_index": block_order(grids[:, 1:], self.merge), "token_index": _token_order(grids, self.merge)}

    def host_rope(self, config) -> ImageGridRope:
        return ImageGridRope(int(config.image_token_id), self.merge, self.rope_axes)
