"""ViLT's image-text heads (visual question answering, image-text retrieval): forward(input_ids, attention_mask,
token_type_ids, pixel_values) -> logits, with eager attention and, while it runs, its image tokens built from every
patch in order (rewrites.py: ``vilt_visual_embed``), for unpadded images of any size."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.encoder import eager_everywhere
from QEfficient.transform.rewrites import vilt_visual_embed

# the heads run here (one image per text; ViLT's NLVR2 head reads two)
VILT_HEADS = ("ViltForQuestionAnswering", "ViltForImageAndTextRetrieval")
# types of transformers' visual question answering mapping not run here, with why
UNSUPPORTED_VISUAL_QA = {
    "blip": "BLIP answers by generating text (its decoder, step by step), not by classifying",
    "blip-2": "BLIP-2 answers by generating text with its language model",
}


class QEffVisualQA(nn.Module):
    """A ViLT head's logits for question (or caption) and image pairs."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        name = type(hf_model).__name__
        reason = UNSUPPORTED_VISUAL_QA.get(hf_model.config.model_type)
        if reason is None and name not in VILT_HEADS:
            reason = f"the image-text heads run here are {', '.join(VILT_HEADS)}"
        if reason is not None:
            raise NotImplementedError(f"{name} is not supported: {reason}.")
        self.hf = hf_model

    @property
    def config(self):
        return self.hf.config

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor, pixel_values: torch.Tensor
    ) -> torch.Tensor:
        with eager_everywhere(self.config), patches_in_order(self.hf):
            out = self.hf(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, pixel_values=pixel_values)
        return out.logits


@contextlib.contextmanager
def patches_in_order(vilt: PreTrainedModel) -> Iterator[None]:
    """While our forward runs, ViLT's image tokens are every patch in order (rewrites.vilt_visual_embed); the model
    itself keeps transformers' method, which reads pixel_mask."""
    embeddings = vilt.vilt.embeddings
    embeddings.visual_embed = types.MethodType(vilt_visual_embed, embeddings)
    try:
        yield
    finally:
        del embeddings.visual_embed
