"""Inkling (inkling_text), Inkling 2 (inkling2_text) and Inkling 2 Loop (inkling2_loop_text).

Every layer is softmax attention ("hybrid": full, "hybrid_sliding": sliding window) with a KV cache; none is
linear attention (the "linear_attention" mask HF builds is only the padding mask of the convolutions). What
sets them apart:

* four short causal depthwise convolutions per layer, each with a residual: on the keys and values, and on
  the attention and MLP outputs (Inkling 2's full-attention layers mix keys and values with per-token taps
  projected from the layer input). Each keeps its last ``kernel - 1`` inputs as a retained conv state;
* a hidden-state conditioned relative position bias: each query mixes a trained bank of bias-vs-distance
  profiles into one bias per backward distance (zero past ``rel_extent``), added to the attention scores;
  Inkling 2 also gives each query one learned sink logit per head. HF builds the distances from its
  cache's offsets, one row for the whole batch; here they come from each row's positions and the static
  cache's slots, and the attention is computed here (the shared static-KV attention has neither);
* Inkling 2 Loop runs its middle layers ``loop_num_passes`` times (a loop over depth, not time): each pass
  has its own KV cache and conv states (HF appends cache layers after the model's own), so the cache holds
  ``total_num_hidden_layers`` layers.

Inkling 2's attention residuals over earlier blocks of layers are per-token softmaxes that call the model's
attention function with no mask: they run HF's eager one.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

from QEfficient.transform.adapters.recurrent import RecurrentAdapter
from QEfficient.transform.recurrent_state import RecurrentLayer, causal_conv

CONVS_PER_LAYER = 4  # k, v, post-attention, post-MLP (conv_idx 0..3)


def _state_key(cache_layer: int, conv_idx: int) -> int:
    """The key of one convolution's conv state: one per (cache layer, convolution)."""
    return cache_layer * CONVS_PER_LAYER + conv_idx


def _total_layers(config) -> int:
    """Cache layers: Inkling 2 Loop's repeated passes each have their own."""
    return getattr(config, "total_num_hidden_layers", config.num_hidden_layers)


def _last_inputs(full: torch.Tensor, n_real: torch.Tensor, width: int) -> torch.Tensor:
    """[B, C, width]: the ``width`` inputs of ``full`` [B, C, width + S] up to each row's last real one."""
    index = (n_real[:, None, None] + torch.arange(width, device=full.device)).expand(full.shape[0], full.shape[1], width)
    return torch.gather(full, 2, index)


def short_conv_forward(self, hidden_states: torch.Tensor, *args, cache=None, cache_offset: int = 0, **kwargs) -> torch.Tensor:
    """(Inkling|Inkling2)ShortConvolution: conv(x) + x, continuing from the retained conv state (Inkling 2
    scales the sum by 1/sqrt(kernel + 1)). Computed in float32 as HF does."""
    key = _state_key(self.layer_idx + cache_offset, self.conv_idx)
    x = hidden_states.float()
    out, state = causal_conv(x.transpose(1, 2), cache.conv[key], self.conv1d.weight.squeeze(1), self.conv1d.bias, cache.n_real)
    cache.set_states(key, state)
    out = out.transpose(1, 2) + x
    if "Inkling2" in type(self).__name__:
        out = out / math.sqrt(self.conv_kernel_size + 1)
    return out.to(hidden_states.dtype)


def dynamic_conv_forward(
    self, hidden_states: torch.Tensor, dynamic_input: torch.Tensor, cache=None, cache_offset: int = 0, **kwargs
) -> torch.Tensor:
    """Inkling2DynamicShortConvolution: taps = static weights + per-token weights shared within each head,
    over the retained last inputs and the chunk; tap ``lag`` weights the input ``lag`` steps back."""
    bsz, seq, hidden = hidden_states.shape
    kernel, width = self.conv_kernel_size, self.conv_kernel_size - 1
    dynamic = self.weight_proj(dynamic_input).float().view(bsz, seq, self.num_heads, 1, kernel)
    weights = self.static_weight.float().T.view(self.num_heads, -1, kernel) + dynamic
    x = hidden_states.float()
    key = _state_key(self.layer_idx + cache_offset, self.conv_idx)
    full = torch.cat([cache.conv[key].float(), x.transpose(1, 2)], dim=-1)  # [B, C, K-1+S]
    cache.set_states(key, _last_inputs(full, cache.n_real, width))
    # windows[..., lag] = the input lag steps back (slices, not unfold: S is a dynamic axis)
    windows = torch.stack([full[..., width - lag : full.shape[-1] - lag] for lag in range(kernel)], dim=-1)
    windows = windows.transpose(1, 2).reshape(bsz, seq, self.num_heads, -1, kernel)
    out = (windows * weights).sum(-1).reshape(bsz, seq, hidden)
    return ((out + x) / math.sqrt(2 * kernel + 1)).to(hidden_states.dtype)


