"""``compile(gguf_weights=True)``: a GGUF model's MatMuls run on the file's own quantized blocks.

A GGUF checkpoint is loaded by de-quantizing it to float32 (transformers), so the exported graph
holds float32 weights. This rewrite puts each quantized tensor's blocks back in the graph instead,
unchanged (gguf_blocks.py gives the layout per format):

* every ``MatMul`` whose constant weight equals, bit for bit, the de-quantization of one GGUF
  tensor (or of several stacked along N) becomes ``com.microsoft.MatMulNBits`` over that tensor's
  codes, scales and zero points; MatMuls reading the same activation (q/k/v, gate/up) with blocks
  of one layout are merged into one MatMulNBits followed by a ``Split`` (their blocks concatenated
  along N, which is exact);
* formats with a min per block (Q4_1, Q5_1, Q4_K, Q5_K: ``w = d*q + m``) add the min term
  ``y += blocksum(x) @ M``: ``blocksum(x)`` sums x over each block of 32 inputs (K/32 extra output
  rows of the same MatMulNBits, with weights 1 on their block), and ``M`` (K/32 x N) holds the mins. Since
  ``sum_k x_k (d_b q_k + m_b) = sum_k x_k d_b q_k + sum_b m_b sum_{k in b} x_k``, this is the
  same product. For K-quants, the 6-bit sub-block scales and mins of each 256-value super-block
  are multiplied out into one scale and one min per 32 values, so MatMulNBits' blocks are
  GGUF's sub-blocks;
* the token embedding ``Gather`` becomes ``com.microsoft.GatherBlockQuantized`` over the same
  blocks (plus a ``Gather`` of the mins where the format has them); with a tied LM head both nodes
  read one packed-codes initializer.

The match is by value: the fp32 weight in the graph must equal ``gguf.quants.dequantize`` of the
tensor after the row permutation transformers applies when loading (llama's q/k heads), which
transformers' own tensor processor gives by permuting an index vector. A weight that matches
nothing (an F16 tensor, an unsupported format) stays float32, or goes to 8-bit with
``mxfp6_matmul=True`` as well.

Numerics: the de-quantized weights are exactly the GGUF file's (tests/test_gguf_blocks.py). The
kernels run with ``accuracy_level=4``: MatMulNBits quantizes the activations to int8 per block, as
llama.cpp does for these formats; ``GGUF_ACCURACY_LEVEL = 0`` would keep activations in float32
(slower).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from QEfficient.compile.gguf_blocks import MIN_BLOCK, SUPPORTED, QuantBlocks, concat_rows, unpack
from QEfficient.compile.gguf_file import GGUFFile
from QEfficient.compile.weight_compression import (
    ACCURACY_LEVEL,
    drop_zero_gemm_biases,
    gathered_blocks_to_rows,
    gemm_to_matmul,
    plain_gemm,
    quantize_remaining_matmuls,
    read_names,
)
from QEfficient.utils.onnx_files import load_graph_and_weights, save_with_external_weights

logger = logging.getLogger(__name__)

GGUF_ACCURACY_LEVEL = ACCURACY_LEVEL
RECENT_TENSORS = 4  # unpacked tensors GGUFTensors keeps for the rewrite after their match
COMPARE_BYTES = 16 << 20  # float32 rows de-quantized at a time to match a graph weight


class GGUFWeightsError(ValueError):
    pass


@dataclass(frozen=True)
class _Tensor:
    name: str
    rows: int


def _digest(a: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(a).data, digest_size=16).digest()


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """float32 arrays equal bit for bit (-0.0 is not 0.0); either may be a strided view."""
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


class GGUFTensors:
    """The quantized 2-D tensors of a GGUF file, indexed by the values they de-quantize to.

    The index holds one de-quantized row per tensor (its first, after transformers' permutation);
    a candidate is de-quantized whole only when a graph weight starts with that row, and compared
    bit for bit, so building the index costs next to nothing and no full matrix is hashed."""

    def __init__(self, gguf_path: str | Path) -> None:
        from gguf.quants import dequantize

        self.path = Path(gguf_path)
        self.file = GGUFFile(self.path)
        self._perm: dict[str, np.ndarray] = {}
        self._recent: dict[str, QuantBlocks] = {}
        self.by_first_row: dict[tuple[int, bytes], list[_Tensor]] = defaultdict(list)
        permute = _row_permutation(self.file.metadata)
        for t in self.file.tensors.values():
            if t.qtype not in SUPPORTED or len(t.shape) != 2:
                continue
            n = t.shape[0]
            perm = permute(t.name, n)
            if perm is not None:
                self._perm[t.name] = perm
            first = 0 if perm is None else int(perm[0])
            row = dequantize(t.data[first : first + 1], t.qtype)[0]
            self.by_first_row[(row.shape[0], _digest(row))].append(_Tensor(t.name, n))

    def _unpacked(self, name: str) -> QuantBlocks:
        """The tensor's blocks, unpacked once for its match and its rewrite (the last few tensors are kept:
        q/k/v are matched one after another, then rewritten together; a tied table is matched twice)."""
        if name not in self._recent:
            t = self.file.tensors[name]
            self._recent[name] = unpack(t.data, t.qtype)
            while len(self._recent) > RECENT_TENSORS:
                self._recent.pop(next(iter(self._recent)))
        return self._recent[name]

    def equals(self, name: str, rows: np.ndarray) -> bool:
        """``rows`` are the tensor as transformers loads it (``gguf.quants.dequantize``, which the unpacked
        blocks equal bit for bit, tests/test_gguf_blocks.py; rows permuted as transformers does), bit for
        bit. De-quantized a slice of rows at a time: a whole embedding table would be one more float32 copy."""
        blocks = self._unpacked(name)
        if rows.shape != blocks.shape:
            return False
        perm = self._perm.get(name)
        step = max(1, COMPARE_BYTES // (4 * rows.shape[1]))
        for start in range(0, rows.shape[0], step):
            index = slice(start, start + step) if perm is None else perm[start : start + step]
            if not _same_bits(rows[start : start + step], blocks.rows(index).dequantize()):
                return False
        return True

    def blocks(self, name: str) -> QuantBlocks:
        b = self._unpacked(name).centred()
        return b.rows(self._perm[name]) if name in self._perm else b

    def match(self, rows: np.ndarray) -> list[str] | None:
        """The tensors whose de-quantized rows, stacked, equal ``rows`` (N, K; a view is fine) bit for bit; else None."""
        rows = rows if rows.dtype == np.float32 else rows.astype(np.float32)
        n, k = rows.shape
        found: list[str] = []
        start = 0
        while start < n:
            for cand in self.by_first_row.get((k, _digest(rows[start])), []):
                stop = start + cand.rows
                if stop <= n and self.equals(cand.name, rows[start:stop]):
                    found.append(cand.name)
                    start = stop
                    break
            else:
                return None
        return found


def _row_permutation(metadata: dict):
    """name, rows -> the row order transformers gives the tensor when loading it (None: unchanged).

    transformers' tensor processor for the architecture permutes rows of some tensors (llama's q/k
    heads); running it on an index column yields that permutation without copying its logic. Its
    config (head counts) comes from the ``{arch}.*`` fields through transformers' own key table:
    ``load_gguf_checkpoint`` would parse the whole file again, vocabulary included."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor

    try:
        arch = metadata["general.architecture"]
        renames, config = GGUF_CONFIG_MAPPING.get(arch, {}), {}
        for key, value in metadata.items():
            prefix, _, sub = key.partition(".")
            if prefix == arch and renames.get(sub):
                config[renames[sub]] = value[0] if isinstance(value, list) and len(value) == 1 else value
        processor = TENSOR_PROCESSORS.get(arch, TensorProcessor)(config=config)
    except Exception:  # noqa: BLE001 - metadata transformers cannot parse: no permutation; the value match decides
        return lambda name, n: None

    def permutation(name: str, n: int) -> np.ndarray | None:
        index = np.arange(n, dtype=np.float32).reshape(n, 1)
        try:
            out = np.asarray(processor.process(weights=index, name=name, tensor_key_mapping={}, parsed_parameters={"tensors": {}}).weights)
        except Exception:  # noqa: BLE001 - processors that split or merge tensors (MoE) do not permute rows; the value match decides
            return None
        out = out.reshape(-1) if out.size == n else None
        if out is None or np.array_equal(out, index[:, 0]) or not np.array_equal(np.sort(out), index[:, 0]):
            return None
        return out.astype(np.int64)

    return permutation


