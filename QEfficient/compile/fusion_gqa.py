"""``compile(fuse=True)``, last steps: a layer's attention block -> one ``com.microsoft.GroupQueryAttention``
(fuse_group_query_attention), or, where that does not match, q and k rotated by one RotaryEmbedding
(merge_qk_rotary).

After fusion.py's passes a layer's attention is: the merged q/k/v projection, Reshape + Transpose
to heads, Split, a RotaryEmbedding each for q and k, two cache ScatterElements at ``position_ids``,
ONNX ``Attention`` over the window with the causal mask, Transpose + Reshape back. ONNX Runtime
1.32's GroupQueryAttention does all of it in one kernel on the packed q/k/v projection: rotary at
``position_ids``, the new keys and values written into the bound cache buffer in place (past and
present share it), attention over each row's own length. Its ``query_seqlens`` input (valid tokens
per row, right padding after them; 0 for an idle row) gives the padded prefill chunks, idle rows
and partly padded speculative rows the graph already serves: the row's valid tokens go to slots
``P .. P+Q-1`` where ``P`` is its first position, which is where the scatter put them, as long as a
row's positions are consecutive and its padding (-1) comes after them, which is how every
generation path builds them. Padding is no longer written at all (the scatter parked it in the
window's last slot, masked). GQA writes a row's chunk, padding included, at the row's first
position and checks that it fits: the session binds enough slots (runtime/ort_session.py).

Per-head q/k norms between the head split and the rotary (Qwen3, Gemma 3) stay RMS norms over the
last axis, moved to the sequence-major layout GroupQueryAttention reads (``_sequence_major``); q, k
and v are then its three separate inputs. A sliding window (key slot t visible iff
``position - W < t <= position``) becomes ``local_window_size = W``: W slots with the query's own, as
ONNX Runtime 1.32's CPU kernel counts them (tests/test_fusion.py checks it against HF past the window).

Fired only on an exact match: the mask is verified numerically to be causal, windowed or not, the
scatter index to be the positions, the rotary to be the non-interleaved one; anything else
(soft-capping, a float16 cache: its kernel widens and narrows the whole bound window each call, slower
than the ``Attention`` graph, docs/performance.md) keeps the ``Attention`` graph.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from QEfficient.compile.fusion import MS_DOMAIN, _attr, _Graph, _topological_sort, _upstream, subgraph_session
from QEfficient.export.graph_names import POSITION_IDS

_PREFIX = "qeff_fusion/gqa"


def _evaluate(g: _Graph, name: str, elem_type: int, positions: np.ndarray, window: int) -> np.ndarray | None:
    """The value of tensor ``name`` for ``positions``, by its own subgraph, with the cache inputs it reads
    (for their shape) ``window`` slots long; None when it reads other graph inputs or does not run alone."""
    found = _upstream(g, name)
    if found is None:
        return None
    nodes, inputs = found
    feeds = {}
    for i in sorted(inputs):
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in g.graph_inputs[i].type.tensor_type.shape.dim]
        if i == POSITION_IDS:
            feeds[i] = positions
        elif len(dims) == 4:  # a cache input, read for its window length
            dtype = helper.tensor_dtype_to_np_dtype(g.graph_inputs[i].type.tensor_type.elem_type)
            feeds[i] = np.zeros([positions.shape[0], dims[1] or 1, window, dims[3] or 1], dtype)
        else:
            return None
    try:
        return subgraph_session(g, nodes, sorted(inputs), [(name, elem_type)]).run(None, feeds)[0]
    except Exception:  # noqa: BLE001 - a subgraph that does not run on its own is simply not matched
        return None


def _probes(g: _Graph, window: int) -> list[np.ndarray]:
    """Position batches (right padding, idle rows, rows at different positions, the last slots of the full
    window, so that a sliding or chunked window shorter than ctx_len shows) of the graph's batch size."""
    dim = g.graph_inputs[POSITION_IDS].type.tensor_type.shape.dim[0]
    batch = dim.dim_value if dim.HasField("dim_value") else 2
    last, mid = window - 4, window // 2
    rows = [
        [last, last + 1, last + 2, last + 3],
        [0, 1, -1, -1],
        [-1, -1, -1, -1],
        [mid, mid + 1, -1, -1],
        [3, 4, 5, 6],
        [window - 1, -1, -1, -1],
    ]
    return [np.array([rows[(start + b) % len(rows)] for b in range(batch)], np.int64) for start in range(0, len(rows), batch)]


