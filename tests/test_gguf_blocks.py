"""compile(gguf_weights=True): a GGUF file's own quantized blocks in the graph, exactly.

Per format, the weights ONNX Runtime de-quantizes (a one-MatMul graph rewritten by the real pass,
run on the identity matrix with float32 activations) equal ``gguf.quants.dequantize`` bit for bit.
Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 blocks come from ``gguf.quants.quantize``; gguf 0.19 has no numpy
quantizer for K-quants, so Q4_K, Q5_K and Q6_K blocks are random bytes with sane fp16 factors.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from gguf import GGMLQuantizationType as QType
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize
from onnx import TensorProto, helper, numpy_helper

import QEfficient.compile.gguf_weights as gguf_weights
from QEfficient.compile.gguf_blocks import unpack
from QEfficient.compile.gguf_weights import GGUFTensors, GGUFWeightsError, apply_gguf_blocks

FORMATS = [QType.Q8_0, QType.Q4_0, QType.Q4_1, QType.Q5_0, QType.Q5_1, QType.Q4_K, QType.Q5_K, QType.Q6_K]
K = 512  # two K-quant super-blocks per row


def raw_blocks(qtype: QType, rows: int, cols: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    try:
        return quantize(rng.standard_normal((rows, cols)).astype(np.float32), qtype)
    except NotImplementedError:
        pass
    per_block, nbytes = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (rows, cols // per_block, nbytes), dtype=np.uint8)
    fp16_at = {QType.Q4_K: (0, 2), QType.Q5_K: (0, 2), QType.Q6_K: (208,)}[qtype]
    for at in fp16_at:  # d / dmin: random bytes could be inf or NaN
        raw[..., at : at + 2] = rng.uniform(-0.05, 0.05, (rows, cols // per_block, 1)).astype(np.float16).view(np.uint8)
    return raw.reshape(rows, -1)


def write_gguf(path, tensors: dict[str, tuple[np.ndarray, QType]], arch: str = "qeff-test", add_fields=None) -> None:
    """A GGUF file of ``tensors`` (raw bytes and format); ``add_fields(writer)`` adds metadata."""
    writer = GGUFWriter(str(path), arch)
    if add_fields is not None:
        add_fields(writer)
    for name, (raw, qtype) in tensors.items():
        writer.add_tensor(name, raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def graph(nodes, inputs, outputs, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(w, n) for n, w in weights.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.fixture
def float_activations(monkeypatch):
    monkeypatch.setattr(gguf_weights, "GGUF_ACCURACY_LEVEL", 0)  # no int8 rounding of the identity matrix


@pytest.mark.parametrize("qtype", FORMATS, ids=lambda q: q.name)
def test_unpacked_blocks_dequantize_like_gguf(qtype):
    raw = raw_blocks(qtype, 6, K, seed=1)
    blocks = unpack(raw, qtype)
    assert blocks.bits in (4, 8)
    assert np.array_equal(blocks.dequantize(), dequantize(raw, qtype))
    centred = blocks.centred()
    assert centred.default_zero_point
    assert np.array_equal(centred.dequantize(), dequantize(raw, qtype))


@pytest.mark.parametrize("qtype", FORMATS, ids=lambda q: q.name)
def test_onnxruntime_weights_equal_gguf_bit_for_bit(tmp_path, qtype, float_activations):
    n = 24
    raw = raw_blocks(qtype, n, K, seed=2)
    ref = dequantize(raw, qtype)  # (N, K), what transformers loads
    write_gguf(tmp_path / "m.gguf", {"blk.0.ffn_down.weight": (raw, qtype)})
    model = graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])],
        {"w": np.ascontiguousarray(ref.T)},
    )
    counts = apply_gguf_blocks(model, GGUFTensors(tmp_path / "m.gguf"))
    assert counts["weights"] == 1 and counts["left_float"] == 0
    ops = collections.Counter(node.op_type for node in model.graph.node)
    assert ops["MatMulNBits"] == 1
    assert "w" not in {i.name for i in model.graph.initializer}  # the float32 weight is gone
    (y,) = run(model, {"x": np.eye(K, dtype=np.float32)})
    assert np.array_equal(y, ref.T)


@pytest.mark.parametrize("qtype", FORMATS, ids=lambda q: q.name)
def test_embedding_rows_equal_gguf_bit_for_bit(tmp_path, qtype):
    vocab = 12
    raw = raw_blocks(qtype, vocab, K, seed=11)
    write_gguf(tmp_path / "m.gguf", {"token_embd.weight": (raw, qtype)})
    table = dequantize(raw, qtype)
    model = graph(
        [helper.make_node("Gather", ["table", "ids"], ["h"], axis=0)],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, None])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, None)],
        {"table": table},
    )
    assert apply_gguf_blocks(model, GGUFTensors(tmp_path / "m.gguf"))["embeddings"] == 1
    assert "GatherBlockQuantized" in {n.op_type for n in model.graph.node}
    ids = np.array([[5, 0, 11], [3, 3, 7]], np.int64)
    (h,) = run(model, {"ids": ids})
    assert np.array_equal(h, table[ids])


@pytest.mark.parametrize("bias", ["none", "zero", "nonzero"])
def test_merged_projections_and_quantized_tied_embedding(tmp_path, float_activations, bias):
    """q/k (Q4_1) merge into one MatMulNBits (+ blocksum rows) + Split; v (Q6_K, another layout) stays apart; the Q8_0
    table serves the Gather (GatherBlockQuantized) and the tied head (Gemm transB, as exported: with a zero bias;
    a bias that is not zero stays as an Add) from one copy."""
    vocab, hidden = 40, 256
    specs = [(QType.Q4_1, 32, 3), (QType.Q4_1, 16, 4), (QType.Q6_K, 16, 5), (QType.Q8_0, vocab, 6)]
    q, k, v, table = (raw_blocks(t, rows, hidden, seed=s) for t, rows, s in specs)
    tensors = {"q": (q, QType.Q4_1), "k": (k, QType.Q4_1), "v": (v, QType.Q6_K), "token_embd.weight": (table, QType.Q8_0)}
    write_gguf(tmp_path / "m.gguf", tensors)
    deq = {name: dequantize(raw, qt) for name, (raw, qt) in tensors.items()}
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["h"], axis=0),
        helper.make_node("MatMul", ["x", "wq"], ["yq"]),
        helper.make_node("MatMul", ["x", "wk"], ["yk"]),
        helper.make_node("MatMul", ["x", "wv"], ["yv"]),
        helper.make_node("Gemm", ["x", "table"] + ([] if bias == "none" else ["bias"]), ["logits"], transB=1),
    ]
    inputs = [
        helper.make_tensor_value_info("ids", TensorProto.INT64, [1, None]),
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, hidden]),
    ]
    outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("h", "yq", "yk", "yv", "logits")]
    weights = {"table": deq["token_embd.weight"], "wq": deq["q"].T.copy(), "wk": deq["k"].T.copy(), "wv": deq["v"].T.copy()}
    bias_values = np.arange(vocab, dtype=np.float32) if bias == "nonzero" else np.zeros(vocab, np.float32)
    if bias != "none":
        weights["bias"] = bias_values
    model = graph(nodes, inputs, outputs, weights)
    counts = apply_gguf_blocks(model, GGUFTensors(tmp_path / "m.gguf"))
    assert counts == {"weights": 4, "matmulnbits": 3, "left_float": 0, "embeddings": 1}
    ops = collections.Counter(node.op_type for node in model.graph.node)
    assert ops["GatherBlockQuantized"] == 1 and ops["Split"] == 2 and ops["Gemm"] == 0  # q|k, then blocksum
    assert ops["Add"] == 1 + (bias == "nonzero")  # the Q4_1 min term, then a bias that is not zero
    assert sum(1 for i in model.graph.initializer if i.data_type == TensorProto.FLOAT and i.dims[-1] == hidden) == 0
    codes = [n.input[0] for n in model.graph.node if n.op_type == "GatherBlockQuantized"]
    assert codes[0] in {n.input[1] for n in model.graph.node if n.op_type == "MatMulNBits"}  # one copy of the table's codes
    ids = np.array([[3, 0, 39, 7]], np.int64)
    h, yq, yk, yv, logits = run(model, {"ids": ids, "x": np.eye(hidden, dtype=np.float32)})
    assert np.array_equal(h, deq["token_embd.weight"][ids])
    for y, name in [(yq, "q"), (yk, "k"), (yv, "v")]:
        assert np.array_equal(y, deq[name].T), name
    assert np.array_equal(logits, deq["token_embd.weight"].T + bias_values)


def test_llama_rows_permuted_as_transformers_loads_them(tmp_path, float_activations):
    """llama's attn_q / attn_k rows are reordered when transformers loads them; the blocks follow."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    heads, head_dim, hidden = 4, 8, 256
    raw = raw_blocks(QType.Q4_0, heads * head_dim, hidden, seed=7)
    writer = GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_block_count(1)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_embedding_length(hidden)
    writer.add_tensor("blk.0.attn_q.weight", raw, raw_dtype=QType.Q4_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    loaded = LlamaTensorProcessor(config={"num_attention_heads": heads, "num_key_value_heads": heads})
    w = loaded.process(dequantize(raw, QType.Q4_0), "blk.0.attn_q.weight").weights
    assert not np.array_equal(w, dequantize(raw, QType.Q4_0))
    model = graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        {"w": np.ascontiguousarray(w.T)},
    )
    assert apply_gguf_blocks(model, GGUFTensors(tmp_path / "m.gguf"))["weights"] == 1
    (y,) = run(model, {"x": np.eye(hidden, dtype=np.float32)})
    assert np.array_equal(y, w.T)


