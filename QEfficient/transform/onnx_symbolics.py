"""ONNX translations (TorchScript exporter, opset 17) for PyTorch ops that transformers' models use
and the exporter either lacks or translates with the trace-time shapes baked in.

* ``aten::repeat_interleave`` with one repeat count (interleaved rotary tables: GLM, Cohere, Helium,
  ERNIE): the stock translation reads the traced sizes into constants, so a graph traced at one
  sequence length fails at another. Here: Unsqueeze -> Expand -> Reshape over the runtime shape.
* ``aten::expm1`` (xIELU activation, Apertus), ``aten::rms_norm`` (``nn.functional.rms_norm``, DiffLlama) and
  ``aten::asinh`` (Moonshine Streaming's compression of its frames) have no opset-17 translation; ONNX has Asinh.
"""

from __future__ import annotations

import torch
from torch.onnx._internal.torchscript_exporter import symbolic_helper, symbolic_opset13

OPSET = 17


def _const(g, values: list[int]):
    return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))


def _shape_slice(g, shape, start: int, end: int):
    return g.op("Slice", shape, _const(g, [start]), _const(g, [end]))


def repeat_interleave(g, self, repeats, dim=None, output_size=None):
    rank = symbolic_helper._get_tensor_rank(self)
    count = symbolic_helper._maybe_get_const(repeats, "i")
    if rank is None or symbolic_helper._is_none(dim) or not isinstance(count, int):
        return symbolic_opset13.repeat_interleave(g, self, repeats, dim, output_size)
    axis = symbolic_helper._get_const(dim, "i", "dim")
    axis = axis + rank if axis < 0 else axis
    shape = g.op("Shape", self)
    # x[..., n, ...] -> x[..., n, 1, ...] -> x[..., n, count, ...] -> x[..., n * count, ...]
    unsqueezed = g.op("Unsqueeze", self, _const(g, [axis + 1]))
    target = g.op("Concat", _shape_slice(g, shape, 0, axis + 1), _const(g, [count]), _shape_slice(g, shape, axis + 1, rank), axis_i=0)
    merged = g.op("Concat", _shape_slice(g, shape, 0, axis), _const(g, [-1]), _shape_slice(g, shape, axis + 1, rank), axis_i=0)
    return g.op("Reshape", g.op("Expand", unsqueezed, target), merged)


def expm1(g, self):
    one = g.op("CastLike", g.op("Constant", value_t=torch.tensor(1.0)), self)
    return g.op("Sub", g.op("Exp", self), one)


def rms_norm(g, self, normalized_shape, weight=None, eps=None):
    dims = symbolic_helper._get_const(normalized_shape, "is", "normalized_shape")
    eps_value = symbolic_helper._maybe_get_const(eps, "f") if not symbolic_helper._is_none(eps) else None
    if not isinstance(eps_value, float):
        eps_value = torch.finfo(torch.float32).eps
    axes = list(range(-len(dims), 0))
    mean_square = g.op("ReduceMean", g.op("Mul", self, self), axes_i=axes, keepdims_i=1)
    eps_t = g.op("CastLike", g.op("Constant", value_t=torch.tensor(eps_value)), self)
    out = g.op("Div", self, g.op("Sqrt", g.op("Add", mean_square, eps_t)))
    if weight is not None and not symbolic_helper._is_none(weight):
        out = g.op("Mul", out, weight)
    return out


def asinh(g, self):
    return g.op("Asinh", self)


def register() -> None:
    torch.onnx.register_custom_op_symbolic("aten::repeat_interleave", repeat_interleave, OPSET)
    torch.onnx.register_custom_op_symbolic("aten::expm1", expm1, OPSET)
    torch.onnx.register_custom_op_symbolic("aten::rms_norm", rms_norm, OPSET)
    torch.onnx.register_custom_op_symbolic("aten::asinh", asinh, OPSET)
