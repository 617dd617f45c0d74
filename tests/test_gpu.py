"""On a GPU (ONNX Runtime's CUDA provider, QEFF_DEVICE=cuda or auto): the session runs there with its KV cache in
the GPU's memory, and gives transformers' answers. Skipped where ONNX Runtime cannot run on a GPU (CI); run on a
machine with one as docs/gpu.md says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModel, QEFFAutoModelForCausalLM
from QEfficient.runtime.devices import CUDA_PROVIDER, cuda_runs
from QEfficient.runtime.kv_storage import DeviceKVStorage
from QEfficient.runtime.ort_session import open_kv_session
from tests.helpers import hf_greedy, real_tokens, step_logits

pytestmark = pytest.mark.skipif(not cuda_runs(0), reason="ONNX Runtime's CUDA provider cannot run here (no GPU or no onnxruntime-gpu)")

PROMPTS = ["Once upon a time a robot learned to paint the sky blue and the grass green, then", "My name is", "The sun"]


@pytest.fixture(autouse=True)
def cuda_device(monkeypatch):
    monkeypatch.setenv("QEFF_DEVICE", "cuda")


def on_gpu(session) -> bool:
    """Whether a session (ours, or ONNX Runtime's own) runs on CUDA first."""
    return getattr(session, "session", session).get_providers()[0] == CUDA_PROVIDER


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma3_text", "phi3", "gpt2"])
def test_greedy_on_the_gpu_is_transformers_greedy(arch, tiny_model_dir):
    folder = tiny_model_dir(arch)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    qpc = model.compile(prefill_seq_len=8, ctx_len=160, num_cores=2)
    info = model.generate(tokenizer, PROMPTS, generation_len=100, stream=False)  # the window grows 128 -> 160
    session = model.qpc_session
    assert on_gpu(session) and isinstance(session.storage, DeviceKVStorage)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    rows = [row for batch in info.generated_ids for row in batch]
    for prompt, row in zip(PROMPTS, rows):
        ref = hf_greedy(hf, tokenizer, prompt, 100)
        assert real_tokens(row, tokenizer.pad_token_id, len(ref)) == ref, prompt
    # logits of each of 150 steps against transformers', to float tolerance: in place past the first 128-slot window
    ids = tokenizer(" ".join([PROMPTS[0]] * 4)).input_ids[:150]
    step = open_kv_session(qpc, 2)
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0].numpy()
    ours = step_logits(step, ids, 7)
    assert step.window == 160
    np.testing.assert_allclose(np.stack(ours)[:, : ref.shape[1]], ref[7:], atol=1e-4, rtol=0)


def test_continuous_batching_on_the_gpu(tiny_model_dir):
    folder = tiny_model_dir("qwen2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True)
    model.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_cores=2)
    info = model.generate(tokenizer, PROMPTS * 2, generation_len=20, stream=False)
    assert on_gpu(model.qpc_session)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    for prompt, row in zip(PROMPTS * 2, info.generated_ids):
        ref = hf_greedy(hf, tokenizer, prompt, 20)
        assert real_tokens(row, tokenizer.pad_token_id, len(ref)) == ref, prompt


def test_float16_cache_on_the_gpu(tiny_model_dir):
    """mxint8_kv_cache (a float16 cache, resident): the float32 cache's tokens, as on the CPU (tests/test_compression.py)."""
    folder = tiny_model_dir("mistral")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    prompts = ["Once upon a time a robot learned to paint the sky", "My name is"]
    model.compile(prefill_seq_len=8, ctx_len=96, batch_size=2, num_cores=2)
    ref = model.generate(tokenizer, prompts, generation_len=20, stream=False)
    model.compile(prefill_seq_len=8, ctx_len=96, batch_size=2, num_cores=2, mxint8_kv_cache=True)
    out = model.generate(tokenizer, prompts, generation_len=20, stream=False)
    assert on_gpu(model.qpc_session) and model.qpc_session.storage.dtype == np.float16
    assert [r.tolist() for r in out.generated_ids[0]] == [r.tolist() for r in ref.generated_ids[0]]


def test_encoder_on_the_gpu(tiny_model_dir, tokenizer_dir, tmp_path):
    from transformers import AutoModel, BertConfig

    config = BertConfig(vocab_size=320, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    torch.manual_seed(0)
    AutoModel.from_config(config).eval().save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = QEFFAutoModel.from_pretrained(tmp_path)
    model.compile(seq_len=16, num_cores=2)
    enc = tokenizer(PROMPTS[:1], return_tensors="pt", padding="max_length", max_length=16, truncation=True)
    ours = model.generate(enc)
    ours = ours["output"] if isinstance(ours, dict) else ours
    assert all(on_gpu(session) for _, session in model._sessions_by_key.values())
    with torch.no_grad():
        ref = AutoModel.from_pretrained(tmp_path).eval()(**enc).last_hidden_state.numpy()
    np.testing.assert_allclose(np.asarray(ours)[..., : ref.shape[-1]], ref, atol=1e-4, rtol=0)
