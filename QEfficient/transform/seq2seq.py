"""Encoder-decoder text models (T5, BART, Marian, mBART, Pegasus, M2M100, ...) in two exportable parts, run by the
Hugging Face model's own modules:

* the encoder: token ids and their mask -> every decoder layer's cross-attention keys and values, computed once per
  batch of inputs (one decoder step on a fresh transformers cache fills them, whatever the family calls its
  projections);
* a retained-state decoder step: the family's decoder and head over a static self-attention cache, scattered at
  ``position_ids`` and returned as ``*_RetainedState`` (updated in place by the runtime, as a causal LM's), reading the
  cross keys/values the encoder produced, which stay bound for the whole generation.

Rows of a batch step together (one position for all: the families place tokens by the cache's length).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

from QEfficient.transform.adapters import fsmt_steps, longformer
from QEfficient.transform.moe_op import traced_implementations
from QEfficient.transform.static_kv import STATIC_KV_ATTENTION, StaticKVCache, as_mask_kind, visibility_mask

# families whose attention adds the mask to a relative position bias: their decoder keeps its own copy of the config
# (still eager attention, not the static-KV function set below), which takes an additive mask
ADDITIVE_MASK_TYPES = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers"})
# families whose eager-only attention checks its additive masks' full [batch, 1, queries, keys] shape
FULL_ADDITIVE_MASK_TYPES = frozenset({"mvp", "led"})
# families whose decoder is called directly (transform/adapters/fsmt_steps.py); they take additive masks
DIRECT_DECODER_TYPES = frozenset({"fsmt"})
# families whose decoder keeps its own config (``config.decoder``), takes rotary positions and a mask per layer type
# (full and sliding-window attention, as Gemma 2's)
NESTED_DECODER_TYPES = frozenset({"t5gemma", "t5gemma2"})
# families whose decoder attends over its own keys and the encoder's in one softmax (T5Gemma 2's merged attention):
# the two are concatenated per decoder row, so the cross keys/values come one row per decoder row
MERGED_ATTENTION_TYPES = frozenset({"t5gemma2"})
# families whose encoder attends within a window and globally from the tokens marked so (LED's Longformer attention:
# transform/adapters/longformer.py); their encoder graph takes the global attention mask too
GLOBAL_ATTENTION_TYPES = frozenset({"led"})
# families whose decoder reads the encoder's pooled output, not its last hidden state (PP-FormulaNet's text config)
POOLED_ENCODER_TYPES = frozenset({"pp_formulanet_text"})


class _CrossCache:
    """The encoder's keys and values per decoder layer, as transformers' cross-attention reads them."""

    def __init__(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.layers = [SimpleNamespace(keys=k, values=v) for k, v in pairs]


class _SelfCache(StaticKVCache):
    """The static self-attention cache, with what the newer families' mask code asks of a transformers cache."""

    @property
    def is_sliding(self) -> list[bool]:
        return [False] * len(self.keys)

    is_linear = is_dummy = is_sliding  # every layer a full-attention one


class _StepCache(EncoderDecoderCache):
    """The decoder step's cache: the static self-attention cache and the ready cross keys/values; its length is the
    step's first position (where BART's and Marian's decoders place the step's tokens)."""

    def __init__(self, self_cache: StaticKVCache, cross: _CrossCache, position: torch.Tensor) -> None:  # noqa: D107
        self.self_attention_cache, self.cross_attention_cache = self_cache, cross
        self.is_updated = {i: True for i in range(len(cross.layers))}
        self.position = position

    def get_seq_length(self, layer_idx: int = 0):
        return self.position


class _EncoderPlaceholder(BaseModelOutput):
    """What the decoder step passes as the encoder's output (the cache holds what it would give); mixture-of-experts
    families also read its router logits."""

    router_logits = None


class _PooledEncoderPlaceholder(BaseModelOutputWithPooling):
    """The placeholder of a family whose decoder reads the encoder's pooled (projected) output (PP-FormulaNet)."""


