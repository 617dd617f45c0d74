"""compile(fuse=...): the fused decoder graph (compile/fusion.py) has fewer nodes, its logits match HF
to float tolerance through prefill chunks, padding, decode and idle rows, and its greedy generation
is token for token HF's; with mxfp6_matmul the merged q/k/v and gate/up run as int8 GEMMs; compile() fuses the
types the sweep proved by default, and keeps today's graph for others."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.runtime.ort_session import open_kv_session
from tests.helpers import hf_greedy, real_tokens

# mistral: a sliding window shorter than the prompts; qwen3: per-head q/k norms between the head split and
# the rotary; gemma3_text: both, sliding layers alternating with global ones, two rotary bases.
FUSED_ARCHS = ["llama", "mistral", "qwen2", "qwen3", "gemma3_text"]
FUSED_OPS = {"SkipSimplifiedLayerNormalization", "GroupQueryAttention"}
CTX = 64


def op_counts(qpc) -> collections.Counter:
    graph = onnx.load(str(Path(qpc) / "model.onnx"), load_external_data=False).graph
    return collections.Counter(n.op_type for n in graph.node)


def step_logits(qpc, ids: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """(our logits [V], row, position) through two prefill chunks (row 1 right-padded), decode steps,
    and a step with row 1 idle (position -1): the cases the static cache is written in."""
    session = open_kv_session(qpc, 2)
    got = []
    for start in (0, 8):
        pos = np.tile(np.arange(start, start + 8), (2, 1))
        if start:
            pos[1, 5:] = -1
        logits = session.run(ids[:, start : start + 8], pos)
        got += [(logits[0].copy(), 0, start + 7), (logits[1].copy(), 1, int(pos[1].max()))]
    p = np.array([16, 13])
    for _ in range(3):
        logits = session.run(ids[[0, 1], p][:, None], p[:, None])
        got += [(logits[0].copy(), 0, p[0]), (logits[1].copy(), 1, p[1])]
        p = p + 1
    logits = session.run(ids[[0, 1], p][:, None], np.array([[p[0]], [-1]]))
    got.append((logits[0].copy(), 0, p[0]))
    logits = session.run(ids[[0, 1], p][:, None], p[:, None])
    got.append((logits[1].copy(), 1, p[1]))
    return got


def assert_logits_match_hf(folder, qpc, seed: int) -> None:
    """Every step_logits result within 1e-4 of HF's full-sequence logits at that row and position."""
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = np.random.default_rng(seed).integers(3, 300, size=(2, 24))
    with torch.no_grad():
        ref = hf(torch.tensor(ids)).logits.numpy()
    for logits, row, pos in step_logits(qpc, ids):
        assert np.abs(logits - ref[row, pos]).max() <= 1e-4, (row, pos)


def compile_both(folder, **kwargs):
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    plain = model.compile(prefill_seq_len=8, ctx_len=CTX, batch_size=2, num_cores=2, offload_pt_weights=False, fuse=False, **kwargs)
    fused = model.compile(prefill_seq_len=8, ctx_len=CTX, batch_size=2, num_cores=2, offload_pt_weights=False, fuse=True, **kwargs)
    return model, plain, fused


@pytest.mark.parametrize("arch", FUSED_ARCHS)
def test_fused_graph_is_smaller_and_matches_hf(arch, tiny_model_dir):
    folder = tiny_model_dir(arch)
    _, plain, fused = compile_both(folder)
    before, after = op_counts(plain), op_counts(fused)
    assert sum(after.values()) < sum(before.values()) / 3, (before, after)
    assert FUSED_OPS <= set(after), after
    if arch == "llama":  # per layer: q/k/v, o, gate/up, down MatMuls, GQA, 2 skip norms, Split, SiLU, Mul; 27 shared
        assert sum(after.values()) == 10 * 2 + 27 and not {"Attention", "RotaryEmbedding", "ScatterElements", "Transpose"} & set(after), (
            after
        )
    assert_logits_match_hf(folder, fused, seed=0)


@pytest.mark.parametrize("arch", FUSED_ARCHS)
def test_fused_generation_matches_hf(arch, tiny_model_dir):
    folder = tiny_model_dir(arch)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    qpc = model.compile(prefill_seq_len=8, ctx_len=96, batch_size=2, num_cores=2, fuse=True)
    assert FUSED_OPS <= set(op_counts(qpc))
    prompts = ["Once upon a time a robot learned to paint the sky blue and the grass green, then", "My name is"]
    info = model.generate(tokenizer, prompts, generation_len=20, stream=False)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    for prompt, row in zip(prompts, (r for batch in info.generated_ids for r in batch)):
        ref = hf_greedy(hf, tokenizer, prompt, 20)
        assert real_tokens(row, tokenizer.pad_token_id, len(ref)) == ref, prompt


