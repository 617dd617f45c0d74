"""``compile(mxfp6_matmul=True)`` on mixture-of-experts layers: each ``com.microsoft::MoE`` node
(QEfficient/transform/moe_op.py) becomes a ``com.microsoft::QMoE`` node with 8-bit expert weights.

The format follows the one weight_compression.py gives every other MatMul weight: 8 bits, blocks
along K (the input features), a float scale and a uint8 zero point per block, and ONNX Runtime's
CPU kernel runs the 8-bit experts with int8 activations. ONNX Runtime's CPU QMoE kernel always
renormalises the chosen experts' routing weights; the MoE node's router input is built so that
they already sum to one, so the result is the same.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

QMOE_BITS = 8


def _block_for(hidden: int, inter: int, largest: int) -> int | None:
    """The largest power-of-two block (>= 16, <= ``largest``) that divides both sizes, which QMoE requires."""
    block = largest
    while block >= 16:
        if hidden % block == 0 and inter % block == 0:
            return block
        block //= 2
    return None


def quantize_blocks(weight: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[E, N, K] float -> (uint8 [E, N, K], scales [E, N, K/block], zero points uint8 [E, N, K/block]),
    asymmetric per block: weight ~= (q - zero_point) * scale, with 0 exactly representable."""
    e, n, k = weight.shape
    blocks = weight.reshape(e, n, k // block, block)
    low, high = np.minimum(blocks.min(-1), 0.0), np.maximum(blocks.max(-1), 0.0)
    scale = (high - low) / 255.0
    scale[scale == 0] = 1.0
    zero = np.clip(np.round(-low / scale), 0, 255)
    q = np.clip(np.round(blocks / scale[..., None]) + zero[..., None], 0, 255)
    return q.astype(np.uint8).reshape(e, n, k), scale.astype(np.float32), zero.astype(np.uint8)


def quantize_moe_nodes(model: onnx.ModelProto, block_size: int) -> int:
    """Replace every MoE node whose expert weights are constants with QMoE (8-bit); returns the count."""
    inits = {i.name: i for i in model.graph.initializer}
    replaced, dropped = 0, set()
    for node in list(model.graph.node):
        if node.op_type != "MoE" or node.domain != "com.microsoft":
            continue
        names = list(node.input) + [""] * (8 - len(node.input))
        x, router, fc1, fc1_bias, fc2, fc2_bias, fc3 = names[:7]
        if fc1 not in inits or fc2 not in inits or fc3:
            continue
        w1, w2 = numpy_helper.to_array(inits[fc1]), numpy_helper.to_array(inits[fc2])
        block = _block_for(w2.shape[1], w2.shape[2], block_size)
        if block is None:
            continue
        new_inputs = {}
        for tag, weight in (("fc1", w1), ("fc2", w2)):
            q, scale, zero = quantize_blocks(weight, block)
            for part, value in (("q", q), ("scale", scale), ("zero", zero)):
                name = f"{node.name or node.output[0]}_{tag}_{part}"
                model.graph.initializer.append(numpy_helper.from_array(value, name))
                new_inputs[f"{tag}_{part}"] = name
        inputs = [x, router, new_inputs["fc1_q"], new_inputs["fc1_scale"], fc1_bias, new_inputs["fc2_q"], new_inputs["fc2_scale"], fc2_bias]
        inputs += ["", "", "", new_inputs["fc1_zero"], new_inputs["fc2_zero"]]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs.update(expert_weight_bits=QMOE_BITS, block_size=block, weights_prepacked=0)
        qmoe = helper.make_node("QMoE", inputs, list(node.output), name=f"{node.name}_q8", domain="com.microsoft", **attrs)
        at = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(at, qmoe)
        replaced += 1
        dropped |= {fc1, fc2}
    used = {name for n in model.graph.node for name in n.input}
    for name in dropped - used:  # the float expert weights, now read by no node
        model.graph.initializer.remove(inits[name])
    return replaced
