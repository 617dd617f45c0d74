"""Step-3.7: a ViT (2-D axial rotary, a position table resampled to the patch grid, layer scale) whose patch grid
two stride-2 convolutions shrink 4x a side, a linear projector into the Step-3.5 text model (MoE, sliding-window
layers with their own head count, per-head output gates). A fixed number of image tokens per image: the global view.

DeepSeek-OCR 2's host side: the processor's local crops (``num_local_patches`` > 0) are refused with that reason."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from QEfficient.transform.vision_adapters.deepseek_ocr2 import DeepseekOcr2Adapter


@dataclass(frozen=True)
class Step3p7Adapter(DeepseekOcr2Adapter):
    local_crops_refusal = (
        "Step-3.7's local crops are not supported: give images its global view covers (its processor crops an image "
        "longer than its size, or one longer than 1.5:1)."
    )

    def default_img_size(self, config) -> int:
        return int(config.vision_config.image_size)

    def tokens_per_unit(self, config) -> int:
        vc = config.vision_config
        return (vc.image_size // vc.patch_size // 4) ** 2  # two stride-2 convolutions

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        return hf.model.multi_modal_projector(hf.model.vision_model(pixel_values).last_hidden_state)
