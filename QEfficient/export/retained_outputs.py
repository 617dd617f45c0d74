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
    (the scatter's only reader), in place; returns how many."""
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
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
        if scatter.output[0] in outputs:
            continue
        scatter.output[0] = node.output[0]
        graph.node.remove(node)
        dropped += 1
    return dropped
