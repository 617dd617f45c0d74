"""Dory (NVIDIA Nemotron-Labs Dory): an nGPT-style decoder whose middle layers run as a loop. Input layers run
once, the recurrent section ``n_recurrent_loops`` times (each pass restarting from the normalised input-section
output plus the previous pass), then the output layers; the head scales each token's logit by a learned factor.

Why an adapter: DoryModel.forward extends transformers' cache object itself (it appends copies of the
recurrent layers' cache layers for the later loops), which the static cache cannot do. Its loop is restated
here over the static cache, whose slots are laid out as HF lays out its layers:

* ``per_loop`` (the default): loop ``i > 0`` writes its own copy of each recurrent layer's cache, stored
  after the model's layers, so the cache has ``num_hidden_layers + (loops - 1) * n_recurrent_layers`` layers;
* ``last_loop``: only the last loop writes; the earlier ones attend over the cached past and their own
  tokens without writing (the same keys as HF's concatenation of the past and the current tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers.modeling_outputs import BaseModelOutputWithPast

from QEfficient.transform.adapters.base import ArchAdapter


class _ReadOnlyCache:
    """The static cache as the earlier loops of ``last_loop`` read it: the current keys at their slots, the
    cached past elsewhere, and nothing kept (the last loop writes)."""

    def __init__(self, cache) -> None:
        self.cache = cache

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        kept = self.cache.keys[layer_idx], self.cache.values[layer_idx]
        keys, values = self.cache.update(key, value, layer_idx)
        self.cache.keys[layer_idx], self.cache.values[layer_idx] = kept
        return keys, values


def dory_model_forward(
    self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None, use_cache=None, **kwargs
) -> BaseModelOutputWithPast:
    """DoryModel.forward with the static cache: ``attention_mask`` is the per-layer-type mask dict."""
    hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
    position_embeddings = {
        kind: self.rotary_emb(hidden_states, position_ids, kind) for kind in {layer.attention_type for layer in self.layers}
    }

    def run(layer, hidden: torch.Tensor, layer_cache=cache, cache_offset: int = 0) -> torch.Tensor:
        kind = layer.attention_type
        return layer(
            hidden,
            attention_mask=attention_mask[kind],
            position_embeddings=position_embeddings[kind],
            cache=layer_cache,
            cache_offset=cache_offset,
            **kwargs,
        )

    config = self.config
    n_loops, start, n_recurrent = config.n_recurrent_loops, config.n_input_layers, config.n_recurrent_layers
    end = start + n_recurrent
    last_loop_only = config.recurrent_kv_cache_mode == "last_loop"
    for layer in self.layers[:start]:
        hidden_states = run(layer, hidden_states)
    input_hidden_states = self.norm(hidden_states)  # each loop restarts from the input section's output
    for loop_idx in range(n_loops):
        hidden_states = self.norm(hidden_states) + input_hidden_states
        if last_loop_only:
            loop_cache, offset = (cache if loop_idx == n_loops - 1 else _ReadOnlyCache(cache)), 0
        else:  # loop i > 0 writes its own copies, stored after the model's layers (HF's cache layout)
            loop_cache, offset = cache, (0 if loop_idx == 0 else len(self.layers) - end + loop_idx * n_recurrent)
        for layer in self.layers[start:end]:
            hidden_states = run(layer, hidden_states, loop_cache, offset)
    for layer in self.layers[config.num_hidden_layers - config.n_output_layers :]:
        hidden_states = run(layer, hidden_states)
    return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states), cache=cache)


@dataclass(frozen=True)
class DoryAdapter(ArchAdapter):
    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {"DoryModel": dory_model_forward}

    def kv_geometry(self, config) -> tuple[int, int, int]:
        n_layers, n_kv, head_dim = super().kv_geometry(config)
        if config.recurrent_kv_cache_mode != "last_loop":  # a cache per loop for each recurrent layer
            n_layers += (config.n_recurrent_loops - 1) * config.n_recurrent_layers
        return n_layers, n_kv, head_dim

    def head_output(self, hf_model, logits: torch.Tensor) -> torch.Tensor:
        head = hf_model.lm_head  # DoryLMHead: a learned scale per token, in float32 as HF computes it
        return logits.float() * (head.logit_scale.float() * head.logit_scale_factor)