def step_caches(position_ids: torch.Tensor, tensors: tuple[torch.Tensor, ...], num_layers: int) -> tuple[_SelfCache, _StepCache]:
    """A decoder step's caches from its graph inputs (``num_layers`` cross key/value pairs, then the self-attention
    cache): the static self-attention cache (whose ``retained()`` are the step's outputs) and the transformers cache
    the decoder reads."""
    cross, past = tensors[: 2 * num_layers], list(tensors[2 * num_layers :])
    self_cache = _SelfCache(past, position_ids)
    return self_cache, _StepCache(self_cache, _CrossCache(list(zip(cross[0::2], cross[1::2]))), position_ids[0, 0])


def decoder_layers(config) -> int:
    if getattr(config, "model_type", None) in NESTED_DECODER_TYPES:
        return config.decoder.num_hidden_layers
    return getattr(config, "decoder_layers", None) or getattr(config, "num_decoder_layers", None) or config.num_layers


class QEffSeq2SeqEncoder(nn.Module):
    """forward(input_ids [B,S], attention_mask [B,S]) -> (cross_key.0, cross_value.0, ...) each [B, heads, S, head_dim];
    LED's also takes global_attention_mask [B,S] (``GLOBAL_ATTENTION_TYPES``).

    ``spec``: the encoder graph's spec class (export/seq2seq_graph_specs.py), given by the model class: its names, axes and
    example inputs."""

    def __init__(self, hf_model: PreTrainedModel, spec: type) -> None:
        super().__init__()
        self.hf = hf_model
        self.config = hf_model.config
        self.spec = spec
        self.num_layers = decoder_layers(hf_model.config)

    def graph_spec(self) -> Any:
        return self.spec(self.num_layers)

    def dummy_inputs(self) -> tuple[torch.Tensor, ...]:
        if self.config.model_type in GLOBAL_ATTENTION_TYPES:
            return self.spec.dummy_inputs(longformer.padded_length(self.config, 6))
        return self.spec.dummy_inputs()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, global_attention_mask=None) -> tuple[torch.Tensor, ...]:
        # the cross cache without the config: a sliding-window layer's (T5Gemma's) would keep only its window
        cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache())
        if self.config.model_type in DIRECT_DECODER_TYPES:
            fsmt_steps.fill_cross_cache(self.hf, input_ids, attention_mask, cache)
        else:
            if self.config.model_type in GLOBAL_ATTENTION_TYPES:
                hidden = longformer.encoder_states(self.hf.get_encoder(), input_ids, attention_mask, global_attention_mask)
            else:
                hidden = self.hf.get_encoder()(input_ids=input_ids, attention_mask=self._encoder_mask(attention_mask)).last_hidden_state
            start = torch.zeros(input_ids.shape[0], 1, dtype=torch.int64)
            masks = {"encoder_attention_mask": attention_mask}
            if self.config.model_type in MERGED_ATTENTION_TYPES:
                masks = merged_attention_fill_masks(hidden)
            self.hf.get_decoder()(input_ids=start, encoder_hidden_states=hidden, cache=cache, **masks)
        return tuple(t for layer in cache.cross_attention_cache.layers for t in (layer.keys, layer.values))

    def _encoder_mask(self, attention_mask: torch.Tensor):
        """The encoder's mask: the [B, S] one, or T5Gemma 2's per layer type (windowed_encoder_masks)."""
        if self.config.model_type not in MERGED_ATTENTION_TYPES:
            return attention_mask
        return windowed_encoder_masks(self.config.encoder.text_config.sliding_window, attention_mask)


