"""EXAONE 4.5: Qwen2.5-VL's vision tower (windowed attention, any image size) with grouped-query attention,
and an EXAONE 4 text model with plain 1-D positions (no 3-D rotary): Qwen2.5-VL's vision graph and host side,
the default language graph."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.vision_adapters.qwen2_5_vl import Qwen2_5_VLAdapter
from QEfficient.transform.vision_adapters.qwen2_vl import CachePositionsRotary


@dataclass(frozen=True)
class Exaone4_5Adapter(CachePositionsRotary, Qwen2_5_VLAdapter):
    """The tower's grouped-query attention is handled by the shared vision block (qwen2_vl._vision_block)."""
