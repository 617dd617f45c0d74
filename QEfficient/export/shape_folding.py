"""Fold the shape arithmetic that tracing leaves in a graph with dynamic axes.

HF code writes ``x.view(*hidden.shape[:-1], -1, head_dim)``; traced with dynamic batch and
sequence axes, every such view becomes Shape -> Gather -> Unsqueeze -> Concat -> Reshape, about
1,800 of the ~3,000 nodes ONNX Runtime runs per SmolLM2 step. Each node costs a few
microseconds, which matters once the weights are compressed (a decode step is ~10 ms).

With symbolic shape inference (ONNX Runtime's own tool) we know which symbolic dimension every
such scalar is. A Reshape whose target lists, position by position, the data's own dimensions
can use ONNX's "0 = copy this input dimension" and a single -1 instead, which is a constant; the
shape computation then has no consumer left and is dropped.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

logger = logging.getLogger(__name__)


def _dims(value_info: dict, name: str) -> list | None:
    vi = value_info.get(name)
    if vi is None or not vi.type.tensor_type.HasField("shape"):
        return None
    return [
        d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value") else None)
        for d in vi.type.tensor_type.shape.dim
    ]


_INDEX_TYPES = (onnx.TensorProto.INT64, onnx.TensorProto.INT32)


def _scalar_symbols(model: onnx.ModelProto) -> dict[str, list]:
    """Value name -> the list of (symbolic or int) numbers it holds, for shape arithmetic we can follow."""
    inferred = {vi.name: vi for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    # shape arithmetic reads integer scalars and vectors only; the weights are not copied
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type in _INDEX_TYPES and len(i.dims) <= 1}
    known: dict[str, list] = {}
    for node in model.graph.node:
        if node.op_type == "Constant":
            arr = numpy_helper.to_array(node.attribute[0].t) if node.attribute[0].name == "value" else None
            if arr is not None and arr.dtype == np.int64 and arr.ndim <= 1:
                known[node.output[0]] = [int(v) for v in np.atleast_1d(arr)]
        elif node.op_type == "Shape" and not node.attribute:
            dims = _dims(inferred, node.input[0])
            if dims is not None and all(d is not None for d in dims):
                known[node.output[0]] = dims
        elif node.op_type == "Gather" and node.input[0] in known:
            idx = known.get(node.input[1]) or ([int(consts[node.input[1]])] if node.input[1] in consts else None)
            if idx is not None and len(idx) == 1:
                known[node.output[0]] = [known[node.input[0]][idx[0]]]
        elif node.op_type in ("Unsqueeze", "Squeeze", "Identity", "Cast") and node.input[0] in known:
            known[node.output[0]] = known[node.input[0]]
        elif node.op_type == "Concat" and all(i in known or i in consts for i in node.input):
            parts = [known[i] if i in known else [int(v) for v in np.atleast_1d(consts[i])] for i in node.input]
            known[node.output[0]] = [v for p in parts for v in p]
    return known


def fold_reshape_shapes(model: onnx.ModelProto, values: Mapping[str, np.ndarray] | None = None) -> int:
    """Make Reshape targets constant where symbolic shapes allow; returns how many were folded.
    ``values``: the bytes of the initializers ``model`` holds as stubs (shape and type only)."""
    # an optimisation: a graph the inference cannot follow stays as exported
    try:
        inferred_model = _infer_shapes(_without_weights(model))  # the inference copies its input
    except ValueError:  # it read a weight's values after all: infer over the whole graph
        try:
            inferred_model = _infer_shapes(_with_values(model, values) if values else model)
        except Exception:  # noqa: BLE001
            return 0
    except Exception:  # noqa: BLE001
        return 0
    if inferred_model is None:
        return 0
    value_info = {vi.name: vi for vi in list(inferred_model.graph.value_info) + list(inferred_model.graph.input)}
    known = _scalar_symbols(inferred_model)
    vectors = _constant_ranks(inferred_model)
    consumers = _consumers(model)
    folded = 0
    # Static dimensions read through Shape -> Gather become constants; ONNX Runtime folds what follows.
    for node in model.graph.node:
        if node.op_type in ("Gather", "Shape") and node.output[0] in known and all(isinstance(v, int) for v in known[node.output[0]]):
            if node.op_type == "Gather" and not any(a.name == "axis" and a.i != 0 for a in node.attribute):
                values = known[node.output[0]]
                scalar = not (node.input[1] in known and len(known[node.input[1]]) == 1 and vectors.get(node.input[1]) == 1)
                array = np.array(values[0] if scalar else values, dtype=np.int64)
            elif node.op_type == "Shape":
                array = np.array(known[node.output[0]], dtype=np.int64)
            else:
                continue
            name = f"{node.output[0]}_static"
            model.graph.initializer.append(numpy_helper.from_array(array, name))
            for consumer, i in consumers.get(node.output[0], ()):
                consumer.input[i] = name
            folded += 1
    for node in model.graph.node:
        if node.op_type != "Reshape" or node.input[1] not in known:
            continue
        target, data = known[node.input[1]], _dims(value_info, node.input[0])
        if data is None:
            continue
        new = []
        for j, v in enumerate(target):
            if isinstance(v, int) and v != 0:
                new.append(v)
            elif j < len(data) and data[j] == v:
                new.append(0)
            else:
                new.append(-1)
        if new.count(-1) > 1 or any(isinstance(v, int) and v == 0 for v in target):
            continue
        name = f"{node.name or node.output[0]}_folded_shape"
        model.graph.initializer.append(numpy_helper.from_array(np.array(new, dtype=np.int64), name))
        node.input[1] = name
        node.attribute.extend([helper.make_attribute("allowzero", 0)] if not any(a.name == "allowzero" for a in node.attribute) else [])
        folded += 1
    removed = prune_dead_nodes(model)
    logger.info("Folded %d Reshape shapes, removed %d nodes", folded, removed)
    return folded


_INCOMPLETE_INFERENCE_FILE = Path("sym_shape_infer_temp.onnx")


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """ONNX Runtime's symbolic shape inference (``symbolic_shapes``). Where it cannot infer every shape it raises, after saving
    the model as ``sym_shape_infer_temp.onnx`` (and an external data file) in the working directory:
    those files, when this call wrote them, are removed."""
    from QEfficient.export.symbolic_shapes import infer_symbolic_shapes

    stray, existed = _INCOMPLETE_INFERENCE_FILE, _INCOMPLETE_INFERENCE_FILE.exists()
    try:
        return infer_symbolic_shapes(model)
    finally:
        if not existed and stray.is_file():
            with contextlib.suppress(Exception):  # its weights' files first; then the graph itself
                saved = onnx.load(str(stray), load_external_data=False)
                for location in {e.value for t in saved.graph.initializer for e in t.external_data if e.key == "location"}:
                    (stray.parent / location).unlink(missing_ok=True)
            stray.unlink(missing_ok=True)


# inputs whose values shape inference never reads: the weights of products and of embedding lookups
_WEIGHT_INPUTS = {("MatMul", 1), ("MatMul", 0), ("Gemm", 1), ("Gemm", 0), ("Gather", 0)}
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE)


def _without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose floating-point initializers read only as weights (``_WEIGHT_INPUTS``)
    have their shapes and types but no bytes: what shape inference needs, without a copy of the weights
    (reading such a stub's values raises ValueError)."""
    light = onnx.ModelProto(ir_version=model.ir_version, producer_name=model.producer_name)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph = light.graph
    graph.name = model.graph.name
    for field in ("node", "input", "output", "value_info"):
        getattr(graph, field).extend(getattr(model.graph, field))
    weights = read_only_as_weights(model, {init.name: init.data_type for init in model.graph.initializer})
    for init in model.graph.initializer:
        if init.name in weights:
            graph.initializer.append(onnx.TensorProto(name=init.name, data_type=init.data_type, dims=init.dims))
        else:
            graph.initializer.append(init)
    return light


