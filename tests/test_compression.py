"""compile(mxfp6_matmul=True): 8-bit MatMul weights (int8 GEMMs after normalizations when fused), quality by perplexity."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.compile.ort_cpu import ARTIFACT_GRAPH
from QEfficient.export.onnx_export import WeightsOffloadedError
from QEfficient.generation.exec_kv import open_session
from QEfficient.generation.perplexity import perplexity
from tests.tiny_models import tiny_config

TEXT = (Path(__file__).parent / "data" / "perplexity.txt").read_text()


def artifact_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.suffix != ".json" and not f.name.startswith("."))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])  # tied head; Conv1D weights with biases
def test_compressed_weights_keep_perplexity(arch, tmp_path, tokenizer_dir):
    # transformers' own initialisation (the shared tiny models widen it to separate greedy ties,
    # which makes a random model far more fragile than any trained one)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_config(arch)).save_pretrained(tmp_path)
    folder = tmp_path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = tokenizer(TEXT)["input_ids"][:200]
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    fp32 = model.compile(prefill_seq_len=8, ctx_len=256, num_cores=1)
    packed = model.compile(prefill_seq_len=8, ctx_len=256, num_cores=1, mxfp6_matmul=True)
    assert packed != fp32

    graph = onnx.load(str(packed / ARTIFACT_GRAPH), load_external_data=False)
    weights = {i.name for i in graph.graph.initializer}
    ops = [n.op_type for n in graph.graph.node]
    n_layers = model.config.num_hidden_layers
    # attention and MLP projections (in int8 GEMMs after a normalization where the graph is fused), the LM head
    assert ops.count("MatMulNBits") + ops.count("DynamicQuantizeMatMul") >= 4 * n_layers + 1
    assert not [n for n in graph.graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights]
    assert artifact_bytes(packed) < artifact_bytes(fp32)
    # both tie the head: the embedding reads the head's 8-bit blocks, no float32 table is left
    assert "GatherBlockQuantized" in ops
    table = [model.config.vocab_size, model.config.hidden_size]
    assert not [i for i in graph.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and list(i.dims) == table]

    ppl_fp32 = perplexity(open_session(fp32, 1), ids)
    ppl_packed = perplexity(open_session(packed, 1), ids)
    assert abs(ppl_packed / ppl_fp32 - 1) < 0.03, (ppl_fp32, ppl_packed)

    model.compile(prefill_seq_len=8, ctx_len=256, num_cores=1, mxfp6_matmul=True)
    info = model.generate(tokenizer, ["My name is"], generation_len=8, stream=False)
    assert info.generated_ids[0].shape == (1, 8)


def test_weight_format_is_in_the_artifact_key(tiny_model_dir, monkeypatch):
    """An mxfp6 artifact built with another block format is not reused: the format is in its hash."""
    import json

    from QEfficient.compile import weight_compression

    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"))
    now = model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1, mxfp6_matmul=True)
    blocks = {
        a.i
        for n in onnx.load(str(now / ARTIFACT_GRAPH), load_external_data=False).graph.node
        for a in n.attribute
        if a.name == "block_size"
    }
    assert blocks == {weight_compression.BLOCK_SIZE}
    assert json.loads((now / "qconfig.json").read_text())["compile_params"]["weight_format"] == weight_compression.WEIGHT_FORMAT
    monkeypatch.setattr(weight_compression, "WEIGHT_FORMAT", "an older format")
    assert model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1, mxfp6_matmul=True) != now


def test_weights_are_released_after_export(tiny_model_dir):
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("qwen2"))
    model.compile(prefill_seq_len=8, ctx_len=32)
    assert all(p.is_meta for p in model.model.parameters())
    model.compile(prefill_seq_len=8, ctx_len=64)  # the cached export still serves a new artifact
    model.compile(prefill_seq_len=8, ctx_len=64, mxint8_kv_cache=True)  # a new export: reloaded from the folder
    assert all(p.is_meta for p in model.model.parameters())
    wrapped = QEFFAutoModelForCausalLM(AutoModelForCausalLM.from_pretrained(tiny_model_dir("qwen2")))
    wrapped.compile(prefill_seq_len=8, ctx_len=32)
    with pytest.raises(WeightsOffloadedError, match="offload_pt_weights=False"):
        wrapped.export(dynamo=True)  # built from a model object: nothing to reload from

    kept = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("qwen2"))
    kept.compile(prefill_seq_len=8, ctx_len=32, offload_pt_weights=False)
    assert not any(p.is_meta for p in kept.model.parameters())


def test_mxint8_kv_cache_halves_the_cache_and_keeps_tokens(tiny_model_dir):
    folder = tiny_model_dir("mistral")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    prompts = ["Once upon a time a robot learned to paint the sky", "My name is"]
    full = model.compile(prefill_seq_len=8, ctx_len=96, batch_size=2, num_cores=1)
    ref = model.generate(tokenizer, prompts, generation_len=20, stream=False)
    half = model.compile(prefill_seq_len=8, ctx_len=96, batch_size=2, num_cores=1, mxint8_kv_cache=True)
    assert half != full
    graph = onnx.load(str(half / ARTIFACT_GRAPH), load_external_data=False)
    past = [i for i in graph.graph.input if i.name.startswith("past_")]
    assert past and all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for i in past)
    sessions = open_session(full, 1), open_session(half, 1)
    assert sessions[1].cache_bytes * 2 == sessions[0].cache_bytes
    out = model.generate(tokenizer, prompts, generation_len=20, stream=False)
    assert [r.tolist() for r in out.generated_ids[0]] == [r.tolist() for r in ref.generated_ids[0]]


@pytest.mark.parametrize("head", ["named, zero bias", "unnamed, no bias"])
@pytest.mark.parametrize("k", [64, 100])  # whole blocks; a last block padded
def test_lm_head_quantized_from_its_rows_equals_the_transposed_route(k, head, monkeypatch):
    """quantize_lm_heads gives the LM head's Gemm(h, W, transB=1) the same MatMulNBits (names, blocks, scales,
    zero points) as gemm_to_matmul + ONNX Runtime's MatMulNBitsQuantizer, without a transposed copy of W; a few
    rows of W at a time give the blocks of the whole; the tied embedding's Gather reads them the same way."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from QEfficient.compile import weight_compression as wc

    vocab = 300
    w = np.random.default_rng(0).standard_normal((vocab, k)).astype(np.float32)
    named = head.startswith("named")
    gemm = helper.make_node(
        "Gemm", ["h", "table", "zero"] if named else ["h", "table"], ["logits"], name="/Gemm" if named else "", transB=1
    )
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"], name="/Gather"), gemm],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, None]), helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, k])],
        [
            helper.make_tensor_value_info("rows", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, vocab]),
        ],
        [numpy_helper.from_array(w, "table"), numpy_helper.from_array(np.zeros(vocab, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    reference = onnx.ModelProto()
    reference.CopyFrom(model)
    wc.gemm_to_matmul(reference)
    reference = wc.quantize_remaining_matmuls(reference)

    monkeypatch.setattr(wc, "QUANTIZE_BYTES", 7 * 4 * k)  # 7 rows at a time
    assert wc.quantize_lm_heads(model) == 1
    model = wc.quantize_remaining_matmuls(model)
    ours, theirs = ([n for n in m.graph.node if n.op_type != "Constant"] for m in (model, reference))
    assert [n.SerializeToString() for n in ours] == [n.SerializeToString() for n in theirs]
    assert {n.op_type for n in ours} >= {"MatMulNBits", "GatherBlockQuantized"}
    read = {name for n in ours for name in n.input}
    values = [{i.name: i.SerializeToString() for i in m.graph.initializer if i.name in read} for m in (model, reference)]
    assert values[0] == values[1] and "table_KxN_Q8" in values[0] and "table" not in values[0]


def test_a_zero_bias_from_a_constant_node_is_dropped_so_the_head_is_quantized_from_its_rows():
    """The exporter gives some LM heads (Gemma-3's) a zero bias as a Constant node: the Gemm loses it (and the
    node goes), so quantize_lm_heads and the GGUF rewrite take the head without a transposed float32 copy of W;
    a non-zero bias stays."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from QEfficient.compile import weight_compression as wc

    vocab, k = 96, 64
    w = np.random.default_rng(0).standard_normal((vocab, k)).astype(np.float32)

    def head(bias: np.ndarray) -> onnx.ModelProto:
        nodes = [
            helper.make_node("Constant", [], ["bias"], value=numpy_helper.from_array(bias)),
            helper.make_node("Gemm", ["h", "table", "bias"], ["logits"], name="/Gemm", transB=1),
        ]
        io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in (("h", [1, k]), ("logits", [1, vocab]))]
        graph = helper.make_graph(nodes, "g", io[:1], io[1:], [numpy_helper.from_array(w, "table")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    model = head(np.zeros(vocab, np.float32))
    assert not wc.lm_heads(model)
    assert wc.drop_zero_gemm_biases(model) == 1
    assert [list(n.input) for n in model.graph.node] == [["h", "table"]]
    assert wc.lm_heads(model) == {"logits"} and wc.quantize_lm_heads(model) == 1

    as_initializer = head(np.zeros(vocab, np.float32))
    constant = as_initializer.graph.node[0]
    as_initializer.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(constant.attribute[0].t), "bias"))
    as_initializer.graph.node.remove(constant)
    assert wc.drop_zero_gemm_biases(as_initializer) == 1 and [i.name for i in as_initializer.graph.initializer] == ["table"]

    kept = head(np.ones(vocab, np.float32))
    assert wc.drop_zero_gemm_biases(kept) == 0 and len(kept.graph.node) == 2 and not wc.lm_heads(kept)
