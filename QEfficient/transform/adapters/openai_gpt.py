"""The original GPT (``openai-gpt``) keeps no cache in transformers: every generation step reruns the
whole sequence, its attention taking causality from a buffer. Its model forward is restated here
around the static cache (the same embeddings, blocks and weights): keys and values go to the cache,
attention runs over the cache with the shared static-KV attention."""

from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutput


def _attention(attn, x: torch.Tensor, mask: torch.Tensor, cache, layer_idx: int) -> torch.Tensor:
    from QEfficient.transform.static_kv import static_kv_attention  # the stage that calls this forward

    query, key, value = attn.c_attn(x).split(attn.split_size, dim=2)
    query, key, value = (t.view(*t.shape[:2], attn.n_head, -1).transpose(1, 2) for t in (query, key, value))
    key, value = cache.update(key, value, layer_idx)
    scaling = value.shape[-1] ** -0.5 if attn.scale else 1.0
    out, _ = static_kv_attention(attn, query, key, value, mask, scaling=scaling)
    return attn.c_proj(out.reshape(*x.shape[:2], -1))


def openai_gpt_model_forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, position_ids=None, cache=None, **kwargs):
    """OpenAIGPTModel.forward with a cache: post-norm blocks, ``ln_1(x + attn(x))`` then ``ln_2(n + mlp(n))``."""
    if cache is None:  # the model used as transformers' own, outside our wrapper
        return type(self).forward(self, input_ids, attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
    hidden = (self.tokens_embed(input_ids) if inputs_embeds is None else inputs_embeds) + self.positions_embed(position_ids)
    for i, block in enumerate(self.h):
        normed = block.ln_1(hidden + _attention(block.attn, hidden, attention_mask, cache, i))
        hidden = block.ln_2(normed + block.mlp(normed))
    return BaseModelOutput(last_hidden_state=hidden)
