"""Mllama (Llama 3.2 Vision): the text model reads the images through interleaved cross-attention layers,
not through image-token embeddings. As for Whisper (transform/whisper.py), every cross-attention layer's
keys and values are computed once per image and retained: the vision graph runs the tiled tower, the
projector and each cross layer's k/v projections (and key norm), and returns them, with a flag "a real
image" (aspect-ratio id > 0), as one ``vision_embeds`` row per image; the language graph attends over a
sequence's image slots (``compile(max_num_images=N)``, 1 by default) at every prefill chunk and decode
step, and never projects an image again.

``<|image|>`` is one ordinary token. Which tiles a token attends is HF's ``cross_attention_mask``
[B, S, images, tiles], made on the host from the prompt (each token sees the images of the last run of
``<|image|>`` before it; decode repeats the prompt's last row) and fed per chunk/step; a token that sees
no image gets HF's zeroed row (``full_text_row_masked_out_mask``) over the prompt's real images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.adapters.base import CacheGeometryAdapter
from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class _SelfAttentionCache(CacheGeometryAdapter):
    """The KV cache holds the self-attention layers only; cross-attention layers read the image's row."""

    cross_layers: tuple[int, ...] = ()

    def kv_geometry(self, config) -> tuple[int, int, int]:
        n_layers, n_kv, head_dim = super().kv_geometry(config)
        return n_layers - len(self.cross_layers), n_kv, head_dim


class _CrossLayer:
    """A cross-attention layer's entry of the cache, as HF's cross layers read it (``layers[i].keys``)."""

    def __init__(self, keys: torch.Tensor | None = None, values: torch.Tensor | None = None) -> None:
        self.keys, self.values, self.is_initialized = keys, values, keys is not None


class _CrossAttentionCache:
    """The static KV cache seen with Mllama's layer numbering: self-attention layer i writes its cache
    slot, cross-attention layer i reads the retained image keys/values."""

    def __init__(self, inner, slots: dict[int, int], cross: dict[int, tuple[torch.Tensor, torch.Tensor]], n_layers: int) -> None:
        self.inner, self.slots = inner, slots
        self.layers = [_CrossLayer(*cross[i]) if i in cross else _CrossLayer() for i in range(n_layers)]
        self.is_initialized = True

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        return self.inner.update(key, value, self.slots[layer_idx])

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


class _CrossAttentionText(nn.Module):
    """Mllama's text model run with the retained image keys/values (``cross_kv``: key, value per cross layer)."""

    def __init__(self, text: nn.Module, cross_layers: tuple[int, ...]) -> None:
        super().__init__()
        self.text = text
        self.cross_layers = cross_layers
        self.n_layers = len(text.layers)
        self_layers = [i for i in range(self.n_layers) if i not in cross_layers]
        self.slots = {layer: slot for slot, layer in enumerate(self_layers)}

    def get_input_embeddings(self) -> nn.Module:
        return self.text.get_input_embeddings()

    def forward(self, cache=None, cross_kv=(), **kwargs):
        pairs = {layer: (cross_kv[2 * j], cross_kv[2 * j + 1]) for j, layer in enumerate(self.cross_layers)}
        return self.text(cache=_CrossAttentionCache(cache, self.slots, pairs, self.n_layers), **kwargs)


