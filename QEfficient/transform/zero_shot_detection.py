"""Text-prompted object detectors (OWL-ViT, OWLv2, Grounding DINO, MM Grounding DINO; transformers'
``AutoModelForZeroShotObjectDetection``): forward(input_ids, attention_mask, pixel_values) -> (logits, pred_boxes), with
eager attention and the module functions tracing cannot follow swapped (rewrites.py: Grounding DINO's phrase masks)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.encoder import eager_everywhere
from QEfficient.transform.image_encoder import image_size
from QEfficient.transform.rewrites import rewritten_functions

# types of transformers' zero-shot detection mapping not run here, with why
UNSUPPORTED_ZERO_SHOT_DETECTORS = {
    "omdet-turbo": "it reads its labels and its task prompt as separate token lists (classes_input_ids, tasks_input_ids) "
    "with a per-image label structure, which one graph of fixed inputs does not take",
}
# detectors that score every box against every token of one prompt per image (not against one query per text row)
PROMPT_PER_IMAGE = frozenset({"grounding-dino", "mm-grounding-dino"})


def text_limit(config) -> int:
    """The longest prompt the model reads: its text tower's positions (Grounding DINO: at most ``max_text_len``, where
    transformers cuts longer prompts in a branch the graph would not keep)."""
    text = getattr(config, "text_config", None) or config
    limit = getattr(text, "max_position_embeddings", None) or 512
    return min(limit, config.max_text_len) if config.model_type in PROMPT_PER_IMAGE else limit


class QEffZeroShotDetector(nn.Module):
    """The detector's class logits and boxes for prompts and images (``texts_per_image`` token rows per image)."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        reason = UNSUPPORTED_ZERO_SHOT_DETECTORS.get(hf_model.config.model_type)
        if reason is not None:
            raise NotImplementedError(f"{type(hf_model).__name__} is not supported: {reason}.")
        self.hf = hf_model
        self.texts_per_image = 1 if hf_model.config.model_type in PROMPT_PER_IMAGE else 2  # the export's example
        vision = getattr(hf_model.config, "vision_config", None) or getattr(hf_model.config, "backbone_config", None)
        self.num_channels = getattr(vision, "num_channels", None) or 3

    @property
    def config(self):
        return self.hf.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # Grounding DINO keeps its text tower's own attention: transformers' eager BERT reads its boolean phrase mask
        # otherwise than SDPA does (other scores), and SDPA, its default, exports as it is
        plain = contextlib.nullcontext() if self.config.model_type in PROMPT_PER_IMAGE else eager_everywhere(self.config)
        extra = {}
        if self.config.model_type not in PROMPT_PER_IMAGE and tuple(pixel_values.shape[2:]) != image_size(self.config):
            extra["interpolate_pos_encoding"] = True  # OWL-ViT at another size: its positions and box bias resized
        with plain, rewritten_functions(self.hf):
            out = self.hf(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values, **extra)
        return out.logits, out.pred_boxes
