"""``mxfp6_matmul=True`` on a fused decoder: the projections after normalizations and attention run as int8 GEMMs.

MatMulNBits (8-bit blocks of 64, weight_compression.py) reads few bytes per token, but over the
rows of a prefill chunk its kernel is no faster than float32 ``MatMul``. ONNX Runtime's
``com.microsoft.DynamicQuantizeMatMul`` (int8 weights with one scale per output column, the
activations quantised to uint8 with one scale per tensor) runs as an int8 GEMM (VNNI, AMX): several
times faster over many rows, as fast at one row.

One activation scale per tensor is only as good as the tensor is even, and a decoder's normalized
hidden states are not: a few channels carry values tens of times larger than the rest (the first
position of a prompt most of all), so quantised as they are, every other channel loses its
precision. As SmoothQuant (Xiao et al., 2023) does, each channel j is divided by
``s_j = max|x_j|^ALPHA / max|W_j|^(1 - ALPHA)``, folded into the normalization's gain (and bias), and
multiplied into row j of the weight: exact in float, and both sides then quantise well. ``max|x_j|``
comes from one run of the fused float32 graph over seeded random tokens: the outlier channels
belong to the model, not to the text (calibrating on prose, on markdown or on random tokens gave
the same quality; docs/performance.md).

Converted: every MatMul reading a normalization whose output only constant-weight MatMuls read
(per decoder layer, the merged q/k/v and gate/up), and, without smoothing, every one reading a
``GroupQueryAttention`` output (o_proj: a weighted mean of value rows, even enough as it is). The
MLP's down projection stays in MatMulNBits, whose kernel quantises activations per block of 64
within each row: its input has outliers that belong to single tokens, which no per-channel factor
evens out (smoothed through the columns of ``up``, its predictions moved several times further from
float32: docs/performance.md); so does the LM head (a tied embedding reads its blocks). Where the
calibration run fails, nothing is converted.

The calibration graph writes its cache in place where attention is not one GroupQueryAttention (a
float16 cache, soft-capped scores), so it is fed a cache of as many slots as it has tokens. One
activation scale serves every row of a run: what else is in a batch (or a prefill chunk's padding)
moves a row's rounding, by quantisation noise (docs/performance.md).
"""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from QEfficient.export.graph_names import CTX_LEN_AXIS, INPUT_IDS, POSITION_IDS
from QEfficient.utils.onnx_files import save_copy_with_external_weights

logger = logging.getLogger(__name__)

ALPHA = 0.7
CALIBRATION_TOKENS = 256
CALIBRATION_SEED = 0
# in the hash of a fused mxfp6_matmul artifact: a change here rebuilds them
INT8_PROJECTIONS = (
    f"dynamic-int8-per-column-smoothquant-alpha{ALPHA}-random{CALIBRATION_TOKENS}-seed{CALIBRATION_SEED}+attention-out"
    f"+cache-of-{CALIBRATION_TOKENS}-slots"
)
# normalization -> the inputs scaled by 1/s: its gain, and its bias where it has one (normalized output: 0)
SCALED_INPUTS = {
    "SimplifiedLayerNormalization": (1,),
    "SkipSimplifiedLayerNormalization": (2,),
    "LayerNormalization": (1, 2),
    "SkipLayerNormalization": (2, 3),
}
ATTENTION_OPS = frozenset({"GroupQueryAttention"})  # outputs quantised per tensor without smoothing


