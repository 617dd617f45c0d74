"""The TorchScript exporter's two Python walks over the whole graph, replaced (QEfficient/export/lean_passes.py):
the graph written is the exporter's own, node for node and weight for weight, with the exporter's kind of names."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import onnx
import torch
from transformers import AutoModelForCausalLM

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.export import onnx_export
from QEfficient.export.lean_passes import name_numbered_values
from QEfficient.runtime.ort_session import open_inference_session, session_options
from tests.tiny_models import sweep_config


def canonical(path: Path) -> tuple:
    """The graph with its values renamed by order of appearance (the exporter numbers values as it creates them):
    nodes in order, initializers by their canonical names, with their bytes."""
    graph = onnx.load(str(path)).graph
    ids: dict[str, str] = {}

    def canon(name: str) -> str:
        return ids.setdefault(name, f"v{len(ids)}") if name else ""

    inputs = [(canon(i.name), i.name) for i in graph.input]
    nodes = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:], copy.output[:] = [canon(n) for n in node.input], [canon(n) for n in node.output]
        nodes.append(copy.SerializeToString())
    weights = {}
    for init in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = canon(init.name)
        weights[copy.name] = copy.SerializeToString()
    return inputs, nodes, weights, [(canon(o.name), o.name) for o in graph.output]


def export_both_ways(module, args, names: tuple[list, list], axes: dict, folder: Path, monkeypatch) -> tuple[Path, Path]:
    """(lean, the exporter's own passes)"""
    paths = []
    for label in ("lean", "own"):
        (folder / label).mkdir()
        with monkeypatch.context() as patch:
            if label == "own":
                patch.setattr(onnx_export, "lean_exporter_passes", contextlib.nullcontext)
            paths.append(onnx_export.torchscript_export(module, args, folder / label / "m.onnx", *names, axes))
    return paths[0], paths[1]


def test_a_decoder_graph_is_the_exporters_own(tmp_path, monkeypatch):
    """Tiny Llama (tied embedding and LM head) and Qwen3-MoE: the same nodes and weights, and the same names; the values
    the exporter names by their first reader (a transposed weight, a constant) have such names, none is a bare number."""
    torch.manual_seed(0)
    for model_type in ("llama", "qwen3_moe"):
        module = QEFFAutoModelForCausalLM(AutoModelForCausalLM.from_config(sweep_config(model_type))).model.eval()
        spec = onnx_export.decoder_spec(module)
        args = spec.dummy_inputs(module, None)
        (tmp_path / model_type).mkdir()
        lean, own = export_both_ways(
            module, args, (spec.input_names, spec.output_names), spec.dynamic_axes(), tmp_path / model_type, monkeypatch
        )
        assert canonical(lean) == canonical(own), model_type
        names = [value_names(path) for path in (lean, own)]
        assert not [n for n in names[0] if n.isdigit()]
        assert any(n.startswith("onnx::") for n in names[0])  # what the exporter's naming gives
        assert names[0] == names[1], model_type  # no weight shared behind an Identity here: the exporter's names


def value_names(path: Path) -> set[str]:
    graph = onnx.load(str(path), load_external_data=False).graph
    return {n for node in graph.node for n in [*node.input, *node.output]} | {i.name for i in graph.initializer}


def test_the_lean_passes_run_during_an_export_and_torchs_come_back(tmp_path, monkeypatch):
    """A torch whose exporter no longer has these functions would keep its own passes, and every comparison above
    would still hold: here the replacements are seen to run, and torch's functions are its own again afterwards."""
    from torch.onnx._internal.torchscript_exporter import utils

    from QEfficient.export import lean_passes

    originals = (utils._split_tensor_list_constants, utils._apply_friendly_debug_names)
    calls = []
    real = lean_passes._split_constant_tensor_lists
    monkeypatch.setattr(lean_passes, "_split_constant_tensor_lists", lambda *args: calls.append(args) or real(*args))
    monkeypatch.setattr(utils, "_apply_friendly_debug_names", lambda *args: calls.append("torch's naming"))
    onnx_export.torchscript_export(ConstantIndex(), (torch.ones(4, 3),), tmp_path / "m.onnx", ["x"], ["y"], {})
    assert len(calls) == 1 and calls[0] != "torch's naming"
    monkeypatch.undo()
    assert (utils._split_tensor_list_constants, utils._apply_friendly_debug_names) == originals


class ConstantIndex(torch.nn.Module):
    """``x[tensor([...])]``: aten::index reads a constant list of tensors, which the exporter splits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[torch.tensor([0, 2])] * 2 + x[torch.tensor([1, 1])]


def test_a_constant_list_of_tensors_is_split_as_the_exporter_does(tmp_path, monkeypatch):
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    lean, own = export_both_ways(ConstantIndex(), (x,), (["x"], ["y"]), {"x": {1: "width"}}, tmp_path, monkeypatch)
    assert canonical(lean) == canonical(own)
    wide = torch.randn(4, 5)
    (out,) = open_inference_session(lean, session_options(1)).run(None, {"x": wide.numpy()})
    np.testing.assert_array_equal(out, ConstantIndex()(wide).numpy())


def test_numbered_values_are_named_by_their_first_reader_in_subgraphs_too():
    """A numbered value read by a node and inside an If branch is renamed everywhere; a value no node of the
    main graph reads keeps its number."""
    from onnx import TensorProto, helper

    branch = helper.make_graph(
        [helper.make_node("Identity", ["7"], ["b"])], "then", [], [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])]
    )
    graph = helper.make_graph(
        [
            helper.make_node("Neg", ["7"], ["n"]),
            helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch),
        ],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]), helper.make_tensor_value_info("n", TensorProto.FLOAT, [1])],
        [helper.make_tensor("7", TensorProto.FLOAT, [1], [1.0]), helper.make_tensor("9", TensorProto.FLOAT, [1], [2.0])],
    )
    model = helper.make_model(graph)
    assert name_numbered_values(model) == {"7": "onnx::Neg_7"}
    assert [i.name for i in model.graph.initializer] == ["onnx::Neg_7", "9"]
    assert model.graph.node[0].input[0] == "onnx::Neg_7"
    assert model.graph.node[1].attribute[0].g.node[0].input[0] == "onnx::Neg_7"