def _causal_window(g: _Graph, mask: str, window: int) -> int | None:
    """0 when the mask is "key slot t visible iff t <= position", W when it is that within a sliding
    window of W slots (``position - W < t``), None when it is neither."""
    probes = _probes(g, window)
    masks = [_evaluate(g, mask, onnx.TensorProto.BOOL, pos, window) for pos in probes]
    if any(m is None or m.dtype != np.bool_ or m.shape != (pos.shape[0], 1, pos.shape[1], window) for m, pos in zip(masks, probes)):
        return None
    counts = {
        int(m[b, 0, s].sum()) for m, pos in zip(masks, probes) for b, s in zip(*np.nonzero(pos >= 0)) if m[b, 0, s].sum() < pos[b, s] + 1
    }
    slots = len(counts) == 1 and counts.pop()
    for m, pos in zip(masks, probes):
        t, p = np.arange(window)[None, None, None, :], pos[:, None, :, None]
        if not np.array_equal(m, (t <= p) & (t > p - slots) if slots else t <= p):
            return None
    return int(slots)


def _is_position_index(g: _Graph, index: str, window: int) -> bool:
    """The scatter index is Expand(X, Shape(...)) with X [B, 1, S, 1] equal to the positions (padding aside)."""
    expand = g.producer.get(index)
    if expand is None or expand.op_type != "Expand":
        return False
    for pos in _probes(g, window):
        got = _evaluate(g, expand.input[0], onnx.TensorProto.INT64, pos, window)
        if got is None or got.shape != (pos.shape[0], 1, pos.shape[1], 1) or not np.array_equal(got[:, 0, :, 0][pos >= 0], pos[pos >= 0]):
            return False
    return True


def _checked(g: _Graph, cache: dict, check, name: str, window: int):
    """``check(g, name, window)``, once per mask and once per unexpanded index (the layers share them)."""
    expand = g.producer.get(name)
    key = (check, expand.input[0] if check is _is_position_index and expand is not None and expand.op_type == "Expand" else name)
    if key not in cache:
        cache[key] = check(g, name, window)
    return cache[key]


def _norm_chain(g: _Graph, name: str) -> tuple[list[onnx.NodeProto], str]:
    """The RMS norms over the last axis computing ``name``, first to last, each read only by the next (or by
    the rotary), and the tensor the first one reads: a per-head norm works the same in either layout."""
    chain = []
    node = g.producer.get(name)
    while (
        node is not None
        and node.op_type == "SimplifiedLayerNormalization"
        and _attr(node, "axis", -1) in (-1, 3)
        and g.only_consumer(node.output[0])
        and not any(g.consumers.get(o) for o in node.output[1:])
    ):
        chain.insert(0, node)
        name = node.input[0]
        node = g.producer.get(name)
    return chain, name


def _sequence_major(g: _Graph, name: str) -> dict | None:
    """How to read the [B, N, S, D] head tensor ``name`` (a q, k or v part, maybe after per-head norms) as the
    [B, S, N*D] input GroupQueryAttention wants: either the [B, S, N, D] tensor before its Transpose, or a
    Split of the heads axis (split_heads_once) redone on the sequence-major tensor before that Split's
    Transpose. None when it is neither."""
    chain, src = _norm_chain(g, name)
    node = g.producer.get(src)
    if node is not None and node.op_type == "Transpose" and list(_attr(node, "perm", [])) == [0, 2, 1, 3]:
        _, before = _norm_chain(g, node.input[0])  # norms before the Transpose already read [B, S, N, D]
        reshape = g.producer.get(before)
        shape = g.const(reshape.input[1]) if reshape is not None and reshape.op_type == "Reshape" else None
        if shape is None or shape.size != 4 or list(shape[:2]) != [0, 0] or shape[3] <= 0:
            return None
        heads, head_dim = int(shape[2]), int(shape[3])
        split = g.producer.get(reshape.input[0])
        sizes = g.const(split.input[1]) if split is not None and split.op_type == "Split" and len(split.input) > 1 else None
        if heads <= 0 and sizes is not None and _attr(split, "axis") in (-1, 2):
            heads = int(sizes[list(split.output).index(reshape.input[0])]) // head_dim
        return {"chain": chain, "source": node.input[0], "heads": heads, "head_dim": head_dim} if heads > 0 else None
    found = _head_split(g, node)
    if found is None:
        return None
    _, sizes, head_dim = found
    index = list(node.output).index(src)
    return {"chain": chain, "heads_split": node, "index": index, "heads": int(sizes[index]), "head_dim": head_dim}


