"""The speculative target form of the retained-state decoder: logits for every position of a chunk.

QEfficient's target model (``qaic_config={"speculative_model_type": "target"}``) scores the K+1
positions of a verify chunk in one run. The static-KV path (static_kv.py) is reused as is, and the LM
head is applied to the base model's hidden states at every position instead of each row's last one.
"""

from __future__ import annotations

import torch
from torch import nn

from QEfficient.transform.static_kv import QEffCausalLM


class QEffSpeculativeCausalLM(QEffCausalLM):
    """forward(...) -> (logits [B,S,V] float32 for every position, retained caches); padding positions
    (position_ids == -1) get logits too, which callers ignore."""

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor):
        hidden, cache = self.hidden_states(position_ids, list(past), input_ids=input_ids)
        bsz, seq, width = hidden.shape
        weight = self.lm_head.weight
        bias = self.lm_head.bias if self.lm_head.bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype)
        # 2-D, with a bias: exported as Gemm over the (possibly tied) weight itself, stored once (see static_kv.py).
        logits = nn.functional.linear(hidden.reshape(bsz * seq, width), weight, bias)
        logits = self.adapter.postprocess_logits(self.adapter.head_output(self.hf, logits), self.config)
        return (logits.float().reshape(bsz, seq, -1), *cache.retained())
