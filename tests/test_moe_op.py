"""Mixture-of-experts layers export as ONNX Runtime's fused MoE node (QEfficient/transform/moe_op.py):
one node per layer, no gathered copies of the expert weights, the model's own routing, HF's logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from benchmarks.arch_sweep import tiny_model
from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.compile.moe_quant import quantize_blocks
from QEfficient.compile.ort_cpu import ARTIFACT_GRAPH
from QEfficient.generation.exec_kv import open_session
from tests.tiny_models import sweep_config

PROMPT = np.arange(3, 11, dtype=np.int64)[None]


def _hf_last_logits(model) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(PROMPT)).logits[0, -1].numpy()


def _expert_weight_reads(graph: onnx.ModelProto) -> list[str]:
    """Nodes that read a 3-D weight ([experts, out, in]) other than the MoE node itself."""
    stacked = {i.name for i in graph.graph.initializer if len(i.dims) == 3}
    return [n.op_type for n in graph.graph.node if n.op_type != "MoE" and stacked & set(n.input)]


@pytest.mark.parametrize(
    ("model_type", "attrs"),
    [
        ("mixtral", {"activation_alpha": 1.0, "activation_beta": 0.0}),  # softmax top-2, silu(gate) * up
        ("gpt_oss", {"activation_beta": 1.0, "swiglu_limit": 7.0}),  # clamped gate, (up + 1), biases, sinks
        ("longcat_flash", {"activation_alpha": 1.0}),  # identity ("zero-computation") experts beside routed ones
        ("dbrx", {"activation_alpha": 1.0}),  # w1/v1/w2 stored as [experts * ffn, hidden]
    ],
)
def test_experts_run_as_one_moe_node_with_hf_logits(model_type, attrs):
    model = tiny_model(sweep_config(model_type))
    expected = _hf_last_logits(model)
    qeff = QEFFAutoModelForCausalLM(model)
    graph = onnx.load(str(qeff.export()), load_external_data=False)
    moe = [n for n in graph.graph.node if n.op_type == "MoE"]
    assert moe and all(n.domain == "com.microsoft" for n in moe)
    got = {a.name: onnx.helper.get_attribute_value(a) for a in moe[0].attribute}
    assert {k: got[k] for k in attrs} == pytest.approx(attrs)
    assert not _expert_weight_reads(graph)  # no Gather copying experts' weights
    session = open_session(qeff.compile(prefill_seq_len=8, ctx_len=32), 1)
    logits = session.run(PROMPT, np.arange(8, dtype=np.int64)[None])
    assert np.abs(logits[0].ravel() - expected).max() <= 1e-4


@pytest.mark.parametrize("model_type", ["mixtral", "gpt_oss"])
def test_mxfp6_puts_expert_weights_in_8_bits(model_type):
    model = tiny_model(sweep_config(model_type))
    expected = _hf_last_logits(model)
    qpc = QEFFAutoModelForCausalLM(model).compile(prefill_seq_len=8, ctx_len=32, mxfp6_matmul=True)
    graph = onnx.load(str(Path(qpc) / ARTIFACT_GRAPH), load_external_data=False)
    ops = [n.op_type for n in graph.graph.node]
    assert "QMoE" in ops and "MoE" not in ops
    qmoe = next(n for n in graph.graph.node if n.op_type == "QMoE")
    assert {a.name: onnx.helper.get_attribute_value(a) for a in qmoe.attribute}["expert_weight_bits"] == 8
    logits = open_session(qpc, 1).run(PROMPT, np.arange(8, dtype=np.int64)[None])
    # 8-bit weights and int8 activations: close to the float logits (a tiny random model's top two can swap)
    assert np.abs(logits[0].ravel() - expected).max() < 0.05 * np.abs(expected).max()


def test_block_quantization_round_trips_within_a_step():
    weight = np.random.default_rng(0).standard_normal((2, 8, 64)).astype(np.float32)
    q, scale, zero = quantize_blocks(weight, 32)
    restored = ((q.reshape(2, 8, 2, 32).astype(np.float32) - zero[..., None]) * scale[..., None]).reshape(weight.shape)
    assert np.abs(restored - weight).max() <= scale.max() / 2 + 1e-6