def _head_split(g: _Graph, split: onnx.NodeProto | None) -> tuple[onnx.NodeProto, np.ndarray, int] | None:
    """split_heads_once's Split of the heads axis: (its Reshape to [B, S, N, D], the head counts, D), or None."""
    if split is None or split.op_type != "Split" or _attr(split, "axis") != 1 or len(split.input) < 2:
        return None
    sizes = g.const(split.input[1])
    transpose = g.parent(split, 0, "Transpose")
    reshape = transpose and g.parent(transpose, 0, "Reshape")
    shape = reshape and g.const(reshape.input[1])
    if sizes is None or shape is None or shape.size != 4 or list(shape[:3]) != [0, 0, -1]:
        return None
    return (reshape, sizes, int(shape[3])) if list(_attr(transpose, "perm", [])) == [0, 2, 1, 3] else None


def _packed_heads(g: _Graph, parts: list[str]) -> dict | None:
    """q, k and v read straight from one head Split (split_heads_once) of the merged projection: its nodes."""
    split = g.producer.get(parts[0])
    found = _head_split(g, split)
    if found is None or sorted(split.output) != sorted(parts):
        return None
    reshape, sizes, head_dim = found
    return {"split": split, "reshape": reshape, "heads": dict(zip(split.output, (int(n) for n in sizes))), "head_dim": head_dim}


def _match_layer(g: _Graph, attention: onnx.NodeProto):
    """The nodes of one layer's attention block around ONNX ``attention`` (see the module docstring), or None."""
    if len(attention.input) != 4 or any(a.name != "scale" for a in attention.attribute):
        return None
    q_rot, k_scatter, v_scatter = (g.producer.get(i) for i in attention.input[:3])
    if q_rot is None or q_rot.op_type != "RotaryEmbedding" or k_scatter is None or v_scatter is None:
        return None
    if any(
        s.op_type != "ScatterElements" or _attr(s, "axis") != 2 or _attr(s, "reduction", b"none") != b"none" for s in (k_scatter, v_scatter)
    ):
        return None
    k_rot = g.producer.get(k_scatter.input[2])
    if k_rot is None or k_rot.op_type != "RotaryEmbedding" or list(k_rot.input[1:]) != list(q_rot.input[1:]):
        return None
    if any(a.name != "interleaved" or _attr(r, "interleaved") for r in (q_rot, k_rot) for a in r.attribute):
        return None
    if not g.only_consumer(q_rot.output[0]):
        return None
    parts = [q_rot.input[0], k_rot.input[0], v_scatter.input[2]]
    packed = _packed_heads(g, parts)
    if packed is not None:
        heads = [packed["heads"][p] for p in parts]
        head_dim = packed["head_dim"]
    else:  # per-head norms in between, or one Reshape + Transpose per part
        plans = [_sequence_major(g, p) for p in parts]
        if any(p is None for p in plans) or len({p["head_dim"] for p in plans}) != 1:
            return None
        heads, head_dim = [p["heads"] for p in plans], plans[0]["head_dim"]
    out_t = g.consumers.get(attention.output[0], [])
    out_r = g.consumers.get(out_t[0].output[0], []) if len(out_t) == 1 else []
    if (
        len(out_r) != 1
        or out_t[0].op_type != "Transpose"
        or list(_attr(out_t[0], "perm", [])) != [0, 2, 1, 3]
        or out_r[0].op_type != "Reshape"
    ):
        return None
    out_shape = g.const(out_r[0].input[1])
    if out_shape is None or out_shape.size != 3 or list(out_shape[:2]) != [0, 0] or int(out_shape[2]) not in (-1, heads[0] * head_dim):
        return None
    past_k, past_v = k_scatter.input[0], v_scatter.input[0]
    if past_k not in g.graph_inputs or past_v not in g.graph_inputs:
        return None
    if any(n.op_type != "Shape" for p, s in ((past_k, k_scatter), (past_v, v_scatter)) for n in g.consumers[p] if n is not s):
        return None
    if [n.name for n in g.consumers[k_scatter.output[0]]] != [attention.name] or [n.name for n in g.consumers[v_scatter.output[0]]] != [
        attention.name
    ]:
        return None
    if g.graph_inputs[past_k].type.tensor_type.elem_type != onnx.TensorProto.FLOAT or heads[1] != heads[2]:
        return None
    if head_dim % 16:  # the kernel's requirement (ONNX Runtime 1.32)
        return None
    match = {
        "attention": attention,
        "q_rot": q_rot,
        "k_scatter": k_scatter,
        "v_scatter": v_scatter,
        "out": out_r[0],
        "out_transpose": out_t[0],
        "parts": parts,
        "num_heads": heads[0],
        "kv_num_heads": heads[1],
        "head_dim": head_dim,
    }
    if packed is not None:
        match.update(split=packed["split"], reshape=packed["reshape"], heads=packed["heads"])
    else:
        match["plans"] = plans
    return match


