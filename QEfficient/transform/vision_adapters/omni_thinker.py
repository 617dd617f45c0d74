"""The thinkers (text out) of Qwen2.5-Omni and Qwen3-Omni-MoE, for images: Qwen2.5-VL's windowed vision tower
(separate q/k/v projections) and Qwen3-VL's DeepStack tower respectively, each with its 3-D rotary text model;
for images their rotary positions follow Qwen2-VL's rule. Audio and video inputs are not taken."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.qwen2_5_vl import Qwen2_5_VLAdapter
from QEfficient.transform.vision_adapters.qwen3_vl import Qwen3VLAdapter


def _omni_placeholder(processor) -> str:
    return f"{processor.vision_bos_token}{processor.image_token}{processor.vision_eos_token}"


@dataclass(frozen=True)
class Qwen2_5OmniThinkerAdapter(Qwen2_5_VLAdapter):
    def image_placeholder(self, processor) -> str:
        return _omni_placeholder(processor)


@dataclass(frozen=True)
class Qwen3OmniMoeThinkerAdapter(Qwen3VLAdapter):
    def image_placeholder(self, processor) -> str:
        return _omni_placeholder(processor)
