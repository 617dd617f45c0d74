"""Shape folding after the export (QEfficient/export/shape_folding.py), on a tiny Llama's raw TorchScript
export: which Reshape targets become constants, and that finding them does not copy the weights."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import sympy
from onnx import helper, numpy_helper
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.export import onnx_export, shape_folding, symbolic_shapes
from QEfficient.export.shape_folding import fold_reshape_shapes


@pytest.fixture(scope="module")
def raw_export(tiny_model_dir, tmp_path_factory) -> onnx.ModelProto:
    """The graph as torch.onnx.export writes it, before folding (weights inside the protobuf; the values the exporter
    names by number are named by the fold, see lean_passes.py)."""
    folder, out = tiny_model_dir("llama"), tmp_path_factory.mktemp("raw-export")
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnx_export, "_weights_kept_out", lambda weights: contextlib.nullcontext())  # torch serializes them
        patch.setattr(onnx_export, "fold_shapes_and_store_weights_outside", lambda path, weights: None)
        path = onnx_export.export_onnx(model.model, out, "llama")
    return onnx.load(str(path))


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the initializers read as product weights or lookup tables (a Gather's indices are not)."""
    weights = {n.input[i] for n in model.graph.node for i in (0, 1) if n.op_type in ("MatMul", "Gemm") or (n.op_type, i) == ("Gather", 0)}
    return sum(len(init.raw_data) for init in model.graph.initializer if init.name in weights)


def fold(raw: onnx.ModelProto) -> tuple[int, bytes]:
    model = onnx.ModelProto()
    model.CopyFrom(raw)
    folded = fold_reshape_shapes(model)
    return folded, model.SerializeToString(deterministic=True)


def test_reshape_targets_fold_without_copying_the_weights(raw_export, monkeypatch):
    """Shape inference copies the model it is given; it gets one without the weights' bytes (the
    product and lookup weights keep their shapes), and the folded graph is the one inference over the
    whole model gives."""
    assert weight_bytes(raw_export) > 100_000
    seen, infer = [], symbolic_shapes.infer_symbolic_shapes

    def spy(model):
        seen.append(model)
        return infer(model)

    monkeypatch.setattr(symbolic_shapes, "infer_symbolic_shapes", spy)
    folded, graph = fold(raw_export)
    assert folded > 10 and len(seen) == 1 and weight_bytes(seen[0]) == 0
    assert {i.name: list(i.dims) for i in seen[0].graph.initializer} == {i.name: list(i.dims) for i in raw_export.graph.initializer}

    monkeypatch.setattr(shape_folding, "_without_weights", lambda model: model)  # inference over the whole model
    assert fold(raw_export) == (folded, graph)


def test_a_graph_the_light_inference_cannot_follow_is_inferred_whole(raw_export, monkeypatch):
    expected = fold(raw_export)

    def unreadable(model):
        raise ValueError("a weight whose values shape inference reads")

    monkeypatch.setattr(shape_folding, "_without_weights", unreadable)
    assert fold(raw_export) == expected


def repeat_interleave_graph() -> onnx.ModelProto:
    """What torch exports for ``repeat_interleave`` by a count read from shapes: the repeats as a OneHot, then a
    Tile, and a Reshape after it (3-D input: grouped KV heads) or a Flatten (2-D input: a MoE's tokens)."""
    import io

    import torch

    class Repeat(torch.nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            n = q.shape[1] // k.shape[1]
            tokens = (q * k.repeat_interleave(n, dim=1)).reshape(-1, q.shape[-1])
            return tokens.repeat_interleave(n, dim=0)

    buffer = io.BytesIO()
    args = (torch.randn(2, 6, 5), torch.randn(2, 3, 5))
    axes = {"q": {0: "batch"}, "k": {0: "batch"}}
    torch.onnx.export(Repeat(), args, buffer, dynamo=False, input_names=["q", "k"], output_names=["y"], dynamic_axes=axes)
    model = onnx.load_from_string(buffer.getvalue())
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("OneHot") == ops.count("Tile") == 2 and ops.count("Flatten") == 1
    return model


def output_dims(inferred: onnx.ModelProto, op_type: str) -> list[list]:
    """The inferred dims of each ``op_type`` node's output, in graph order."""
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    return [dims[n.output[0]] for n in inferred.graph.node if n.op_type == op_type]


def test_repeats_and_flatten_are_inferred_in_one_pass(monkeypatch):
    """ONNX Runtime's own inference invents symbols for the Tiles and starts the graph over at each merge they
    need; ours computes every shape in a single pass."""
    passes, one_pass = [], SymbolicShapeInference._infer_impl

    def counted(self):
        passes.append(type(self).__name__)
        return one_pass(self)

    monkeypatch.setattr(SymbolicShapeInference, "_infer_impl", counted)
    model = repeat_interleave_graph()
    theirs = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    assert len(passes) > 1 and any(str(d).startswith("Tile") for dims in output_dims(theirs, "Tile") for d in dims)
    passes.clear()
    ours = symbolic_shapes.infer_symbolic_shapes(model)
    assert len(passes) == 1
    assert output_dims(ours, "Tile") == [["batch", 3, 2, 5], ["6*batch", 2, 5]]
    assert output_dims(ours, "Flatten") == [["12*batch", 5]]


def test_a_graph_folded_with_the_repeats_known_computes_the_same():
    import onnxruntime as ort

    model = repeat_interleave_graph()
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    assert fold_reshape_shapes(folded) > 0
    runs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (model, folded)]
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        feeds = {"q": rng.standard_normal((batch, 6, 5), dtype=np.float32), "k": rng.standard_normal((batch, 3, 5), dtype=np.float32)}
        expected, got = (run.run(None, feeds)[0] for run in runs)
        assert got.shape == (12 * batch, 5) and np.array_equal(got, expected)


