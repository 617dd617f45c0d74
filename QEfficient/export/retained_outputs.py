"""The cache scatters write the graph's ``*_RetainedState`` outputs themselves.

Traced, each cache update comes out as ``ScatterElements(past_*) -> Cast(to=the same type) -> *_RetainedState``. The
runtime binds each output to its ``past_*`` input's memory (runtime/kv_storage.py), so without the Cast the scatter
writes into that memory directly and ONNX Runtime skips its copy of the input; with it, every step copies each
cache tensor twice (into the scatter's own buffer, then through the Cast).
"""

from __future__ import annotations

import onnx
from onnx import helper

from QEfficient.export.graph_specs import RETAINED_SUFFIX


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
