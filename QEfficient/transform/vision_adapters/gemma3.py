"""Gemma 3 (image-text): SigLIP tower, average-pooled and projected by the model's own code; the
language model is Gemma3TextModel without a final-logit cap (the multimodal head applies none).

Image tokens of one image attend to each other in both directions (HF builds this from
``token_type_ids``); the language graph derives the same blocks from the image-token ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class Gemma3Adapter(VisionLanguageAdapter):
    bidirectional_images: bool = True
    nested_images: bool = True

    def tokens_per_unit(self, config) -> int:
        return int(config.mm_tokens_per_image)

    def image_placeholder(self, processor) -> str:
        return processor.boi_token
