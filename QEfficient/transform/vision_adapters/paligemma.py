"""PaliGemma: SigLIP tower and a linear projector (HF's ``get_image_features``), Gemma text model. The
prompt (image tokens, BOS, text) is a prefix that attends both ways at prefill (HF's ``token_type_ids``
0); generated tokens attend causally."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class PaliGemmaAdapter(VisionLanguageAdapter):
    bidirectional_prompt: bool = True

    def tokens_per_unit(self, config) -> int:
        return (config.vision_config.image_size // config.vision_config.patch_size) ** 2
