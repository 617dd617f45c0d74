"""Two Python passes of the TorchScript exporter, done without its walk over every node of the graph.

Each of them visits every node's inputs through torch's Python bindings, about 20 µs a value: together a fifth of a
small model's export (docs/performance.md). Both are replaced for the length of an export; the graph written is the
exporter's, node for node and weight for weight:

- ``_split_tensor_list_constants`` (a constant list of tensors becomes a ListConstruct of constants) visits the
  graph's constants only, which torch finds in C++;
- ``_apply_friendly_debug_names`` names every value still named by its number ``<kind of its first reader>_<number>``
  (``onnx::MatMul_557``); the scoped names the exporter gives node outputs afterwards replace most of those names.
  It is skipped here, and ``name_numbered_values`` gives such names to the values of the written ONNX graph that
  still have a number for a name, a walk over protobuf messages that costs little. Where the first reader of a
  value in the written graph is a node a later pass of the exporter added (a shared weight's Identity), the name
  says that node's kind, and the initializers come in another order: names and order only.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator

import onnx
import torch

_EXPORTER_UTILS = "torch.onnx._internal.torchscript_exporter.utils"


def _split_constant_tensor_lists(graph, is_tensor_list: Callable) -> None:
    """What the exporter's ``_split_tensor_list_constants(graph, graph)`` does, for the constants only."""
    for node in graph.findAllNodes("prim::Constant", True):
        if not is_tensor_list(node):
            continue
        items = []
        for value in node.output().toIValue():
            item = graph.insertConstant(value)
            item.node().moveBefore(node)
            item.node().copyMetadata(node)
            items.append(item)
        listed = graph.create("prim::ListConstruct", items).insertBefore(node).output().setType(torch._C.ListType.ofTensors())
        listed.node().copyMetadata(node)
        node.output().replaceAllUsesWith(listed)


@contextlib.contextmanager
def lean_exporter_passes() -> Iterator[None]:
    """The two passes replaced while the exporter runs (entered under onnx_export's _EXPORT_LOCK); a torch without
    these functions keeps its passes. The graph it writes then needs ``name_numbered_values``."""
    try:
        utils = importlib.import_module(_EXPORTER_UTILS)
    except ImportError:
        yield
        return
    names = ("_split_tensor_list_constants", "_apply_friendly_debug_names", "_is_constant_tensor_list")
    split, name, is_tensor_list = (getattr(utils, n, None) for n in names)
    if split is None or name is None or is_tensor_list is None:
        yield
        return

    def lean_split(graph, block) -> None:
        if block is graph:  # how the exporter calls it
            _split_constant_tensor_lists(graph, is_tensor_list)
        else:
            split(graph, block)

    utils._split_tensor_list_constants, utils._apply_friendly_debug_names = lean_split, lambda graph, params: None
    try:
        yield
    finally:
        utils._split_tensor_list_constants, utils._apply_friendly_debug_names = split, name


def name_numbered_values(model: onnx.ModelProto) -> dict[str, str]:
    """Rename each value of the main graph named by a number to ``<domain>::<op>_<number>`` of the first node that
    reads it (the exporter's friendly name; a value no node of the main graph reads keeps its number, and so does one
    whose friendly name another value has). Returns old name -> new name, for the weights kept outside the graph."""
    graph = model.graph
    taken = {name for node in graph.node for name in node.output} | {v.name for v in [*graph.input, *graph.initializer]}
    renamed: dict[str, str] = {}
    for node in graph.node:
        for name in node.input:
            if name.isascii() and name.isdigit() and name not in renamed:
                friendly = f"{node.domain or 'onnx'}::{node.op_type}_{name}"
                renamed[name] = friendly if friendly not in taken else name
    renamed = {old: new for old, new in renamed.items() if old != new}
    if renamed:
        _rename(graph, renamed)
    return renamed


def _rename(graph: onnx.GraphProto, renamed: dict[str, str]) -> None:
    """``renamed`` applied to ``graph`` and to the subgraphs of its nodes (which may read the outer graph's values).
    The model's functions are left as they are: the exports here write none (no ``export_modules_as_functions``)."""
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                _rename(subgraph, renamed)
    for field in (graph.input, graph.output, graph.value_info, graph.initializer):
        for item in field:
            item.name = renamed.get(item.name, item.name)
