"""Mixture-of-experts layers exported as ONNX Runtime's fused ``com.microsoft::MoE`` operator.

The exported graph of a layer built with transformers' ``use_experts_implementation`` is one MoE
node per layer: ONNX Runtime's kernel runs each token through only its top-k experts, reading
those experts' weights in place. The portable alternative, gathering the selected experts'
weights (``W[expert_ids]``, transformers' "batched_mm"), copies them before every matmul, which
made a decode step cost about twice a dense model with the same active parameters
(docs/performance.md, MoE section).

The model's own router still decides (softmax, sigmoid, grouped top-k, renormalised or not): the
node's ``router_probs`` input is built so that the kernel's softmax and top-k reproduce exactly the
model's choice. The chosen experts get ``log(weight)``, the others a very negative score, so the
kernel's softmax gives ``weight / sum(weights)`` to the chosen ones and the output is scaled back by
``sum(weights)`` (the layer is linear in its routing weights).

ONNX Runtime's CPU kernel runs SwiGLU experts with interleaved gate/up rows (``swiglu_fusion=1``):
``G = clamp(g, max=limit); L = clamp(l, -limit, limit); G * sigmoid(alpha * G) * (L + beta)``. That
covers the default gate (``silu(gate) * up``: alpha 1, beta 0, no limit) and GPT-OSS's clamped gate
(alpha, limit from the config, beta 1). Other expert layouts (no gate, post-expert norms, custom
gates) and the dynamo exporter keep "batched_mm".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from transformers.activations import SiLUActivation
from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS, _default_apply_gate, batched_mm_experts_forward

IMPLEMENTATION = "qeff_ort_moe"
_UNCHOSEN_SCORE = -1e30  # softmax gives exactly 0 to an expert the router did not choose


def _swiglu_parameters(experts: nn.Module) -> dict | None:
    """The kernel's SwiGLU attributes that reproduce ``experts``' gate, or None where none does."""
    if not getattr(experts, "has_gate", False) or getattr(experts, "has_post_expert_norm", False):
        return None
    if getattr(experts, "_is_expert_parallel", False):
        return None
    gate = getattr(type(experts), "_apply_gate", None)
    if gate is _default_apply_gate and experts.is_concatenated and isinstance(experts.act_fn, (SiLUActivation, nn.SiLU)):
        return {"alpha": 1.0, "beta": 0.0, "limit": None}
    # GPT-OSS's gate (its gate, up interleaved; the privacy filter's concatenated): clamp(limit); (up + 1) * glu
    if type(experts).__name__ in ("GptOssExperts", "OpenAIPrivacyFilterExperts"):
        return {"alpha": float(experts.alpha), "beta": 1.0, "limit": float(experts.limit)}
    return None


def _interleaved_gate_up(experts: nn.Module) -> torch.Tensor:
    """gate_up_proj as the kernel reads it: [E, 2 * inter, hidden], rows gate_0, up_0, gate_1, up_1, ..."""
    weight = experts.gate_up_proj.transpose(1, 2) if experts.is_transposed else experts.gate_up_proj
    if not experts.is_concatenated:
        return weight
    gate, up = weight.chunk(2, dim=1)
    return torch.stack((gate, up), dim=2).reshape(weight.shape)


def _interleaved_gate_up_bias(experts: nn.Module) -> torch.Tensor:
    bias = experts.gate_up_proj_bias
    if not experts.is_concatenated:
        return bias
    gate, up = bias.chunk(2, dim=1)
    return torch.stack((gate, up), dim=2).reshape(bias.shape)


class _OrtMoE(torch.autograd.Function):
    """Traced as one ``com.microsoft::MoE`` node; in PyTorch it returns ``reference`` (the same result
    computed by "batched_mm"), which the exporter then drops as unused."""

    @staticmethod
    def forward(ctx, reference, hidden, scores, fc1, fc1_bias, fc2, fc2_bias, k, alpha, beta, limit):  # noqa: ARG004
        return reference.clone()

    @staticmethod
    def symbolic(g, reference, hidden, scores, fc1, fc1_bias, fc2, fc2_bias, k, alpha, beta, limit):  # noqa: ARG004
        none = g.op("prim::Constant").setType(torch._C.OptionalType.ofTensor())
        inputs = [hidden, scores, fc1, none if fc1_bias is None else fc1_bias, fc2, none if fc2_bias is None else fc2_bias]
        out = g.op(
            "com.microsoft::MoE",
            *inputs,
            k_i=k,
            activation_type_s="swiglu",
            swiglu_fusion_i=1,
            normalize_routing_weights_i=0,
            activation_alpha_f=alpha,
            activation_beta_f=beta,
            **({} if limit is None else {"swiglu_limit_f": limit}),
        )
        return out.setType(hidden.type())


def fused_moe(
    reference: torch.Tensor,
    hidden: torch.Tensor,
    top_k_index: torch.Tensor,
    weights: torch.Tensor,
    fc1: torch.Tensor,
    fc2: torch.Tensor,
    fc1_bias: torch.Tensor | None = None,
    fc2_bias: torch.Tensor | None = None,
    *,
    num_choices: int,
    alpha: float = 1.0,
    beta: float = 0.0,
    limit: float | None = None,
) -> torch.Tensor:
    """sum_k weights[:, k] * expert_{top_k_index[:, k]}(hidden) as one MoE node over the fc1.shape[0]
    experts; choices numbered past them (up to ``num_choices``) contribute nothing here."""
    total = weights.sum(dim=-1, keepdim=True)
    share = weights / torch.where(total > 0, total, torch.ones_like(total))
    # [T, choices] built from a [T, 1] slice, so the token count stays a graph dimension (not a traced constant)
    scores = torch.full_like(total, _UNCHOSEN_SCORE).expand(-1, num_choices).scatter(1, top_k_index, torch.log(share))
    k = int(top_k_index.shape[-1])
    mixed = _OrtMoE.apply(reference, hidden, scores[:, : fc1.shape[0]], fc1, fc1_bias, fc2, fc2_bias, k, alpha, beta, limit)
    return mixed * total


def ort_moe_experts_forward(
    self: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """transformers' experts interface: the MoE node while the TorchScript exporter traces, "batched_mm" otherwise."""
    reference = batched_mm_experts_forward(self, hidden_states, top_k_index, top_k_weights)
    attrs = _swiglu_parameters(self)
    if attrs is None or not torch.jit.is_tracing():
        return reference
    fc2 = self.down_proj.transpose(1, 2) if self.is_transposed else self.down_proj
    fc1_bias = _interleaved_gate_up_bias(self) if self.has_bias else None
    fc2_bias = self.down_proj_bias if self.has_bias else None
    weights = top_k_weights.to(hidden_states.dtype)
    fc1 = _interleaved_gate_up(self)
    return fused_moe(reference, hidden_states, top_k_index, weights, fc1, fc2, fc1_bias, fc2_bias, num_choices=self.num_experts, **attrs)