def assert_int8_projections(folder, per_layer: int, **kwargs) -> collections.Counter:
    """With mxfp6_matmul, the fused graph runs ``per_layer`` int8 GEMMs a layer (compile/smooth_int8.py) and
    MatMulNBits for the rest of the plain graph's MatMulNBits, with logits about as far from float32 (the
    same options without mxfp6_matmul) as MatMulNBits everywhere. Returns the fused graph's op counts."""
    model, plain, fused = compile_both(folder, mxfp6_matmul=True, **kwargs)
    after, layers = op_counts(fused), model.config.num_hidden_layers
    assert after["DynamicQuantizeMatMul"] == per_layer * layers, after
    assert after["MatMulNBits"] + after["DynamicQuantizeMatMul"] == op_counts(plain)["MatMulNBits"], after
    fp32 = model.compile(prefill_seq_len=8, ctx_len=CTX, batch_size=2, num_cores=2, offload_pt_weights=False, fuse=True, **kwargs)
    ids = np.random.default_rng(1).integers(3, 300, size=(2, 24))
    errors = [
        (np.abs(exact - blocks).max(), np.abs(exact - int8).max())
        for (exact, *_), (blocks, *_), (int8, *_) in zip(step_logits(fp32, ids), step_logits(plain, ids), step_logits(fused, ids))
    ]
    blocks_error, int8_error = np.mean(errors, axis=0)
    assert int8_error <= 1.5 * blocks_error, errors  # as far from float32 as MatMulNBits everywhere, about
    return after


@pytest.mark.parametrize("arch", FUSED_ARCHS)
def test_fused_mxfp6_runs_normalized_projections_in_int8(arch, tiny_model_dir):
    """The merged q/k/v and gate/up (they read a normalization, smoothed) and o (it reads the attention)
    run as int8 GEMMs; down and the head stay in MatMulNBits as in the plain graph."""
    after = assert_int8_projections(tiny_model_dir(arch), 3)
    assert FUSED_OPS <= set(after) and not after["MatMul"], after


@pytest.mark.parametrize("arch, options", [("llama", {"mxint8_kv_cache": True}), ("gemma2", {})])
def test_int8_projections_where_attention_stays_spelled_out(arch, options, tiny_model_dir, caplog):
    """A float16 cache (mxint8_kv_cache) or soft-capped scores (gemma2) keep the Attention graph, which
    writes the cache in place: calibrated on a cache of its own length, q/k/v and gate/up still run as
    int8 GEMMs (o reads no GroupQueryAttention and stays in MatMulNBits)."""
    with caplog.at_level("WARNING", logger="QEfficient.compile.smooth_int8"):
        after = assert_int8_projections(tiny_model_dir(arch), 2, **options)
    assert "GroupQueryAttention" not in after and "int8 GEMMs after normalizations skipped" not in caplog.text


@pytest.mark.parametrize("arch", ["llama", "gemma3_text"])
def test_float16_cache_attention_reads_only_the_positions_it_needs(arch, tiny_model_dir):
    """mxint8_kv_cache keeps the Attention graph; its keys, values (before their widening Cast) and mask
    are sliced at max(position_ids) + 1 (compile/attention_window.py), and its logits stay the plain
    graph's through prefill chunks, padding, decode and idle rows (gemma3_text: sliding and global layers)."""
    model, plain, fused = compile_both(tiny_model_dir(arch), mxint8_kv_cache=True)
    graph = onnx.load(str(Path(fused) / "model.onnx"), load_external_data=False).graph
    layers = model.config.num_hidden_layers
    slices = [n for n in graph.node if n.op_type == "Slice" and n.name.startswith("qeff_fusion/window")]
    attention = [n for n in graph.node if n.op_type == "Attention"]
    assert len(attention) == layers and len(slices) == 2 * layers + len({n.input[3] for n in attention}), len(slices)
    ids = np.random.default_rng(3).integers(3, 300, size=(2, 24))
    for (ours, row, pos), (ref, *_) in zip(step_logits(fused, ids), step_logits(plain, ids)):
        assert np.abs(ours - ref).max() <= 1e-4, (row, pos)


def test_failed_calibration_keeps_matmulnbits_everywhere(tiny_model_dir, monkeypatch, caplog):
    """When the calibration run of the float32 graph fails, the artifact is the MatMulNBits one, with a warning."""
    from QEfficient.compile import smooth_int8

    monkeypatch.setattr(smooth_int8, "_calibration_feeds", lambda graph, tokens: {"input_ids": np.zeros((1, 2, 3), np.int64)})
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"))
    with caplog.at_level("WARNING", logger="QEfficient.compile.smooth_int8"):
        qpc = model.compile(prefill_seq_len=8, ctx_len=48, num_cores=1, mxfp6_matmul=True, fuse=True)
    ops = op_counts(qpc)
    assert not ops["DynamicQuantizeMatMul"] and ops["MatMulNBits"] == 4 * model.config.num_hidden_layers + 1, ops
    assert "calibration run failed" in caplog.text


def test_softcapped_attention_stays_spelled_out(tiny_model_dir):
    """gemma2 (attention softcap): fused by default (a proven type), the rest of the layer fused, the
    softcapped scores are not the Attention pattern and stay as they are; exact."""
    folder = tiny_model_dir("gemma2")
    model, plain, fused = compile_both(folder)
    assert model.compile(prefill_seq_len=8, ctx_len=CTX, batch_size=2, num_cores=2, offload_pt_weights=False) == fused
    assert "Attention" not in op_counts(fused) and "SkipSimplifiedLayerNormalization" in op_counts(fused)
    assert_logits_match_hf(folder, fused, seed=2)


