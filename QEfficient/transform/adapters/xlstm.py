"""xLSTM (``xlstm``, xLSTM-7B): every block is an mLSTM layer (a matrix memory with exponential gating) and a
gated feed-forward, no attention and no convolution. Per head the layer keeps C [DHQK, DHV], n [DHQK] and the
stabiliser m [1]:

    m_t = max(logsigmoid(f_t) + m_{t-1}, i_t)
    C_t = exp(logsigmoid(f_t) + m_{t-1} - m_t) C_{t-1} + exp(i_t - m_t) k_t v_t^T      (n_t likewise with k_t)
    h_t = (q_t C_t) / (max(|q_t . n_t|, exp(-m_t)) + eps),    q scaled by DHQK^-1/2

with i and f the soft-capped gate pre-activations. Transformers runs it step by step for a prompt shorter than
``chunk_size`` and during decode, and chunkwise over whole chunks of it: the same recurrence. Here a prefill
chunk is one closed form (segment sums of the log forget gates, the running max as a max over the chunk).
The graph holds two states per recurrent layer, so n and m travel packed: ``conv_state.i`` [B, NH, DHQK + 1]
is n with m as its last column, ``ssm_state.i`` [B, NH, DHQK, DHV] is C. Zeros are transformers' initial
state (m = 0 included), so a chunk at position 0 starting from zeros is a fresh sequence.

xLSTMModel.forward hands each block transformers' state tuple, not the cache, so it is replaced; the head
soft-caps the logits by ``config.output_logit_soft_cap``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.xlstm.modeling_xlstm import soft_cap

from QEfficient.transform.adapters.recurrent import Mixer, RecurrentAdapter
from QEfficient.transform.recurrent_state import segment_sums


def mlstm_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    igate: torch.Tensor,
    fgate: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    valid: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The stabilised mLSTM recurrence over one chunk in closed form (no loop over the dynamic sequence axis).

    q, k [B, H, S, Dk]; v [B, H, S, Dv]; igate, fgate [B, H, S] (soft-capped pre-activations); state (C [B, H, Dk, Dv],
    n [B, H, Dk], m [B, H]); valid [B, S] bool, real positions leading each row: padding neither decays
    (log forget gate 0) nor writes (no input term), so the state after the chunk is the one after the last real
    position. Returns (h [B, H, S, Dv], (C, n, m) after the chunk), all float32 as transformers' kernels keep them.
    """
    q, k, v = q.float() * q.shape[-1] ** -0.5, k.float(), v.float()
    c0, n0, m0 = (t.float() for t in state)
    real = valid[:, None, :]  # [B, 1, S]
    log_f = torch.where(real, F.logsigmoid(fgate.float()), torch.zeros((), dtype=torch.float32))
    never = torch.full((), -torch.inf, device=q.device)
    seq = q.shape[2]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=q.device).tril()
    # log weight of input s in the state at t: forget gates over (s, t] (masked cumulative sums, no
    # cancellation between two running sums) plus i_s; -inf for s > t and for padding
    log_d = torch.where(causal & real[..., None, :], segment_sums(log_f) + igate.float()[..., None, :], never)  # [B, H, t, s]
    carried = torch.cumsum(log_f, dim=-1) + m0[..., None]  # [B, H, t]: the incoming state's log weight at t
    m = torch.maximum(carried, log_d.amax(dim=-1))  # m_t unrolled: max of the carried term and every input's
    decay = torch.exp(log_d - m[..., None])
    q_carried = q * torch.exp(carried - m)[..., None]
    scores = (q @ k.transpose(-1, -2)) * decay  # [B, H, t, s]
    numerator = q_carried @ c0 + scores @ v
    qn = (q_carried @ n0[..., None])[..., 0] + scores.sum(dim=-1)
    h = numerator / (torch.maximum(qn.abs(), torch.exp(-m)) + eps)[..., None]
    # the state after the last position: its row of the weights above (padding after the last real one is identity)
    m_last = m[..., -1]
    weights = decay[..., -1, :]  # [B, H, s]: exp(log weight of s at the end - m_last)
    scale = torch.exp(carried[..., -1] - m_last)[..., None]
    c = scale[..., None] * c0 + (k * weights[..., None]).transpose(-1, -2) @ v
    n = scale * n0 + (k * weights[..., None]).sum(dim=2)
    return h, (c, n, m_last)