def _own_index_shapes(model: onnx.ModelProto) -> None:
    """Each cache scatter's index expanded to its own update's shape (ONNX Runtime's optimizer may have
    shared one layer's Shape with the next), so replacing one layer leaves no reader of its tensors."""
    g = _Graph(model)
    for scatter in [n for n in model.graph.node if n.op_type == "ScatterElements"]:
        expand = g.parent(scatter, 1, "Expand")
        shape = expand and g.parent(expand, 1, "Shape")
        if shape is None or shape.input[0] == scatter.input[2]:
            continue
        name = f"{scatter.name}/index"
        own_shape = helper.make_node("Shape", [scatter.input[2]], [f"{name}_shape"], name=f"{name}_shape")
        own_shape.attribute.extend(shape.attribute)  # start/end as the shared one had them
        model.graph.node.extend([own_shape, helper.make_node("Expand", [expand.input[0], f"{name}_shape"], [name], name=name)])
        scatter.input[1] = name


def _lengths(model: onnx.ModelProto, positions: str) -> tuple[str, str, str]:
    """seqlens_k (last position, 0 for an idle row), query_seqlens (valid tokens) and total_sequence_length
    (the longest row or the chunk, within the rotary tables' ctx_len rows even when the bound window is
    longer) as GroupQueryAttention wants them (int32), computed once from ``position_ids``."""
    p = _PREFIX
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(0, np.int64), f"{p}/zero"),
            numpy_helper.from_array(np.array(1, np.int64), f"{p}/one"),
            numpy_helper.from_array(np.array([1], np.int64), f"{p}/axis1"),
        ]
    )
    steps = [
        ("ReduceMax", [positions, f"{p}/axis1"], "last", {"keepdims": 0}),
        ("Cast", [f"{p}/last"], "seqlens_k", {"to": onnx.TensorProto.INT32}),
        ("GreaterOrEqual", [POSITION_IDS, f"{p}/zero"], "valid", {}),
        ("Cast", [f"{p}/valid"], "valid_i32", {"to": onnx.TensorProto.INT32}),
        ("ReduceSum", [f"{p}/valid_i32", f"{p}/axis1"], "query_seqlens", {"keepdims": 0}),
        ("ReduceMax", [f"{p}/last"], "longest_last", {"keepdims": 0}),
        ("Add", [f"{p}/longest_last", f"{p}/one"], "longest", {}),
        ("Shape", [POSITION_IDS], "chunk_1", {"start": 1, "end": 2}),
        ("Squeeze", [f"{p}/chunk_1"], "chunk", {}),
        ("Max", [f"{p}/longest", f"{p}/chunk"], "total_i64", {}),
        ("Cast", [f"{p}/total_i64"], "total", {"to": onnx.TensorProto.INT32}),
    ]
    model.graph.node.extend(helper.make_node(op, inputs, [f"{p}/{out}"], name=f"{p}/{out}", **attrs) for op, inputs, out, attrs in steps)
    return f"{p}/seqlens_k", f"{p}/query_seqlens", f"{p}/total"


