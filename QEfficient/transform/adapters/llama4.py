"""Llama 4's text model: its NoPE layers scale queries by a temperature from position floor_scale - 1 on."""

from __future__ import annotations

from dataclasses import dataclass

from QEfficient.transform.adapters.base import ArchAdapter


@dataclass(frozen=True)
class Llama4TextAdapter(ArchAdapter):
    def context_limit(self, config) -> tuple[int, str] | None:
        # its NoPE layers scale queries by a temperature that grows from position floor_scale - 1 on (read from the
        # cache's length in transformers, which the static cache does not give): exact below it
        nope = any(not use_rope for use_rope in (getattr(config, "no_rope_layers", None) or []))
        if getattr(config, "attn_temperature_tuning", False) and nope and getattr(config, "floor_scale", None):
            return config.floor_scale - 1, "Llama 4's attention temperature on its NoPE layers (from floor_scale on) is not applied yet"
        return None
