"""VipLlava: Llava's layout with features from several CLIP layers (CLS dropped), normed and projected
together by HF's own ``get_image_features``."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class VipLlavaAdapter(VisionLanguageAdapter):
    def tokens_per_unit(self, config) -> int:
        return (config.vision_config.image_size // config.vision_config.patch_size) ** 2
