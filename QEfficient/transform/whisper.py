"""Whisper in two exportable parts: the encoder (with every decoder layer's cross-attention keys and
values, computed once per audio) and a retained-state decoder step.

The decoder is the HF model's own modules run in a static-cache order: each layer scatters its new
self-attention keys/values into fixed ``[B, heads, ctx_len, head_dim]`` tensors at ``position_ids``
(the scatter's output is the graph's ``*_RetainedState``, so the runtime updates the cache in place,
as for causal LMs: runtime/ort_session.py), and attends over the cross keys/values the encoder
graph produced, which stay bound for the whole generation.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.static_kv import static_kv_attention, visibility_mask

logger = logging.getLogger(__name__)


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, T, H*D] -> [B, H, T, D]."""
    b, t, _ = x.shape
    return x.view(b, t, n_heads, -1).transpose(1, 2)


class QEffWhisperEncoder(nn.Module):
    """forward(input_features [B, n_mels, 2*max_source_positions]) -> (cross_key.0, cross_value.0, ...)
    each [B, decoder heads, max_source_positions, head_dim]."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.hf = hf_model
        self.config = hf_model.config
        self.num_layers = hf_model.config.decoder_layers

    def forward(self, input_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.hf.model.encoder(input_features).last_hidden_state
        heads = self.config.decoder_attention_heads
        out = []
        for layer in self.hf.model.decoder.layers:
            attn = layer.encoder_attn
            out += [_heads(attn.k_proj(hidden), heads), _heads(attn.v_proj(hidden), heads)]
        return tuple(out)


class QEffWhisperDecoder(nn.Module):
    """forward(input_ids [B,S], position_ids [B,S] (-1 = padding), cross_key.0, cross_value.0, ...,
    past_key.0, past_value.0, ...) -> (logits [B,1,V] at each row's last real position,
    past_key.0_RetainedState, past_value.0_RetainedState, ...), and where the checkpoint names alignment heads
    (``generation_config.alignment_heads``) their cross-attention probabilities after the rest: [audios, heads, rows per
    audio * S, frames] (an audio's rows folded as the attention reads them; one row per audio: [B, heads, S, frames])."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.hf = hf_model
        self.config = hf_model.config
        self.num_layers = hf_model.config.decoder_layers
        self.num_heads = hf_model.config.decoder_attention_heads
        self.head_dim = hf_model.config.d_model // self.num_heads
        heads = sorted((int(layer), int(head)) for layer, head in getattr(hf_model.generation_config, "alignment_heads", None) or [])
        if any(not (0 <= layer < self.num_layers and 0 <= head < self.num_heads) for layer, head in heads):
            # distilled checkpoints keep their teacher's heads: reading some of them would give other times than transformers'
            logger.warning(
                "generation_config.alignment_heads %s name layers or heads this model does not have (%d decoder layers of %d "
                "heads): token timestamps are not available; set its own alignment heads to get them.",
                heads,
                self.num_layers,
                self.num_heads,
            )
            heads = []
        # sorted: the graph outputs them layer by layer (token timestamps average over heads: the order does not matter)
        self.alignment_heads = tuple(heads)

    def kv_shape(self, batch_size: int, ctx_len: int) -> tuple[int, int, int, int]:
        return (batch_size, self.num_heads, ctx_len, self.head_dim)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = 2 * self.num_layers
        cross, past = tensors[:n], list(tensors[n:])
        decoder = self.hf.model.decoder
        ctx_len = past[0].shape[2]
        real_pos = position_ids.clamp(min=0)
        hidden = decoder.embed_tokens(input_ids) * decoder.embed_scale + decoder.embed_positions.weight[real_pos]
        # Padding (-1) writes to the last slot, which no real query sees before a real write lands there.
        slots = torch.where(position_ids < 0, ctx_len - 1, position_ids)
        mask = visibility_mask(position_ids, torch.arange(ctx_len, device=input_ids.device))
        index = slots[:, None, :, None].expand(-1, self.num_heads, -1, self.head_dim)
        scaling = self.head_dim**-0.5
        retained, aligned = [], []
        for i, layer in enumerate(decoder.layers):
            attn = layer.self_attn
            h = layer.self_attn_layer_norm(hidden)
            key = past[2 * i].scatter(2, index, _heads(attn.k_proj(h), self.num_heads).to(past[2 * i].dtype))
            value = past[2 * i + 1].scatter(2, index, _heads(attn.v_proj(h), self.num_heads).to(past[2 * i + 1].dtype))
            retained += [key, value]
            out, _ = static_kv_attention(attn, _heads(attn.q_proj(h), self.num_heads), key.to(h.dtype), value.to(h.dtype), mask, scaling)
            hidden = hidden + attn.out_proj(out.reshape(*h.shape))

            cross_attn = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(hidden)
            everything = torch.ones(1, 1, 1, 1, dtype=torch.bool, device=h.device)
            query = _heads(cross_attn.q_proj(h), self.num_heads)
            heads = [head for at, head in self.alignment_heads if at == i]
            # one row of cross keys/values per audio: the attention function reads it once for all the audio's beams
            out, probs = static_kv_attention(cross_attn, query, cross[2 * i], cross[2 * i + 1], everything, scaling, keep_probs=bool(heads))
            if heads:  # [audios, H, 1, rows per audio * S, frames]: the heads' rows, as computed
                aligned.append(probs.index_select(1, torch.tensor(heads))[:, :, 0])
            hidden = hidden + cross_attn.out_proj(out.reshape(*h.shape))

            h = layer.final_layer_norm(hidden)
            hidden = hidden + layer.fc2(layer.activation_fn(layer.fc1(h)))
        # only each row's last real position reaches the output projection
        last = position_ids.argmax(dim=1)
        hidden = hidden[torch.arange(hidden.shape[0]), last]
        logits = self.hf.proj_out(decoder.layer_norm(hidden))[:, None].float()
        if aligned:
            return (logits, *retained, torch.cat(aligned, dim=1))
        return (logits, *retained)
