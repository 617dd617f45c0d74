"""Molmo 2: a ViT on the crops of each image (a low-resolution view and overlapping high-resolution crops, patches
flattened by the processor), features of two of its layers concatenated, pooled into image tokens by an attention
layer over each token's 2x2 patches (the processor's pooling indices), projected by a SwiGLU MLP and *added* to the
``<im_patch>`` tokens' embeddings. At prefill an image's tokens (its start, patch, row and end tokens) attend to each
other both ways: a bidirectional block (its special tokens are ``block_token_ids``).

The host hands each image's pooling indices into its own crops (as transformers 5.25's processor numbers them;
5.24's numbers them across the batch) with the tokens that pool no patch dropped, as HF drops them; the graph adds
the image token's embedding to each row."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter

_SPECIAL = ("image_start_token_id", "low_res_image_start_token_id", "image_end_token_id")


def _pool(adapter: nn.Module, flat: torch.Tensor, pooling: torch.Tensor) -> torch.Tensor:
    """Molmo2Adapter.forward for tokens that each pool at least one patch (the host drops the others): the mean of a
    token's patches queries them, attention over them, the projector (HF's squeeze exports as an If node)."""
    valid = pooling >= 0
    patches = flat[pooling.clamp(min=0)] * valid[..., None].to(flat.dtype)
    query = patches.sum(-2, keepdim=True) / valid.sum(-1).clamp(min=1)[:, None, None].to(flat.dtype)
    mask = torch.where(valid, 0.0, torch.finfo(flat.dtype).min).to(flat.dtype)[:, None, None, :]
    pooled, _ = adapter.image_pooling_2d(query, patches, attention_mask=mask)
    return adapter.image_projector(pooled[:, 0])


@dataclass(frozen=True)
class Molmo2Adapter(VisionLanguageAdapter):
    bidirectional_images: bool = True
    flat_embeddings = True
    vision_per_unit = True
    patches_per_crop: int = 0  # from the config (for_config): the pooling indices' stride per crop

    def for_config(self, config) -> Molmo2Adapter:
        col = getattr(config, "image_col_id", None)  # "<im_col>" (Molmo 2's own config.json names it; HF's class does not)
        if col is None:
            raise ValueError(
                "Molmo 2's config does not name its row token: set config.image_col_id to "
                "processor.tokenizer.convert_tokens_to_ids('<im_col>')."
            )
        ids = (*(int(getattr(config, name)) for name in _SPECIAL), int(col))
        return replace(self, block_token_ids=ids, patches_per_crop=int(config.vision_config.num_position_embeddings))

    def default_img_size(self, config) -> int:
        return 0  # any size: the processor chooses each image's crops

    # --- the vision graph ----------------------------------------------------------------------
    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        vc = config.vision_config
        n = vc.num_position_embeddings
        pooling = torch.arange(12).reshape(3, 4)
        pooling[2, 3] = -1  # a token with fewer patches
        return {"pixel_values": torch.zeros(2, n, vc.patch_size**2 * vc.num_channels), "image_token_pooling": pooling}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "num_crops"}, "image_token_pooling": {0: "num_image_tokens"}, "vision_embeds": {1: "num_image_tokens"}}

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor, image_token_pooling: torch.Tensor) -> torch.Tensor:
        tower, model = hf.model.vision_tower, hf.model
        hidden = tower.patch_embedding(pixel_values.to(tower.patch_embedding.weight.dtype)) + tower.positional_embedding[None]
        states = [hidden]  # HF's hidden_states: the embeddings, then each layer's output
        for layer in tower.layers:
            hidden = layer(hidden, None)
            states.append(hidden)
        layers = hf.config.adapter_config.vision_feature_layer
        features = torch.cat([states[i + 1 if i >= 0 else i] for i in layers], dim=-1)
        pooled = _pool(model.multi_modal_projector, features.reshape(-1, features.shape[-1]), image_token_pooling)
        patch = model.language_model.embed_tokens.weight[hf.config.image_token_id]
        return (pooled + patch).unsqueeze(0)  # added to the image tokens' own embeddings, as HF

    # --- host side -------------------------------------------------------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        ids = np.asarray(inputs["input_ids"])
        per_prompt = (ids == config.low_res_image_start_token_id).sum(axis=1)
        if (per_prompt > 1).any():  # HF joins all of a prompt's images into one bidirectional block
            raise ValueError(f"Molmo 2 here takes one image per prompt; the prompts have {per_prompt.tolist()}.")
        crops = np.asarray(inputs["image_num_crops"], np.int64).reshape(-1)
        pooling = np.asarray(inputs["image_token_pooling"], np.int64)
        grids = np.asarray(inputs["image_grids"], np.int64).reshape(-1, 4)
        tokens = grids[:, 0] * grids[:, 1] + grids[:, 2] * grids[:, 3]
        # each image's rows, its indices into its own crops: transformers 5.24's processor numbers them across the
        # batch (each image's at or after its first patch), 5.25's from each image's own first patch
        first_patch = np.repeat((np.cumsum(crops) - crops) * self.patches_per_crop, tokens)
        valid = pooling >= 0
        across_batch = (np.where(valid, pooling, np.iinfo(np.int64).max).min(-1) >= first_patch).all()
        local = np.where(valid, pooling - (first_patch[:, None] if across_batch else 0), -1)
        if not (local >= 0).any(-1).all():  # HF drops such tokens; the processor makes none
            raise ValueError("Molmo 2: an image token pools no patch; run this image with transformers' generate.")
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(inputs["pixel_values"], np.float32)),
            "image_token_pooling": local,
            "_crops": crops,
            "_tokens": tokens,
        }

    def tokens_per_unit(self, config) -> int:
        raise NotImplementedError("Molmo 2's images have their own numbers of tokens (vision_inputs gives them)")

    def select_units(self, vision: dict[str, np.ndarray], units: np.ndarray) -> dict[str, np.ndarray]:
        def rows(counts: np.ndarray) -> np.ndarray:
            starts = np.r_[0, np.cumsum(counts)]
            return np.concatenate([np.arange(starts[u], starts[u + 1]) for u in units] + [np.zeros(0, np.int64)])

        return {
            "pixel_values": vision["pixel_values"][rows(vision["_crops"])],
            "image_token_pooling": vision["image_token_pooling"][rows(vision["_tokens"])],
            "_crops": vision["_crops"][units],
            "_tokens": vision["_tokens"][units],
        }

    def graph_inputs(self, vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pooling = vision["image_token_pooling"]
        first_patch = np.repeat((np.cumsum(vision["_crops"]) - vision["_crops"]) * self.patches_per_crop, vision["_tokens"])
        pooling = np.where(pooling >= 0, pooling + first_patch[:, None], -1)
        return {"pixel_values": vision["pixel_values"], "image_token_pooling": pooling}