@dataclass(frozen=True)
class MllamaAdapter(VisionLanguageAdapter):
    nested_images: bool = True
    cross_attention: bool = True
    # from the config (for_config): the cross layers, the cache geometry, the image's positions per row
    cross_layers: tuple[int, ...] = ()
    n_kv: int = 0
    head_dim: int = 0
    positions: int = 0  # tiles x (patches + CLS)
    max_tiles: int = 0

    def for_config(self, config) -> MllamaAdapter:
        text, vision = config.text_config, config.vision_config
        patches = (vision.image_size // vision.patch_size) ** 2 + 1
        return replace(
            self,
            cross_layers=tuple(text.cross_attention_layers),
            n_kv=text.num_key_value_heads,
            head_dim=text.hidden_size // text.num_attention_heads,
            positions=vision.max_num_tiles * patches,
            max_tiles=vision.max_num_tiles,
        )

    # --- the vision graph: the image's cross keys/values and whether it is a real image, one row per image
    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        tiles = config.vision_config.max_num_tiles
        return {
            "pixel_values": torch.zeros(2, tiles, 3, img_size, img_size),
            "aspect_ratio_ids": torch.ones(2, dtype=torch.int64),
            "aspect_ratio_mask": torch.ones(2, tiles, dtype=torch.int64),
        }

    def vision_axes(self) -> dict[str, dict[int, str]]:
        names = ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask", "vision_embeds")
        return {name: {0: "num_images"} for name in names}

    def image_features(self, hf: nn.Module, pixel_values, aspect_ratio_ids, aspect_ratio_mask) -> torch.Tensor:
        units = pixel_values.shape[0]
        tower = hf.model.vision_model(
            pixel_values=pixel_values[:, None], aspect_ratio_ids=aspect_ratio_ids[:, None], aspect_ratio_mask=aspect_ratio_mask[:, None]
        ).last_hidden_state
        states = hf.model.multi_modal_projector(tower).reshape(units, self.positions, -1)
        layers = hf.model.language_model.layers
        kv = []
        for i in self.cross_layers:
            attn = layers[i].cross_attn
            key = attn.k_proj(states).view(units, -1, self.n_kv, self.head_dim).transpose(1, 2)
            value = attn.v_proj(states).view(units, -1, self.n_kv, self.head_dim).transpose(1, 2)
            kv += [attn.k_norm(key), value]
        real = (aspect_ratio_ids > 0).to(states.dtype)[:, None]  # aspect-ratio id 0: a padding image slot, as HF pads
        return torch.cat([torch.stack(kv, dim=1).reshape(units, -1), real], dim=1)[:, None]

    def embedding_width(self, config, hidden_size: int) -> int:
        return 2 * len(self.cross_layers) * self.n_kv * self.positions * self.head_dim + 1

    def embeds_example(self, batch: int, width: int) -> torch.Tensor:
        return torch.zeros(batch, 2, width)  # each sequence's image slots (max_num_images, any number)

    def tokens_per_unit(self, config) -> int:
        return 1  # "<|image|>" stays one token

    # --- the language graph ----------------------------------------------------------------------
    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return _CrossAttentionText(hf.model.language_model, self.cross_layers), hf.lm_head, hf.config.text_config

    def cache_adapter(self, text_config) -> CacheGeometryAdapter:
        return _SelfAttentionCache(text_config.model_type, cross_layers=self.cross_layers)

    def decoder_example(self, batch: int, seq: int) -> dict[str, torch.Tensor]:
        mask = torch.zeros(batch, seq, 2, self.max_tiles, dtype=torch.int64)
        mask[:, seq // 2 :, 0, 0] = 1
        return {"cross_attention_mask": mask}

    def decoder_axes(self) -> dict[str, dict[int, str]]:
        return {"cross_attention_mask": {0: "batch_size", 1: "seq_len", 2: "max_num_images"}}

    def cross_attention_kwargs(
        self, vision_embeds: torch.Tensor, is_image: torch.Tensor, cross_attention_mask: torch.Tensor
    ) -> dict[str, Any]:
        """The text model's cross-attention inputs: each sequence's image slots' keys/values, and HF's masks
        (_prepare_cross_attention_mask) from the host's per-token mask [B, S, images, tiles]."""
        batch, width = is_image.shape[0], vision_embeds.shape[-1]
        rows = vision_embeds.reshape(batch, -1, width)  # [B, images, width]
        images = rows.shape[1]
        kv = rows[..., :-1].reshape(batch, images, 2 * len(self.cross_layers), self.n_kv, self.positions, self.head_dim)
        kv = kv.permute(2, 0, 3, 1, 4, 5).reshape(2 * len(self.cross_layers), batch, self.n_kv, images * self.positions, self.head_dim)
        patches = self.positions // self.max_tiles
        attends = (
            cross_attention_mask[..., None].expand(*cross_attention_mask.shape, patches).reshape(batch, 1, -1, images * self.positions)
        )
        seen = (cross_attention_mask > 0).flatten(2).any(dim=-1)[:, None, :, None]  # [B, 1, S, 1]
        # a token that sees no image attends every position of the prompt's real images (HF's zeroed mask row),
        # never a padding image slot
        real = (rows[:, :, -1:] > 0).expand(batch, images, self.positions).reshape(batch, 1, 1, -1)
        minimum = torch.tensor(torch.finfo(rows.dtype).min, dtype=rows.dtype)
        zero = torch.zeros((), dtype=rows.dtype)
        return {
            "cross_kv": kv.unbind(0),
            "cross_attention_mask": torch.where((seen & (attends > 0)) | (~seen & real), zero, minimum),  # no bool Where in ORT
            "full_text_row_masked_out_mask": seen.to(rows.dtype),
        }

    # --- the host side ---------------------------------------------------------------------------
    def processor_images(self, images: list) -> list:
        """One image, or a list of several, per prompt."""
        return [list(img) if isinstance(img, (list, tuple)) else [img] for img in images]

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        pixels, keep = self.prompt_images(inputs, img_size, config)  # pixels [prompts, images, tiles, 3, H, W]
        return {
            "pixel_values": np.ascontiguousarray(pixels.reshape(-1, *pixels.shape[2:])[keep]),
            "aspect_ratio_ids": np.asarray(inputs["aspect_ratio_ids"], dtype=np.int64).reshape(-1)[keep],
            "aspect_ratio_mask": np.asarray(inputs["aspect_ratio_mask"], dtype=np.int64).reshape(-1, pixels.shape[2])[keep],
            "_tokens": np.ones(int(keep.sum()), np.int64),
        }

    def prompt_images(self, inputs, img_size: int, config) -> tuple[np.ndarray, np.ndarray]:
        """The processor's pixel_values [prompts, images, ...] and which of its (prompt, image) slots hold a
        prompt's own image, not the processor's padding of a prompt with fewer images; checks both."""
        ids = np.asarray(inputs["input_ids"])
        mask = np.asarray(inputs["attention_mask"]) if "attention_mask" in inputs else np.ones_like(ids)
        per_prompt = ((ids == self.image_token_id(config)) & (mask > 0)).sum(axis=1)
        if (per_prompt == 0).any():
            raise ValueError(
                f"{type(self).__name__[: -len('Adapter')]} takes at least one image per prompt (an image token each); the "
                f"prompts have {per_prompt.tolist()}: give the prompts without an image a generate() call of their own."
            )
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        if pixels.shape[-1] != img_size or pixels.shape[-2] != img_size:
            size = f"{pixels.shape[-2]}x{pixels.shape[-1]}"
            raise ValueError(f"pixel_values are {size} but the vision graph was compiled for img_size={img_size}.")
        return pixels, (np.arange(pixels.shape[1])[None, :] < per_prompt[:, None]).reshape(-1)

    def pad_image_slots(self, vision: dict[str, np.ndarray], max_images: int, prompt: int) -> dict[str, np.ndarray]:
        """One prompt's vision units padded to ``max_images`` slots: a padding slot is HF's padding image
        (zero pixels, aspect-ratio id 0, first tile set), whose row the language graph never attends."""
        count = len(vision["_tokens"])
        if count > max_images:
            raise ValueError(
                f"Prompt {prompt} has {count} images but the model was compiled for max_num_images={max_images}: "
                f"compile(max_num_images={count}) or more, or split the prompt."
            )
        extra = max_images - count
        padding = {name: np.zeros((extra, *value.shape[1:]), value.dtype) for name, value in vision.items()}
        if "aspect_ratio_mask" in vision:
            padding["aspect_ratio_mask"] = np.eye(1, vision["aspect_ratio_mask"].shape[1], dtype=np.int64).repeat(extra, axis=0)
        return {name: np.concatenate([value, padding[name]]) for name, value in vision.items()}

    def prompt_cross_mask(self, tokens: list[int], vision: dict[str, np.ndarray], image_token_id: int) -> np.ndarray:
        """[len(tokens), images, tiles]: the image tiles each token attends, as HF's processor makes its
        cross_attention_mask (each token sees the images of the last run of ``<|image|>`` before it)."""
        from transformers.models.mllama.processing_mllama import (
            convert_sparse_cross_attention_mask_to_dense,
            get_cross_attention_token_mask,
        )

        spans = get_cross_attention_token_mask(tokens, image_token_id)
        tiles = vision["aspect_ratio_mask"].sum(axis=1)[: len(spans)].tolist()
        dense = convert_sparse_cross_attention_mask_to_dense([spans], [tiles], self.max_tiles, len(tokens))[0]
        out = np.zeros((len(tokens), len(vision["_tokens"]), self.max_tiles), np.int64)
        out[:, : dense.shape[1]] = dense
        return out
