"""Mllama (Llama 3.2 Vision): the text model reads the image through interleaved cross-attention layers,
not through image-token embeddings. As for Whisper (transform/whisper.py), every cross-attention layer's
keys and values are computed once per image and retained: the vision graph runs the tiled tower, the
projector and each cross layer's k/v projections (and key norm), and returns them, with the additive mask
of the image's padding tiles, as one ``vision_embeds`` row per image; the language graph attends over
that row at every prefill chunk and decode step, and never projects the image again.

``<|image|>`` is one ordinary token; each sequence has one image (its own row). ``image_idx`` is the
number of image tokens a sequence has seen before the chunk: a token before the image sees no tile (HF's
``full_text_row_masked_out_mask``), a token at or after it sees the image's real tiles, as decode does.
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

    def for_config(self, config) -> MllamaAdapter:
        text, vision = config.text_config, config.vision_config
        patches = (vision.image_size // vision.patch_size) ** 2 + 1
        return replace(
            self,
            cross_layers=tuple(text.cross_attention_layers),
            n_kv=text.num_key_value_heads,
            head_dim=text.hidden_size // text.num_attention_heads,
            positions=vision.max_num_tiles * patches,
        )

    # --- the vision graph: the image's cross keys/values and its tile mask, one row per image ----------
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
        units, tiles = pixel_values.shape[:2]
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
        real = (aspect_ratio_mask > 0)[:, :, None].expand(units, tiles, self.positions // tiles).reshape(units, self.positions)
        padding_tiles = torch.where(real, 0.0, torch.finfo(states.dtype).min).to(states.dtype)
        return torch.cat([torch.stack(kv, dim=1).reshape(units, -1), padding_tiles], dim=1)[:, None]

    def embedding_width(self, config, hidden_size: int) -> int:
        return 2 * len(self.cross_layers) * self.n_kv * self.positions * self.head_dim + self.positions

    def embeds_example(self, batch: int, width: int) -> torch.Tensor:
        return torch.zeros(batch, 1, width)  # one row per sequence

    def tokens_per_unit(self, config) -> int:
        return 1  # "<|image|>" stays one token

    # --- the language graph ----------------------------------------------------------------------
    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return _CrossAttentionText(hf.model.language_model, self.cross_layers), hf.lm_head, hf.config.text_config

    def cache_adapter(self, text_config) -> CacheGeometryAdapter:
        return _SelfAttentionCache(text_config.model_type, cross_layers=self.cross_layers)

    def cross_attention_kwargs(self, vision_embeds: torch.Tensor, image_idx: torch.Tensor, is_image: torch.Tensor) -> dict[str, Any]:
        """The text model's cross-attention inputs: each sequence's keys/values and masks from its row."""
        rows = vision_embeds.reshape(-1, vision_embeds.shape[-1])
        kv = rows[:, : -self.positions].reshape(rows.shape[0], 2 * len(self.cross_layers), self.n_kv, self.positions, self.head_dim)
        padding_tiles = rows[:, None, None, -self.positions :]
        seen = ((image_idx + torch.cumsum(is_image.to(torch.int64), dim=1)) > 0)[:, None, :, None]  # [B, 1, S, 1]
        return {
            "cross_kv": kv.unbind(1),
            "cross_attention_mask": torch.where(seen, padding_tiles, torch.zeros((), dtype=rows.dtype)),
            "full_text_row_masked_out_mask": seen.to(rows.dtype),
        }

    # --- the host side ---------------------------------------------------------------------------
    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        ids = np.asarray(inputs["input_ids"])
        mask = np.asarray(inputs["attention_mask"]) if "attention_mask" in inputs else np.ones_like(ids)
        per_prompt = ((ids == config.image_token_id) & (mask > 0)).sum(axis=1)
        if (per_prompt != 1).any():
            raise ValueError(
                f"Mllama takes one image per prompt (one <|image|> each); the prompts have {per_prompt.tolist()}: "
                "run prompts with several images, or none, with transformers' generate."
            )
        pixels = np.asarray(inputs["pixel_values"], dtype=np.float32)
        if pixels.shape[-1] != img_size or pixels.shape[-2] != img_size:
            size = f"{pixels.shape[-2]}x{pixels.shape[-1]}"
            raise ValueError(f"pixel_values tiles are {size} but the vision graph was compiled for img_size={img_size}.")
        return {
            "pixel_values": np.ascontiguousarray(pixels.reshape(-1, *pixels.shape[2:])),
            "aspect_ratio_ids": np.asarray(inputs["aspect_ratio_ids"], dtype=np.int64).reshape(-1),
            "aspect_ratio_mask": np.asarray(inputs["aspect_ratio_mask"], dtype=np.int64).reshape(-1, pixels.shape[2]),
            "_tokens": np.ones(len(ids), np.int64),
        }