def test_unproven_type_keeps_todays_graph_by_default(tiny_model_dir, monkeypatch):
    from QEfficient.transform.adapters import sweep_status

    monkeypatch.setattr(sweep_status, "PROVEN", sweep_status.PROVEN - {"gemma2"})
    model, plain, _ = compile_both(tiny_model_dir("gemma2"))
    assert model.compile(prefill_seq_len=8, ctx_len=CTX, batch_size=2, num_cores=2, offload_pt_weights=False) == plain


def test_default_fuses_covered_architectures(tiny_model_dir):
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama"))
    assert FUSED_OPS <= set(op_counts(model.compile(prefill_seq_len=8, ctx_len=CTX, num_cores=2)))


def with_config(tiny_model_dir, tmp_path, arch: str, **changes) -> Path:
    """A copy of the tiny ``arch`` model with ``changes`` to its config (weights unchanged)."""
    import shutil

    folder = tmp_path / f"{arch}_changed"
    shutil.copytree(tiny_model_dir(arch), folder)
    config = AutoConfig.from_pretrained(folder)
    for key, value in changes.items():
        setattr(config, key, value)
    config.save_pretrained(folder)
    return folder


def gqa_windows(qpc) -> list[int]:
    graph = onnx.load(str(Path(qpc) / "model.onnx"), load_external_data=False).graph
    return [a.i for n in graph.node if n.op_type == "GroupQueryAttention" for a in n.attribute if a.name == "local_window_size"]


def test_sliding_window_longer_than_a_probe(tiny_model_dir, tmp_path):
    """A sliding window that only shows past position 40 (of ctx_len 64): the mask is probed over the whole
    window, so GroupQueryAttention gets it (local_window_size 40), and the graph stays exact."""
    folder = with_config(tiny_model_dir, tmp_path, "mistral", sliding_window=40)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    fused = model.compile(prefill_seq_len=8, ctx_len=CTX, batch_size=2, num_cores=2, fuse=True)
    assert gqa_windows(fused) == [40, 40]
    ids = np.random.default_rng(3).integers(3, 300, size=(2, CTX))
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        ref = hf(torch.tensor(ids)).logits.numpy()
    session = open_kv_session(fused, 2)
    for start in range(0, CTX, 8):  # positions up to 63: 23 past the window
        logits = session.run(ids[:, start : start + 8], np.tile(np.arange(start, start + 8), (2, 1)))
        assert np.abs(logits - ref[:, start + 7]).max() <= 1e-4, start


def test_window_masks_per_layer(tiny_model_dir):
    """gemma3_text alternates sliding (12) and global layers: each layer's own mask sets its window; its
    tanh-approximated GELU is one FastGelu per layer."""
    model = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("gemma3_text"))
    fused = model.compile(prefill_seq_len=8, ctx_len=CTX, batch_size=2, num_cores=2, fuse=True)
    assert gqa_windows(fused) == [12, -1, 12, -1]
    assert op_counts(fused)["FastGelu"] == 4


def test_head_dim_the_kernel_refuses_keeps_attention(tiny_model_dir, tmp_path):
    """GroupQueryAttention wants head_dim % 16 == 0: qwen3 with head_dim 24 keeps ONNX Attention, exact."""
    folder = with_config(tiny_model_dir, tmp_path, "qwen3", head_dim=24)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)  # weights of that shape
    _, _, fused = compile_both(folder)
    ops = op_counts(fused)
    assert "GroupQueryAttention" not in ops and "Attention" in ops, ops
    assert_logits_match_hf(folder, fused, seed=5)


def test_chunk_past_the_end_of_the_context(tiny_model_dir):
    """GroupQueryAttention places a row's chunk, padding included, at its first position: a 4-wide chunk at
    positions 62-63 of ctx_len 64 needs 66 slots. The session binds them (past ctx_len) and stays exact."""
    folder = tiny_model_dir("llama")
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    qpc = model.compile(prefill_seq_len=8, ctx_len=CTX, batch_size=2, num_cores=2, fuse=True)
    assert "GroupQueryAttention" in op_counts(qpc)
    ids = np.random.default_rng(4).integers(3, 300, size=(2, CTX))
    session = open_kv_session(qpc, 2)
    for start, stop in [(s, s + 8) for s in range(0, 56, 8)] + [(56, 62)]:
        session.run(ids[:, start:stop], np.tile(np.arange(start, stop), (2, 1)))
    logits = session.run(np.pad(ids[:, 62:], ((0, 0), (0, 2))), np.array([[62, 63, -1, -1], [62, -1, -1, -1]]))
    assert session.window == CTX + 2
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        ref = hf(torch.tensor(ids)).logits.numpy()
    assert np.abs(logits[0] - ref[0, 63]).max() <= 1e-4 and np.abs(logits[1] - ref[1, 62]).max() <= 1e-4