def test_weights_the_file_does_not_quantize_go_to_8_bit_with_mxfp6(tmp_path):
    from QEfficient.compile.gguf_weights import gguf_weights_rewrite
    from QEfficient.utils.onnx_files import save_with_external_weights

    raw = raw_blocks(QType.Q4_0, 16, 256, seed=9)
    write_gguf(tmp_path / "m.gguf", {"blk.0.ffn_up.weight": (raw, QType.Q4_0)})
    other = np.random.default_rng(10).standard_normal((256, 8)).astype(np.float32)
    model = graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("MatMul", ["x", "other"], ["z"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 256])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("y", "z")],
        {"w": np.ascontiguousarray(dequantize(raw, QType.Q4_0).T), "other": other},
    )
    save_with_external_weights(model, tmp_path / "src.onnx")
    out = gguf_weights_rewrite(tmp_path / "src.onnx", tmp_path / "dst.onnx", tmp_path / "m.gguf", mxfp6_matmul=True)
    ops = collections.Counter(n.op_type for n in onnx.load(str(out)).graph.node)
    assert ops == {"MatMulNBits": 2}


def test_graph_not_from_this_file_is_refused(tmp_path):
    write_gguf(tmp_path / "m.gguf", {"t": (raw_blocks(QType.Q8_0, 8, 64, seed=8), QType.Q8_0)})
    model = graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        {"w": np.ones((64, 8), np.float32)},
    )
    with pytest.raises(GGUFWeightsError, match="gguf_weights=True needs the model loaded from that GGUF file"):
        apply_gguf_blocks(model, GGUFTensors(tmp_path / "m.gguf"))


