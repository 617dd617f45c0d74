"""``compile(mxfp6_matmul=True)`` on ONNX Runtime: every MatMul weight as 4-bit blocks (MatMulNBits).

On Cloud AI 100, ``mxfp6_matmul`` stores MatMul weights in MXFP6, a microscaling format: blocks
of 32 values sharing one scale. ONNX Runtime's CPU provider has no 6-bit kernel; its native
block format is ``com.microsoft.MatMulNBits``. We use 4 bits, blocks of 32 along K, asymmetric
(a scale and a zero point per block, the same layout as GGUF's Q4_1), with
``accuracy_level=4`` (activations quantised to int8 inside the kernel, which runs the int8 dot
product path). Same block size as MXFP6, fewer bits: decode is bound by the bytes of weights read
per token, so 4 bits is the speed/quality point that matches what CPU users run (llama.cpp Q4).

The LM head is compressed too. The exported graph computes it as ``Gemm(h, W, transB=1)`` over
the embedding matrix (tied or not); it becomes ``MatMul(h, W^T)`` on a transposed copy, which
the quantizer then packs. The embedding ``Gather`` keeps its float32 table: it reads one row per
token, so it costs memory but no bandwidth.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

logger = logging.getLogger(__name__)

BITS = 4
BLOCK_SIZE = 32
ACCURACY_LEVEL = 4


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite Gemm(A, W, C, transB=1) with a constant W as MatMul(A, W^T) (+ Add C); returns the count."""
    inits = {i.name: i for i in model.graph.initializer}
    nodes = list(model.graph.node)
    rewritten = 0
    for node in nodes:
        if node.op_type != "Gemm" or node.input[1] not in inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            weight = weight.T
        w_name = f"{node.input[1]}_KxN"
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight), w_name))
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


def compress_matmul_weights(src: Path, dst: Path) -> Path:
    """Write ``dst`` (+ ``dst.data``): the graph of ``src`` with every constant MatMul weight in MatMulNBits."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    gemm_to_matmul(model)
    quantizer = MatMulNBitsQuantizer(model, bits=BITS, block_size=BLOCK_SIZE, is_symmetric=False, accuracy_level=ACCURACY_LEVEL)
    previous = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").level
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # one line per node
    try:
        quantizer.process()
    finally:
        logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(previous)
    out = quantizer.model.model
    remaining = sum(
        1 for n in out.graph.node if n.op_type == "MatMul" and any(i in {x.name for x in out.graph.initializer} for i in n.input)
    )
    if remaining:
        logger.warning("%d MatMul nodes with constant weights were left uncompressed", remaining)
    onnx.save_model(out, str(dst), save_as_external_data=True, all_tensors_to_one_file=True, location=f"{dst.name}.data")
    return dst