# (index, depth as a graph computes it, axis): OneHot forms beside torch's repeat count
ONE_HOT_CASES = {
    "negative index": ([-1], "constant [1]", -1),
    "scalar depth": ([0], "constant scalar", -1),
    "along axis 0": ([1], "constant [1]", 0),
    "depth read from a dynamic dim": ([0], "shape of x", -1),
}


@pytest.mark.parametrize("case", sorted(ONE_HOT_CASES))
def test_one_hot_shapes_and_values_match_what_onnx_runtime_computes(case):
    """A OneHot whose rows become a Tile's repeats: every dim the inference states, and the repeats it knows, are
    what ONNX Runtime computes (a dynamic depth stays a symbol)."""
    import onnxruntime as ort

    index, depth_kind, axis = ONE_HOT_CASES[case]
    const = lambda name, value: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(value, np.int64)))  # noqa: E731
    nodes = [const("index", index), const("values", [1, 2]), const("flat", [-1])]
    if depth_kind == "shape of x":
        nodes += [
            helper.make_node("Shape", ["x"], ["x_shape"]),
            const("axis1", [1]),
            helper.make_node("Gather", ["x_shape", "axis1"], ["depth"]),
        ]
    else:
        nodes.append(const("depth", [3] if depth_kind == "constant [1]" else 3))
    nodes += [
        helper.make_node("OneHot", ["index", "depth", "values"], ["hot"], axis=axis),
        helper.make_node("Reshape", ["hot", "flat"], ["repeats"]),
        helper.make_node("Tile", ["x", "repeats"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 3, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    inferred = symbolic_shapes.infer_symbolic_shapes(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"x": np.zeros((4, 3, 2), np.float32)})[0].shape
    dims = next([d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.output)
    assert len(dims) == len(actual)
    assert all(d == a for d, a in zip(dims, actual) if isinstance(d, int))
    if depth_kind != "shape of x":  # the repeats are known: only the batch stays a symbol
        assert [d for d in dims if not isinstance(d, int)] and all(isinstance(d, int) for d in dims[1:])


def sliced_graph() -> onnx.ModelProto:
    """Slices of a symbolic length: from 1 to the end, the last 3, every second: lengths the tool simplifies."""
    big = 2**63 - 1
    slices = [([1], [big], [1], [1]), ([-3], [big], [1], [1]), ([0], [big], [1], [2]), ([1], [-1], [1], [1])]
    nodes, inits = [], []
    for i, values in enumerate(slices):
        names = [f"s{i}_{part}" for part in ("starts", "ends", "axes", "steps")]
        inits += [numpy_helper.from_array(np.array(v, dtype=np.int64), n) for n, v in zip(names, values, strict=True)]
        nodes.append(helper.make_node("Slice", ["x", *names], [f"y{i}"]))
    graph = helper.make_graph(
        nodes,
        "slices",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", "seq_len"])],
        [helper.make_tensor_value_info(f"y{i}", onnx.TensorProto.FLOAT, None) for i in range(len(slices))],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_memoized_simplify_infers_the_tools_shapes_and_leaves_the_tool_as_it_was():
    from onnxruntime.tools import symbolic_shape_infer as ort_infer

    model = sliced_graph()
    plain = symbolic_shapes._infer(model)  # the tool with sympy's own simplify
    before = symbolic_shapes._simplify.cache_info()
    first, again = symbolic_shapes.infer_symbolic_shapes(model), symbolic_shapes.infer_symbolic_shapes(model)
    assert first.SerializeToString() == again.SerializeToString() == plain.SerializeToString()
    assert symbolic_shapes._simplify.cache_info().hits >= before.hits + 4  # the second run's lengths were remembered
    assert ort_infer.sympy is sympy
    dims = {vi.name: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in first.graph.output}
    assert dims == {
        "y0": ["batch", "seq_len - 1"],
        "y1": ["batch", 3],
        "y2": ["batch", "floor(seq_len/2 + 1/2)"],
        "y3": ["batch", "seq_len - 2"],
    }


def test_an_incomplete_inference_leaves_no_files_behind(tmp_path, monkeypatch):
    """ONNX Runtime saves a graph it cannot infer every shape of as sym_shape_infer_temp.onnx in the
    working directory before it raises; the fold removes what that call wrote and leaves the graph alone."""
    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "weight")
    nodes = [helper.make_node("MatMul", ["x", "weight"], ["h"]), helper.make_node("Mystery", ["h"], ["y"], domain="qeff.test")]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("qeff.test", 1)])
    before = model.SerializeToString()
    monkeypatch.chdir(tmp_path)
    assert fold_reshape_shapes(model) == 0 and model.SerializeToString() == before
    assert list(tmp_path.iterdir()) == []

    (tmp_path / "sym_shape_infer_temp.onnx").write_bytes(b"a file of the user's")  # not ours to remove
    assert fold_reshape_shapes(model) == 0 and (tmp_path / "sym_shape_infer_temp.onnx").exists()


def test_the_export_skips_torchs_whole_graph_shape_pass_and_gives_the_same_graph(tiny_model_dir, tmp_path, monkeypatch):
    """torch.onnx's whole-graph shape pass (it copies every weight a node reads) does not run during our
    exports and is torch's own again afterwards; the exported nodes, initializers and output types equal
    those of an export with the pass (a MoE model's outputs get concrete dims where the pass left symbols)."""
    import collections

    import torch

    name = onnx_export._GRAPH_SHAPE_PASS
    original, calls = getattr(torch._C, name), collections.Counter()

    def counted(*args, **kwargs):
        calls["pass"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(torch._C, name, counted)

    def folder(label: str) -> Path:
        (tmp_path / label).mkdir()
        return tmp_path / label

    from transformers import AutoModelForCausalLM

    from tests.tiny_models import sweep_config

    torch.manual_seed(0)
    models = {
        "llama": QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama")).model,
        "mixtral": QEFFAutoModelForCausalLM(AutoModelForCausalLM.from_config(sweep_config("mixtral"))).model,
    }
    with monkeypatch.context() as patch:  # the reference: torch's exporter as it comes
        patch.setattr(onnx_export, "_without_graph_shape_pass", contextlib.nullcontext)
        reference = {t: onnx_export.export_onnx(m, folder(f"{t}-with-pass"), t) for t, m in models.items()}
    assert calls["pass"] == 2 * len(models)
    calls.clear()
    skipped = {t: onnx_export.export_onnx(m, folder(t), t) for t, m in models.items()}
    assert not calls and getattr(torch._C, name) is counted  # skipped during the exports only

    def dims(value) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    for model_type in models:
        graph, ref = (onnx.load(str(p[model_type]), load_external_data=False).graph for p in (skipped, reference))
        layout = [[(n.op_type, len(n.input), len(n.output)) for n in g.node] for g in (graph, ref)]
        assert layout[0] == layout[1]
        assert sorted((i.name, i.data_type, tuple(i.dims)) for i in graph.initializer) == sorted(
            (i.name, i.data_type, tuple(i.dims)) for i in ref.initializer
        )
        for mine, theirs in zip(graph.output, ref.output, strict=True):
            assert mine.name == theirs.name and mine.type.tensor_type.elem_type == theirs.type.tensor_type.elem_type
            assert all(a == b or isinstance(b, str) for a, b in zip(dims(mine), dims(theirs), strict=True)), model_type


def test_exports_on_two_threads_take_turns(tiny_model_dir, tmp_path):
    """torch.onnx refuses a second export while one is under way (it keeps the export's state in globals):
    two threads compiling at once each get their graph, the same as alone."""
    from concurrent.futures import ThreadPoolExecutor

    models = {t: QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir(t)).model for t in ("llama", "qwen2")}

    def export(model_type: str, label: str) -> onnx.GraphProto:
        (tmp_path / label).mkdir()
        path = onnx_export.export_onnx(models[model_type], tmp_path / label, model_type)
        return onnx.load(str(path), load_external_data=False).graph

    with ThreadPoolExecutor(2) as pool:
        together = dict(zip(models, pool.map(lambda t: export(t, f"{t}-together"), models)))
    for model_type, graph in together.items():
        alone = export(model_type, f"{model_type}-alone")
        assert [(n.op_type, len(n.input)) for n in graph.node] == [(n.op_type, len(n.input)) for n in alone.node]


def test_torch_writes_the_graph_without_the_weights_and_the_export_is_the_same(tiny_model_dir, tmp_path, monkeypatch):
    """The weights never go through torch's protobuf (its serialized copies made the export's peak several
    times the weights): torch writes a graph that names them as inputs, and they are written from torch's
    memory; the exported graph and weights equal those of an export where torch serializes them (llama:
    tied embedding and LM head; gemma3_text: norms and rotary tables read as values)."""
    from transformers import AutoModelForCausalLM

    from QEfficient.utils.onnx_files import load_graph_and_weights
    from tests.tiny_models import sweep_config

    written = []
    real_fold = onnx_export.fold_shapes_and_store_weights_outside

    def spy(path, weights=None):
        written.append(path.stat().st_size)
        return real_fold(path, weights)

    monkeypatch.setattr(onnx_export, "fold_shapes_and_store_weights_outside", spy)

    def canon(path: Path) -> tuple:
        model = load_graph_and_weights(path)
        weights = {i.name: (i.data_type, tuple(i.dims), numpy_helper.to_array(i).tobytes()) for i in model.graph.initializer}
        nodes = sorted((n.op_type, tuple(n.input), tuple(n.output), n.SerializeToString()) for n in model.graph.node)
        return weights, nodes, [i.SerializeToString() for i in model.graph.input], [o.SerializeToString() for o in model.graph.output]

    import torch

    torch.manual_seed(0)
    models = {
        "llama": QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama")).model,
        "gemma3_text": QEFFAutoModelForCausalLM(AutoModelForCausalLM.from_config(sweep_config("gemma3_text"))).model,
    }
    for model_type, module in models.items():
        weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
        (tmp_path / model_type).mkdir()
        (tmp_path / f"{model_type}-serialized").mkdir()
        ours = onnx_export.export_onnx(module, tmp_path / model_type, model_type)
        with monkeypatch.context() as patch:
            patch.setattr(onnx_export, "_weights_kept_out", lambda weights: contextlib.nullcontext())
            reference = onnx_export.export_onnx(module, tmp_path / f"{model_type}-serialized", model_type)
        graph_alone, with_weights = written[-2:]  # the sizes of torch's files
        assert with_weights - graph_alone > 0.9 * weight_bytes, (graph_alone, with_weights, weight_bytes)
        assert canon(ours) == canon(reference), model_type


def test_weights_of_every_type_are_written_from_torchs_memory(tmp_path):
    """fold_shapes_and_store_weights_outside on a graph whose weights are inputs: each becomes an
    initializer with its values, large ones in the external file, small ones inline; bfloat16 too."""
    import torch

    from QEfficient.utils.onnx_files import load_graph_and_weights

    weights = {
        "big": torch.randn(64, 64),
        "half": torch.randn(300, 8).to(torch.float16),
        "brain": torch.randn(16, 40).to(torch.bfloat16),
        "steps": torch.arange(5),
        "mask": torch.rand(4, 4) > 0.5,
    }
    types = {"big": onnx.TensorProto.FLOAT, "half": onnx.TensorProto.FLOAT16, "brain": onnx.TensorProto.BFLOAT16}
    types |= {"steps": onnx.TensorProto.INT64, "mask": onnx.TensorProto.BOOL}
    nodes = [helper.make_node("Identity", [name], [f"{name}_out"]) for name in weights]
    nodes.append(helper.make_node("MatMul", ["x", "big"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 64])]
        + [helper.make_tensor_value_info(n, types[n], list(t.shape)) for n, t in weights.items()],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]
        + [helper.make_tensor_value_info(f"{n}_out", types[n], None) for n in weights],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    onnx_export.fold_shapes_and_store_weights_outside(path, weights)
    saved = onnx.load(str(path), load_external_data=False).graph
    assert [i.name for i in saved.input] == ["x"]
    external = {i.name for i in saved.initializer if i.data_location == onnx.TensorProto.EXTERNAL}
    assert external == {"big", "half", "brain"}  # 1 KiB or more
    values = {i.name: numpy_helper.to_array(i) for i in load_graph_and_weights(path).graph.initializer}
    for name, tensor in weights.items():
        expected = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        got = values[name].astype(np.float32) if tensor.dtype == torch.bfloat16 else values[name]
        assert got.dtype == expected.dtype and np.array_equal(got, expected), name
