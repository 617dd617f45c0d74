"""RWKV (v4): every block is a recurrent "time mix" (the WKV recurrence) and a "channel mix", each reading the
previous token's input through a token shift. A block's state is the two shifted inputs [2, hidden] (the
graph's conv state) and the WKV numerator, denominator and their common exponent [3, attention_hidden]
(its SSM state): the real numerator is ``num * exp(exponent)``, as in transformers' CPU recurrence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from QEfficient.transform.adapters.recurrent import Mixer, RecurrentAdapter

_NEVER = -1e30  # the exponent of an empty sum (transformers starts its state at -1e30 too)


def _token_shift(x: torch.Tensor, state: torch.Tensor, n_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, S, H], state [B, H] (the input before the chunk) -> (the previous input of every position,
    the new state: the input at each row's last real position, or the old state for a row without one)."""
    full = torch.cat([state[:, None].to(x.dtype), x], dim=1)
    index = n_real.view(-1, 1, 1).expand(x.shape[0], 1, x.shape[2])
    return full[:, :-1], torch.gather(full, 1, index)[:, 0]


def _mix(x: torch.Tensor, shifted: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    return x * ratio + shifted * (1 - ratio)


def _weighted(exponents: torch.Tensor, weights: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """sum over the last axis of weights * exp(exponents - top); a weight of 0 drops a term whatever its exponent."""
    return (torch.exp(exponents - top[..., None]) * weights).sum(dim=-1)


def wkv(
    time_decay: torch.Tensor, time_first: torch.Tensor, key: torch.Tensor, value: torch.Tensor, state: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The WKV recurrence over one chunk in closed form (no loop over the dynamic sequence axis).

    key, value [B, S, A]; state [B, 3, A] (numerator, denominator, exponent); valid [B, S] bool (padding
    decays nothing and adds nothing). Output at t: (sum over s < t of e^{(t-1-s) w + k_s} v_s + e^{u + k_t} v_t
    + the incoming state decayed t times) over the same sum without v, w = -exp(time_decay), u = time_first.
    Each sum is taken relative to its largest exponent, as transformers' recurrence keeps it.
    Returns (out [B, S, A], the state after the chunk)."""
    k, v = key.float().transpose(1, 2), value.float().transpose(1, 2)  # [B, A, S]
    real = valid[:, None, :]  # [B, 1, S]
    num, den, exponent = state.float().unbind(1)  # [B, A]
    never = torch.full((), _NEVER)
    exponent = torch.where(den > 0, exponent, never)  # a fresh (zeroed) state holds nothing
    w = -torch.exp(time_decay.float())[None, :, None]  # [1, A, 1]
    # Decays as w times a whole number of steps (real positions lead each row), not differences of running
    # sums: a fast-decaying channel's running sum grows large and would lose the exponents' precision.
    steps = torch.arange(k.shape[-1], device=k.device).to(k.dtype)
    gaps = steps[:, None] - steps[None, :]  # [t, s]: t - s
    pairs = w[..., None] * (gaps - 1) + k[..., None, :]  # [B, A, t, s]: key s read at t
    pairs = torch.where(gaps == 0, (time_first.float()[None, :, None] + k)[..., None], pairs)  # t's own key, with the bonus u
    counted = (gaps >= 0) & real[..., None, :]  # [B, 1, t, s]
    pairs = torch.where(counted, pairs, never)  # later keys would overflow exp(); the weights drop them anyway
    carried = exponent[..., None] + w * steps  # [B, A, t]
    top = torch.maximum(pairs.amax(dim=-1), carried)
    scale, weights = torch.exp(carried - top), counted.float()
    numerator = _weighted(pairs, weights * v[..., None, :], top) + scale * num[..., None]
    out = numerator / (_weighted(pairs, weights, top) + scale * den[..., None])
    # the state after the last real position: every real key decayed to it, and the incoming state
    n_real = valid.sum(dim=1).to(k.dtype)[:, None, None]  # [B, 1, 1]
    ends = torch.where(real, w * (n_real - 1 - steps) + k, never)  # [B, A, s]
    carried = exponent + (w * n_real)[..., 0]
    top = torch.maximum(ends.amax(dim=-1), carried)
    scale, weights = torch.exp(carried - top), real.float()
    new_state = [_weighted(ends, weights * v, top) + scale * num, _weighted(ends, weights, top) + scale * den, top]
    return out.transpose(1, 2), torch.stack(new_state, dim=1)


def rwkv_block_forward(self, hidden: torch.Tensor, cache=None, **kwargs) -> torch.Tensor:
    """RwkvBlock.forward continuing from the block's retained states (``cache`` is a RecurrentStateCache)."""
    if self.layer_id == 0:
        hidden = self.pre_ln(hidden)
    shifts = cache.conv[self.layer_id]
    att, ffn = self.attention, self.feed_forward
    x = self.ln1(hidden)
    shifted, att_last = _token_shift(x, shifts[:, 0], cache.n_real)
    receptance = torch.sigmoid(att.receptance(_mix(x, shifted, att.time_mix_receptance)))
    key, value = att.key(_mix(x, shifted, att.time_mix_key)), att.value(_mix(x, shifted, att.time_mix_value))
    mixed, wkv_state = wkv(att.time_decay, att.time_first, key, value, cache.ssm[self.layer_id], cache.valid)
    hidden = hidden + att.output(receptance * mixed.to(key.dtype))
    x = self.ln2(hidden)
    shifted, ffn_last = _token_shift(x, shifts[:, 1], cache.n_real)
    key = torch.square(torch.relu(ffn.key(_mix(x, shifted, ffn.time_mix_key))))
    hidden = hidden + torch.sigmoid(ffn.receptance(_mix(x, shifted, ffn.time_mix_receptance))) * ffn.value(key)
    cache.set_states(self.layer_id, torch.stack([att_last, ffn_last], dim=1), wkv_state)
    return hidden


def rwkv_model_forward(self, input_ids=None, inputs_embeds=None, cache=None, **kwargs) -> BaseModelOutput:
    """RwkvModel.forward over the blocks above: the same layers, halving and final norm, states in ``cache``."""
    hidden = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
    for index, block in enumerate(self.blocks):
        hidden = block(hidden, cache=cache)
        if self.layers_are_rescaled and self.config.rescale_every > 0 and (index + 1) % self.config.rescale_every == 0:
            hidden = hidden / 2
    return BaseModelOutput(last_hidden_state=self.ln_out(hidden))


def rwkv_state_shapes(block: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (2, block.config.hidden_size), (3, block.attention.attention_hidden_size)


@dataclass(frozen=True)
class RwkvAdapter(RecurrentAdapter):
    """Its blocks are the recurrent layers; the model's own loop is replaced too, since it hands the blocks
    transformers' state list rather than the cache."""

    @property
    def module_forwards(self) -> dict[str, Callable]:
        return {**super().module_forwards, "RwkvModel": rwkv_model_forward}

    def recurrent_layers(self, hf_model):
        base = hf_model.base_model
        if not base.training and not base.layers_are_rescaled:
            base._rescale_layers()  # what transformers does at its first inference call: the exported weights are these
        for block in base.blocks:
            block.layer_idx = block.layer_id  # the index the retained states are keyed by
        return super().recurrent_layers(hf_model)


RWKV_BLOCK = Mixer(rwkv_block_forward, rwkv_state_shapes)
