"""``compile(fuse=True)``: rewrite each decoder layer into ONNX Runtime's fused operators.

The exported graph spells every layer out in elementary operators; even after ONNX Runtime's
own optimizer a Llama layer is ~44 kernels, and at batch 1 most of a decode step's time goes to
the ones that are not MatMuls. This pass, run once at compile time on the exported graph:

1. runs ONNX Runtime's optimizer offline (level "extended": constant folding, the
   ``SimplifiedLayerNormalization`` / ``FusedMatMul`` / SiLU fusions), so the patterns below are
   matched on one canonical form;
2. drops the no-op ``Cast`` between each cache ``ScatterElements`` and its ``*_RetainedState``
   output: the scatter then writes the output buffer itself, which the runtime binds to the same
   memory as the ``past_*`` input, so the update is in place instead of scatter-into-a-copy + copy;
3. residual ``Add`` + RMSNorm -> ``com.microsoft.SkipSimplifiedLayerNormalization``, and GELU's tanh
   approximation -> ``com.microsoft.FastGelu`` (onnxruntime's own transformers fusions);
4. q/k/v and gate/up MatMuls on one input -> one MatMul on concatenated weights + ``Split``
   (shared with ``mxfp6_matmul``, which then quantizes the merged weight: MatMulNBits along N);
   Qwen2's q/k/v biases become one Add before the split; the merged q/k/v output is reshaped to
   heads and transposed once, then split along the heads;
5. rotary (``x*cos + rotate_half(x)*sin``) -> ``com.microsoft.RotaryEmbedding`` over cos/sin tables
   computed *by the graph's own subgraph* for positions ``0..ctx_len-1`` (so RoPE scaling variants
   come out exactly as exported), fired only when that subgraph reads nothing but ``position_ids``
   through position-wise operators;
6. attention (grouped-query scores, boolean visibility mask, softmax, weighted sum over the
   static cache) -> the ONNX ``Attention`` operator (opset 23), fired only when the graph's
   other operators mean the same at opset 23;
7. where the mask is causal (with or without a sliding window) and the cache float32, the whole
   attention block (heads split, both rotaries, the two scatters, ``Attention``, the transpose
   back) -> ``com.microsoft.GroupQueryAttention`` on the packed projection, or on separate q/k/v
   where per-head norms sit before the rotary (fusion_gqa.py), in place on the same cache buffer;
   elsewhere q and k share one ``RotaryEmbedding`` on the merged projection instead
   (fusion_gqa.merge_qk_rotary).
8. an ``Attention`` that stays (a float16 cache; a layer GroupQueryAttention does not match) reads
   the cache slots and the mask only up to ``max(position_ids) + 1`` (attention_window.py).

Each pattern is matched exactly and left alone otherwise, so a layer of an architecture it does
not recognise keeps its graph. What attention keeps: the cache is written in place at
``position_ids`` (rows right-padded, as the runtime builds them), attention reads the window of
slots the runtime binds (cost follows the real length), the mask still comes from
``position_ids`` where Attention stays (padding, sliding windows), the LM head still sees only the
last position, and prefill and decode share one graph.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from QEfficient.compile.attention_window import slice_attention_to_positions
from QEfficient.compile.smooth_int8 import smoothed_int8_projections
from QEfficient.compile.weight_compression import (
    drop_zero_gemm_biases,
    fuse_shared_input_matmuls,
    gemm_to_matmul,
    lm_heads,
    quantize_lm_heads,
    quantize_remaining_matmuls,
)
from QEfficient.export.graph_names import POSITION_IDS
from QEfficient.export.retained_outputs import drop_retained_casts
from QEfficient.export.shape_folding import prune_dead_nodes
from QEfficient.utils.onnx_files import load_graph_and_weights, save_with_external_weights

logger = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"
FUSION_VERSION = 6  # in the artifact hash: a change to the passes rebuilds fused artifacts
ATTENTION_OPSET = 23
# Operators the rotary tables may be computed with: each output row depends on its own position only.
_POSITIONWISE = {"Clip", "Unsqueeze", "Cast", "Mul", "Div", "Concat", "Cos", "Sin", "Transpose", "MatMul", "Identity", "Constant"}
# Default-domain operators whose opset-17 and opset-23 definitions differ only by added types or
# attributes with defaults that keep the opset-17 meaning: bumping the model to opset 23 for
# ``Attention`` leaves them as they were. A graph with any other changed operator is not bumped.
_SAME_MEANING_AT_23 = {
    "Cast",  # 19: saturate (float8 only), 21/23: types
    "Constant",
    "ConstantOfShape",
    "Flatten",
    "Identity",
    "Reshape",
    "Shape",
    "Size",
    "Squeeze",
    "Transpose",
    "Unsqueeze",
    "ScatterElements",  # 18: reduction max/min added
    "ScatterND",  # 18: reduction max/min added
    "Split",  # 18: num_outputs added
    "Equal",  # 19: string type
    "Where",
    "Pad",  # 18: axes input, 19: wrap mode, 21/23: types
    "Cos",  # 22: bfloat16
    "Sin",  # 22: bfloat16
}


def fuse_by_default(config) -> bool:
    """compile()'s default for ``fuse``: on for every type the architecture sweep proved. The sweep's
    compile is this default, so what it proves token-exact is the fused graph; each pattern fires only
    where it is recognised exactly and the rest of a layer keeps its graph."""
    from QEfficient.transform.adapters.sweep_status import PROVEN

    return getattr(config, "model_type", None) in PROVEN


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class _Graph:
    """Producer/consumer maps over a graph, rebuilt after each pass."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        g = model.graph
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.inits = {i.name: i for i in g.initializer}
        self.graph_inputs = {i.name: i for i in g.input}
        self.graph_outputs = {o.name for o in g.output}

    def const(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(_attr(node, "value"))
        return None

    def parent(self, node: onnx.NodeProto, index: int, op_type: str) -> onnx.NodeProto | None:
        if index >= len(node.input):
            return None
        p = self.producer.get(node.input[index])
        return p if p is not None and p.op_type == op_type else None

    def only_consumer(self, name: str) -> bool:
        return len(self.consumers.get(name, [])) == 1 and name not in self.graph_outputs


def optimize_offline(src: Path, workdir: Path) -> onnx.ModelProto:
    """ONNX Runtime's optimizer at level "extended", saved and read back (weights included)."""
    import onnxruntime as ort

    out = workdir / "extended.onnx"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(out)
    opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", out.name + ".data")
    opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    # Opened only to write the optimized file: packing the weights for later runs would copy them all.
    opts.add_session_config_entry("session.disable_prepacking", "1")
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    return load_graph_and_weights(out)


def fuse_skip_norms(model: onnx.ModelProto) -> int:
    """Residual Add + SimplifiedLayerNormalization -> SkipSimplifiedLayerNormalization (onnxruntime's fusion)."""
    from onnxruntime.transformers.fusion_skiplayernorm import FusionSkipLayerNormalization
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(model)
    before = sum(1 for n in model.graph.node if n.op_type == "SkipSimplifiedLayerNormalization")
    # Without symbolic shape inference (it does not complete on these graphs): the fusion still
    # refuses an Add with a constant input, and the kernel checks the skip's shape at run time.
    FusionSkipLayerNormalization(wrapped, "SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization", shape_infer=False).apply()
    wrapped.topological_sort()
    return sum(1 for n in model.graph.node if n.op_type == "SkipSimplifiedLayerNormalization") - before


def fuse_fast_gelu(model: onnx.ModelProto) -> int:
    """GELU's tanh approximation spelled out (Gemma's ``gelu_pytorch_tanh``: 8 elementwise nodes) ->
    ``com.microsoft.FastGelu`` (onnxruntime's fusion). Returns the count."""
    from onnxruntime.transformers.fusion_fastgelu import FusionFastGelu
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(model)
    FusionFastGelu(wrapped).apply()
    wrapped.topological_sort()
    return sum(1 for n in model.graph.node if n.op_type == "FastGelu")


def _last_axis_splits(g: _Graph):
    """(Split, its constant sizes) for each Split on the last axis whose every output has one reader."""
    for split in [n for n in g.model.graph.node if n.op_type == "Split"]:
        sizes = g.const(split.input[1]) if len(split.input) > 1 else None
        if sizes is not None and _attr(split, "axis") == -1 and all(g.only_consumer(o) for o in split.output):
            yield split, sizes


def split_heads_once(model: onnx.ModelProto) -> int:
    """Split([B,S,N]) -> per part Reshape([0,0,-1,D]) + Transpose(0,2,1,3), as after the q/k/v merge,
    -> one Reshape + Transpose of the whole [B,S,N] and a Split of the heads axis. Returns the count."""
    g = _Graph(model)
    done = 0
    for split, sizes in _last_axis_splits(g):
        reshapes = [g.consumers[o][0] for o in split.output]
        shapes = [g.const(r.input[1]) if r.op_type == "Reshape" and r.input[0] == o else None for r, o in zip(reshapes, split.output)]
        if any(x is None or x.size != 4 or list(x[:3]) != [0, 0, -1] or x[3] != shapes[0][3] for x in shapes):
            continue
        head_dim = int(shapes[0][3])
        if head_dim <= 0 or any(int(n) % head_dim for n in sizes) or any(_attr(r, "allowzero", 0) for r in reshapes):
            continue
        if any(not g.only_consumer(r.output[0]) for r in reshapes):
            continue
        transposes = [g.consumers[r.output[0]][0] for r in reshapes]
        if any(t.op_type != "Transpose" or list(_attr(t, "perm", [])) != [0, 2, 1, 3] for t in transposes):
            continue
        base = split.name
        shape = numpy_helper.from_array(np.array([0, 0, -1, head_dim], np.int64), f"{base}/heads_shape")
        heads = numpy_helper.from_array((np.asarray(sizes, np.int64) // head_dim), f"{base}/heads_split")
        model.graph.initializer.extend([shape, heads])
        for n in (split, *reshapes, *transposes):
            model.graph.node.remove(n)
        model.graph.node.extend(
            [
                helper.make_node("Reshape", [split.input[0], shape.name], [f"{base}/heads"], name=f"{base}/heads_reshape"),
                helper.make_node("Transpose", [f"{base}/heads"], [f"{base}/heads_t"], name=f"{base}/heads_transpose", perm=[0, 2, 1, 3]),
                helper.make_node("Split", [f"{base}/heads_t", heads.name], [t.output[0] for t in transposes], name=f"{base}/heads", axis=1),
            ]
        )
        done += 1
    if done:
        _topological_sort(model)
    return done


def _upstream(g: _Graph, name: str) -> tuple[list[onnx.NodeProto], set[str]] | None:
    """Nodes computing ``name`` and the graph inputs they read, or None past 64 nodes."""
    nodes, inputs, todo, seen = [], set(), [name], set()
    while todo:
        t = todo.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        if t in g.graph_inputs:
            inputs.add(t)
            continue
        node = g.producer.get(t)
        if node is None:  # initializer
            continue
        nodes.append(node)
        todo.extend(node.input)
        if len(nodes) > 64:
            return None
    return nodes, inputs


def subgraph_session(g: _Graph, nodes, inputs: list[str], outputs: list[tuple[str, int]]):
    """An ONNX Runtime session over ``nodes`` of the graph (in graph order) alone: the given graph inputs
    in, the named tensors (name, element type) out; how compile-time passes evaluate a subgraph."""
    import onnxruntime as ort

    order = [n for n in g.model.graph.node if any(n is m for m in nodes)]
    used = {i for n in order for i in n.input}
    sub = helper.make_graph(
        order,
        "subgraph",
        [g.graph_inputs[i] for i in inputs],
        [helper.make_tensor_value_info(name, elem_type, None) for name, elem_type in outputs],
        [g.inits[i] for i in used if i in g.inits],
    )
    sub_model = helper.make_model(sub, opset_imports=g.model.opset_import)
    sub_model.ir_version = g.model.ir_version
    return ort.InferenceSession(sub_model.SerializeToString(), providers=["CPUExecutionProvider"])


def _rotary_tables(g: _Graph, cos: str, sin: str, ctx_len: int) -> tuple[np.ndarray, np.ndarray] | None:
    """cos/sin [ctx_len, D/2] for positions 0..ctx_len-1, computed by the graph's own subgraph, or None
    when that subgraph is not a position-wise function of position_ids alone (or not rotate_half form)."""

    found = [_upstream(g, cos), _upstream(g, sin)]
    if any(f is None for f in found):
        return None
    nodes = {id(n): n for f in found for n in f[0]}.values()
    if {i for f in found for i in f[1]} != {POSITION_IDS} or any(n.op_type not in _POSITIONWISE for n in nodes):
        return None
    session = subgraph_session(g, nodes, [POSITION_IDS], [(cos, onnx.TensorProto.FLOAT), (sin, onnx.TensorProto.FLOAT)])
    positions = np.arange(ctx_len, dtype=np.int64)[None]
    cos_t, sin_t = session.run(None, {POSITION_IDS: positions})
    if cos_t.ndim != 3 or cos_t.shape[:2] != (1, ctx_len) or cos_t.shape != sin_t.shape or cos_t.shape[-1] % 2:
        return None
    # Position-wise check: a batch of shuffled positions (with padding, -1) must read the same rows.
    probe = np.array([[5 % ctx_len, -1, 0, ctx_len - 1], [ctx_len - 1, 2 % ctx_len, -1, 1 % ctx_len]], dtype=np.int64)
    cos_p, sin_p = session.run(None, {POSITION_IDS: probe})
    rows = np.clip(probe, 0, None)
    if not (np.array_equal(cos_p, cos_t[0][rows]) and np.array_equal(sin_p, sin_t[0][rows])):
        return None
    half = cos_t.shape[-1] // 2
    cos_t, sin_t = cos_t[0], sin_t[0]
    if not (np.array_equal(cos_t[:, :half], cos_t[:, half:]) and np.array_equal(sin_t[:, :half], sin_t[:, half:])):
        return None
    return np.ascontiguousarray(cos_t[:, :half]), np.ascontiguousarray(sin_t[:, :half])


def _match_rotary(g: _Graph, add: onnx.NodeProto):
    """Add(Mul(x, cos), Mul(Concat(Neg(x2), x1), sin)) with x1, x2 = Split(x) in halves on the last
    axis and cos/sin = Unsqueeze(table, axis 1); returns (x, cos_2d, sin_2d, nodes) or None."""
    muls = [g.producer.get(i) for i in add.input]
    if any(m is None or m.op_type != "Mul" for m in muls):
        return None
    for plain, rotated in (muls, muls[::-1]):
        for xi in (0, 1):
            x, cos_u = plain.input[xi], plain.input[1 - xi]
            for ci in (0, 1):
                concat, sin_u = g.parent(rotated, ci, "Concat"), rotated.input[1 - ci]
                if concat is None or len(concat.input) != 2 or _attr(concat, "axis") not in (-1, 3):
                    continue
                neg = g.parent(concat, 0, "Neg")
                split = g.producer.get(concat.input[1])
                if neg is None or split is None or split.op_type != "Split" or split.input[0] != x:
                    continue
                if list(split.output) != [concat.input[1], neg.input[0]] or _attr(split, "axis") not in (-1, 3):
                    continue
                sizes = g.const(split.input[1]) if len(split.input) > 1 else None
                if sizes is None or len(sizes) != 2 or sizes[0] != sizes[1]:
                    continue
                unsq = [g.producer.get(cos_u), g.producer.get(sin_u)]
                if any(u is None or u.op_type != "Unsqueeze" for u in unsq):
                    continue
                axes = [g.const(u.input[1]) if len(u.input) > 1 else np.array(_attr(u, "axes")) for u in unsq]
                if any(a is None or list(np.atleast_1d(a)) != [1] for a in axes):
                    continue
                inner = [n for n in (plain, rotated, concat, neg, split) if n is not None]
                return x, unsq[0].input[0], unsq[1].input[0], inner
    return None


def fuse_rotary(model: onnx.ModelProto, ctx_len: int) -> int:
    """x*cos + rotate_half(x)*sin on [B, N, S, D] -> com.microsoft.RotaryEmbedding; returns the count."""
    g = _Graph(model)
    tables: dict[tuple[str, str], tuple[str, str] | None] = {}
    positions = "qeff_fusion/rotary_positions"
    fused = 0
    for add in [n for n in model.graph.node if n.op_type == "Add"]:
        match = _match_rotary(g, add)
        if match is None:
            continue
        x, cos, sin, inner = match
        # the intermediate results must feed nothing else (x itself may)
        if any(not g.only_consumer(o) for n in inner for o in n.output if n.op_type != "Split") or any(
            not g.only_consumer(o) for n in inner if n.op_type == "Split" for o in n.output
        ):
            continue
        if (cos, sin) not in tables:
            computed = _rotary_tables(g, cos, sin, ctx_len)
            if computed is None:
                tables[(cos, sin)] = None
            else:
                names = (f"qeff_fusion/rotary_cos_{len(tables)}", f"qeff_fusion/rotary_sin_{len(tables)}")
                model.graph.initializer.extend(numpy_helper.from_array(t, n) for t, n in zip(computed, names))
                tables[(cos, sin)] = names
        if tables[(cos, sin)] is None:
            continue
        if not fused:
            zero = numpy_helper.from_array(np.array(0, np.int64), "qeff_fusion/zero")
            model.graph.initializer.append(zero)
            model.graph.node.append(helper.make_node("Max", [POSITION_IDS, zero.name], [positions], name="qeff_fusion/rotary_positions"))
        cos_t, sin_t = tables[(cos, sin)]
        rotary = helper.make_node(
            "RotaryEmbedding",
            [x, positions, cos_t, sin_t],
            [add.output[0]],
            name=f"{add.name}/RotaryEmbedding",
            domain=MS_DOMAIN,
            interleaved=0,
        )
        for n in (*inner, add):
            model.graph.node.remove(n)
        model.graph.node.append(rotary)
        fused += 1
    if fused:
        _topological_sort(model)
    return fused


def fold_split_biases(model: onnx.ModelProto) -> int:
    """Split on the last axis whose every part gets its own constant bias (Qwen2's q/k/v) -> one Add of
    the concatenated bias before the Split (the same sums), so split_heads_once matches. Returns the count."""
    g = _Graph(model)
    done = 0
    for split, sizes in _last_axis_splits(g):
        adds = [g.consumers[o][0] for o in split.output]
        biases = [
            g.const(a.input[1 - list(a.input).index(o)]) if a.op_type == "Add" and o in a.input else None
            for a, o in zip(adds, split.output)
        ]
        if any(b is None or b.shape != (int(n),) for b, n in zip(biases, sizes)) or len({b.dtype for b in biases}) != 1:
            continue
        bias = numpy_helper.from_array(np.concatenate(biases), f"{split.name}/bias")
        model.graph.initializer.append(bias)
        biased = f"{split.name}/biased"
        model.graph.node.append(helper.make_node("Add", [split.input[0], bias.name], [biased], name=f"{split.name}/bias_add"))
        split.input[0] = biased
        for i, a in enumerate(adds):
            split.output[i] = a.output[0]
            model.graph.node.remove(a)
        done += 1
    if done:
        _topological_sort(model)
    return done


def _match_attention(g: _Graph, reshape_out: onnx.NodeProto):
    """Reshape(MatMul(Softmax(Where(Unsqueeze(mask, 2), FusedMatMul(Reshape(q), Unsqueeze(k, 2)), min)),
    Unsqueeze(v, 2))) -> (q, k, v, mask, scale, nodes) or None; q [B,Hq,S,D], k/v [B,Hkv,T,D]."""
    pv = g.parent(reshape_out, 0, "MatMul")
    softmax = pv and g.parent(pv, 0, "Softmax")
    where = softmax and g.parent(softmax, 0, "Where")
    v_unsq = pv and g.parent(pv, 1, "Unsqueeze")
    if where is None or v_unsq is None or _attr(softmax, "axis", -1) not in (-1, 4):
        return None
    mask_unsq = g.parent(where, 0, "Unsqueeze")
    scores = g.parent(where, 1, "FusedMatMul")
    fill = g.const(where.input[2])
    if mask_unsq is None or scores is None or fill is None or fill.size != 1 or float(fill.reshape(())) > np.finfo(np.float32).min:
        return None
    if _attr(scores, "transB", 0) != 1 or _attr(scores, "transA", 0) or _attr(scores, "transBatchA", 0) or _attr(scores, "transBatchB", 0):
        return None
    q_reshape = g.parent(scores, 0, "Reshape")
    k_unsq = g.parent(scores, 1, "Unsqueeze")
    out_shape = g.const(reshape_out.input[1])
    if q_reshape is None or k_unsq is None or out_shape is None or out_shape.size != 4:
        return None
    # A 5-D q that broadcasts against Unsqueeze(k, 2) = [B, Hkv, 1, T, D] pairs flattened query head h
    # with KV head h // group whatever the reshape's target: the Attention operator's grouping.
    for u in (mask_unsq, k_unsq, v_unsq):
        axes = g.const(u.input[1]) if len(u.input) > 1 else None
        if axes is None or list(np.atleast_1d(axes)) != [2]:
            return None
    nodes = [q_reshape, k_unsq, scores, mask_unsq, where, softmax, v_unsq, pv, reshape_out]
    inner = [q_reshape.output[0], scores.output[0], where.output[0], softmax.output[0], pv.output[0]]
    if any(not g.only_consumer(o) for o in inner):
        return None
    return q_reshape.input[0], k_unsq.input[0], v_unsq.input[0], mask_unsq.input[0], float(_attr(scores, "alpha", 1.0)), nodes


def _can_use_opset_23(model: onnx.ModelProto) -> bool:
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if version is None or version >= ATTENTION_OPSET:
        return version is not None
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in _SAME_MEANING_AT_23:
            continue
        try:
            then = onnx.defs.get_schema(node.op_type, version).since_version
        except onnx.defs.SchemaError:  # ONNX Runtime's own operators in the default domain (SimplifiedLayerNormalization)
            continue
        if onnx.defs.get_schema(node.op_type, ATTENTION_OPSET).since_version != then:
            return False
    return True


def fuse_attention(model: onnx.ModelProto) -> int:
    """Grouped-query attention over the static cache -> ONNX Attention (opset 23); returns the count."""
    if not _can_use_opset_23(model):
        return 0
    g = _Graph(model)
    fused = 0
    for node in [n for n in model.graph.node if n.op_type == "Reshape"]:
        match = _match_attention(g, node)
        if match is None:
            continue
        q, k, v, mask, scale, nodes = match
        # the Unsqueezes of k, v and the mask may serve other layers: removed once nothing reads them
        for n in nodes:
            if n.op_type != "Unsqueeze":
                model.graph.node.remove(n)
        model.graph.node.append(
            helper.make_node("Attention", [q, k, v, mask], [node.output[0]], name=f"{node.name}/Attention", scale=scale)
        )
        fused += 1
    if fused:
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = max(o.version, ATTENTION_OPSET)
        prune_dead_nodes(model)
        _topological_sort(model)
    return fused


def _topological_sort(model: onnx.ModelProto) -> None:
    from onnxruntime.transformers.onnx_model import OnnxModel

    OnnxModel(model).topological_sort()


def fuse_decoder(model: onnx.ModelProto, ctx_len: int, reorder_weights: bool = True) -> Counter:
    """Apply the fusions to an ONNX Runtime-optimized decoder graph in place; returns what fired.
    ``reorder_weights=False`` keeps the rows of each projection in the model's order (the GGUF blocks
    are matched against them afterwards), so q and k keep a rotary node each where GroupQueryAttention
    does not fire. Whole q/k/v parts are still reordered for GroupQueryAttention's packed input: the
    GGUF match accepts tensors stacked in any order."""
    fired = Counter()
    fired["retained_cast"] = drop_retained_casts(model)
    fired["merged_matmul"] = fuse_shared_input_matmuls(model)
    fired["split_bias"] = fold_split_biases(model)
    fired["split_heads"] = split_heads_once(model)
    fired["rotary"] = fuse_rotary(model, ctx_len)
    prune_dead_nodes(model)
    # After the rotary: its `x*cos + rotate_half(x)*sin` Add followed by a per-head norm (HunYuan's q/k
    # norms after the rotary) would otherwise be taken for a residual Add, on a 4-D tensor the kernel refuses.
    fired["skip_norm"] = fuse_skip_norms(model)
    fired["fast_gelu"] = fuse_fast_gelu(model)
    fired["attention"] = fuse_attention(model)
    from QEfficient.compile.fusion_gqa import fuse_group_query_attention, merge_qk_rotary  # build on this module

    fired["group_query_attention"] = fuse_group_query_attention(model, ctx_len)
    fired["attention_window"] = slice_attention_to_positions(model)  # the Attention nodes left
    prune_dead_nodes(model)
    if reorder_weights:
        fired["qk_rotary"] = merge_qk_rotary(model)
    prune_dead_nodes(model)  # and the initializers the replaced nodes read (ONNX Runtime warns about each)
    return fired


def fused_decoder_rewrite(src: Path, dst: Path, *, ctx_len: int, mxfp6_matmul: bool = False, gguf_path: str | Path | None = None) -> Path:
    """The ``rewrite`` of build_artifact for ``compile(fuse=True)``: write the fused graph (8-bit
    MatMul weights too with ``mxfp6_matmul``; the GGUF file's own blocks with ``gguf_path``, as
    ``compile(gguf_weights=True)``) to ``dst`` (+ ``dst.data``)."""
    with tempfile.TemporaryDirectory(prefix="qeff-fuse-", dir=Path(dst).parent) as tmp:
        model = optimize_offline(Path(src), Path(tmp))
    fired = fuse_decoder(model, ctx_len, reorder_weights=gguf_path is None)
    logger.info("Fused decoder graph: %s", dict(fired))
    if gguf_path is not None:  # after the merge: q/k/v and gate/up match the file's tensors stacked along N
        from QEfficient.compile.gguf_weights import apply_gguf_file  # needs the gguf package (an extra)

        model = apply_gguf_file(model, gguf_path, mxfp6_matmul)
    elif mxfp6_matmul:
        drop_zero_gemm_biases(model)
        gemm_to_matmul(model, skip=lm_heads(model))
        model, converted = smoothed_int8_projections(model, ctx_len, Path(dst).parent)
        logger.info("%d MatMuls after normalizations in int8 GEMMs", converted)
        quantize_lm_heads(model)  # after the calibration run: ONNX Runtime runs a float Gemm without a copy of W
        model = quantize_remaining_matmuls(model)
    return save_with_external_weights(model, Path(dst))
