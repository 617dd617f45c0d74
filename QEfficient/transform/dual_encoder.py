"""Contrastive image-text dual encoders (CLIP, SigLIP, ALIGN, AltCLIP, Chinese-CLIP, MetaCLIP 2, BLIP, CLIPSeg,
TIPSv2): each tower as a module of its own, exported as its own graph.

``QEffTextFeatures`` runs the model's ``get_text_features`` (input_ids, attention_mask -> the projected text
features [B, D]), ``QEffImageFeatures`` its ``get_image_features`` (pixel_values -> [B, D]), each with eager attention.
What transformers' forward computes from the two (the features L2-normalized, their cosine times the model's scale,
plus SigLIP's bias; ALIGN and TIPSv2 divide by a temperature) needs two numbers of the model, read here
(``similarity_rule``), so that the host computes it without torch.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.encoder import eager_everywhere
from QEfficient.transform.image_encoder import QEffImageEncoder, image_size

# types of transformers' zero-shot image classification mapping that are not run here, with why
UNSUPPORTED_DUAL_ENCODERS = {
    "siglip2": "its NaFlex vision tower reads a variable number of patches with their mask and spatial shapes",
    "blip-2": "Blip2ForImageTextRetrieval scores image-text matching through its Q-Former, not two towers",
    "videoprism": "it reads video frames",
}


def _features(out) -> torch.Tensor:
    """get_*_features' result: a tensor, or (transformers 5) an output whose pooler_output holds them."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def is_dual_encoder(model: PreTrainedModel) -> bool:
    """A contrastive image-text model: a type of transformers' zero-shot image classification mapping, loaded whole."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES

    return MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES.get(model.config.model_type) == type(model).__name__


def check_dual_encoder(model: PreTrainedModel) -> None:
    """Refuse a model that is not a two-tower contrastive model run here, saying why."""
    reason = UNSUPPORTED_DUAL_ENCODERS.get(model.config.model_type)
    if reason is not None:
        raise NotImplementedError(f"{type(model).__name__} is not supported: {reason}.")
    missing = [name for name in ("get_text_features", "get_image_features") if not callable(getattr(model, name, None))]
    if missing:
        raise ValueError(f"{type(model).__name__} has no {' or '.join(missing)}: it is not a contrastive image-text model.")


class QEffTextFeatures(nn.Module):
    """forward(input_ids [B, S], attention_mask [B, S]) -> the model's text features [B, D] (not normalized)."""

    token_types = False
    global_attention = False
    reads_padding = True  # run at the input's own width: SigLIP pools its last position, padding or not
    unmasked = True  # may read no mask: SigLIP's text tower takes none
    example_length = 8

    def __init__(self, dual: PreTrainedModel) -> None:
        super().__init__()
        self.hf = dual

    @property
    def config(self):
        return self.hf.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with eager_everywhere(self.config):
            return _features(self.hf.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


class QEffImageFeatures(QEffImageEncoder):
    """forward(pixel_values [B, C, H, W]) -> the model's image features [B, D] (not normalized); the position table at
    the compiled size is a constant of the graph, as for the image encoders."""

    def __init__(self, dual: PreTrainedModel) -> None:
        nn.Module.__init__(self)  # not QEffImageEncoder's checks: the dual model's main input is its text
        self.hf = dual
        self.pooling = None
        self.classifier, self.output = False, None
        self.resizes_positions = "interpolate_pos_encoding" in inspect.signature(dual.get_image_features).parameters
        vision = getattr(dual.config, "vision_config", None)
        self.num_channels = getattr(vision, "num_channels", None) or 3

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        extra = {}
        if self.resizes_positions and image_size(self.config) != tuple(pixel_values.shape[2:]):
            extra["interpolate_pos_encoding"] = True
        with eager_everywhere(self.config):
            return _features(self.hf.get_image_features(pixel_values=pixel_values, **extra))


def similarity_rule(dual: PreTrainedModel) -> dict[str, float]:
    """{"scale", "bias"}: transformers' forward takes logits_per_text = cos(text, image) * scale + bias, scale the
    exponential of ``logit_scale`` (ALIGN: 1 / ``temperature``), bias SigLIP's ``logit_bias`` (else 0)."""
    with torch.no_grad():
        if hasattr(dual, "logit_scale"):
            scale = float(dual.logit_scale.exp())
        elif hasattr(dual, "temperature"):
            scale = float(1.0 / dual.temperature)
        else:
            raise ValueError(f"{type(dual).__name__} has neither logit_scale nor temperature: its similarity is not CLIP's.")
        bias = float(dual.logit_bias) if hasattr(dual, "logit_bias") else 0.0
    return {"scale": scale, "bias": bias}
