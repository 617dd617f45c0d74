"""``compile(mxfp6_matmul=True)`` on ONNX Runtime: every MatMul weight in 8-bit blocks (MatMulNBits).

On Cloud AI 100, ``mxfp6_matmul`` stores MatMul weights in MXFP6, a microscaling format (blocks
of values sharing one scale). ONNX Runtime's CPU provider has no 6-bit kernel; its native block
format is ``com.microsoft.MatMulNBits`` (2, 4 or 8 bits). We use **8 bits, blocks of 64 along K,
asymmetric (a scale and a zero point per block), ``accuracy_level=4``** (the kernel quantises the
activations to int8, per block, and runs int8 dot products), quantised by ONNX Runtime's own
``MatMulNBitsQuantizer``. Measured on SmolLM2-135M (docs/performance.md):

* 8 bits keeps the flag's promise of "smaller and faster, same answers". 4 bits measured
  perplexity +14 %: SmolLM2's weights are already a 4-bit grid with a float offset per block (GGUF
  Q4_1), which integer zero points cannot reproduce; float zero points would, but take a kernel
  path 10x slower.
* Blocks of 64 rather than 128: the activations are rounded to int8 per block, so a block that
  holds one large activation loses the others' precision. Over many windows of text, perplexity
  moved about half as far from fp32 with 64 as with 128, at the same decode speed (576-wide rows
  also split into 64s without the padding 128 needs); 32 was slower.

Before quantising, MatMuls that read the same activation (q/k/v, gate/up) are merged into one
MatMul followed by a Split, so the kernel quantises that activation once and runs one call
instead of three. The LM head is compressed too: the exported ``Gemm(h, W, transB=1)`` over the
embedding matrix (tied or not) gets the blocks the quantizer makes of ``W^T``, quantized from W's rows
a slice at a time (quantize_lm_heads: no transposed float32 copy of the largest weight). A tied embedding
table then leaves the graph: its ``Gather`` becomes ``com.microsoft.GatherBlockQuantized`` over
the LM head's own 8-bit blocks (one initializer for both, as ONNX Runtime GenAI's builder does),
so the artifact holds no float32 copy (SmolLM2: 113 MB less) and a session's resident table pages
are 8-bit. An untied table stays float32 (one row read per token).

On a fused decoder (fusion.py), smooth_int8.py first turns the projections that read a normalization
or the attention (q/k/v, gate/up, o) into int8 GEMMs, which prefill faster; what is left comes here.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from QEfficient.compile.moe_quant import quantize_moe_nodes
from QEfficient.utils.onnx_files import load_graph_and_weights, save_with_external_weights

logger = logging.getLogger(__name__)

BITS = 8
BLOCK_SIZE = 64
ACCURACY_LEVEL = 4
# in the artifact hash of every mxfp6_matmul artifact: a change to the format rebuilds them
WEIGHT_FORMAT = f"matmulnbits-{BITS}bit-asymmetric-block{BLOCK_SIZE}-accuracy{ACCURACY_LEVEL}"
# float32 rows of an LM head quantized at a time (quantize_lm_heads)
QUANTIZE_BYTES = 16 << 20


def plain_gemm(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """``Gemm(x, W, transB=1)`` over a 2-D constant W, without a bias or with a zero one: x @ W^T and
    nothing else (the exported LM head)."""
    if node.op_type != "Gemm" or node.input[1] not in inits or len(inits[node.input[1]].dims) != 2:
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("transB", 0) != 1 or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
        return False
    bias = node.input[2] if len(node.input) > 2 else ""
    return not bias or (bias in inits and not np.any(numpy_helper.to_array(inits[bias])))


def read_names(graph: onnx.GraphProto) -> set[str]:
    """The names the graph's nodes read, in their subgraphs (If, Loop) too, and its outputs."""
    read = {o.name for o in graph.output}
    for node in graph.node:
        read.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                read |= read_names(sub)
    return read