def _candidates(model: onnx.ModelProto) -> tuple[dict[str, tuple[int, list[int]]], list[int]]:
    """What is converted, as indices into ``model.graph.node``: normalized output -> (the normalization,
    the MatMuls reading it), where every reader is a convertible MatMul and the gain (and bias) are
    constants; and the convertible MatMuls reading an attention output. Convertible: a MatMul with its
    own float32 2-D constant weight."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    readers: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(graph.node):
        for name in node.input:
            readers[name].append(index)
    outputs = {o.name for o in graph.output}

    def convertible(node: onnx.NodeProto, source: str) -> bool:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and node.input[0] == source else None
        return (
            weight is not None and len(weight.dims) == 2 and weight.data_type == onnx.TensorProto.FLOAT and len(readers[node.input[1]]) == 1
        )

    normalized, after_attention = {}, []
    for index, node in enumerate(graph.node):
        if not node.output or node.output[0] in outputs:
            continue
        source = node.output[0]
        if node.op_type in ATTENTION_OPS:
            after_attention += [m for m in readers[source] if convertible(graph.node[m], source)]
        scaled = SCALED_INPUTS.get(node.op_type)
        if scaled is None:
            continue
        params = [node.input[i] for i in scaled if i < len(node.input) and node.input[i]]
        matmuls = readers[source]
        if params and all(p in inits for p in params) and matmuls and all(convertible(graph.node[m], source) for m in matmuls):
            normalized[source] = (index, matmuls)
    return normalized, after_attention


def _calibration_feeds(graph: onnx.GraphProto, tokens: int) -> dict[str, np.ndarray] | None:
    """Seeded random token ids (within the embedding table's rows) at positions 0..tokens-1, zeros for
    every other input: an empty cache of ``tokens`` slots (the graph writes them in place where attention
    is not one GroupQueryAttention), other symbolic dimensions 1. None where the table is not found."""
    inits = {i.name: i for i in graph.initializer}
    vocab = next(
        (inits[n.input[0]].dims[0] for n in graph.node if n.op_type == "Gather" and n.input[1] == INPUT_IDS and n.input[0] in inits),
        None,
    )
    if vocab is None:
        return None
    ids = np.random.default_rng(CALIBRATION_SEED).integers(0, vocab, (1, tokens), dtype=np.int64)
    feeds = {}
    for value in graph.input:
        t = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else tokens if d.dim_param == CTX_LEN_AXIS else 1 for d in t.shape.dim]
        if value.name == INPUT_IDS:
            feeds[value.name] = np.repeat(ids, shape[0], axis=0)
        elif value.name == POSITION_IDS:
            feeds[value.name] = np.repeat(np.arange(tokens, dtype=np.int64)[None], shape[0], axis=0)
        else:
            feeds[value.name] = np.zeros(shape, dtype=onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))
    return feeds


def _activation_maxima(model: onnx.ModelProto, names: list[str], ctx_len: int, workdir: Path) -> dict[str, np.ndarray] | None:
    """Per-channel max |x| of the named tensors over one prefill of random tokens, by ONNX Runtime on
    the float32 graph (a copy saved to ``workdir``; ``model`` is left as it was)."""
    import onnxruntime as ort

    try:  # an input the feeds cannot fill is a failed calibration too, not a failed compile
        feeds = _calibration_feeds(model.graph, min(CALIBRATION_TOKENS, ctx_len))
    except Exception as e:  # noqa: BLE001 - any failure keeps today's MatMulNBits everywhere
        logger.warning("int8 GEMMs after normalizations skipped: the calibration inputs could not be built (%r)", e)
        return None
    if feeds is None:
        logger.warning("int8 GEMMs after normalizations skipped: no embedding table reads %s", INPUT_IDS)
        return None
    maxima = None
    with tempfile.TemporaryDirectory(prefix="qeff-calibrate-", dir=workdir) as tmp:
        base_outputs = len(model.graph.output)
        model.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
        try:
            path = save_copy_with_external_weights(model, Path(tmp) / "calibrate.onnx")
        finally:  # only the saved copy has them
            del model.graph.output[base_outputs:]
        try:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph as it will be quantized
            options.add_session_config_entry("session.disable_prepacking", "1")  # one run: packed weights would be a copy
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            values = session.run(names, feeds)
            del session
            maxima = {n: np.abs(v.reshape(-1, v.shape[-1])).max(axis=0) for n, v in zip(names, values)}
        except Exception as e:  # noqa: BLE001 - any failure keeps today's MatMulNBits everywhere
            logger.warning("int8 GEMMs after normalizations skipped: the calibration run failed (%r)", e)
    return maxima


def _int8_matmul(graph: onnx.GraphProto, node: onnx.NodeProto, weight: np.ndarray) -> None:
    """Make ``node`` a DynamicQuantizeMatMul over ``weight`` in int8, one scale per output column."""
    column_scale = np.abs(weight).max(axis=0) / 127.0
    column_scale[column_scale == 0] = 1.0
    codes = np.clip(np.rint(weight / column_scale), -127, 127).astype(np.int8)
    codes_name, scale_name = f"{node.input[1]}_int8", f"{node.input[1]}_int8_scale"
    graph.initializer.extend(
        [numpy_helper.from_array(codes, codes_name), numpy_helper.from_array(column_scale.astype(np.float32), scale_name)]
    )
    inputs = [node.input[0], codes_name, scale_name]
    name = f"{node.name or node.output[0]}_int8"  # unnamed nodes too: names must be unique
    node.CopyFrom(helper.make_node("DynamicQuantizeMatMul", inputs, list(node.output), name=name, domain="com.microsoft"))


def smoothed_int8_projections(model: onnx.ModelProto, ctx_len: int, workdir: Path) -> tuple[onnx.ModelProto, int]:
    """Rewrite the MatMuls after normalizations (smoothed) and attention outputs into DynamicQuantizeMatMul
    over int8 weights (module docstring); returns the model (rewritten in place) and the count converted."""
    found, after_attention = _candidates(model)
    if not found:
        return model, 0
    maxima = _activation_maxima(model, sorted(found), ctx_len, workdir)
    if maxima is None:
        return model, 0
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    converted = 0
    for out, (norm_index, matmul_indices) in found.items():
        norm, matmuls = graph.node[norm_index], [graph.node[i] for i in matmul_indices]
        weights = [numpy_helper.to_array(inits[m.input[1]]) for m in matmuls]
        weight_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        scale = np.maximum(maxima[out], 1e-5) ** ALPHA / np.maximum(weight_max, 1e-5) ** (1 - ALPHA)
        for i in SCALED_INPUTS[norm.op_type]:
            if i < len(norm.input) and norm.input[i]:  # a copy of its own: equal gains may share one initializer
                smoothed = (numpy_helper.to_array(inits[norm.input[i]]) / scale).astype(np.float32)
                graph.initializer.append(numpy_helper.from_array(smoothed, f"{out}_smoothed_{i}"))
                norm.input[i] = f"{out}_smoothed_{i}"
        for node, weight in zip(matmuls, weights):
            _int8_matmul(graph, node, weight * scale[:, None])
            converted += 1
    for index in after_attention:
        node = graph.node[index]
        _int8_matmul(graph, node, numpy_helper.to_array(inits[node.input[1]]))
        converted += 1
    read = {name for node in graph.node for name in node.input}
    for unread in [i for i in graph.initializer if i.name not in read]:  # replaced weights, gains now copied
        graph.initializer.remove(unread)
    return model, converted
