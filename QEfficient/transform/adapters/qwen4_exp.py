"""Qwen4-Exp's text model: Gated DeltaNet layers (Qwen3.5's mixer) beside attention layers whose QSA indexer
("indexed_attention") averages each run of ``indexer_compress_ratio`` visible keys into a block key, scores the
blocks, and lets each query see its ``indexer_budget / indexer_compress_ratio`` best blocks plus the incomplete
tail; every layer reads and writes ``hc_count`` residual streams (hyper-connections).

While a query sees no more than ``indexer_budget // ratio`` complete blocks (fewer than ``indexer_budget + ratio``
keys), HF's top-k takes every block and the selection is the causal mask itself: the graph runs the indexer as
that, and compile refuses a longer ``ctx_len``, where it would start to choose.

Why the model forward is restated: HF's keeps the history of positions on its cache object's layers for the
indexer (``cache.layers[...].indexer_position_ids``), which the static cache does not have and which only
the indexer's block scores read. Per-Layer Embeddings (``ple_layer_ids``: hashed n-grams of the previous
tokens through a dilated convolution) are not supported yet and refuse to export.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from transformers.modeling_outputs import MoeModelOutputWithPast

from QEfficient.transform.adapters.recurrent import RecurrentAdapter


def every_visible_key(self, hidden_states: torch.Tensor, position_embeddings, attention_mask: torch.Tensor, cache) -> torch.Tensor:
    """The QSA selection [B, 1, S, T] while every block is selected: each query's visible keys."""
    return attention_mask


def gated_residual_forward(self, hyper_input: torch.Tensor):
    """Qwen4ExpTextGatedResidual.forward, with the streams split by reshape: the exporter writes ``unflatten`` with
    the traced batch and length as constants, which would fix them in the graph."""
    normed = self.hc_norm(hyper_input)
    streams = (*normed.shape[:-1], self.hc_count, self.hidden_size)
    mix = torch.sigmoid(self.input_mix_weight_up(F.silu(self.input_mix_weight_down(normed) / self.hc_count)))
    mixed_input = (mix.reshape(streams) * normed.reshape(streams)).mean(dim=-2)
    if self.block_inject_weight is None:
        return mixed_input
    return mixed_input, hyper_input, 2 * torch.sigmoid(self.block_inject_weight(normed) / self.hc_count)


def qwen4_exp_text_forward(
    self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None, use_cache=None, **kwargs
) -> MoeModelOutputWithPast:
    """Qwen4ExpTextModel.forward on the static cache: ``attention_mask`` is the per-layer-type mask dict,
    ``position_ids`` [B, S] the text positions (the three rotary axes are equal for text), or [3, B, S] the
    image-text graph's 3-D rotary positions (the masks come from the cache positions, as HF's text axis)."""
    if self.config.ple_layer_ids:
        raise NotImplementedError("Qwen4-Exp Per-Layer Embeddings (ple_layer_ids) are not supported yet")
    hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
    if position_ids.ndim == 2:
        position_ids = position_ids[None].expand(3, -1, -1)
    position_embeddings = self.rotary_emb(hidden_states, position_ids)
    hidden_states = hidden_states.repeat(1, 1, self.config.hc_count)  # hc_count residual streams
    for decoder_layer in self.layers[: self.config.num_hidden_layers]:
        hidden_states = decoder_layer(
            hidden_states,
            position_embeddings=position_embeddings,
            attention_mask=attention_mask["indexed_attention"],
            conv_mask=None,
            cache=cache,
            **kwargs,
        )
    return MoeModelOutputWithPast(last_hidden_state=self.hyper_connection_mixer(hidden_states), cache=cache)


@dataclass(frozen=True)
class Qwen4ExpAdapter(RecurrentAdapter):
    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {
            **super().module_forwards,
            "Qwen4ExpTextQSAIndexer": every_visible_key,
            "Qwen4ExpTextModel": qwen4_exp_text_forward,
            "Qwen4ExpTextGatedResidual": gated_residual_forward,
        }

    def context_limit(self, config) -> tuple[int, str]:
        limit = config.indexer_budget + config.indexer_compress_ratio - 1
        return limit, (
            f"past {limit} keys (indexer_budget {config.indexer_budget} + indexer_compress_ratio "
            f"{config.indexer_compress_ratio} - 1) Qwen4-Exp's QSA indexer chooses which key blocks each query attends "
            "to, which the graph does not compute yet"
        )
