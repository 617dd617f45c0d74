"""compile/smooth_int8.py on a hand-built graph: the smoothing alone (the int8 rounding left out) gives the
float graph's outputs, for every normalization kind it scales (a LayerNormalization with a bias, a
SkipSimplifiedLayerNormalization whose residual sum is read too, two normalizations sharing one gain);
then with int8 weights the outputs stay close, and what it must not convert is left alone."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from QEfficient.compile import smooth_int8
from QEfficient.export.graph_names import INPUT_IDS
from QEfficient.runtime.ort_session import session_options

HIDDEN, VOCAB = 16, 50


def _graph() -> onnx.ModelProto:
    """input_ids -> embedding -> LayerNormalization (gain, bias) -> two MatMuls; the embedding plus a
    residual -> SkipSimplifiedLayerNormalization (gain shared with a third norm) -> MatMul, its residual
    sum an output; the third norm's output is both a MatMul input and a graph output (not convertible)."""
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((VOCAB, HIDDEN)).astype(np.float32)
    emb[:, 3] *= 30  # an outlier channel, as decoders have
    w = {f"w{i}": (rng.standard_normal((HIDDEN, 8)) * 0.2).astype(np.float32) for i in range(5)}
    consts = {
        "emb": emb,
        "gain": rng.uniform(0.5, 1.5, HIDDEN).astype(np.float32),
        "bias": rng.standard_normal(HIDDEN).astype(np.float32) * 0.1,
        "shared_gain": rng.uniform(0.5, 1.5, HIDDEN).astype(np.float32),
        "residual": rng.standard_normal(HIDDEN).astype(np.float32),
        **w,
    }
    ms = "com.microsoft"
    nodes = [
        helper.make_node("Gather", ["emb", INPUT_IDS], ["x"]),
        helper.make_node("LayerNormalization", ["x", "gain", "bias"], ["ln"], axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["ln", "w0"], ["y0"]),
        helper.make_node("MatMul", ["ln", "w1"], ["y1"]),
        helper.make_node("Add", ["x", "residual"], ["r"]),
        helper.make_node("SkipSimplifiedLayerNormalization", ["x", "r", "shared_gain"], ["sn", "", "", "sum"], domain=ms, epsilon=1e-6),
        helper.make_node("MatMul", ["sn", "w2"], ["y2"]),
        helper.make_node("SimplifiedLayerNormalization", ["sum", "shared_gain"], ["kept"], axis=-1, epsilon=1e-6),
        helper.make_node("MatMul", ["kept", "w3"], ["y3"]),
    ]
    outputs = ["y0", "y1", "y2", "sum", "y3", "kept"]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)])


def _run(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    # The library's options: on x86 without VNNI they select ONNX Runtime's exact uint8 kernel for int8
    # GEMMs (runtime/cpu_features.py); a bare session there saturates and misses the bound below by 4x.
    session = ort.InferenceSession(model.SerializeToString(), session_options(2), providers=["CPUExecutionProvider"])
    ids = np.random.default_rng(1).integers(0, VOCAB, (2, 7))
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {INPUT_IDS: ids})))


def _float_matmul(graph: onnx.GraphProto, node: onnx.NodeProto, weight: np.ndarray) -> None:
    """In place of the int8 conversion: the smoothed weight as a float MatMul (exact, to test the algebra)."""
    name = f"{node.input[1]}_smoothed"
    graph.initializer.append(numpy_helper.from_array(weight.astype(np.float32), name))
    node.input[1] = name


@pytest.fixture
def float_conversion(monkeypatch):
    monkeypatch.setattr(smooth_int8, "_int8_matmul", _float_matmul)


def test_smoothing_alone_keeps_every_output(tmp_path, float_conversion):
    model = _graph()
    before = _run(model)
    smoothed, converted = smooth_int8.smoothed_int8_projections(_graph(), ctx_len=64, workdir=tmp_path)
    assert converted == 3  # w0, w1 (LayerNormalization), w2 (skip norm); not w3: "kept" is a graph output
    after = _run(smoothed)
    for name, value in before.items():
        np.testing.assert_allclose(after[name], value, rtol=1e-4, atol=1e-4, err_msg=name)
    gains = {n.op_type: list(n.input) for n in smoothed.graph.node if "Normalization" in n.op_type}
    assert gains["SimplifiedLayerNormalization"][1] == "shared_gain"  # the unconverted norm keeps the shared gain
    assert gains["SkipSimplifiedLayerNormalization"][2] != "shared_gain"  # the converted one has a copy of its own
    assert gains["LayerNormalization"][2] != "bias"  # the bias is scaled too


def test_int8_projections_stay_close_and_leave_the_rest(tmp_path):
    before = _run(_graph())
    converted_model, converted = smooth_int8.smoothed_int8_projections(_graph(), ctx_len=64, workdir=tmp_path)
    ops = [n.op_type for n in converted_model.graph.node]
    assert converted == 3 and ops.count("DynamicQuantizeMatMul") == 3 and ops.count("MatMul") == 1, ops
    after = _run(converted_model)
    for name in ("y0", "y1", "y2"):
        error = np.abs(after[name] - before[name]).max() / np.abs(before[name]).max()
        assert error < 0.03, (name, error)
    for name in ("sum", "y3", "kept"):  # not converted: bit for bit
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert list(tmp_path.iterdir()) == []  # the calibration's temporary files are gone


def _unfillable_input(model: onnx.ModelProto) -> str:
    model.graph.input.append(helper.make_tensor_value_info("unfillable", TensorProto.UNDEFINED, [1]))
    return "calibration inputs could not be built"


def _no_token_ids(model: onnx.ModelProto) -> str:
    model.graph.input[0].name = "tokens"
    model.graph.node[0].input[1] = "tokens"
    return "no embedding table reads input_ids"


@pytest.mark.parametrize("spoil", [_unfillable_input, _no_token_ids])
def test_a_calibration_that_cannot_start_converts_nothing(spoil, tmp_path, caplog):
    """An input the calibration feeds cannot fill (one of no element type), or no embedding table read by
    input_ids, skips the int8 GEMMs with a warning that says why; the compile goes on with the graph as
    it was, and nothing is written."""
    model = _graph()
    reason = spoil(model)
    before = model.SerializeToString()
    with caplog.at_level("WARNING", logger=smooth_int8.__name__):
        kept, converted = smooth_int8.smoothed_int8_projections(model, ctx_len=64, workdir=tmp_path)
    assert converted == 0 and kept.SerializeToString() == before
    assert reason in caplog.text
    assert list(tmp_path.iterdir()) == []
