"""``compile(fuse=True)``: an ``Attention`` node the fusions leave (a float16 cache, which ONNX Runtime
1.32's GroupQueryAttention runs slower than this graph, docs/performance.md; a layer it does not match)
reads the static cache only up to the highest position of the step.

The static cache holds slot t for position t (padding is parked in the last slot, masked), and a query
at position p sees no slot past p, so every slot from ``max(position_ids) + 1`` on is masked for every
query of the step. Slicing the keys, the values and the mask there leaves the result as it was (masked
slots weigh exp(-inf) = 0) and makes attention, and the float16 cache's widening to float32, cost the
real length instead of ``ctx_len``. Only keys and values that are a cache scatter's in-place output
(``*_RetainedState``, slot = position) are sliced; anything else is left whole.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from QEfficient.export.graph_names import POSITION_IDS, RETAINED_SUFFIX

_PREFIX = "qeff_fusion/window"
_SLOT_AXIS = 2  # [batch, kv heads, slots, head dim]


def _retained_cache(tensor: str, producers: dict[str, onnx.NodeProto], graph_inputs: set[str]) -> bool:
    """``tensor`` is a cache the graph writes in place: a ScatterElements of a graph input, as its
    ``*_RetainedState`` output."""
    scatter = producers.get(tensor)
    if not tensor.endswith(RETAINED_SUFFIX) or scatter is None:
        return False
    return scatter.op_type == "ScatterElements" and scatter.input[0] in graph_inputs


def slice_attention_to_positions(model: onnx.ModelProto) -> int:
    """Insert the slices (module docstring) before every ``Attention`` node reading the retained cache,
    directly or through a Cast; returns the number of nodes sliced."""
    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    if POSITION_IDS not in graph_inputs:
        return 0
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1

    def source(tensor: str) -> tuple[str, onnx.NodeProto | None]:
        """(the retained cache, the Cast between it and ``tensor`` or None), or ("", None)."""
        cast = producers.get(tensor)
        if cast is not None and cast.op_type == "Cast" and readers.get(tensor) == 1:
            if _retained_cache(cast.input[0], producers, graph_inputs):
                return cast.input[0], cast
        return (tensor, None) if _retained_cache(tensor, producers, graph_inputs) else ("", None)

    targets = []
    for node in graph.node:
        if node.op_type != "Attention" or node.domain not in ("", "ai.onnx") or len(node.input) < 4 or not node.input[3]:
            continue
        key, value = source(node.input[1]), source(node.input[2])
        if key[0] and value[0]:
            targets.append((node, key, value))
    if not targets:
        return 0

    # the length: max(position_ids) + 1, at least 1 (a step with every row idle), as a 1-D int64
    length = f"{_PREFIX}/length"
    constants = {"zero": [0], "one": 1, "slot_axis": [_SLOT_AXIS], "last_axis": [-1]}
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), f"{_PREFIX}/{k}") for k, v in constants.items())
    new = [
        helper.make_node("ReduceMax", [POSITION_IDS], [f"{_PREFIX}/max_position"], name=f"{_PREFIX}/max_position", keepdims=0),
        helper.make_node("Add", [f"{_PREFIX}/max_position", f"{_PREFIX}/one"], [f"{_PREFIX}/after_last"], name=f"{_PREFIX}/after_last"),
        helper.make_node("Max", [f"{_PREFIX}/after_last", f"{_PREFIX}/one"], [f"{_PREFIX}/length_scalar"], name=f"{_PREFIX}/length_scalar"),
        helper.make_node("Unsqueeze", [f"{_PREFIX}/length_scalar", f"{_PREFIX}/zero"], [length], name=f"{_PREFIX}/length"),
    ]

    def sliced(tensor: str, axis: str) -> str:
        out = f"{_PREFIX}/{tensor}"
        if out not in producers:
            new.append(helper.make_node("Slice", [tensor, f"{_PREFIX}/zero", length, f"{_PREFIX}/{axis}"], [out], name=out))
            producers[out] = new[-1]
        return out

    for node, *kv in targets:
        for index, (cache, cast) in enumerate(kv, start=1):
            if cast is not None:  # slice before the Cast: only the valid slots are widened
                cast.input[0] = sliced(cache, "slot_axis")
            else:
                node.input[index] = sliced(cache, "slot_axis")
        node.input[3] = sliced(node.input[3], "last_axis")  # the mask's key axis; one slice per mask shared by layers
    graph.node.extend(new)
    from QEfficient.compile.fusion import _topological_sort  # fusion.py imports this module

    _topological_sort(model)
    return len(targets)