def drop_zero_gemm_biases(model: onnx.ModelProto) -> int:
    """Remove the bias of each Gemm whose bias is all zeros, from an initializer or a Constant node (the exporter
    gives some LM heads a zero bias as a Constant, which plain_gemm would not see through: the head then took a
    transposed float32 copy of W on its way to MatMulNBits). Returns the count."""
    graph = model.graph
    values = {i.name: i for i in graph.initializer}
    values |= {n.output[0]: n.attribute[0].t for n in graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"}
    dropped = set()
    for node in graph.node:
        bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 else ""
        if bias in values and not np.any(numpy_helper.to_array(values[bias])):
            del node.input[2]
            dropped.add(bias)
    read = read_names(graph)
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] in dropped - read]:
        graph.node.remove(node)
    for init in [i for i in graph.initializer if i.name in dropped - read]:
        graph.initializer.remove(init)
    return len(dropped)


def lm_heads(model: onnx.ModelProto) -> set[str]:
    """Outputs of the Gemms quantize_lm_heads rewrites: plain_gemm over a float32 W (8-bit blocks only)."""
    if BITS != 8:
        return set()
    inits = {i.name: i for i in model.graph.initializer}
    return {n.output[0] for n in model.graph.node if plain_gemm(n, inits) and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT}


def quantize_lm_heads(model: onnx.ModelProto) -> int:
    """Each plain_gemm over a float32 W (the LM head) -> the MatMulNBits that gemm_to_matmul and then
    MatMulNBitsQuantizer make of it (same names, same blocks), without the transposed float32 copy of W
    they go through: ONNX Runtime's 8-bit quantizer runs on a slice of W's rows at a time (each output
    row is quantized on its own). Returns the count."""
    try:
        from onnxruntime.capi._pybind_state import quantize_matmul_8bits  # what MatMulNBitsQuantizer calls
    except ImportError:  # another ONNX Runtime build: the heads take gemm_to_matmul's route
        return 0
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    heads = lm_heads(model)
    done = 0
    for node in list(graph.node):
        if node.op_type != "Gemm" or node.output[0] not in heads:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        n, k = w.shape
        k_blocks = -(-k // BLOCK_SIZE)
        codes = np.zeros((n, k_blocks, BLOCK_SIZE), np.uint8)
        scales = np.zeros((n, k_blocks), np.float32)
        zero_points = np.zeros((n, k_blocks), np.uint8)
        step = max(1, QUANTIZE_BYTES // (4 * k))
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            part = np.zeros((k_blocks * BLOCK_SIZE, rows.stop - start), np.float32)  # (K, N) padded as the quantizer pads
            part[:k] = w[rows].T
            quantize_matmul_8bits(codes[rows], part, scales[rows], zero_points[rows], BLOCK_SIZE, part.shape[1], k, False)
        del w
        name = f"{node.input[1]}_KxN"
        tensors = [(codes, f"{name}_Q{BITS}"), (scales, f"{name}_scales"), (zero_points, f"{name}_zero_points")]
        graph.initializer.extend(numpy_helper.from_array(array, label) for array, label in tensors)
        attrs = {"K": k, "N": n, "bits": BITS, "block_size": BLOCK_SIZE, "accuracy_level": ACCURACY_LEVEL}
        label = f"{node.name}_MatMul_Q{BITS}"  # gemm_to_matmul's MatMul name, then the quantizer's suffix
        head = helper.make_node(
            "MatMulNBits", [node.input[0], *(t for _, t in tensors)], [node.output[0]], name=label, domain="com.microsoft", **attrs
        )
        at = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(at, head)
        done += 1
    if done and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return done


def gemm_to_matmul(model: onnx.ModelProto, skip: Collection[str] = ()) -> int:
    """Rewrite Gemm(A, W, C, transB=1) with a constant W as MatMul(A, W^T) (+ Add C); returns the count.
    Gemms whose output is in ``skip`` stay."""
    inits = {i.name: i for i in model.graph.initializer}
    nodes = list(model.graph.node)
    rewritten = 0
    for node in nodes:
        if node.op_type != "Gemm" or node.input[1] not in inits or node.output[0] in skip:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            weight = np.ascontiguousarray(weight.T)
        w_name = f"{node.input[1]}_KxN"
        # One transient copy at a time (an LM head can be most of the model): the array, its bytes, protobuf's.
        transposed = onnx.TensorProto(name=w_name, data_type=helper.np_dtype_to_tensor_dtype(weight.dtype), dims=weight.shape)
        raw = weight.tobytes()
        del weight
        transposed.raw_data = raw
        del raw
        model.graph.initializer.append(transposed)
        bias = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] in inits else None
        has_bias = len(node.input) > 2 and node.input[2] and (bias is None or np.any(bias))
        mm_out = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        new = [helper.make_node("MatMul", [node.input[0], w_name], [mm_out], name=f"{node.name}_MatMul")]
        if has_bias:
            new.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name}_Add"))
        at = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        for offset, n in enumerate(new):
            model.graph.node.insert(at + offset, n)
        rewritten += 1
    return rewritten