def _qkv_input(model: onnx.ModelProto, g: _Graph, m: dict) -> list[str]:
    """GroupQueryAttention's query/key/value inputs: the projection with its columns reordered to q, k, v
    (one packed input; whole parts move, so a GGUF file's tensors still match them), or, when the
    weight is not the projection's own constant, a Split of it."""
    split, heads, d = m["split"], m["heads"], m["head_dim"]
    merged = m["reshape"].input[0]
    starts = dict(zip(split.output, np.cumsum([0] + [heads[o] for o in split.output])[:-1] * d))
    add = g.parent(m["reshape"], 0, "Add")
    matmul = g.parent(add or m["reshape"], 0, "MatMul")
    weight = g.const(matmul.input[1]) if matmul is not None else None
    bias = g.const(add.input[1]) if add is not None else None
    own_weight = weight is not None and weight.ndim == 2 and len(g.consumers[matmul.input[1]]) == 1
    if own_weight and (add is None or (bias is not None and bias.shape == weight.shape[1:])):
        perm = np.concatenate([np.arange(starts[o], starts[o] + heads[o] * d) for o in m["parts"]])
        name = f"{m['split'].name}/qkv_weight"
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight[:, perm]), name))
        matmul.input[1] = name
        if add is not None:
            model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(bias[perm]), f"{name}_bias"))
            add.input[1] = f"{name}_bias"
        return [merged, "", ""]
    names = [f"{split.name}/gqa_{part}" for part in "qkv"]
    by_part = dict(zip(m["parts"], names))
    sizes = numpy_helper.from_array(np.array([heads[o] * d for o in split.output], np.int64), f"{split.name}/gqa_split")
    model.graph.initializer.append(sizes)
    model.graph.node.append(
        helper.make_node("Split", [merged, sizes.name], [by_part[o] for o in split.output], axis=-1, name=f"{split.name}/gqa_split")
    )
    return names


def _separate_inputs(model: onnx.ModelProto, g: _Graph, m: dict, head_splits: dict[str, list[str]]) -> list[str]:
    """GroupQueryAttention's query, key and value as three [B, S, N*D] inputs, for a layer matched through
    ``_sequence_major``: each part's per-head norms applied again to the sequence-major tensor (a head Split
    redone along the sequence-major heads axis, once per Split, in ``head_splits``), then flattened."""
    flat = numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"{_PREFIX}/flat_heads")
    if flat.name not in {i.name for i in model.graph.initializer}:
        model.graph.initializer.append(flat)
    names = []
    for part, plan in zip("qkv", m["plans"]):
        source = plan.get("source")
        if source is None:  # a part of split_heads_once's Split: split [B, S, N, D] along N instead
            split = plan["heads_split"]
            if split.name not in head_splits:
                head_splits[split.name] = [f"{o}/sequence_major" for o in split.output]
                transpose = g.producer[split.input[0]]
                model.graph.node.append(
                    helper.make_node(
                        "Split", [transpose.input[0], split.input[1]], head_splits[split.name], axis=2, name=f"{split.name}/sequence_major"
                    )
                )
            source = head_splits[split.name][plan["index"]]
        for norm in plan["chain"]:  # copies: the originals may still be read in their own layout (by a Shape)
            copy = onnx.NodeProto()
            copy.CopyFrom(norm)
            copy.name = f"{norm.name}/sequence_major"
            copy.input[0] = source
            del copy.output[1:]
            copy.output[0] = source = f"{norm.output[0]}/sequence_major"
            model.graph.node.append(copy)
        name = f"{m['attention'].name}/gqa_{part}"
        model.graph.node.append(helper.make_node("Reshape", [source, flat.name], [name], name=name))
        names.append(name)
    return names