def mlstm_layer_forward(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, None]:
    """xLSTMLayer.forward continuing from the layer's retained states (``state`` is a RecurrentStateCache)."""
    cache, config = state, self.config
    bsz, seq, _ = x.shape
    if config.weight_mode == "single":
        query, key, value, o_preact = self.q(x), self.k(x), self.v(x), self.ogate_preact(x)
        i_preact = soft_cap(self.igate_preact(x), cap_value=config.gate_soft_cap)
        f_preact = soft_cap(self.fgate_preact(x), cap_value=config.gate_soft_cap)
    else:  # "fused"
        splits = (self.qk_dim, 2 * self.qk_dim, 2 * self.qk_dim + self.v_dim)
        query, key, value, o_preact = torch.tensor_split(self.qkv_opreact(x), splits, dim=-1)
        if_preact = soft_cap(self.ifgate_preact(x), cap_value=config.gate_soft_cap)
        i_preact, f_preact = torch.tensor_split(if_preact, (config.num_heads,), dim=-1)
    query, key, value = (t.reshape(bsz, seq, config.num_heads, -1).transpose(1, 2) for t in (query, key, value))
    normaliser = cache.conv[self.layer_idx]  # [B, NH, DHQK + 1]: n, then m
    incoming = (cache.ssm[self.layer_idx], normaliser[..., :-1], normaliser[..., -1])
    h, (c, n, m) = mlstm_chunk(query, key, value, i_preact.transpose(1, 2), f_preact.transpose(1, 2), incoming, cache.valid, config.eps)
    cache.set_states(self.layer_idx, torch.cat([n, m[..., None]], dim=-1), c)
    h_norm = self.multihead_norm(h.to(x.dtype).transpose(1, 2)).reshape(bsz, seq, -1)
    return self.out_proj(self.ogate_act_fn(o_preact) * h_norm), None


def xlstm_model_forward(self, input_ids=None, inputs_embeds=None, cache=None, **kwargs) -> BaseModelOutput:
    """xLSTMModel.forward over the same blocks and final norm, each block's mLSTM layer reading ``cache``."""
    hidden = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
    for block in self.blocks:
        hidden, _ = block(hidden, cache)  # the block hands its ``state`` argument to the mLSTM layer
    return BaseModelOutput(last_hidden_state=self.out_norm(hidden))


def mlstm_state_shapes(layer: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    heads = layer.config.num_heads
    qk_head, v_head = layer.qk_dim // heads, layer.v_dim // heads
    return (heads, qk_head + 1), (heads, qk_head, v_head)


MLSTM_LAYER = Mixer(mlstm_layer_forward, mlstm_state_shapes)


@dataclass(frozen=True)
class XLSTMAdapter(RecurrentAdapter):
    """Its mLSTM layers are the recurrent layers (no KV cache); the model's loop is replaced, the logits soft-capped."""

    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {**super().module_forwards, "xLSTMModel": xlstm_model_forward}

    def recurrent_layers(self, hf_model):
        for index, block in enumerate(hf_model.base_model.blocks):
            block.mlstm_layer.layer_idx = index  # the index the retained states are keyed by
        return super().recurrent_layers(hf_model)

    def postprocess_logits(self, logits: torch.Tensor, config) -> torch.Tensor:
        # xLSTMForCausalLM: soft_cap(lm_head(hidden).float(), output_logit_soft_cap); None leaves them as they are
        return soft_cap(logits.float(), config.output_logit_soft_cap)
