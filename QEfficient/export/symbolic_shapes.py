"""ONNX Runtime's symbolic shape inference, taught two operators that traced graphs are full of.

Where the tool meets an output dimension it cannot compute, it invents a symbol, and where two symbols
meet in a broadcast it records a merge and starts the whole graph over. Two operators send it there in
every model that calls ``repeat_interleave`` (grouped KV heads in some attentions, the tokens of a
mixture of experts): torch exports the repeats as a ``OneHot`` whose values the tool does not compute,
so the ``Tile`` after it gets a fresh symbol per dimension, and so does the ``Flatten`` that follows a
2-D input's ``Tile`` (a MoE's tokens; higher ranks end in a Reshape). A
deep MoE graph then takes a pass over the whole graph per such node: most of its export time.

``OneHot`` here gets its depth from a 1-element tensor, and its values when its inputs' values are known and only
Reshapes (and Shapes) read it; ``Flatten`` gets the products of its input's dimensions. The shapes inferred are the
tool's own otherwise.

The tool's ``sympy.simplify`` calls (the output length of every Slice and Resize, above all) are memoized: the same
answers, from a few dozen distinct expressions over the test suite's graphs.
"""

from __future__ import annotations

import functools
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import onnx
import sympy
from onnx import helper
from onnxruntime.tools import symbolic_shape_infer as ort_infer


class _Inference(ort_infer.SymbolicShapeInference):
    """The tool with its ``OneHot`` rule widened (a depth given as a 1-element tensor, values computed) and a
    ``Flatten`` rule. Subgraphs (If, Loop, Scan bodies) are inferred by the tool's own class."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dispatcher_["OneHot"] = self._infer_one_hot
        self.dispatcher_["Flatten"] = self._infer_flatten
        self._consumers: dict[str, set[str]] | None = None

    def _consumer_types(self, name: str) -> set[str]:
        if self._consumers is None:
            self._consumers = {}
            for node in self.out_mp_.graph.node:
                for i in node.input:
                    self._consumers.setdefault(i, set()).add(node.op_type)
        return self._consumers.get(name, set())

    def _infer_one_hot(self, node: onnx.NodeProto) -> None:
        """The tool's rule takes a scalar depth only (torch passes a 1-element tensor, which got a fresh symbol).
        With one index (the row of ``depth`` values a repeat count makes; every other dim is 1, whatever the axis),
        the values are stored flat, as the Reshape to 1-D that reads them will have them."""
        depth = self._try_get_value(node, 1)
        depth = None if depth is None else np.ravel(np.asarray(depth, dtype=object))
        if depth is None or depth.size != 1 or not ort_infer.is_literal(depth[0]):
            super()._infer_OneHot(node)
            return
        depth = int(depth[0])
        shape = self._get_sympy_shape(node, 0)
        axis = ort_infer.handle_negative_axis(ort_infer.get_attribute(node, "axis", -1), len(shape) + 1)
        self._set_shape(node, [*shape[:axis], depth, *shape[axis:]], self.known_vi_[node.input[2]].type.tensor_type.elem_type)
        indices, values = self._try_get_value(node, 0), self._try_get_value(node, 2)
        if indices is None or values is None or not self._consumer_types(node.output[0]) <= {"Reshape", "Shape"}:
            return
        indices, values = np.ravel(np.asarray(indices, dtype=object)), list(np.ravel(np.asarray(values, dtype=object)))
        if indices.size != 1 or len(values) != 2 or not ort_infer.is_literal(indices[0]):
            return
        hot = int(indices[0]) + (depth if int(indices[0]) < 0 else 0)
        self.sympy_data_[node.output[0]] = [values[1] if j == hot else values[0] for j in range(depth)]

    def _infer_flatten(self, node: onnx.NodeProto) -> None:
        shape = self._get_sympy_shape(node, 0)
        axis = ort_infer.handle_negative_axis(ort_infer.get_attribute(node, "axis", 1), len(shape) + 1)
        new_shape = [sympy.Mul(*shape[:axis]), sympy.Mul(*shape[axis:])]
        self._set_shape(node, [int(d) if getattr(d, "is_Integer", False) else d for d in new_shape])

    def _set_shape(self, node: onnx.NodeProto, sympy_shape: list, elem_type: int | None = None) -> None:
        self._update_computed_dims(sympy_shape)
        vi = self.known_vi_[node.output[0]]
        elem_type = vi.type.tensor_type.elem_type if elem_type is None else elem_type
        vi.CopyFrom(helper.make_tensor_value_info(node.output[0], elem_type, ort_infer.get_shape_from_sympy_shape(sympy_shape)))


@functools.lru_cache(maxsize=4096, typed=True)
def _simplify(expression):
    return sympy.simplify(expression)


def _memoized_simplify(expression, *args, **options):
    """``sympy.simplify``, its answers kept: the tool simplifies the output length of every Slice (and of a Resize), a
    few ms each, half of its time on the test suite's graphs, and a model's layers, and the models of a process,
    slice alike (a few dozen expressions over a hundred graphs)."""
    if args or options:
        return sympy.simplify(expression, *args, **options)
    try:
        hash(expression)
    except TypeError:
        return sympy.simplify(expression)
    return _simplify(expression)


# the sympy the tool sees while it runs here: ``simplify`` memoized, every other name read from sympy itself
_TOOL_SYMPY = types.ModuleType("sympy")
_TOOL_SYMPY.simplify = _memoized_simplify
_TOOL_SYMPY.__getattr__ = lambda name: getattr(sympy, name)
# one inference at a time swaps the tool's sympy: the inference is Python throughout, so threads gain nothing by
# running two at once
_TOOL_LOCK = threading.RLock()


@contextmanager
def _memoized_tool() -> Iterator[None]:
    with _TOOL_LOCK:
        original, ort_infer.sympy = ort_infer.sympy, _TOOL_SYMPY
        try:
            yield
        finally:
            ort_infer.sympy = original


def infer_symbolic_shapes(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """``SymbolicShapeInference.infer_shapes(model, auto_merge=True)`` with the two operators above and ``simplify``
    memoized; raises as it does (after saving ``sym_shape_infer_temp.onnx``) where a shape stays unknown, and
    returns None below opset 7."""
    with _memoized_tool():
        return _infer(model)


def _infer(model: onnx.ModelProto) -> onnx.ModelProto | None:
    opset = ort_infer.get_opset(model)
    if not opset or opset < 7:
        return None
    inference = _Inference(2**31 - 1, True, False, 0)
    inference._preprocess(model)
    complete = False
    while inference.run_:
        complete = inference._infer_impl()
    inference._update_output_from_vi()
    if not complete:
        onnx.save_model(inference.out_mp_, "sym_shape_infer_temp.onnx", save_as_external_data=True)
        raise Exception("Incomplete symbolic shape inference")
    return inference.out_mp_
