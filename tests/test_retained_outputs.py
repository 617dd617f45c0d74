"""export/retained_outputs.py: the no-op Cast behind a cache scatter goes only where the scatter may write the cache in
place (nothing that runs later reads the cache as it came in); the graph's results stay those of ONNX Runtime on the
graph as traced."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from QEfficient.export.retained_outputs import drop_retained_casts, scatter_cache_rows


def cache_graph(late_reader: bool) -> onnx.ModelProto:
    """past [1,2,4] -> ScatterElements at slot ``pos`` -> Cast -> past_RetainedState, and ``out`` = the row sum of
    the updated cache; with ``late_reader``, ``out`` also adds the cache as it came in (a reader that may run after
    the scatter)."""
    nodes = [
        helper.make_node("Shape", ["past"], ["shape"]),
        helper.make_node("ScatterElements", ["past", "index", "new"], ["written"], axis=2),
        helper.make_node("Cast", ["written"], ["past_RetainedState"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["past_RetainedState", "axes"], ["summed"], keepdims=0),
    ]
    if late_reader:
        nodes += [helper.make_node("ReduceSum", ["past", "axes"], ["old"], keepdims=0), helper.make_node("Add", ["summed", "old"], ["out"])]
    else:
        nodes += [helper.make_node("Identity", ["summed"], ["out"])]
    graph = helper.make_graph(
        nodes,
        "cache",
        [
            helper.make_tensor_value_info("past", TensorProto.FLOAT, [1, 2, 4]),
            helper.make_tensor_value_info("index", TensorProto.INT64, [1, 2, 1]),
            helper.make_tensor_value_info("new", TensorProto.FLOAT, [1, 2, 1]),
        ],
        [
            helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("past_RetainedState", TensorProto.FLOAT, None),
        ],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {
        "past": np.arange(8, dtype=np.float32).reshape(1, 2, 4),
        "index": np.full((1, 2, 1), 3),
        "new": np.full((1, 2, 1), 10.0, np.float32),
    }
    return session.run(None, feeds)


def test_the_cast_goes_where_only_shape_reads_the_cache():
    model = cache_graph(late_reader=False)
    expected = run(model)
    assert drop_retained_casts(model) == 1 and "Cast" not in {n.op_type for n in model.graph.node}
    for got, want in zip(run(model), expected):
        np.testing.assert_array_equal(got, want)


def test_the_cast_stays_where_a_later_node_reads_the_cache_as_it_came_in():
    model = cache_graph(late_reader=True)
    assert drop_retained_casts(model) == 0 and "Cast" in {n.op_type for n in model.graph.node}


def test_cache_scatters_become_row_scatters_with_the_same_results():
    """scatter_cache_rows: ScatterElements over [B, H, T, D] at slots expanded to [B, H, S, D] -> ScatterND of whole
    rows; the retained cache and what is computed from it are the same."""
    nodes = [
        helper.make_node("ScatterElements", ["past", "index", "new"], ["past_RetainedState"], axis=2),
        helper.make_node("ReduceSum", ["past_RetainedState", "axes"], ["out"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "cache",
        [
            helper.make_tensor_value_info("past", TensorProto.FLOAT, ["B", 3, 5, 4]),
            helper.make_tensor_value_info("index", TensorProto.INT64, ["B", 3, "S", 4]),
            helper.make_tensor_value_info("new", TensorProto.FLOAT, ["B", 3, "S", 4]),
        ],
        [
            helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("past_RetainedState", TensorProto.FLOAT, None),
        ],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(0)
    slots = np.array([[1, 4], [0, 2]])  # two rows, two new positions each
    feeds = {
        "past": rng.standard_normal((2, 3, 5, 4)).astype(np.float32),
        "index": np.broadcast_to(slots[:, None, :, None], (2, 3, 2, 4)).copy(),
        "new": rng.standard_normal((2, 3, 2, 4)).astype(np.float32),
    }

    def run_with(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)

    expected = run_with(model)
    assert scatter_cache_rows(model) == 1
    assert "ScatterND" in {n.op_type for n in model.graph.node} and "ScatterElements" not in {n.op_type for n in model.graph.node}
    for got, want in zip(run_with(model), expected):
        np.testing.assert_array_equal(got, want)
