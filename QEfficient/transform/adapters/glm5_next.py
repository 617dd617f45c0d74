"""GLM-5.3-Flash's text model (glm5_next_text, the language model of glm5_next): Kimi delta attention layers
("linear_attention": Kimi-Linear's mixer, conv and SSM states retained) beside NoPE multi-latent attention
layers whose DSA indexer ("indexed_attention") scores pools of ``index_kpool`` keys and lets each query see its
``index_topk / index_kpool`` best complete pools plus the incomplete tail; every layer reads and writes
``hc_mult`` residual streams (DeepSeek-V4's hyper-connections, which export as HF writes them).

While a query sees no more than ``index_topk // index_kpool`` complete pools (fewer than ``index_topk +
index_kpool`` keys), HF's top-k takes every visible pool and the tail adds the rest: the selection is the causal
mask itself. The attention forward is restated without the indexer (which reads its own per-layer state on
HF's cache object) and compile refuses a longer ``ctx_len``, where the indexer would start to choose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from QEfficient.transform.adapters.recurrent import RecurrentAdapter


def attention_forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, cache=None, prev_topk_indices=None, **kwargs):
    """Glm5NextTextAttention.forward with the indexer's selection taken as the causal mask it equals within the
    context limit. The config requires NoPE (qk_rope_head_dim 0): the rotary key is empty, and a zero-width tensor
    does not survive ONNX (Reshape reads a 0 as "copy this dimension"), so the latent alone is cached (in both the
    key and the value slot: the static cache has both) and expanded into keys (k_nope) and values."""
    bsz, seq = hidden_states.shape[:-1]
    q_resid = self.q_a_layernorm(self.q_a_proj(hidden_states))
    query_states = self.q_b_proj(q_resid).view(bsz, seq, -1, self.qk_head_dim).transpose(1, 2)
    kv_pass = self.kv_a_proj_with_mqa(hidden_states)[..., : self.kv_lora_rank]
    latent = self.kv_a_layernorm(kv_pass).view(bsz, 1, seq, self.kv_lora_rank)
    latent, _ = cache.update(latent, latent, self.layer_idx)
    kv = self.kv_b_proj(latent).view(bsz, latent.shape[2], -1, self.qk_nope_head_dim + self.v_head_dim).transpose(1, 2)
    key_states, value_states = torch.split(kv, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
    interface = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
    kwargs.pop("position_ids", None)
    out, weights = interface(self, query_states, key_states, value_states, attention_mask, dropout=0.0, scaling=self.scaling, **kwargs)
    return self.o_proj(out.reshape(bsz, seq, -1)), weights, None


@dataclass(frozen=True)
class Glm5NextAdapter(RecurrentAdapter):
    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {**super().module_forwards, "Glm5NextTextAttention": attention_forward}

    def kv_geometry(self, config) -> tuple[int, int, int]:
        # one latent "head" of kv_lora_rank (the rotary key is empty: NoPE), as ArchAdapter's MLA branch, which
        # needs a rotary width to recognise multi-latent attention
        return len(self.attention_layers(config)), 1, config.kv_lora_rank

    def context_limit(self, config) -> tuple[int, str]:
        if not config.index_kpool_always_select_tail:
            # without the tail a query does not see its own incomplete pool: the selection is never the causal mask
            return 0, "index_kpool_always_select_tail=False (the indexer leaves out each query's incomplete pool) is not supported"
        limit = config.index_topk + config.index_kpool - 1
        return limit, (
            f"past {limit} keys (index_topk {config.index_topk} + index_kpool {config.index_kpool} - 1) GLM-5.3-Flash's "
            "DSA indexer chooses which key pools each query attends to, which the graph does not compute yet"
        )
