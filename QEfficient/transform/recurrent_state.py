"""Recurrent state (Mamba-style convolution and SSM states) as retained-state graph inputs/outputs.

A recurrent layer carries two tensors from one step to the next, kept in place by the runtime like
the KV cache: ``conv_state.i`` [B, conv_dim, kernel - 1], the last inputs of its causal depthwise
convolution, and ``ssm_state.i`` [B, d_inner, d_state] (Mamba) or [B, heads, head_dim, d_state]
(Mamba-2), the state of its selective scan. The graph contract:

* a row whose chunk starts at position 0 starts a new sequence: its incoming states are taken as
  zeros, so a slot reused by a new request (continuous batching) needs no reset by the runtime;
* padding (``position_ids == -1``, right-padded chunks and idle rows) leaves both states unchanged:
  the new conv state is gathered after each row's last real input, and the scan's step size ``dt``
  is zero at padded positions (decay ``exp(0) = 1``, input ``dt * x = 0``);
* the scan runs over the whole chunk at once, in closed form (no loop over the sequence, whose
  length is a dynamic axis of the graph): position t sums the inputs s <= t weighted by
  ``exp(A * sum(dt over (s, t]))``, the same segment sums as transformers' Mamba-2 reference path.
  Its cost grows with the square of the chunk length, which is the prefill chunk, not the prompt.

The mixer forwards that use these helpers live in transform/adapters/ (one file per family).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class RecurrentLayer:
    """One layer's recurrent mixer: its layer index and the per-row shapes of its states (a short
    convolution without a scan, LFM2's, has no SSM state)."""

    index: int
    conv_shape: tuple[int, ...]
    ssm_shape: tuple[int, ...] | None = None
    max_chunk: int | None = None  # the longest chunk its scan is exact for (None: any)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [self.conv_shape] if self.ssm_shape is None else [self.conv_shape, self.ssm_shape]


def segment_sums(a: torch.Tensor) -> torch.Tensor:
    """[..., S] -> [..., S(t), S(s)]: sum of a over (s, t] for s <= t, 0 above the diagonal.

    Masked cumulative sums, not differences of one cumulative sum, so no cancellation error.
    """
    seq = a.shape[-1]
    expanded = a[..., None].expand(*a.shape, seq)  # [..., t', s] = a[t']
    lower = torch.ones(seq, seq, dtype=torch.bool, device=a.device).tril(-1)
    return torch.cumsum(expanded.masked_fill(~lower, 0), dim=-2)


def _causal(seq_like: torch.Tensor) -> torch.Tensor:
    """bool [S(t), S(s)]: s <= t."""
    seq = seq_like.shape[-1]
    return torch.ones(seq, seq, dtype=torch.bool, device=seq_like.device).tril()


def causal_decay(a: torch.Tensor) -> torch.Tensor:
    """exp(segment sums) on and below the diagonal, 0 above: [..., S(t), S(s)] decay from s to t."""
    return torch.where(_causal(a), torch.exp(segment_sums(a)), torch.zeros((), dtype=a.dtype))