def _attend(self, query, keys, values, mask, bias, sinks=None) -> torch.Tensor:
    """HF's eager attention with a position bias (and per-query sinks) over the static cache -> [B, S, H*D].
    query [B,H,S,D]; keys/values [B,Hkv,T,D]; mask bool [B,1,S,T]; bias [B,H,S,T]; sinks [B,H,S,1]."""
    bsz, heads, seq, _ = query.shape
    group = heads // keys.shape[1]
    keys, values = (t.repeat_interleave(group, dim=1) if group > 1 else t for t in (keys, values))
    scores = torch.matmul(query, keys.transpose(2, 3)) * self.scaling + bias
    scores = torch.where(mask, scores, torch.finfo(scores.dtype).min)
    if sinks is not None:  # one extra logit per query with a zero value: it only absorbs probability mass
        probs = torch.softmax(torch.cat([scores, sinks.to(scores.dtype)], dim=-1).float(), dim=-1)[..., :-1]
    else:
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    out = torch.matmul(probs.to(query.dtype), values).transpose(1, 2)
    return out.reshape(bsz, seq, -1).contiguous()


def _distance(cache, keys: torch.Tensor) -> torch.Tensor:
    """[B, 1, S, T]: each query's position minus each cache slot (a slot is the position it holds)."""
    positions = cache.kv.slots  # position_ids, padding moved to the last slot (its queries' outputs are unused)
    slots = torch.arange(keys.shape[2], device=keys.device)
    return (positions[:, :, None] - slots[None, None, :])[:, None]


def _gather_bias(rel_logits: torch.Tensor, distance: torch.Tensor, extent: int) -> torch.Tensor:
    """rel_logits [B,H,S,extent] -> bias [B,H,S,T] at each key's distance, 0 outside [0, extent)."""
    index = distance.clamp(0, extent - 1).expand(*rel_logits.shape[:2], -1, -1)
    return rel_logits.gather(-1, index).masked_fill((distance < 0) | (distance >= extent), 0.0)


def inkling_attention_forward(self, hidden_states: torch.Tensor, attention_mask, conv_mask=None, cache=None, **kwargs):
    """InklingAttention: q/k RMS-normed per head, k/v through short convolutions, a relative position bias,
    and (full layers) logarithmic scaling of queries and bias by position."""
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)
    query = self.q_norm(self.q_proj(hidden_states).view(hidden_shape)).transpose(1, 2)
    key = self.k_sconv(self.k_proj(hidden_states), cache=cache)
    value = self.v_sconv(self.v_proj(hidden_states), cache=cache)
    key = self.k_norm(key.view(hidden_shape)).transpose(1, 2)
    value = value.view(hidden_shape).transpose(1, 2)
    keys, values = cache.update(key, value, self.layer_idx)

    distance = _distance(cache, keys)
    relative = self.r_proj(hidden_states).view(*input_shape, self.num_heads, -1)
    bias = _gather_bias((relative @ self.rel_logits_proj.proj).transpose(1, 2), distance, self.rel_logits_proj.rel_extent)
    if not self.is_sliding and self.config.log_scaling_n_floor is not None:  # in float32, as HF
        positions = cache.kv.slots[:, None, :, None]
        tau = 1.0 + self.config.log_scaling_alpha * torch.log(((positions + 1).float() / self.config.log_scaling_n_floor).clamp(min=1.0))
        query = (query.float() * tau).to(query.dtype)
        bias = (bias.float() * tau).to(bias.dtype)
    return self.o_proj(_attend(self, query, keys, values, attention_mask, bias)), None


def inkling2_attention_forward(
    self,
    hidden_states: torch.Tensor,
    attention_mask=None,
    relative_distance=None,
    conv_mask=None,
    cache=None,
    key_hidden_states=None,
    value_hidden_states=None,
    cache_offset: int = 0,
    **kwargs,
):
    """Inkling2 (Loop) sliding and full attention: gated output, per-query sinks, relative position bias
    (HF's ``relative_distance`` is replaced by per-row distances to the cache slots)."""
    position_ids = kwargs["position_ids"]
    key_hidden_states = hidden_states if key_hidden_states is None else key_hidden_states
    value_hidden_states = hidden_states if value_hidden_states is None else value_hidden_states
    query = self.q_proj(hidden_states, position_ids)
    key = self.k_proj(key_hidden_states, cache=cache, cache_offset=cache_offset)
    value = self.v_proj(value_hidden_states, cache=cache, cache_offset=cache_offset)
    keys, values = cache.update(key, value, self.layer_idx + cache_offset)
    bias = self.relative_position_bias(hidden_states, _distance(cache, keys), position_ids)
    sinks = self.sink_proj(hidden_states).transpose(1, 2).unsqueeze(-1)
    out = _attend(self, query, keys, values, attention_mask, bias, sinks)
    return self.o_proj(out, hidden_states), None