def test_a_float_file_is_named_as_such(tmp_path):
    """A GGUF file of float weights has nothing to keep quantized: the error says so, not that the model came from elsewhere."""
    write_gguf(tmp_path / "f.gguf", {"t": (np.ones((8, 64), np.float32), QType.F32)})
    model = graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        {"w": np.ones((64, 8), np.float32)},
    )
    with pytest.raises(GGUFWeightsError, match=r"f.gguf' holds no quantized 2-D tensor .*: compile it without gguf_weights"):
        apply_gguf_blocks(model, GGUFTensors(tmp_path / "f.gguf"))


def test_compile_gguf_weights_needs_a_gguf_model(tiny_model_dir):
    from QEfficient import QEFFAutoModelForCausalLM

    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"))
    with pytest.raises(ValueError, match="was not loaded from a .gguf file"):
        model.compile(prefill_seq_len=8, ctx_len=32, gguf_weights=True)


def with_float_activations(graph_path, folder):
    """``graph_path``'s graph with every MatMulNBits at accuracy_level 0 (float activations), saved in ``folder`` beside
    hard links to its weight files: what the rewrite writes with ``GGUF_ACCURACY_LEVEL = 0``, without a second rewrite."""
    model = onnx.load(str(graph_path), load_external_data=False)
    levels = [a for n in model.graph.node if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "accuracy_level"]
    assert levels and all(a.i == gguf_weights.GGUF_ACCURACY_LEVEL for a in levels)
    for attribute in levels:
        attribute.i = 0
    files = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    for name in files:  # hard links: ONNX Runtime refuses weights whose real path is outside the graph's folder
        (folder / name).hardlink_to(graph_path.parent / name)
    onnx.save(model, str(folder / graph_path.name))
    return folder / graph_path.name


