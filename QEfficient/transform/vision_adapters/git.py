"""GIT (GenerativeImage2Text): a CLIP tower whose patch states (class token included), projected and normalised,
come before the text as one sequence; a BERT-style text model (post-norm layers, learned positions) runs both, the
image block attending itself both ways and the text causally (HF's ``block_sequence_ids``).

Its processor writes no image token: on the host each prompt that has an image starts with that image's tokens, an id
outside the text vocabulary (``vocab_size``) that the language graph never looks up. Image tokens skip the text
embedding's position table and LayerNorm; text positions count the text tokens only (HF generate's positions come from
the text's attention mask), carried by the rotary-position channel as a host rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPast

from QEfficient.transform.static_kv import as_mask_kind
from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


class GitText(nn.Module):
    """GitModel's text half as the static-KV path calls it: ``inputs_embeds`` holds the word embeddings of text tokens
    and the projected image states of image tokens (``is_image``); only the former take the position table and the
    embedding LayerNorm. ``position_ids`` are the text positions."""

    def __init__(self, git: nn.Module) -> None:
        super().__init__()
        self.embeddings = git.embeddings
        self.layers = git.encoder.layer

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.word_embeddings

    def forward(self, inputs_embeds=None, attention_mask=None, position_ids=None, cache=None, is_image=None, **_):
        text = self.embeddings.LayerNorm(inputs_embeds + self.embeddings.position_embeddings(position_ids))
        hidden = torch.where(is_image.unsqueeze(-1), inputs_embeds, text)
        mask = as_mask_kind(attention_mask, "additive", hidden.dtype)  # GitSelfAttention adds its mask to the scores
        for layer in self.layers:
            hidden = layer(hidden, mask, cache=cache)
        return BaseModelOutputWithPast(last_hidden_state=hidden)


@dataclass(frozen=True)
class TextCountPositions:
    """GIT's text positions for one prompt (numpy only): each text token's count of text tokens before it, 0 for image
    tokens; after the prompt, the cache position less the prompt's image tokens."""

    image_token_id: int

    def __call__(self, tokens: list[int], vision: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        is_text = ~np.equal(tokens, self.image_token_id)
        positions = np.where(is_text, np.cumsum(is_text) - 1, 0).astype(np.int64)[None]
        return positions, int(is_text.sum()) - len(tokens)


@dataclass(frozen=True)
class GitAdapter(VisionLanguageAdapter):
    bidirectional_images: bool = True
    bos_token_id: int | None = None  # what HF generate starts a prompt given only pixels with

    def for_config(self, config) -> GitAdapter:
        if config.num_image_with_embedding is not None:
            from QEfficient.transform.adapters import UnsupportedArchitectureError

            raise UnsupportedArchitectureError(
                f"This GIT checkpoint reads {config.num_image_with_embedding} video frames per caption "
                "(num_image_with_embedding, GIT's video variants); only the image variants (num_image_with_embedding=None) "
                "are supported."
            )
        return dataclasses.replace(self, bos_token_id=config.bos_token_id)

    # --- the vision graph ------------------------------------------------------------------------
    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        git = hf.git
        return git.visual_projection(git.image_encoder(pixel_values).last_hidden_state)

    def tokens_per_unit(self, config) -> int:
        vision = config.vision_config
        return (vision.image_size // vision.patch_size) ** 2 + 1

    # --- the language graph ----------------------------------------------------------------------
    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return GitText(hf.git), hf.output, hf.config

    def image_token_id(self, config) -> int:
        return int(config.vocab_size)  # outside the vocabulary: the language graph never looks it up

    def decoder_example(self, batch: int, seq: int) -> dict[str, torch.Tensor]:
        return {"rope_position_ids": torch.arange(seq)[None, None].repeat(1, batch, 1)}

    def decoder_axes(self) -> dict[str, dict[int, str]]:
        return {"rope_position_ids": {1: "batch_size", 2: "seq_len"}}

    def language_kwargs(self, position_ids: torch.Tensor, rope_position_ids: torch.Tensor) -> dict[str, Any]:
        return {"rotary_position_ids": rope_position_ids[0]}

    def text_kwargs(self, base, input_ids, is_image, takes_row, prefill, with_images=None) -> dict[str, Any]:
        return {"is_image": is_image}

    # --- the host side ---------------------------------------------------------------------------
    def host_rope(self, config) -> TextCountPositions:
        return TextCountPositions(self.image_token_id(config))

    def image_placeholder(self, processor) -> str:
        return ""  # the image comes before the prompt

    def prompt_ids(self, inputs, config) -> np.ndarray:
        if "input_ids" in inputs:
            return np.asarray(inputs["input_ids"])
        # processor(images=...) alone: HF generate starts each caption with the BOS token
        if self.bos_token_id is None:
            raise ValueError("The config names no bos_token_id to start a caption with: pass input_ids (processor(text=...)).")
        return np.full((len(inputs["pixel_values"]), 1), self.bos_token_id, np.int64)

    def prompt_token_lists(self, inputs, config) -> list[list[int]]:
        """Each prompt's text, after its image's tokens where images were given (one per prompt, or one for them all,
        as HF repeats it)."""
        prompts = super().prompt_token_lists(inputs, config)
        images = inputs.get("pixel_values")
        if images is None or not len(images):
            return prompts
        if len(images) not in (1, len(prompts)):
            raise ValueError(f"GIT takes one image per prompt (or one for all): got {len(images)} images for {len(prompts)} prompts.")
        return [[self.image_token_id(config)] * self.tokens_per_unit(config) + tokens for tokens in prompts]

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        vision = super().vision_inputs(inputs, img_size, config)
        prompts = len(inputs["input_ids"]) if "input_ids" in inputs else len(vision["pixel_values"])
        if len(vision["pixel_values"]) == 1 and prompts > 1:  # one image for every prompt
            vision = {name: np.repeat(value, prompts, axis=0) for name, value in vision.items()}
        return vision