def eager_forward(self, *args, **kwargs):
    """A module's own forward with HF's eager attention function (the block attention residuals attend over
    earlier layers' outputs with no mask, which the static-KV attention does not take)."""
    config = self.config
    previous, config._attn_implementation = config._attn_implementation, "eager"
    try:
        return type(self).forward(self, *args, **kwargs)
    finally:
        config._attn_implementation = previous


def _no_relative_distance(*args, **kwargs) -> None:
    return None  # the attention forwards above compute the distances per row


def inkling2_text_model_forward(self, *args, cache=None, **kwargs):
    """Inkling2 (Loop) TextModel's own forward, without HF's batch-wide relative distances (they read the
    offsets of a growing cache); Loop's per-pass cache layers already exist in the static cache."""
    module = sys.modules[type(self).__module__]
    original = module.get_relative_distance
    module.get_relative_distance = _no_relative_distance
    cache.layers = [None] * _total_layers(self.config)  # HF appends the loop passes' layers when it has only the model's
    try:
        return type(self).forward(self, *args, cache=cache, **kwargs)
    finally:
        module.get_relative_distance = original


@dataclass(frozen=True)
class InklingAdapter(RecurrentAdapter):
    """Every layer has a KV cache (sized for the wider of the sliding and full layers' heads) and four
    conv states; ``prefix`` is the model's class-name prefix (Inkling, Inkling2, Inkling2Loop)."""

    prefix: str = "Inkling"

    @property
    def module_forwards(self) -> dict[str, Callable]:
        p = self.prefix
        if p == "Inkling":
            return {"InklingShortConvolution": short_conv_forward, "InklingAttention": inkling_attention_forward}
        forwards = {
            f"{p}ShortConvolution": short_conv_forward,
            f"{p}DynamicShortConvolution": dynamic_conv_forward,
            f"{p}SlidingAttention": inkling2_attention_forward,
            f"{p}FullAttention": inkling2_attention_forward,
            f"{p}BlockAttentionResidual": eager_forward,
            f"{p}TextModel": inkling2_text_model_forward,
        }
        if p == "Inkling2Loop":
            forwards[f"{p}MessageAttentionResidual"] = eager_forward
        return forwards

    def attention_layers(self, config) -> list[int]:
        return list(range(_total_layers(config)))

    def kv_geometry(self, config) -> tuple[int, int, int]:
        n_kv = max(config.num_key_value_heads, config.swa_num_key_value_heads)
        return _total_layers(config), n_kv, max(config.head_dim, config.swa_head_dim)

    def recurrent_layers(self, hf_model) -> list[RecurrentLayer]:
        config = hf_model.config.get_text_config()  # a multimodal model's text config holds the loop's layout
        loop = range(getattr(config, "loop_layer_index_start", 0), getattr(config, "loop_layer_index_end", 0))
        passes = getattr(config, "loop_num_passes", 1)
        found = []
        for module in hf_model.modules():
            name = type(module).__name__
            if not name.startswith(self.prefix) or not name.endswith("ShortConvolution"):
                continue
            channels = module.static_weight.shape[1] if hasattr(module, "static_weight") else module.conv1d.weight.shape[0]
            shape = (channels, module.conv_kernel_size - 1)
            cache_layers = [module.layer_idx]
            if module.layer_idx in loop:  # the later passes' copies, where HF's cache_offset puts them
                first = config.num_hidden_layers + module.layer_idx - loop.start
                cache_layers += [first + p * len(loop) for p in range(passes - 1)]
            found += [RecurrentLayer(_state_key(layer, module.conv_idx), shape) for layer in cache_layers]
        return sorted(found, key=lambda layer: layer.index)

    def head_input(self, hf_model, hidden: torch.Tensor) -> torch.Tensor:
        # Inkling's muP output scale (in the text config of the image-text model)
        multiplier = getattr(hf_model.config.get_text_config(), "logits_mup_width_multiplier", None)
        return hidden / multiplier if self.prefix == "Inkling" and multiplier else hidden

    def postprocess_logits(self, logits: torch.Tensor, config) -> torch.Tensor:
        logits = super().postprocess_logits(logits, config)  # Inkling 2: final_logit_softcapping
        unpadded = config.unpadded_vocab_size
        if self.prefix == "Inkling" and unpadded is not None and unpadded < logits.shape[-1]:
            logits = logits[..., :unpadded]  # Inkling's head may be padded past the checkpoint's vocabulary
        return logits


INKLING_ADAPTERS = [
    InklingAdapter("inkling_text", prefix="Inkling"),
    InklingAdapter("inkling2_text", prefix="Inkling2"),
    InklingAdapter("inkling2_loop_text", prefix="Inkling2Loop"),
]


__all__ = ["INKLING_ADAPTERS", "InklingAdapter"]
