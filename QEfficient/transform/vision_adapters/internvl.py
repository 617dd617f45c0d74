"""InternVL: the processor crops an image into fixed-size tiles (plus a thumbnail); every tile goes through
the InternViT tower, a pixel shuffle and the MLP projector (HF's ``get_image_features``) and gives the same
number of image tokens. Units are tiles, in prompt order."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


def _side(value) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


@dataclass(frozen=True)
class InternVLAdapter(VisionLanguageAdapter):
    def default_img_size(self, config) -> int:
        return _side(config.vision_config.image_size)

    def tokens_per_unit(self, config) -> int:
        side = _side(config.vision_config.image_size) // _side(config.vision_config.patch_size)
        return int(side * side * config.downsample_ratio**2)

    def image_placeholder(self, processor) -> str:
        # Qianfan-OCR's processor takes "<image>" and writes the context tokens itself
        return getattr(processor, "image_placeholder_token", None) or processor.image_token
