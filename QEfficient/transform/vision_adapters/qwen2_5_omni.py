"""Qwen2.5-Omni's thinker (images): Qwen2.5-VL's windowed vision tower (separate q/k/v projections) and 3-D rotary
text model; for images its rotary positions follow Qwen2-VL's rule. Audio and video inputs are not taken."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.qwen2_5_vl import Qwen2_5_VLAdapter


@dataclass(frozen=True)
class Qwen2_5OmniThinkerAdapter(Qwen2_5_VLAdapter):
    def image_placeholder(self, processor) -> str:
        return f"{processor.vision_bos_token}{processor.image_token}{processor.vision_eos_token}"
