"""Aya Vision: the processor crops fixed-size tiles (plus a thumbnail); each tile goes through the SigLIP
tower and the pixel-shuffle projector (HF's ``get_image_features``) and gives the same number of image
tokens. Cohere2 text model. Units are tiles, in prompt order."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class AyaVisionAdapter(VisionLanguageAdapter):
    def tokens_per_unit(self, config) -> int:
        side = config.vision_config.image_size // config.vision_config.patch_size // config.downsample_factor
        return side * side
