"""The cache scatters write the graph's ``*_RetainedState`` outputs themselves.

Traced, each cache update comes out as ``ScatterElements(past_*) -> Cast(to=the same type) -> *_RetainedState``. The
runtime binds each output to its ``past_*`` input's memory (runtime/kv_storage.py), so without the Cast the scatter
writes into that memory directly and ONNX Runtime skips its copy of the input; with it, every step copies each
cache tensor twice (into the scatter's own buffer, then through the Cast).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from QEfficient.export.graph_names import RETAINED_SUFFIX


def drop_retained_casts(model: onnx.ModelProto) -> int:
    """Remove each no-op Cast between a cache ``ScatterElements`` of a graph input and its ``*_RetainedState`` output
    (the scatter's only reader; any other node reading the input's values runs before the scatter), in place;
    returns how many."""
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    value_readers: dict[str, list] = {}  # the nodes that read a tensor's values, not only its shape
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
            if node.op_type != "Shape":
                value_readers.setdefault(name, []).append(node)
    inputs = {i.name: i for i in graph.input}
    outputs = {o.name for o in graph.output}
    dropped = 0
    for node in list(graph.node):
        if node.op_type != "Cast" or not node.output[0].endswith(RETAINED_SUFFIX):
            continue
        scatter = producers.get(node.input[0])
        if scatter is None or scatter.op_type != "ScatterElements" or scatter.input[0] not in inputs:
            continue
        to = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "to"), None)
        if inputs[scatter.input[0]].type.tensor_type.elem_type != to or readers.get(scatter.output[0]) != 1:
            continue
        others = [n for n in value_readers.get(scatter.input[0], []) if n is not scatter]
        if scatter.output[0] in outputs or (others and not _all_run_before(others, scatter, producers)):
            continue  # a node that may run later reads the cache as it came in: the scatter must not overwrite it
        scatter.output[0] = node.output[0]
        graph.node.remove(node)
        dropped += 1
    return dropped


def _all_run_before(nodes: list, target, producers: dict) -> bool:
    """Every node of ``nodes`` is an ancestor of ``target`` (``target`` reads what they produce, so they run first)."""
    wanted = {id(n) for n in nodes}
    seen: set[int] = set()
    stack = [target]
    while stack and wanted:
        for name in stack.pop().input:
            node = producers.get(name)
            if node is not None and id(node) not in seen:
                seen.add(id(node))
                wanted.discard(id(node))
                stack.append(node)
    return not wanted


def scatter_cache_rows(model: onnx.ModelProto) -> int:
    """Rewrite each cache ``ScatterElements(past, index, new, axis=2)`` that writes a ``*_RetainedState`` output into a
    ``ScatterND`` of whole head rows: ONNX Runtime's element-wise scatter costs about 30 ns per element, its ScatterND
    one copy per row of ``head_dim`` values (it writes in place all the same). ``index`` is the slots expanded over
    heads and head_dim ([B, H, S, D]); the ND indices [B, H, S, 3] are built once per distinct index. Returns the
    count. Graphs the compile-time fusions read keep ``ScatterElements`` (their patterns match it)."""
    graph = model.graph
    inputs = {i.name for i in graph.input}
    outputs = {o.name for o in graph.output}
    built: dict[str, str] = {}
    rewritten = 0
    for position, node in enumerate(list(graph.node)):
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        reduction = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "reduction"), b"none")
        if (
            node.op_type != "ScatterElements"
            or axis != 2
            or reduction not in (b"none", "none")
            or node.input[0] not in inputs
            or node.output[0] not in outputs
            or not node.output[0].endswith(RETAINED_SUFFIX)
        ):
            continue
        index = node.input[1]
        if index not in built:
            built[index] = _nd_rows(graph, index, len(built))
        nd = helper.make_node("ScatterND", [node.input[0], built[index], node.input[2]], list(node.output), name=f"{node.name}/nd")
        graph.node.remove(node)
        graph.node.insert(position, nd)
        rewritten += 1
    if rewritten:
        _sort(model)
    return rewritten


def _nd_rows(graph: onnx.GraphProto, index: str, n: int) -> str:
    """Nodes computing [B, H, S, 3] = (row, head, slot) from a slot index expanded to [B, H, S, D]; returns its name."""
    p = f"qeff_scatter_nd/{n}"
    ints = {"zero": [0], "one": [1], "two": [2], "three": [3], "row_shape": [-1, 1, 1, 1], "head_shape": [1, -1, 1, 1]}
    graph.initializer.extend(onnx.numpy_helper.from_array(np.array(v, np.int64), f"{p}/{k}") for k, v in ints.items())
    graph.initializer.extend(onnx.numpy_helper.from_array(np.array(v, np.int64), f"{p}/{k}") for k, v in {"start": 0, "step": 1}.items())
    nodes = [
        helper.make_node("Shape", [index], [f"{p}/shape"]),
        helper.make_node("Slice", [index, f"{p}/zero", f"{p}/one", f"{p}/three"], [f"{p}/slot"]),  # [B, H, S, 1]
        helper.make_node("Shape", [f"{p}/slot"], [f"{p}/slot_shape"]),
        helper.make_node("Gather", [f"{p}/shape", f"{p}/zero"], [f"{p}/rows_1"]),
        helper.make_node("Squeeze", [f"{p}/rows_1", f"{p}/zero"], [f"{p}/rows"]),
        helper.make_node("Gather", [f"{p}/shape", f"{p}/one"], [f"{p}/heads_1"]),
        helper.make_node("Squeeze", [f"{p}/heads_1", f"{p}/zero"], [f"{p}/heads"]),
        helper.make_node("Range", [f"{p}/start", f"{p}/rows", f"{p}/step"], [f"{p}/row_range"]),
        helper.make_node("Reshape", [f"{p}/row_range", f"{p}/row_shape"], [f"{p}/row_column"]),
        helper.make_node("Expand", [f"{p}/row_column", f"{p}/slot_shape"], [f"{p}/row"]),
        helper.make_node("Range", [f"{p}/start", f"{p}/heads", f"{p}/step"], [f"{p}/head_range"]),
        helper.make_node("Reshape", [f"{p}/head_range", f"{p}/head_shape"], [f"{p}/head_column"]),
        helper.make_node("Expand", [f"{p}/head_column", f"{p}/slot_shape"], [f"{p}/head"]),
        helper.make_node("Concat", [f"{p}/row", f"{p}/head", f"{p}/slot"], [f"{p}/nd"], axis=3),
    ]
    graph.node.extend(nodes)
    return f"{p}/nd"


def _sort(model: onnx.ModelProto) -> None:
    from onnxruntime.transformers.onnx_model import OnnxModel

    OnnxModel(model).topological_sort()
