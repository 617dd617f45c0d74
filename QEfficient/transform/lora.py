"""LoRA adapters as inputs of the retained-state graph.

Each target Linear (``q_proj``, ``v_proj``, ``down_proj``, ... any subset) is wrapped so that

    y = base(x) + (x @ A[row]) @ B[row]

where, per target module name, ``lora_a.<module>`` [num_layers, num_adapters, in, rank] and
``lora_b.<module>`` [num_layers, num_adapters, rank, out] (the adapter's scaling folded into B) are
graph inputs, and ``lora_ids`` [batch, 1] picks each row's adapter (row 0 of the table is all zeros:
the base model). The adapter count and the rank are dynamic axes, so adding, removing or switching
adapters only binds other tables; only a new target-module set needs a new export.

A row's A and B are gathered from the flattened table at ``layer * num_adapters + id`` (the reshape
is free in ONNX Runtime), so a step reads only the batch's own adapters, never the whole table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from QEfficient.transform.static_kv import QEffCausalLM

_LAYER = re.compile(r"(?:^|\.)(\d+)\.")


class LoraInputs:
    """The adapter inputs of one forward pass, shared by every wrapped Linear (None outside it)."""

    def __init__(self) -> None:
        self.ids: torch.Tensor | None = None
        self.a: dict[str, torch.Tensor] = {}
        self.b: dict[str, torch.Tensor] = {}


class LoraLinear(nn.Module):
    """A Linear plus the LoRA update its row's adapter selects; the plain Linear outside a LoRA forward."""

    def __init__(self, base: nn.Linear, module: str, layer: int, inputs: LoraInputs) -> None:
        super().__init__()
        self.base, self.module, self.layer, self.inputs = base, module, layer, inputs

    # what model code may read from the Linear it called
    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        ids = self.inputs.ids
        if ids is None:
            return y
        a, b = self.inputs.a[self.module], self.inputs.b[self.module]
        rows = ids + self.layer * a.shape[1]  # [B]: this layer's block of the flattened table
        a_rows = a.flatten(0, 1)[rows]  # [B, in, r]
        b_rows = b.flatten(0, 1)[rows]  # [B, r, out]
        delta = torch.matmul(torch.matmul(x.reshape(x.shape[0], -1, x.shape[-1]), a_rows), b_rows)
        return y + delta.reshape(y.shape)


def layer_of(path: str) -> int | None:
    """The decoder layer a module path lies in (``model.layers.3.self_attn.q_proj`` -> 3)."""
    match = _LAYER.search(path)
    return int(match.group(1)) if match else None


def target_linears(model: nn.Module, modules: Iterable[str]) -> dict[str, list[tuple[int, str]]]:
    """module name -> [(layer, path)] of every Linear with that last name inside a numbered layer."""
    wanted = set(modules)
    found: dict[str, list[tuple[int, str]]] = {m: [] for m in wanted}
    for path, child in model.named_modules():
        name = path.rsplit(".", 1)[-1]
        if name in wanted and isinstance(child, (nn.Linear, LoraLinear)):
            layer = layer_of(path)
            if layer is not None:
                found[name].append((layer, path))
    return found


def table_shapes(model: nn.Module, modules: Iterable[str]) -> dict[str, tuple[int, int, int]]:
    """module name -> (num_layers, in_features, out_features) of its adapter tables; a name with no
    Linear, or with Linears of different sizes across layers, is refused."""
    shapes = {}
    for name, places in target_linears(model, modules).items():
        if not places:
            raise ValueError(f"The model has no Linear layer named '{name}' inside its decoder layers; LoRA cannot target it.")
        sizes = {(model.get_submodule(p).in_features, model.get_submodule(p).out_features) for _, p in places}
        if len(sizes) != 1:
            raise ValueError(f"The '{name}' layers of this model differ in size ({sorted(sizes)}); one adapter table cannot hold them.")
        (fan_in, fan_out) = sizes.pop()
        shapes[name] = (max(layer for layer, _ in places) + 1, fan_in, fan_out)
    return shapes


def install_lora(model: nn.Module, modules: Iterable[str]) -> LoraInputs:
    """Wrap every target Linear of ``model`` in place; returns the inputs object they share."""
    remove_lora(model)
    inputs = LoraInputs()
    for name, places in target_linears(model, modules).items():
        for layer, path in places:
            parent, _, attr = path.rpartition(".")
            owner = model.get_submodule(parent) if parent else model
            setattr(owner, attr, LoraLinear(getattr(owner, attr), name, layer, inputs))
    return inputs


def remove_lora(model: nn.Module) -> None:
    """Put the plain Linears back."""
    for path, child in list(model.named_modules()):
        if isinstance(child, LoraLinear):
            parent, _, attr = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, child.base)


class QEffLoraCausalLM(nn.Module):
    """The retained-state decoder with LoRA inputs.

    forward(input_ids, position_ids, lora_ids [B,1] int64, lora_a.<m>... , lora_b.<m>..., past...)
    -> as QEffCausalLM.forward. ``modules`` fixes the order of the table inputs.
    """

    def __init__(self, qeff: QEffCausalLM, modules: Sequence[str]) -> None:
        super().__init__()
        self.qeff = qeff
        self.modules_ = tuple(modules)
        self.shapes = table_shapes(qeff.hf, self.modules_)
        self.inputs = install_lora(qeff.hf, self.modules_)

    @property
    def num_layers(self) -> int:
        return self.qeff.num_layers

    def kv_shape(self, batch_size: int, ctx_len: int) -> tuple[int, int, int, int]:
        return self.qeff.kv_shape(batch_size, ctx_len)

    def dummy_tables(self, num_adapters: int, rank: int) -> list[torch.Tensor]:
        """Trace-time tables (A tables, then B tables, in ``modules`` order); small random values."""
        gen = torch.Generator().manual_seed(0)
        dtype = self.qeff.lm_head.weight.dtype
        a = [torch.randn(n, num_adapters, i, rank, generator=gen, dtype=dtype) for n, i, _ in (self.shapes[m] for m in self.modules_)]
        b = [torch.randn(n, num_adapters, rank, o, generator=gen, dtype=dtype) for n, _, o in (self.shapes[m] for m in self.modules_)]
        return a + b

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, lora_ids: torch.Tensor, *rest: torch.Tensor):
        k = len(self.modules_)
        self.inputs.ids = lora_ids.reshape(-1)
        self.inputs.a = dict(zip(self.modules_, rest[:k]))
        self.inputs.b = dict(zip(self.modules_, rest[k : 2 * k]))
        try:
            return self.qeff(input_ids, position_ids, *rest[2 * k :])
        finally:
            self.inputs.ids, self.inputs.a, self.inputs.b = None, {}, {}

    def release(self) -> None:
        """Unwrap the target Linears (the HF model is plain again)."""
        remove_lora(self.qeff.hf)
