"""Kosmos-2: a CLIP-style tower, then 64 learned latent queries that read its (normalised) features by
cross-attention (HF's ``get_image_features``); a Kosmos-2 text model (pre-norm blocks with an inner attention
LayerNorm, sinusoidal positions counted from the padding id as fairseq does).

Its processor does not mark image positions with one image token: it writes a range of ordinary token ids there
(unk+1, unk+2, ...) and says where they are with ``image_embeds_position_mask``. On the host those positions take
an id outside the text vocabulary (``vocab_size``), which the language graph reads as its image token and never
looks up; the ids under the mask matter to HF only as "not padding", so nothing else changes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


class GivenMaskTextModel(nn.Module):
    """Kosmos2TextTransformer as the static-KV path calls it: it builds its own causal mask over the tokens it has
    seen (``_prepare_decoder_attention_mask``); the mask over the whole cache that the step gives is used instead."""

    def __init__(self, text_model: nn.Module) -> None:
        super().__init__()
        self.text_model = text_model

    def get_input_embeddings(self) -> nn.Module:
        return self.text_model.get_input_embeddings()

    def forward(self, attention_mask=None, **kwargs):
        self.text_model._prepare_decoder_attention_mask = lambda mask, *args, **kw: mask  # on the instance, only while this runs
        try:
            return self.text_model(attention_mask=attention_mask, **kwargs)
        finally:
            del self.text_model._prepare_decoder_attention_mask


@dataclass(frozen=True)
class Kosmos2Adapter(VisionLanguageAdapter):
    position_offset: int = 0  # sinusoidal table row of cache position 0: padding id + 1

    def for_config(self, config) -> Kosmos2Adapter:
        text = config.text_config
        return dataclasses.replace(self, position_offset=int(text.pad_token_id) + 1)

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        return hf.get_image_features(pixel_values, return_dict=True).pooler_output

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return GivenMaskTextModel(hf.text_model.model), hf.text_model.lm_head, hf.config.text_config

    def image_token_id(self, config) -> int:
        return int(config.text_config.vocab_size)  # outside the vocabulary: the language graph never looks it up

    def language_kwargs(self, position_ids: torch.Tensor, *extra: torch.Tensor) -> dict[str, Any]:
        # the sinusoidal table's rows: fairseq's positions start after the padding id
        return {"rotary_position_ids": position_ids.clamp(min=0) + self.position_offset}

    def image_placeholder(self, processor) -> str:
        return ""  # the processor puts the image before the prompt itself

    def tokens_per_unit(self, config) -> int:
        return int(config.latent_query_num)

    def prompt_ids(self, inputs, config) -> np.ndarray:
        ids = np.asarray(inputs["input_ids"])
        if "image_embeds_position_mask" not in inputs:
            return ids
        return np.where(np.asarray(inputs["image_embeds_position_mask"]).astype(bool), self.image_token_id(config), ids)
