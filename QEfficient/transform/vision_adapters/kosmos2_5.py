"""Kosmos-2.5: a Pix2Struct-style patch encoder (an image as up to ``max_patches`` flattened patches), latent queries
that resample it (HF's ``get_image_features``), and a Kosmos-2-style text model (sinusoidal positions counted from the
padding id, as fairseq does) that adds a segment embedding: 1 at the image's span of the prompt, 0 elsewhere.

Its processor lays every prompt out alike, ``<s> <image> [image tokens] </image> text``, and marks the image tokens 1
and the two markers -1 in ``image_embeds_position_mask``. On the host the image tokens take an id outside the text
vocabulary (``vocab_size``), which the language graph never looks up; the segment is 1 at cache positions 1 to
``latent_query_num + 2`` of a prefill with images (where the processor's mask is not 0), else 0 (HF passes no mask)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


class SegmentedTextModel(nn.Module):
    """Kosmos2_5TextTransformer given its segment mask from the step's positions (``position_ids``: the sinusoidal
    table's rows, cache positions + ``offset``) and whether the step is the prefill of prompts with images (a prompt
    without one, as HF's without ``image_embeds_position_mask``, and decode take segment 0)."""

    def __init__(self, text_model: nn.Module, offset: int, image_tokens: int) -> None:
        super().__init__()
        self.text_model = text_model
        self.offset = offset
        self.image_tokens = image_tokens

    def get_input_embeddings(self) -> nn.Module:
        return self.text_model.get_input_embeddings()

    def forward(self, position_ids=None, with_images=None, **kwargs):
        cache_position = position_ids - self.offset
        segment = with_images & (cache_position >= 1) & (cache_position <= self.image_tokens + 2)
        return self.text_model(position_ids=position_ids, image_embeds_position_mask=segment.to(torch.int64), **kwargs)


@dataclass(frozen=True)
class Kosmos2_5Adapter(VisionLanguageAdapter):
    position_offset: int = 0  # sinusoidal table row of cache position 0: padding id + 1
    image_tokens: int = 0  # latent queries per image

    def for_config(self, config) -> Kosmos2_5Adapter:
        offset = int(config.text_config.pad_token_id) + 1
        return dataclasses.replace(self, position_offset=offset, image_tokens=int(config.latent_query_num))

    # --- the vision graph: an image's flattened patches (row, column, pixels), zero rows padding ----------------------
    def default_img_size(self, config) -> int:
        return 0  # images come as patches, as many as the processor's max_patches

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        patch = config.vision_config.patch_embed_hidden_size
        patches = torch.rand(2, 6, 2 + patch, generator=torch.Generator().manual_seed(0))
        patches[1, 4:] = 0  # the second image's last two patches padding
        return {"flattened_patches": patches}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {"flattened_patches": {0: "num_images", 1: "num_patches"}, "vision_embeds": {0: "num_images"}}

    def image_features(self, hf: nn.Module, flattened_patches: torch.Tensor) -> torch.Tensor:
        return hf.get_image_features(flattened_patches, return_dict=True).pooler_output

    def tokens_per_unit(self, config) -> int:
        return int(config.latent_query_num)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        patches = np.ascontiguousarray(np.asarray(inputs["flattened_patches"], dtype=np.float32))
        return {"flattened_patches": patches, "_tokens": np.full(len(patches), self.tokens_per_unit(config), np.int64)}

    # --- the language graph ----------------------------------------------------------------------
    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        text = hf.text_model
        return SegmentedTextModel(text.model, self.position_offset, self.image_tokens), text.lm_head, hf.config.text_config

    def image_token_id(self, config) -> int:
        return int(config.text_config.vocab_size)  # outside the vocabulary: the language graph never looks it up

    def language_kwargs(self, position_ids: torch.Tensor, *extra: torch.Tensor) -> dict[str, Any]:
        # the sinusoidal table's rows: fairseq's positions start after the padding id
        return {"rotary_position_ids": position_ids.clamp(min=0) + self.position_offset}

    def text_kwargs(self, base, input_ids, is_image, takes_row, prefill, with_images=None) -> dict[str, Any]:
        return {"with_images": with_images}

    # --- the host side ---------------------------------------------------------------------------
    def image_placeholder(self, processor) -> str:
        return ""  # the processor puts the image before the prompt itself

    def prompt_ids(self, inputs, config) -> np.ndarray:
        """The processor's ids, its image tokens (marked 1) taking the image id. The processor marks every row from its
        first column; a left-padded row's marks are moved to where its prompt starts (HF's generate takes them as they
        are, so a padded row's image lands on its padding there)."""
        ids = np.asarray(inputs["input_ids"])
        if "image_embeds_position_mask" not in inputs:
            return ids
        marks = np.asarray(inputs["image_embeds_position_mask"])
        if "attention_mask" in inputs:
            keep = np.asarray(inputs["attention_mask"]).astype(bool)
            starts = np.where(keep.any(axis=1), keep.argmax(axis=1), 0)
            marks = np.stack([np.r_[np.zeros(start, marks.dtype), row[: len(row) - start]] for row, start in zip(marks, starts)])
        return np.where(marks == 1, self.image_token_id(config), ids)
