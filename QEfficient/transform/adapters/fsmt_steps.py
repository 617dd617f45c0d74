"""FSMT (fairseq's WMT19 translation models) as a text encoder-decoder step (transform/seq2seq.py): its decoder takes
the encoder's padding mask and its own masks positionally, builds no mask at all when a cache is used, and applies the
output projection itself, so both graphs call the decoder directly instead of the model's forward."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel


def fill_cross_cache(hf: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache) -> None:
    """Run the encoder, then one decoder step that writes every layer's cross keys and values into ``cache``."""
    hidden = hf.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    start = torch.zeros(input_ids.shape[0], 1, dtype=torch.int64)
    hf.get_decoder()(start, hidden, attention_mask, None, None, cache=cache, use_cache=True)


def step_logits(
    hf: PreTrainedModel, input_ids: torch.Tensor, encoder_attention_mask: torch.Tensor, self_mask: torch.Tensor, cache
) -> torch.Tensor:
    """Logits [B, S, V] of one decoder step: ``self_mask`` additive [B, 1, S, slots] over the static cache,
    ``encoder_attention_mask`` the inputs' 0/1 mask; the cross keys and values are in ``cache``."""
    placeholder = torch.zeros(input_ids.shape[0], encoder_attention_mask.shape[1], 1)  # the cache holds what it would give
    return hf.get_decoder()(input_ids, placeholder, encoder_attention_mask, None, self_mask, cache=cache, use_cache=True)[0]
