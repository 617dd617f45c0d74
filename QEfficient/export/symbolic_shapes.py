"""ONNX Runtime's symbolic shape inference, taught two operators that traced graphs are full of.

Where the tool meets an output dimension it cannot compute, it invents a symbol, and where two symbols
meet in a broadcast it records a merge and starts the whole graph over. Two operators send it there in
every model that calls ``repeat_interleave`` (grouped KV heads in some attentions, the tokens of a
mixture of experts): torch exports the repeats as a ``OneHot`` whose values the tool does not compute,
so the ``Tile`` after it gets a fresh symbol per dimension, and the ``Flatten`` after that another. A
deep MoE graph then takes a pass over the whole graph per such node: most of its export time.

``OneHot`` here gets its values when its inputs' values are known and only Reshapes (and Shapes) read it; ``Flatten``
gets the products of its input's dimensions. The shapes inferred are the tool's own otherwise.
"""

from __future__ import annotations

import numpy as np
import onnx
import sympy
from onnx import helper
from onnxruntime.tools import symbolic_shape_infer as ort_infer


class _Inference(ort_infer.SymbolicShapeInference):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dispatcher_["OneHot"] = self._infer_one_hot_values
        self.dispatcher_["Flatten"] = self._infer_flatten
        self._consumers: dict[str, set[str]] | None = None

    def _consumer_types(self, name: str) -> set[str]:
        if self._consumers is None:
            self._consumers = {}
            for node in self.out_mp_.graph.node:
                for i in node.input:
                    self._consumers.setdefault(i, set()).add(node.op_type)
        return self._consumers.get(name, set())

    def _infer_one_hot_values(self, node: onnx.NodeProto) -> None:
        """One index, one-hot along the last axis: the row of ``depth`` values a repeat count makes.
        Stored flat, as the Reshape to 1-D that reads it will have it."""
        axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
        indices, depth, values = (self._try_get_value(node, i) for i in range(3))
        rank = self._get_shape_rank(node, 0) + 1
        axis += rank if axis < 0 else 0
        if depth is None:
            self._set_shape(node, self._new_symbolic_shape(rank, node))
            return
        depth = int(np.ravel(np.asarray(depth))[0])
        shape = self._get_sympy_shape(node, 0)
        self._set_shape(node, [*shape[:axis], depth, *shape[axis:]])
        if axis != rank - 1 or indices is None or values is None or not self._consumer_types(node.output[0]) <= {"Reshape", "Shape"}:
            return
        indices, values = np.ravel(np.asarray(indices, dtype=object)), list(np.ravel(np.asarray(values, dtype=object)))
        if indices.size != 1 or len(values) != 2 or not ort_infer.is_literal(indices[0]):
            return
        hot = int(indices[0]) + (depth if int(indices[0]) < 0 else 0)
        self.sympy_data_[node.output[0]] = [values[1] if j == hot else values[0] for j in range(depth)]

    def _infer_flatten(self, node: onnx.NodeProto) -> None:
        shape = self._get_sympy_shape(node, 0)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        axis += len(shape) if axis < 0 else 0
        new_shape = [sympy.Mul(*shape[:axis]), sympy.Mul(*shape[axis:])]
        self._set_shape(node, [int(d) if getattr(d, "is_Integer", False) else d for d in new_shape])

    def _set_shape(self, node: onnx.NodeProto, sympy_shape: list) -> None:
        self._update_computed_dims(sympy_shape)
        vi = self.known_vi_[node.output[0]]
        elem_type = vi.type.tensor_type.elem_type
        vi.CopyFrom(helper.make_tensor_value_info(node.output[0], elem_type, ort_infer.get_shape_from_sympy_shape(sympy_shape)))


def infer_symbolic_shapes(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """``SymbolicShapeInference.infer_shapes(model, auto_merge=True)`` with the two operators above; raises
    as it does (after saving ``sym_shape_infer_temp.onnx``) where a shape stays unknown, and returns None
    below opset 7."""
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