def fuse_group_query_attention(model: onnx.ModelProto, ctx_len: int) -> int:
    """Each matched layer's attention block -> GroupQueryAttention (module docstring); returns the count.
    The mask and scatter index are probed over a full ``ctx_len`` window."""
    if ctx_len < 8:  # too short for the probes
        return 0
    _own_index_shapes(model)
    g = _Graph(model)
    matches = [m for m in (_match_layer(g, n) for n in model.graph.node if n.op_type == "Attention") if m is not None]
    checked: dict[tuple[object, str], object] = {}
    head_splits: dict[str, list[str]] = {}
    lengths = None
    fused = 0
    for m in matches:
        attention, k_scatter = m["attention"], m["k_scatter"]
        past = k_scatter.input[0]
        slots = _checked(g, checked, _causal_window, attention.input[3], ctx_len)  # 0: no window
        if slots is None or not all(_checked(g, checked, _is_position_index, s.input[1], ctx_len) for s in (k_scatter, m["v_scatter"])):
            continue
        if lengths is None:
            lengths = _lengths(model, m["q_rot"].input[1])
        qkv = _qkv_input(model, g, m) if "plans" not in m else _separate_inputs(model, g, m, head_splits)
        seqlens_k, query_seqlens, total = lengths
        cos, sin = m["q_rot"].input[2:4]
        model.graph.node.append(
            helper.make_node(
                "GroupQueryAttention",
                [
                    *qkv,
                    past,
                    m["v_scatter"].input[0],
                    seqlens_k,
                    total,
                    cos,
                    sin,
                    m["q_rot"].input[1],
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    query_seqlens,
                ],
                [m["out"].output[0], k_scatter.output[0], m["v_scatter"].output[0]],
                name=f"{attention.name}/GroupQueryAttention",
                domain=MS_DOMAIN,
                num_heads=m["num_heads"],
                kv_num_heads=m["kv_num_heads"],
                scale=float(_attr(attention, "scale", 1.0 / np.sqrt(m["head_dim"]))),
                do_rotary=1,
                rotary_interleaved=0,
                local_window_size=slots if slots else -1,
            )
        )
        for n in (attention, m["out_transpose"], m["out"], k_scatter, m["v_scatter"]):
            model.graph.node.remove(n)
        fused += 1
    if fused:
        _topological_sort(model)
    return fused


def _rotated_for_attention_only(g: _Graph, q: str, k: str) -> bool:
    """``q`` is read only as one Attention's query and ``k`` only by the cache scatter whose result is that
    Attention's key (and by Shape): a permutation of the head dimension shared by both leaves every score
    unchanged."""
    readers = [n for n in g.consumers.get(k, []) if n.op_type != "Shape"]
    if not g.only_consumer(q) or len(readers) != 1 or k in g.graph_outputs:
        return False
    attention, scatter = g.consumers[q][0], readers[0]
    if attention.op_type != "Attention" or list(attention.input).index(q) != 0 or scatter.op_type != "ScatterElements":
        return False
    if list(scatter.input).index(k) != 2 or scatter.input[0] not in g.graph_inputs or attention.input[1] != scatter.output[0]:
        return False
    return [n.name for n in g.consumers.get(scatter.output[0], [])] == [attention.name]