def windowed_encoder_masks(window: int, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """A bidirectional encoder's additive masks per layer type (T5Gemma 2's): the padding, and within the sliding
    window by the model's own rule (its ``sliding_window_mask_function``) evaluated on broadcast positions;
    transformers builds the windowed one with vmap, which tracing does not take."""
    from transformers.models.t5gemma2.modeling_t5gemma2 import sliding_window_mask_function

    low = torch.finfo(torch.float32).min
    padding = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * low
    positions = torch.arange(attention_mask.shape[1])
    rule = sliding_window_mask_function(window, is_causal=False)
    inside = rule(0, 0, positions[:, None], positions[None, :])
    return {"full_attention": padding, "sliding_attention": padding + (~inside).to(torch.float32) * low}


def merged_attention_fill_masks(hidden: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """The masks of the one decoder step that fills a merged-attention decoder's cross cache (T5Gemma 2's), given
    rather than built by transformers with vmap: every key visible (the cross keys/values do not depend on them)."""
    first = torch.ones(hidden.shape[0], 1, 1, 1, dtype=torch.bool)
    every = torch.ones(hidden.shape[0], 1, 1, hidden.shape[1], dtype=torch.bool)
    return {
        "attention_mask": {"full_attention": first, "sliding_attention": first},
        "encoder_attention_mask": {"full_attention": every},
    }


class QEffSeq2SeqDecoder(nn.Module):
    """forward(input_ids [B,S], position_ids [B,S], encoder_attention_mask [B,Ssrc], cross_key.0, cross_value.0, ...,
    past_key.0, past_value.0, ...) -> (logits [B,1,V] at the step's last position, past_key.0_RetainedState, ...)."""

    def __init__(self, hf_model: PreTrainedModel, kv_shape: tuple[int, int], config=None) -> None:
        """``kv_shape``: (heads, head_dim) of the decoder's self-attention cache (the encoder's cross keys' own);
        ``config``: the encoder-decoder's own config where the model nests it (Florence-2's BART ``text_config``)."""
        super().__init__()
        self.hf = hf_model
        self.config = config or hf_model.config
        self.num_layers = decoder_layers(self.config)
        # the config its decoder's attention reads (T5Gemma's decoder has its own)
        self.attention_config = self.config.decoder if self.config.model_type in NESTED_DECODER_TYPES else self.config
        self.heads, self.head_dim = kv_shape
        additive = ADDITIVE_MASK_TYPES | FULL_ADDITIVE_MASK_TYPES | DIRECT_DECODER_TYPES
        self.mask_kind = "additive" if self.config.model_type in additive else "visible"
        # the families whose cross-attention runs the static-KV attention function, which reads one row of cross
        # keys/values for all the decoder rows of an input (its beams); the others' own code wants one per row
        self.shared_cross = self.config.model_type not in additive | MERGED_ATTENTION_TYPES

    def kv_shape(self, batch_size: int, ctx_len: int) -> tuple[int, int, int, int]:
        return (batch_size, self.heads, ctx_len, self.head_dim)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, encoder_attention_mask: torch.Tensor, *tensors: torch.Tensor):
        self_cache, cache = step_caches(position_ids, tensors, self.num_layers)
        slots = torch.arange(self_cache.keys[0].shape[2], device=input_ids.device)
        masks = (visibility_mask(position_ids, slots), encoder_attention_mask[:, None, None, :].bool())
        if self.mask_kind == "additive":
            masks = tuple(as_mask_kind(m, "additive", torch.float32) for m in masks)
        if self.config.model_type in FULL_ADDITIVE_MASK_TYPES:
            masks = tuple(m.expand(-1, -1, input_ids.shape[1], -1) for m in masks)
        if self.config.model_type in DIRECT_DECODER_TYPES:
            logits = fsmt_steps.step_logits(self.hf, input_ids, encoder_attention_mask, masks[0], cache)
            return (logits[:, -1:].float(), *self_cache.retained())
        empty = torch.zeros(input_ids.shape[0], encoder_attention_mask.shape[1], 1)
        if self.config.model_type in POOLED_ENCODER_TYPES:
            placeholder = _PooledEncoderPlaceholder(last_hidden_state=empty, pooler_output=empty)
        else:
            placeholder = _EncoderPlaceholder(last_hidden_state=empty)
        extra = {}
        if self.config.model_type in NESTED_DECODER_TYPES:  # a mask per layer type, rotary positions
            window = getattr(self.attention_config, "sliding_window", None)
            sliding = visibility_mask(position_ids, slots, sliding=window) if window else masks[0]
            cross = masks[1].expand(-1, -1, input_ids.shape[1], -1)  # a row per query: merged attention concatenates it
            masks = ({"full_attention": masks[0], "sliding_attention": sliding}, {"full_attention": cross})
            extra["decoder_position_ids"] = position_ids
        with traced_implementations(self.attention_config, STATIC_KV_ATTENTION):
            logits = self.hf(
                encoder_outputs=placeholder,  # its keys and values are in the cache
                attention_mask=masks[1],
                decoder_input_ids=input_ids,
                decoder_attention_mask=masks[0],
                cache=cache,
                use_cache=True,
                cache_position=position_ids[0],
                **extra,
            ).logits
        return (logits[:, -1:].float(), *self_cache.retained())
