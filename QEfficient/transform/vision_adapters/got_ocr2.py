"""GOT-OCR 2.0 (and PP-Chart2Table, its layout under another name): a SAM-style ViT (windowed and global
attention, relative positions) and two stride-2 convolutions plus a linear projector (HF's
``get_image_features``); Qwen2 text model. Each image gives (image_size / patch / 4)^2 tokens."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class GotOcr2Adapter(VisionLanguageAdapter):
    def image_token_id(self, config) -> int:
        return int(config.image_token_index)

    def tokens_per_unit(self, config) -> int:
        side = config.vision_config.image_size // config.vision_config.patch_size // 4
        return side * side