def fuse_shared_input_matmuls(model: onnx.ModelProto) -> int:
    """Merge MatMuls with constant 2-D weights that read the same input into MatMul + Split; returns merges."""
    inits = {i.name: i for i in model.graph.initializer}
    uses: dict[str, int] = defaultdict(int)
    for node in model.graph.node:
        for name in node.input:
            uses[name] += 1
    groups: dict[str, list] = defaultdict(list)
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and uses[node.input[1]] == 1 and len(inits[node.input[1]].dims) == 2:
            groups[node.input[0]].append(node)
    merged = 0
    for source, nodes in groups.items():
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]
        if len(nodes) < 2 or len({w.shape[0] for w in weights}) != 1 or len({w.dtype for w in weights}) != 1:
            continue
        first = list(model.graph.node).index(nodes[0])
        fused_w = f"{nodes[0].input[1]}_fused{len(nodes)}"
        sizes = f"{fused_w}_split"
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.concatenate(weights, axis=1), fused_w),
                numpy_helper.from_array(np.array([w.shape[1] for w in weights], np.int64), sizes),
            ]
        )
        fused_out = f"{fused_w}_out"
        new = [
            helper.make_node("MatMul", [source, fused_w], [fused_out], name=f"{nodes[0].name}_fused"),
            helper.make_node("Split", [fused_out, sizes], [n.output[0] for n in nodes], axis=-1, name=f"{nodes[0].name}_split"),
        ]
        for n in nodes:
            model.graph.node.remove(n)
            model.graph.initializer.remove(inits[n.input[1]])
        for offset, n in enumerate(new):
            model.graph.node.insert(first + offset, n)
        merged += 1
    return merged


def compress_matmul_weights(src: Path, dst: Path) -> Path:
    """Write ``dst`` (+ ``dst.data``): the graph of ``src`` with every constant MatMul weight in MatMulNBits."""
    model = load_graph_and_weights(src)
    drop_zero_gemm_biases(model)
    quantize_lm_heads(model)
    gemm_to_matmul(model)
    return save_with_external_weights(quantize_remaining_matmuls(model), dst)