# ---------------------------------------------------------------- graph rewrite
class _Builder:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.names: set[str] = {i.name for i in model.graph.initializer}
        self.shared: dict[tuple, str] = {}  # packed codes, by source tensors: the tied embedding and LM head share them

    def constant(self, array: np.ndarray, name: str) -> str:
        base, i = name, 0
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        self.model.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def packed_codes(self, key: tuple[str, ...], blocks: QuantBlocks) -> str:
        if key not in self.shared:
            self.shared[key] = self.constant(blocks.packed_codes(), f"gguf.{'+'.join(key)}.codes")
        return self.shared[key]


def _block_summer(blocks: QuantBlocks) -> QuantBlocks:
    """K/32 extra output rows of weight 1 over one block of 32 inputs and 0 elsewhere: ``blocksum(x)``
    computed by the MatMulNBits itself, so from the same int8-rounded activations as the main product
    (with ``accuracy_level=4``): the min term then completes an exact product of the GGUF weights with
    those activations, as llama.cpp's Q8_1 block sums do."""
    k = blocks.shape[1]
    zero = 1 << (blocks.bits - 1)
    ones = np.kron(np.eye(k // MIN_BLOCK, dtype=np.uint8), np.ones((1, MIN_BLOCK), np.uint8))
    n_scales = k // blocks.block_size
    return QuantBlocks(
        blocks.bits,
        blocks.block_size,
        (ones + zero).astype(np.uint8),
        np.ones((k // MIN_BLOCK, n_scales), np.float32),
        np.full((k // MIN_BLOCK, n_scales), zero, np.uint8),
        None,
    )


def _matmul_nbits(b: _Builder, x: str, key: tuple[str, ...], blocks: QuantBlocks, out: str, name: str) -> list:
    """MatMulNBits over the blocks; with mins: N + K/32 outputs, the last K/32 being blocksum(x),
    then ``y = y[:, :N] + blocksum(x) @ M``."""
    n, k = blocks.shape
    tag = "+".join(key)
    if blocks.mins is not None:
        mins = blocks.mins
        blocks, key = concat_rows([blocks, _block_summer(blocks)]), (*key, "blocksum")
    inputs = [x, b.packed_codes(key, blocks), b.constant(blocks.scales, f"gguf.{tag}.scales")]
    if not blocks.default_zero_point:  # the kernel is faster without the input
        inputs.append(b.constant(blocks.packed_zero_points(), f"gguf.{tag}.zero_points"))
    attrs = {"K": k, "N": blocks.shape[0], "bits": blocks.bits, "block_size": blocks.block_size, "accuracy_level": GGUF_ACCURACY_LEVEL}
    if blocks.shape[0] == n:
        return [helper.make_node("MatMulNBits", inputs, [out], name=name, domain="com.microsoft", **attrs)]
    sizes = b.constant(np.array([n, k // MIN_BLOCK], np.int64), f"gguf.{tag}.split_blocksum")
    return [
        helper.make_node("MatMulNBits", inputs, [f"{out}_ext"], name=name, domain="com.microsoft", **attrs),
        helper.make_node("Split", [f"{out}_ext", sizes], [f"{out}_scaled", f"{out}_blocksum"], axis=-1, name=f"{name}_split_blocksum"),
        helper.make_node(
            "MatMul",
            [f"{out}_blocksum", b.constant(np.ascontiguousarray(mins.T), f"gguf.{tag}.mins")],
            [f"{out}_mins"],
            name=f"{name}_mins",
        ),
        helper.make_node("Add", [f"{out}_scaled", f"{out}_mins"], [out], name=f"{name}_add_mins"),
    ]


def _gather_block_quantized(b: _Builder, node, key: tuple[str, ...], blocks: QuantBlocks) -> list:
    """Embedding lookup on the blocks: codes as (V, k_blocks, block) so the LM head's MatMulNBits
    can share them; the (.., k_blocks, block) result is added its mins and reshaped to (.., K)."""
    v, k = blocks.shape
    kb = k // blocks.block_size
    tag, out, idx, label = "+".join(key), node.output[0], node.input[1], node.name or node.output[0]
    inputs = [b.packed_codes(key, blocks), idx, b.constant(blocks.scales.reshape(v, kb, 1), f"gguf.{tag}.gather_scales")]
    if not blocks.default_zero_point:  # one value per (row, block): one byte for 4 bits as for 8
        inputs.append(b.constant(np.ascontiguousarray(blocks.zero_points.reshape(v, kb, 1)), f"gguf.{tag}.gather_zero_points"))
    attrs = {"bits": blocks.bits, "block_size": blocks.block_size, "gather_axis": 0, "quantize_axis": 2}
    nodes = [helper.make_node("GatherBlockQuantized", inputs, [f"{out}_blocks"], name=f"{label}_gguf", domain="com.microsoft", **attrs)]
    rows = f"{out}_blocks"
    if blocks.mins is not None:
        if blocks.block_size != MIN_BLOCK:
            raise GGUFWeightsError("a format with mins must use blocks of 32")
        mins = b.constant(blocks.mins.reshape(v, kb, 1), f"gguf.{tag}.gather_mins")
        nodes += [
            helper.make_node("Gather", [mins, idx], [f"{out}_mins"], name=f"{label}_gguf_mins", axis=0),
            helper.make_node("Add", [rows, f"{out}_mins"], [f"{out}_rows"], name=f"{label}_gguf_add_mins"),
        ]
        rows = f"{out}_rows"
    return nodes + gathered_blocks_to_rows(rows, idx, out, f"{label}_gguf", b.constant(np.array([k], np.int64), f"gguf.{tag}.row_size"))


def apply_gguf_blocks(model: onnx.ModelProto, tensors: GGUFTensors) -> dict[str, int]:
    """Rewrite ``model`` in place; returns counts: weights replaced, MatMulNBits nodes, weights left."""
    drop_zero_gemm_biases(model)
    inits = {i.name: i for i in model.graph.initializer}
    gemms = {}  # output -> source tensors: Gemm(x, W, transB=1) read as MatMulNBits, without a transposed copy of W
    for node in model.graph.node:
        if plain_gemm(node, inits) and (found := tensors.match(numpy_helper.to_array(inits[node.input[1]]))):
            if len(found) == 1 or len({tensors.blocks(name).layout for name in found}) == 1:  # else: left as MatMul, below
                gemms[node.output[0]] = found
    gemm_to_matmul(model, skip=gemms)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    matmuls: dict[str, list] = defaultdict(list)  # activation -> [(node, source tensors, blocks)]
    gathers = []
    left = 0
    for node in graph.node:
        if node.op_type == "Gemm" and node.output[0] in gemms:
            found = gemms[node.output[0]]
        elif node.op_type == "MatMul" and node.input[1] in inits and len(inits[node.input[1]].dims) == 2:
            found = tensors.match(numpy_helper.to_array(inits[node.input[1]]).T)
        elif node.op_type == "Gather" and node.input[0] in inits and len(inits[node.input[0]].dims) == 2:
            if any(a.name == "axis" and a.i != 0 for a in node.attribute):
                continue
            found = tensors.match(numpy_helper.to_array(inits[node.input[0]]))
        else:
            continue
        parts = [tensors.blocks(name) for name in found] if found else []
        if not parts or len({p.layout for p in parts}) != 1:
            left += node.op_type != "Gather"
            continue
        entry = (node, tuple(found), concat_rows(parts) if len(parts) > 1 else parts[0])
        (gathers if node.op_type == "Gather" else matmuls[node.input[0]]).append(entry)
    if not tensors.by_first_row:  # a float file: nothing to keep quantized
        raise GGUFWeightsError(
            f"'{tensors.path}' holds no quantized 2-D tensor of a kind run here as blocks ({', '.join(sorted(q.name for q in SUPPORTED))}):"
            " compile it without gguf_weights (or with mxfp6_matmul=True for 8-bit weights)."
        )
    if not matmuls and not gathers:
        raise GGUFWeightsError(
            f"No weight of this graph equals a quantized tensor of '{tensors.path}': gguf_weights=True needs the model "
            "loaded from that GGUF file (from_pretrained('model.gguf') or gguf_file=...)."
        )

    b = _Builder(model)
    replace: dict[int, list] = {}  # position of a node -> what replaces it (nothing for merged-away ones)
    position = {id(n): i for i, n in enumerate(graph.node)}
    counts = {"weights": 0, "matmulnbits": 0, "left_float": left, "embeddings": len(gathers)}
    for x, entries in matmuls.items():
        new: list = []
        by_layout: dict[tuple, list] = defaultdict(list)
        for e in entries:
            by_layout[e[2].layout].append(e)
        for group in by_layout.values():
            first = group[0][0]
            label = first.name or first.output[0]
            if len(group) == 1:
                new += _matmul_nbits(b, x, group[0][1], group[0][2], first.output[0], f"{label}_gguf")
            else:
                key = tuple(name for e in group for name in e[1])
                merged = concat_rows([e[2] for e in group])
                out = f"{first.output[0]}_gguf_merged"
                new += _matmul_nbits(b, x, key, merged, out, f"{label}_gguf_merged")
                sizes = b.constant(np.array([e[2].shape[0] for e in group], np.int64), f"{out}_split")
                new.append(helper.make_node("Split", [out, sizes], [e[0].output[0] for e in group], axis=-1, name=f"{out}_split"))
            counts["matmulnbits"] += 1
        counts["weights"] += len(entries)
        at = min(position[id(e[0])] for e in entries)
        replace[at] = new
        for e in entries:
            replace.setdefault(position[id(e[0])], [])
    for node, key, blocks in gathers:
        replace[position[id(node)]] = _gather_block_quantized(b, node, key, blocks)

    nodes = list(graph.node)
    del graph.node[:]
    for i, node in enumerate(nodes):
        graph.node.extend(replace.get(i, [node]))
    used = read_names(graph)
    for unused in [i for i in graph.initializer if i.name not in used]:  # in place: extend() would copy the rest
        graph.initializer.remove(unused)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return counts


def apply_gguf_file(model: onnx.ModelProto, gguf_path: str | Path, mxfp6_matmul: bool = False) -> onnx.ModelProto:
    """``model`` with the GGUF file's blocks in place of its float32 weights (in place; returned);
    with ``mxfp6_matmul`` the weights left over go to 8-bit MatMulNBits (weight_compression.py).
    Also run on the fused graph (fusion.py), whose merged q/k/v and gate/up weights match the
    file's tensors stacked along N."""
    counts = apply_gguf_blocks(model, GGUFTensors(gguf_path))
    logger.info(
        "GGUF blocks: %d weights in %d MatMulNBits, %d embedding(s) in GatherBlockQuantized; %d MatMul weights left %s",
        counts["weights"],
        counts["matmulnbits"],
        counts["embeddings"],
        counts["left_float"],
        "for 8-bit" if mxfp6_matmul else "in float32",
    )
    return quantize_remaining_matmuls(model) if mxfp6_matmul else model


def gguf_weights_rewrite(src: Path, dst: Path, gguf_path: str | Path, mxfp6_matmul: bool = False) -> Path:
    """Write ``dst`` (+ ``dst.data``): ``src`` with the GGUF file's blocks in place of its float32
    weights (apply_gguf_file)."""
    model = apply_gguf_file(load_graph_and_weights(Path(src)), gguf_path, mxfp6_matmul)
    return save_with_external_weights(model, Path(dst))
