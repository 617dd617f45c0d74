"""State-space and hybrid models: which layers carry recurrent state, and the mixer forwards that
carry it through the graph (transform/recurrent_state.py describes the contract)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from QEfficient.transform.adapters.base import ArchAdapter
from QEfficient.transform.recurrent_state import RecurrentLayer

# layer kinds (config.layer_types / layers_block_type): recurrent mixers, and those with a KV cache
# (Falcon-H1's "hybrid" layers run attention and a mixer side by side; MLP/MoE-only layers have neither;
# Qwen4-Exp's "indexed_attention" is attention with a sparse-attention indexer)
STATE_ONLY_LAYER_KINDS = frozenset({"linear_attention", "mamba", "conv"})
KV_LAYER_KINDS = frozenset({"attention", "full_attention", "sliding_attention", "hybrid", "indexed_attention"})


@dataclass(frozen=True)
class Mixer:
    """A recurrent mixer class: the forward that runs it on the retained states, and its per-row
    (conv_state, ssm_state or None) shapes."""

    forward: Callable
    state_shapes: Callable[[nn.Module], tuple[tuple[int, ...], tuple[int, ...] | None]]
    max_chunk: int | None = None  # the longest prefill chunk the mixer's scan is exact for (None: any)


def layer_kinds(config) -> list[str]:
    kinds = getattr(config, "layers_block_type", None) or getattr(config, "layer_types", None)
    return list(kinds) if kinds else ["linear_attention"] * config.num_hidden_layers


@dataclass(frozen=True)
class RecurrentAdapter(ArchAdapter):
    """A model whose layers are recurrent mixers, attention layers, or both (hybrids)."""

    mixers: dict[str, Mixer] = field(default_factory=dict)  # mixer class name -> Mixer

    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {name: mixer.forward for name, mixer in self.mixers.items()}

    def attention_layers(self, config) -> list[int]:
        """Indices of the layers with a KV cache, in the order of the cache inputs."""
        return [i for i, kind in enumerate(layer_kinds(config)) if kind in KV_LAYER_KINDS]

    def kv_geometry(self, config) -> tuple[int, int, int]:
        n_attention = len(self.attention_layers(config))
        if not n_attention:  # a pure state-space model has no KV cache
            return 0, 1, 1
        _, n_kv, head_dim = super().kv_geometry(config)
        return n_attention, n_kv, head_dim

    def recurrent_layers(self, hf_model) -> list[RecurrentLayer]:
        found = [
            RecurrentLayer(
                module.layer_idx, *self.mixers[type(module).__name__].state_shapes(module), self.mixers[type(module).__name__].max_chunk
            )
            for module in hf_model.modules()
            if type(module).__name__ in self.mixers
        ]
        return sorted(found, key=lambda layer: layer.index)

    @staticmethod
    def recurrent_masks(masks):
        """Recurrent layers take no attention mask (padding is handled in the state update)."""
        return {**masks, **dict.fromkeys(STATE_ONLY_LAYER_KINDS)} if isinstance(masks, dict) else masks