def test_smollm2_q4_1_file_runs_on_its_own_blocks(tmp_path):
    """The real Q4_1 file (~30 s of conversion and export, unless test_smollm2 already made them).

    The artifact is the fused decoder graph (llama fuses by default) on the file's blocks. With float32
    activations that graph gives HF's greedy tokens on the de-quantized weights and the float32 graph's
    logits; the default artifact (int8 activations, as llama.cpp) is checked for its structure and its
    distance to float32 is printed (its first token differs from HF's here: in float32 "The" leads "L" by 0.09, which
    int8 activations turn over)."""
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.compile.ort_cpu import ARTIFACT_GRAPH
    from QEfficient.loading.hf_loader import ModelNotFoundError, default_model_path
    from QEfficient.runtime.ort_session import KVCacheSession
    from tests.helpers import hf_greedy, step_logits

    try:
        path = default_model_path()
    except ModelNotFoundError as err:
        pytest.skip(str(err))
    model = QEFFAutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    qpc = model.compile(prefill_seq_len=32, ctx_len=256, num_cores=2, gguf_weights=True, offload_pt_weights=False)
    nodes = onnx.load(str(qpc / ARTIFACT_GRAPH), load_external_data=False).graph.node
    ops = collections.Counter(n.op_type for n in nodes)
    assert ops["MatMulNBits"] == 30 * 4 + 1 and ops["GatherBlockQuantized"] == 1  # q/k/v, o, gate/up, down per layer; head
    assert ops["GroupQueryAttention"] == 30 and not ops["Attention"]  # fused
    # its packed input: the file's q, k, v tensors stacked in that order (whole parts move; no Split of heads)
    assert all(n.input[1] == n.input[2] == "" for n in nodes if n.op_type == "GroupQueryAttention")
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ref = hf_greedy(model.model.hf, tokenizer, prompt, 16)
    info = model.generate(tokenizer, [prompt], generation_len=16, stream=False)
    ours = [int(t) for t in info.generated_ids[0][0]][: len(ref)]  # may run past HF's EOS: its numerics differ

    exact = with_float_activations(qpc / ARTIFACT_GRAPH, tmp_path)  # the rewrite with GGUF_ACCURACY_LEVEL 0 gives this graph
    kw = {"batch_size": 1, "kv_shape": (1, 3, 256, 64), "num_layers": 30, "vocab_size": 49152, "num_cores": 2}
    sessions = [KVCacheSession(p, **kw) for p in (model.onnx_path, exact, qpc / ARTIFACT_GRAPH)]
    ids = tokenizer(prompt)["input_ids"] + ref
    start = len(ids) - len(ref) - 1  # the prompt in one chunk, then HF's tokens one at a time
    fp32, float_act, int8_act = (step_logits(s, ids[:-1], start) for s in sessions)
    assert [int(a.argmax()) for a in float_act] == ref  # HF's greedy tokens
    delta = [max(float(np.abs(a - f).max()) for a, f in zip(act, fp32, strict=True)) for act in (float_act, int8_act)]
    agree = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), len(ref))
    print(f"logits max |delta| vs float32: {delta[0]:.2e} (float activations), {delta[1]:.2f} (int8); greedy = HF {agree}/{len(ref)}")
    assert delta[0] < 1e-3