def read_only_as_weights(model: onnx.ModelProto, types: Mapping[str, int]) -> set[str]:
    """Of ``types`` (value name -> ONNX element type), the floating-point values every node of ``model``
    reads only as a weight (``_WEIGHT_INPUTS``): shape inference never reads their values."""
    consumers = _consumers(model)
    return {
        name
        for name, data_type in types.items()
        if data_type in _FLOAT_TYPES and consumers.get(name) and all((node.op_type, i) in _WEIGHT_INPUTS for node, i in consumers[name])
    }


def _with_values(model: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` whose stub initializers hold their bytes."""
    full = onnx.ModelProto()
    full.CopyFrom(model)
    for init in full.graph.initializer:
        if init.name in values and not init.HasField("raw_data"):
            init.raw_data = values[init.name].tobytes()
    return full


def _constant_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Constant or initializer name -> its rank (one pass: a lookup per node would be quadratic)."""
    ranks = {init.name: len(init.dims) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            ranks[node.output[0]] = len(node.attribute[0].t.dims)
    return ranks


def _consumers(model: onnx.ModelProto) -> dict[str, list]:
    """Value name -> [(node, input index)] reading it."""
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, i))
    return readers


def prune_dead_nodes(model: onnx.ModelProto) -> int:
    """Drop nodes whose outputs nothing reads (and in turn the nodes only they read) and the initializers no node reads.
    One pass over read counts: a node goes once the last reader of each of its outputs has gone (rounds over the whole
    graph, one per link of a dead chain, took most of a fold's Python time). The kept nodes keep their order."""
    nodes = list(model.graph.node)
    reads = collections.Counter(name for node in nodes for name in node.input)
    reads.update(o.name for o in model.graph.output)
    producer = {name: i for i, node in enumerate(nodes) for name in node.output}
    dead = [False] * len(nodes)

    def unread(i: int) -> bool:
        return not any(reads[name] for name in nodes[i].output)

    stack = [i for i in range(len(nodes)) if unread(i)]
    while stack:
        i = stack.pop()
        if dead[i]:
            continue
        dead[i] = True
        for name in nodes[i].input:
            reads[name] -= 1
            j = producer.get(name)
            if j is not None and not dead[j] and reads[name] == 0 and unread(j):
                stack.append(j)
    removed = sum(dead)
    if removed:
        del model.graph.node[:]  # the kept messages stay valid after leaving the list
        model.graph.node.extend(node for node, gone in zip(nodes, dead, strict=True) if not gone)
    used = {i for n in model.graph.node for i in n.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:  # few: removed one by one
        model.graph.initializer.remove(init)
    return removed