def quantize_remaining_matmuls(model: onnx.ModelProto) -> onnx.ModelProto:
    """Merge shared-input MatMuls, then put every constant MatMul weight left in 8-bit MatMulNBits."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    fuse_shared_input_matmuls(model)
    quantize_moe_nodes(model, BLOCK_SIZE)  # mixture-of-experts layers: 8-bit experts in QMoE
    quantizer = MatMulNBitsQuantizer(model, bits=BITS, block_size=BLOCK_SIZE, is_symmetric=False, accuracy_level=ACCURACY_LEVEL)
    previous = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").level
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # one line per node
    try:
        quantizer.process()
    finally:
        logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(previous)
    out = quantizer.model.model
    gather_from_quantized_head(out)
    remaining = sum(
        1 for n in out.graph.node if n.op_type == "MatMul" and any(i in {x.name for x in out.graph.initializer} for i in n.input)
    )
    if remaining:
        logger.warning("%d MatMul nodes with constant weights were left uncompressed", remaining)
    return out


def gathered_blocks_to_rows(blocks: str, indices: str, out: str, label: str, row_size: str, k: int | None = None) -> list:
    """Nodes reshaping a GatherBlockQuantized result (indices' shape, k_blocks, block) to (indices' shape,
    K): ``row_size`` names a 1-element int64 initializer holding k_blocks*block; with ``k`` smaller than
    that (K padded up to whole blocks) the padding is sliced off."""
    padded = f"{out}_padded" if k is not None else out
    nodes = [
        helper.make_node("Shape", [indices], [f"{out}_index_shape"], name=f"{label}_shape"),
        helper.make_node("Concat", [f"{out}_index_shape", row_size], [f"{out}_shape"], name=f"{label}_concat", axis=0),
        helper.make_node("Reshape", [blocks, f"{out}_shape"], [padded], name=f"{label}_reshape"),
    ]
    if k is not None:
        for name, value in (("start", 0), ("end", k), ("axis", -1)):
            array = numpy_helper.from_array(np.array([value], np.int64))
            nodes.append(helper.make_node("Constant", [], [f"{out}_{name}"], name=f"{label}_{name}", value=array))
        slice_inputs = [padded, f"{out}_start", f"{out}_end", f"{out}_axis"]
        nodes.append(helper.make_node("Slice", slice_inputs, [out], name=f"{label}_slice"))
    return nodes


def gather_from_quantized_head(model: onnx.ModelProto) -> int:
    """Each ``Gather`` of a float table whose transpose the LM head's MatMulNBits holds (a tied
    embedding) reads the head's blocks instead, through GatherBlockQuantized; the float table is
    dropped when nothing else reads it. Returns the number of rewritten gathers."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    heads = {n.input[1]: n for n in graph.node if n.op_type == "MatMulNBits" and n.domain == "com.microsoft"}
    rewritten = 0
    for node in list(graph.node):
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        head = heads.get(f"{node.input[0]}_KxN_Q{BITS}") if node.op_type == "Gather" and node.input[0] in inits else None
        if head is None or axis != 0:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in head.attribute}
        k, n, block = attrs["K"], attrs["N"], attrs["block_size"]
        k_blocks = -(-k // block)
        label, out = node.name or node.output[0], node.output[0]
        per_block = [(head.input[2], f"{head.input[1]}_gather_scales")]
        if len(head.input) > 3 and head.input[3]:
            per_block.append((head.input[3], f"{head.input[1]}_gather_zero_points"))
        for src, name in per_block:  # GatherBlockQuantized wants them shaped as the codes, one per block
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(inits[src]).reshape(n, k_blocks, 1), name))
        row_size = f"{head.input[1]}_row_size"
        graph.initializer.append(numpy_helper.from_array(np.array([k_blocks * block], np.int64), row_size))
        gather = helper.make_node(
            "GatherBlockQuantized",
            [head.input[1], node.input[1], *(name for _, name in per_block)],
            [f"{out}_blocks"],
            name=f"{label}_quantized",
            domain="com.microsoft",
            bits=attrs["bits"],
            block_size=block,
            gather_axis=0,
            quantize_axis=2,
        )
        tail = gathered_blocks_to_rows(
            f"{out}_blocks", node.input[1], out, f"{label}_quantized", row_size, k if k != k_blocks * block else None
        )
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate([gather, *tail]):
            graph.node.insert(at + offset, new)
        if not any(node.input[0] in n.input for n in graph.node):
            graph.initializer.remove(inits[node.input[0]])
        rewritten += 1
    return rewritten


def quantize_dynamic_int8(src: Path, dst: Path) -> Path:
    """Encoders with ``mxfp6_matmul=True``: int8 weights (per channel) *and* int8 activations.

    Encoders run many tokens at once, so they are bound by arithmetic, not by weight bytes:
    8-bit weights with float compute changed nothing there. ONNX Runtime's dynamic quantization
    runs the MatMuls as int8 GEMMs (VNNI/AMX) instead. Measured on all-MiniLM-L6-v2: 2.2-2.6x
    faster than float32 at batch 8-32; embeddings keep a mean cosine of 0.993 to float32 (minimum
    0.972 over the sentences of tests/data/perplexity.txt).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        load_graph_and_weights(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        use_external_data_format=True,
    )
    return dst