def test_gguf_file_reads_what_gguf_reader_reads(tmp_path):
    """QEfficient's GGUF reader (it steps over string arrays instead of walking them as gguf's GGUFReader
    does): the same metadata (string arrays left out), tensor formats, shapes and bytes, with a custom
    alignment, 1-, 2- and 3-D tensors; a file that is not GGUF, or is cut short, is refused."""
    from gguf import GGUFReader, GGUFValueType
    from transformers.integrations.ggml import _gguf_parse_value

    from QEfficient.compile.gguf_file import GGUFFile

    def add_fields(writer: GGUFWriter) -> None:
        writer.add_custom_alignment(64)
        writer.add_head_count(4)
        writer.add_layer_norm_rms_eps(1e-6)
        writer.add_bool("qeff.flag", True)
        writer.add_array("qeff.sections", [11, 22, 33])
        writer.add_array("qeff.one", [7])
        writer.add_token_list(["<s>", "é", "tok"] * 50)
        writer.add_token_scores([0.5, -1.0, 2.0] * 50)
        writer.add_key_value("qeff.nested", [[1, 2], [3]], GGUFValueType.ARRAY, sub_type=GGUFValueType.ARRAY)

    tensors = {
        "norm": (np.arange(7, dtype=np.float32), None),
        "q6": (raw_blocks(QType.Q6_K, 3, K, seed=12), QType.Q6_K),
        "q5": (raw_blocks(QType.Q5_0, 5, 64, seed=13), QType.Q5_0),
        "experts": (quantize(np.ones((2, 3, 64), np.float32), QType.Q8_0), QType.Q8_0),
    }
    write_gguf(tmp_path / "m.gguf", tensors, "llama", add_fields)
    ours, reference = GGUFFile(tmp_path / "m.gguf"), GGUFReader(str(tmp_path / "m.gguf"))
    expected = {}
    for key, field in reference.fields.items():
        if (
            key.startswith("GGUF.")
            or key == "qeff.nested"
            or field.types[-1] == GGUFValueType.STRING
            and field.types[0] == GGUFValueType.ARRAY
        ):
            continue
        values = [_gguf_parse_value(field.parts[i], field.types) for i in field.data]
        expected[key] = values if field.types[0] == GGUFValueType.ARRAY else values[0]
    expected["qeff.nested"] = [[1, 2], [3]]  # transformers cannot parse GGUFReader's (flattened) nested arrays
    assert ours.metadata == expected and ours.metadata["general.alignment"] == 64
    assert list(ours.tensors) == [t.name for t in reference.tensors]
    for t in reference.tensors:
        mine = ours.tensors[t.name]
        assert mine.qtype == t.tensor_type and mine.shape == tuple(reversed(t.shape.tolist()))
        assert np.array_equal(mine.data, np.asarray(t.data).view(np.uint8).reshape(mine.data.shape))
    assert mine.data.shape == (2, 3, 68)  # Q8_0: 2 blocks of 34 bytes per row

    (tmp_path / "short.gguf").write_bytes((tmp_path / "m.gguf").read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        GGUFFile(tmp_path / "short.gguf")
    (tmp_path / "not.gguf").write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(ValueError, match="not a GGUF file"):
        GGUFFile(tmp_path / "not.gguf")