def _gathered_experts(self: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, weights: torch.Tensor, gate) -> torch.Tensor:
    """Each token through its top-k experts by gathering their weights (``gate_up_proj`` [E, 2 * inter, hidden],
    ``down_proj`` [E, hidden, inter]): one batched matmul each, no loop over experts."""
    index = top_k_index.reshape(-1)
    x = hidden_states.repeat_interleave(top_k_index.shape[-1], dim=0)
    gate_up = torch.bmm(self.gate_up_proj[index], x[:, :, None]).squeeze(-1)
    out = torch.bmm(self.down_proj[index], gate(self, gate_up)[:, :, None]).squeeze(-1)
    return (out * weights.reshape(-1, 1).to(out.dtype)).reshape(*top_k_index.shape, -1).sum(dim=1)


def step3p7_experts_forward(
    self: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """Step3p7Experts (a loop over the hit experts in transformers): gathered experts with its own gate (a clamp
    after the activation); one MoE node when exported without a clamp, whose SwiGLU is then the same."""
    reference = _gathered_experts(self, hidden_states, top_k_index, top_k_weights, type(self)._apply_gate)
    if torch.jit.is_tracing() and self.limit == float("inf") and isinstance(self.act_fn, (SiLUActivation, nn.SiLU)):
        fc1 = torch.stack(self.gate_up_proj.chunk(2, dim=1), dim=2).reshape(self.gate_up_proj.shape)
        weights = top_k_weights.to(hidden_states.dtype)
        return fused_moe(reference, hidden_states, top_k_index, weights, fc1, self.down_proj, num_choices=self.num_experts)
    return reference


def longcat_flash_experts_forward(
    self: nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """LongcatFlashExperts: experts numbered past the routed ones are identity ("zero-computation")
    experts. The routed ones run as one MoE node (gathered weights outside an export); the identity
    choices add their weight times the input. From transformers 5.25 the MoE block adds the identity choices
    itself and this class is a plain experts module."""
    if not hasattr(self, "num_routed_experts"):
        return ort_moe_experts_forward(self, hidden_states, top_k_index, top_k_weights)
    n_routed = self.num_routed_experts
    weights = top_k_weights.to(hidden_states.dtype)
    routed = top_k_index < n_routed
    identity = (weights * ~routed).sum(dim=-1, keepdim=True) * hidden_states
    routed_weights = weights * routed
    reference = _gathered_experts(self, hidden_states, top_k_index.clamp(max=n_routed - 1), routed_weights, _default_apply_gate)
    if torch.jit.is_tracing() and isinstance(self.act_fn, (SiLUActivation, nn.SiLU)):
        gate_up = self.gate_up_proj[:n_routed]
        fc1 = torch.stack(gate_up.chunk(2, dim=1), dim=2).reshape(gate_up.shape)
        num_choices = self.total_experts
        return fused_moe(reference, hidden_states, top_k_index, routed_weights, fc1, self.down_proj, num_choices=num_choices) + identity
    return reference + identity


ALL_EXPERTS_FUNCTIONS.register(IMPLEMENTATION, ort_moe_experts_forward)


# The experts implementation a traced graph gets (benchmarks/bench_moe_decode.py swaps it): layers built with
# transformers' ``use_experts_implementation`` export as the fused MoE node, which runs each token through its top-k
# experts only; layouts it cannot express run "batched_mm" (gather the selected experts' weights, one batched matmul).
# Neither has a data-dependent loop over experts or ``histc``, so both export.
TRACED_EXPERTS = IMPLEMENTATION


@contextlib.contextmanager
def traced_implementations(config, attention: str) -> Iterator[None]:
    """``config``'s attention run as ``attention`` and its experts as TRACED_EXPERTS while a graph is traced; both
    restored after."""
    old = config._attn_implementation, getattr(config, "_experts_implementation", None)
    config._attn_implementation, config._experts_implementation = attention, TRACED_EXPERTS
    try:
        yield
    finally:
        config._attn_implementation, config._experts_implementation = old