def causal_conv(
    x: torch.Tensor, state: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, n_real: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise causal convolution continuing from ``state``.

    x [B, C, S], state [B, C, K-1], weight [C, K], n_real [B] real (leading) positions of each row.
    Returns (out [B, C, S], new state [B, C, K-1]: the K-1 inputs up to each row's last real one).
    """
    full = torch.cat([state.to(x.dtype), x], dim=-1)
    out = F.conv1d(full, weight[:, None, :], bias, groups=x.shape[1])
    width = state.shape[-1]
    index = (n_real[:, None, None] + torch.arange(width, device=x.device)).expand(x.shape[0], x.shape[1], width)
    return out, torch.gather(full, 2, index)


def selective_scan(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mamba's selective scan with a diagonal A [D, N], from ``state`` [B, D, N].

    x, dt [B, D, S] (dt after softplus, 0 at padding); B, C [B, S, N]. h_t = exp(A dt_t) h_{t-1} + dt_t B_t x_t,
    y_t = C_t . h_t. Returns (y [B, D, S] without the D skip, final state [B, D, N]).
    """
    # exp(A * sum of dt over (s, t]) for s <= t: [B, D, t, s, N] (A < 0, so every exponent is <= 0)
    seg = segment_sums(dt)[..., None] * A[None, :, None, None, :]
    decay = torch.where(_causal(dt)[..., None], torch.exp(seg), torch.zeros((), dtype=dt.dtype))
    inputs = dt[..., None] * B.float()[:, None] * x.float()[..., None]  # [B, D, s, N]: (dt_s B_s) x_s, as transformers rounds it
    from_start = torch.exp(torch.cumsum(dt, dim=-1)[..., None] * A[None, :, None, :])  # [B, D, t, N]: decay of the incoming state
    # every position's state, then its output (the order of transformers' recurrence: state, then C)
    states = (decay * inputs[:, :, None]).sum(dim=3) + from_start * state.float()[:, :, None]  # [B, D, t, N]
    y = (states * C.float()[:, None]).sum(dim=-1)
    final = states[:, :, -1]  # padding (dt = 0) after the last real position leaves the state as it was
    return y, final


def ssd_scan(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mamba-2's scan (scalar A per head) over one chunk, from ``state`` [B, H, P, N].

    x [B, S, H, P]; dt [B, S, H] (after softplus and clamp, 0 at padding); A [H]; B, C [B, S, H, N]
    (groups already repeated to heads). Returns (y [B, S, H, P] without the D skip, final state).
    """
    a = (dt * A[None, None, :]).permute(0, 2, 1)  # [B, H, S]
    decay = causal_decay(a)  # [B, H, t, s]
    xdt = x.float() * dt[..., None].float()
    scores = torch.einsum("bthn,bshn->bhts", C.float(), B.float()) * decay
    y = torch.einsum("bhts,bshp->bthp", scores, xdt)
    from_start = torch.exp(torch.cumsum(a, dim=-1))  # [B, H, t]
    y = y + torch.einsum("bthn,bhpn->bthp", C.float(), state.float()) * from_start.permute(0, 2, 1)[..., None]
    final = from_start[:, :, -1, None, None] * state.float() + torch.einsum("bshn,bhs,bshp->bhpn", B.float(), decay[:, :, -1], xdt)
    return y, final


# (I + L)^-1 of the delta rule's strictly lower triangular L as prod_j (I + (-L)^(2^j)): exact once 2^j
# reaches the chunk length, so this many doublings serve chunks of up to 2^DELTA_RULE_DOUBLINGS positions.
DELTA_RULE_DOUBLINGS = 8
DELTA_RULE_MAX_CHUNK = 2**DELTA_RULE_DOUBLINGS


def gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gated delta rule over one chunk, from ``state`` [B, H, Dk, Dv] (transformers' chunked form with
    the whole input as one chunk): S_t = diag(exp(g_t)) S_{t-1} - beta_t k_t (k_t^T S) + beta_t k_t v_t^T, o_t = S_t^T q_t.

    q, k [B, S, H, Dk] (normalised and scaled as the model does, heads already matched to v); v [B, S, H, Dv];
    beta [B, S, H]; g the log decay, [B, S, H] (one per head: Gated DeltaNet) or [B, S, H, Dk] (one per key
    channel: Kimi delta attention); beta and g are 0 at padding. Returns (o [B, S, H, Dv], final state).
    """
    q, k, v = (t.transpose(1, 2).float() for t in (q, k, v))  # [B, H, S, D]
    beta = beta.transpose(1, 2).float()
    g = g.transpose(1, 2).float()  # [B, H, S] or [B, H, S, Dk]
    per_channel = g.dim() == 4
    gates = g if per_channel else g[..., None]  # [B, H, S, G], G = Dk or 1
    causal = _causal(q.transpose(-1, -2))
    diagonal = causal & causal.transpose(0, 1)
    decay = causal_decay(gates.transpose(-1, -2)).permute(0, 1, 3, 4, 2)  # [B, H, t, s, G]: exp(sum of g over (s, t])
    k_beta, v_beta = k * beta[..., None], v * beta[..., None]

    def pairs(left: torch.Tensor) -> torch.Tensor:  # [B, H, t, s]: sum_d left_t,d k_s,d decay_t,s,d
        if per_channel:
            return torch.einsum("bhtd,bhsd,bhtsd->bhts", left, k, decay)
        return (left @ k.transpose(-1, -2)) * decay[..., 0]

    zero = torch.zeros((), dtype=decay.dtype)
    power = -torch.where(causal & ~diagonal, pairs(k_beta), zero)
    inverse = torch.where(diagonal, torch.ones((), dtype=decay.dtype), zero) + power
    for _ in range(DELTA_RULE_DOUBLINGS - 1):
        power = power @ power
        inverse = inverse + inverse @ power
    cum = torch.cumsum(gates, dim=2)  # [B, H, S, G]
    new_values = inverse @ v_beta
    k_cumdecay = inverse @ (k_beta * cum.exp())
    v_new = new_values - k_cumdecay @ state.float()
    out = (q * cum.exp()) @ state.float() + torch.where(causal, pairs(q), zero) @ v_new
    last = cum[:, :, -1:]  # [B, H, 1, G]
    final = state.float() * last.exp().transpose(-1, -2) + (k * (last - cum).exp()).transpose(-1, -2) @ v_new
    return out.transpose(1, 2), final


def _restart(state: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """Zeros for the rows that start a new sequence (``fresh`` [B] bool), the incoming state for the others."""
    return torch.where(fresh.view(-1, *[1] * (state.dim() - 1)), torch.zeros((), dtype=state.dtype), state)


class RecurrentStateCache:
    """The cache handed to a hybrid model: attention layers go to the static KV cache (by their
    position among the attention layers), recurrent layers read and write their states here."""

    def __init__(
        self,
        kv_cache,
        kv_layers: list[int],
        layers: list[RecurrentLayer],
        states: list[torch.Tensor],
        position_ids: torch.Tensor,
    ) -> None:
        self.kv = kv_cache
        self.kv_index = {layer: i for i, layer in enumerate(kv_layers)}
        self.valid = position_ids >= 0  # [B, S]
        self.n_real = self.valid.sum(dim=1)
        fresh = position_ids[:, 0] == 0  # a chunk at position 0 starts a new sequence: no state carried in
        self.order = [layer.index for layer in layers]
        self.conv: dict[int, torch.Tensor] = {}
        self.ssm: dict[int, torch.Tensor] = {}
        self.has_ssm = {layer.index: layer.ssm_shape is not None for layer in layers}
        incoming = iter(states)
        for layer in layers:
            self.conv[layer.index] = _restart(next(incoming), fresh)
            if self.has_ssm[layer.index]:
                self.ssm[layer.index] = _restart(next(incoming), fresh)

    def step_mask(self, like: torch.Tensor) -> torch.Tensor:
        """1 at real positions, 0 at padding, as ``like``'s dtype [B, S]."""
        return self.valid.to(like.dtype)

    def set_states(self, layer_idx: int, conv: torch.Tensor, ssm: torch.Tensor | None = None) -> None:
        self.conv[layer_idx] = conv.to(self.conv[layer_idx].dtype)
        if ssm is not None:
            self.ssm[layer_idx] = ssm.to(self.ssm[layer_idx].dtype)

    # the attention side: what transformers' attention layers call
    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        return self.kv.update(key, value, self.kv_index[layer_idx])

    def get_seq_length(self, layer_idx: int = 0) -> int:  # only used when position_ids is None
        return 0

    @property
    def is_initialized(self) -> bool:
        return True

    def retained(self) -> list[torch.Tensor]:
        states = [t for i in self.order for t in ((self.conv[i], self.ssm[i]) if self.has_ssm[i] else (self.conv[i],))]
        return (self.kv.retained() if self.kv is not None else []) + states


@contextlib.contextmanager
def swapped_forwards(model: nn.Module, forwards: dict[str, Callable]) -> Iterator[None]:
    """Run every module whose class name is in ``forwards`` with that forward, while the block runs
    (the HF model itself stays untouched outside our own forward pass)."""
    swapped = [m for m in model.modules() if type(m).__name__ in forwards]
    try:
        for module in swapped:
            module.forward = types.MethodType(forwards[type(module).__name__], module)
        yield
    finally:
        for module in swapped:
            module.__dict__.pop("forward", None)