def merge_qk_rotary(model: onnx.ModelProto, max_table_bytes: int = 32 << 20) -> int:
    """The two RotaryEmbedding nodes of q and k (after split_heads_once) -> one, on the merged q/k/v
    projection before it is split into heads. The merged weight's columns are reordered so that q and
    k come first with each head's halves interleaved (d, d + D/2 adjacent), v last: one
    ``interleaved`` RotaryEmbedding with ``rotary_embedding_dim`` covering q and k then computes
    exactly the per-head rotate_half rotation and leaves v as it is. q and k stay in that
    interleaved order (in the cache too): they only meet in q.k, which the shared order does not
    change. Its cos/sin tables are the per-head ones tiled over the q and k heads (skipped past
    ``max_table_bytes``). Returns the count."""
    g = _Graph(model)
    done, tables = 0, {}
    for split in [n for n in model.graph.node if n.op_type == "Split"]:
        sizes = g.const(split.input[1]) if len(split.input) > 1 else None
        transpose = g.parent(split, 0, "Transpose")
        reshape = transpose and g.parent(transpose, 0, "Reshape")
        shape = reshape and g.const(reshape.input[1])
        if sizes is None or _attr(split, "axis") != 1 or shape is None or list(_attr(transpose, "perm", [])) != [0, 2, 1, 3]:
            continue
        if (
            shape.size != 4
            or list(shape[:3]) != [0, 0, -1]
            or not g.only_consumer(transpose.output[0])
            or not g.only_consumer(reshape.output[0])
        ):
            continue
        head_dim = int(shape[3])
        add = g.parent(reshape, 0, "Add")
        matmul = g.parent(add or reshape, 0, "MatMul")
        weight = matmul and g.const(matmul.input[1])
        bias = add and g.const(add.input[1])
        if (
            weight is None
            or weight.ndim != 2
            or len(g.consumers[matmul.input[1]]) != 1
            or (add and (bias is None or bias.shape != weight.shape[1:]))
        ):
            continue
        rotaries = [g.consumers[o][0] if g.only_consumer(o) else None for o in split.output]
        rotaries = [r if r is not None and r.op_type == "RotaryEmbedding" and r.domain == MS_DOMAIN else None for r in rotaries]
        found = [r for r in rotaries if r is not None]
        if len(found) != 2 or len({tuple(r.input[1:]) for r in found}) != 1 or head_dim % 2:
            continue
        if any(
            _attr(r, "interleaved", 0) or _attr(r, "num_heads", 0) or _attr(r, "rotary_embedding_dim", 0) or _attr(r, "scale", 1.0) != 1.0
            for r in found
        ):
            continue
        cos, sin = g.const(found[0].input[2]), g.const(found[0].input[3])
        q_part = [r.output[0] for r in found if g.consumers.get(r.output[0]) and g.consumers[r.output[0]][0].op_type == "Attention"]
        k_part = [r.output[0] for r in found if r.output[0] not in q_part]
        if cos is None or sin is None or cos.shape != (cos.shape[0], head_dim // 2) or len(q_part) != 1 or len(k_part) != 1:
            continue
        rot_heads = sum(int(n) for n, r in zip(sizes, rotaries) if r is not None)
        if 2 * cos.nbytes * rot_heads > max_table_bytes or not _rotated_for_attention_only(g, q_part[0], k_part[0]):
            continue
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        order = [i for i, r in enumerate(rotaries) if r is not None] + [i for i, r in enumerate(rotaries) if r is None]
        half = np.arange(head_dim // 2)
        cols = []
        for i in order:
            for h in range(starts[i], starts[i] + int(sizes[i])):
                base = h * head_dim
                cols.append(
                    np.stack([base + half, base + head_dim // 2 + half], -1).reshape(-1)
                    if rotaries[i] is not None
                    else base + np.arange(head_dim)
                )
        perm = np.concatenate(cols)
        base = split.name
        news = [
            numpy_helper.from_array(np.ascontiguousarray(weight[:, perm]), f"{base}/qk_rotary_weight"),
            numpy_helper.from_array(np.array([sizes[i] for i in order], np.int64), f"{base}/qk_rotary_split"),
        ]
        key = (*found[0].input[2:4], rot_heads)
        if key not in tables:  # one tiled pair per rotary table and head count, shared by the layers
            tables[key] = (f"qeff_fusion/qk_rotary_cos_{len(tables)}", f"qeff_fusion/qk_rotary_sin_{len(tables)}")
            model.graph.initializer.extend(numpy_helper.from_array(np.tile(t, (1, rot_heads)), n) for t, n in zip((cos, sin), tables[key]))
        if add is not None:
            news.append(numpy_helper.from_array(np.ascontiguousarray(bias[perm]), f"{base}/qk_rotary_bias"))
            add.input[1] = news[-1].name
        model.graph.initializer.extend(news)
        matmul.input[1] = news[0].name
        merged = reshape.input[0]
        reshape.input[0] = f"{base}/qk_rotary"
        model.graph.node.append(
            helper.make_node(
                "RotaryEmbedding",
                [merged, found[0].input[1], *tables[key]],
                [reshape.input[0]],
                name=f"{base}/qk_rotary",
                domain=MS_DOMAIN,
                interleaved=1,
                num_heads=1,
                rotary_embedding_dim=rot_heads * head_dim,
            )
        )
        outputs = [rotaries[i].output[0] if rotaries[i] is not None else split.output[i] for i in order]
        del split.output[:]
        split.output.extend(outputs)
        split.input[1] = news[1].name
        for r in found:
            model.graph.node.remove(r)
        done += 1
    if done:
        _topological_sort(model)
    return done
