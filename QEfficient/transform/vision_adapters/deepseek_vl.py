"""DeepSeek-VL: SigLIP tower and an MLP aligner (HF's ``get_image_features``), Llama text model; a fixed
number of image tokens per image."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class DeepseekVLAdapter(VisionLanguageAdapter):
    def tokens_per_unit(self, config) -> int:
        return (config.vision_config.image_size // config.vision_config.patch_size) ** 2
