"""State-space (Mamba, Mamba-2) and hybrid models: conv/SSM states retained in the graph like the KV cache.

Token parity of every proven type through chunked prefill and decode is the architecture sweep's
job (tests/test_arch_sweep.py). Here: the graph contract (names, shapes, in-place outputs), padding
and sequence starts, batches with different prompt lengths, and continuous batching reusing slots.
"""

from __future__ import annotations

import onnx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.export.graph_names import recurrent_state_names, retained
from QEfficient.transform.static_kv import QEffCausalLM
from tests.helpers import hf_greedy, real_tokens
from tests.tiny_models import sweep_config

PROMPTS = [
    "My name is",
    "Once upon a time a robot learned to paint the sky blue and the grass green, then",
    "The sun",
    "What is the capital of France? The capital",
    "Numbers: 1 2 3",
]


def _tiny(model_type: str):
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_config(sweep_config(model_type), dtype=torch.float32)
    with torch.no_grad():  # widened like the other tiny models, so greedy tokens are far from ties
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(4.0)
    return model.eval()


@pytest.fixture(scope="module")
def recurrent_dir(tmp_path_factory, tokenizer_dir):
    """Factory: model_type (from the sweep's tiny configs) -> folder with the model and the local tokenizer."""
    made = {}

    def make(model_type: str):
        if model_type not in made:
            folder = tmp_path_factory.mktemp(model_type)
            _tiny(model_type).save_pretrained(folder)
            AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
            made[model_type] = folder
        return made[model_type]

    return make


def _zeros(q: QEffCausalLM, batch: int, ctx_len: int = 16) -> list[torch.Tensor]:
    return [torch.zeros(q.kv_shape(batch, ctx_len)) for _ in range(2 * q.num_layers)] + [torch.zeros(batch, *s) for s in q.state_shapes]


@pytest.mark.parametrize(
    "model_type, kv_layers, conv_shape, ssm_shape",
    [
        ("mamba", 0, (96, 3), (96, 16)),  # d_inner x (kernel - 1); d_inner x d_state
        ("mamba2", 0, (192, 3), (8, 16, 16)),  # d_inner + 2 groups x d_state; heads x head_dim x d_state
        ("bamba", 1, (160, 3), (8, 16, 16)),  # one Mamba-2 layer and one attention layer
        ("falcon_h1", 2, (160, 3), (8, 16, 16)),  # attention and a mixer in every layer
        ("lfm2", 1, (64, 2), None),  # a gated short convolution: a conv state, no SSM state
        ("qwen3_next", 1, (128, 3), (4, 16, 16)),  # Gated DeltaNet: q, k (2 heads), v (4 heads) convolved; v heads x Dk x Dv
        ("minimax", 1, (4, 16, 16), None),  # lightning attention: one heads x head_dim x head_dim state, no convolution
        ("rwkv", 0, (2, 64), (3, 64)),  # RWKV: the two token-shifted inputs; the WKV numerator, denominator, exponent
        ("zaya", 2, (96, 2), (16,)),  # ZAYA's CCA: q (4 heads) and k (2 heads) x two conv steps; half a value head per kv head
        ("xlstm", 0, (4, 17), (4, 16, 32)),  # mLSTM: n with m packed as its last column (4 heads x 16 + 1); C, heads x Dqk x Dv
    ],
)
def test_states_are_graph_inputs_and_outputs(model_type, kv_layers, conv_shape, ssm_shape):
    q = QEffCausalLM(_tiny(model_type))
    n_state_layers = len(q.recurrent_layers)
    assert q.num_layers == kv_layers and n_state_layers >= 1
    first_layer = [conv_shape] if ssm_shape is None else [conv_shape, ssm_shape]
    assert q.state_shapes[: len(first_layer)] == first_layer
    outputs = q(torch.tensor([[5, 6, 7]]), torch.tensor([[0, 1, 2]]), *_zeros(q, 1))
    assert len(outputs) == 1 + 2 * kv_layers + len(q.state_shapes)
    assert [tuple(t.shape[1:]) for t in outputs[1 + 2 * kv_layers :]] == q.state_shapes


def test_exported_graph_names_the_states(recurrent_dir):
    model = QEFFAutoModelForCausalLM.from_pretrained(recurrent_dir("bamba"))
    graph = onnx.load(model.export(), load_external_data=False).graph
    states = recurrent_state_names([True])
    inputs, outputs = [i.name for i in graph.input], [o.name for o in graph.output]
    assert inputs[-2:] == states and outputs[-2:] == [retained(n) for n in states]
    assert inputs[2:4] == ["past_key.0", "past_value.0"]  # the attention layer's cache comes first


@pytest.mark.parametrize(
    "model_type",
    [
        "mamba",
        "mamba2",
        "lfm2",
        "qwen3_next",
        "kimi_linear",
        "recurrent_gemma",
        "rwkv",
        "zaya",
        "minimax",
        "inkling_text",
        "inkling2_loop_text",
        "xlstm",
    ],
)
def test_padding_leaves_states_unchanged_and_position_zero_starts_afresh(model_type):
    q = QEffCausalLM(_tiny(model_type)).eval()
    gen = torch.Generator().manual_seed(0)
    # RWKV's denominator is a sum of exponentials: a state it can reach is positive
    states = _zeros(q, 2)[: 2 * q.num_layers] + [torch.randn(2, *s, generator=gen).abs() for s in q.state_shapes]
    with torch.no_grad():
        # row 0 all padding, row 1 two real tokens then padding
        _, *after = q(torch.tensor([[4, 4, 4], [5, 6, 4]]), torch.tensor([[-1, -1, -1], [3, 4, -1]]), *states)
        _, *two_only = q(torch.tensor([[5, 6]]), torch.tensor([[3, 4]]), *[s[1:] for s in states])
        fresh, *_ = q(torch.tensor([[5, 6]]), torch.tensor([[0, 1]]), *[s[1:] for s in states])
        zero, *_ = q(torch.tensor([[5, 6]]), torch.tensor([[0, 1]]), *_zeros(q, 1))
    n_kv = 2 * q.num_layers  # hybrids: the KV cache comes first; compare the recurrent states
    states, after, two_only = states[n_kv:], after[n_kv:], two_only[n_kv:]
    for before, now, alone in zip(states, after, two_only):
        assert torch.equal(now[0], before[0])  # an idle row keeps its state exactly
        # padding after real tokens changes nothing (up to the rounding of a batch-2 vs a batch-1 matmul)
        torch.testing.assert_close(now[1], alone[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fresh, zero)  # a chunk at position 0 ignores whatever state the slot held


@pytest.mark.parametrize("model_type", ["mamba", "jamba", "rwkv", "zaya", "minimax", "inkling2_text", "xlstm"])
def test_batch_with_different_prompt_lengths_equals_each_alone(recurrent_dir, model_type):
    folder = recurrent_dir(model_type)
    tok, hf = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    prompts = PROMPTS[:2]  # 3 and 18 tokens: the short row is padding for two of the long row's chunks
    info = model.generate(tok, prompts, generation_len=12, stream=False)
    for prompt, row in zip(prompts, [r for batch in info.generated_ids for r in batch]):
        ref = hf_greedy(hf, tok, prompt, 12)
        assert real_tokens(row, tok.pad_token_id, len(ref)) == ref, prompt


@pytest.mark.parametrize("model_type", ["granitemoehybrid", "rwkv", "zaya", "minimax", "inkling_text", "xlstm"])
def test_continuous_batching_reuses_slots_with_fresh_state(recurrent_dir, model_type):
    folder = recurrent_dir(model_type)
    tok, hf = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()
    model = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True)
    model.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_cores=1)
    prompts = PROMPTS[:4]  # 4 prompts through 2 slots: each slot serves a second request
    info = model.generate(tok, prompts, generation_len=8, stream=False)
    for prompt, row in zip(prompts, info.generated_ids):
        ref = hf_greedy(hf, tok, prompt, 8)
        assert real_tokens(row, tok.pad_token_id, len(ref)) == ref, prompt


def test_speculative_target_is_refused_with_the_reason(recurrent_dir):
    model = QEFFAutoModelForCausalLM.from_pretrained(recurrent_dir("mamba2"), qaic_config={"speculative_model_type": "target"})
    with pytest.raises(ValueError, match="recurrent"):
        model.compile(prefill_seq_len=8, ctx_len=64, num_speculative_tokens=2, num_cores=1)


@pytest.mark.parametrize("model_type", ["mamba2", "lfm2"])
def test_legacy_compile_of_an_exported_graph_binds_the_states(recurrent_dir, tmp_path, model_type):
    """QEfficient.compile(onnx_path=...) reads the states from the graph itself (no model at hand)."""
    import QEfficient
    from QEfficient.generation.exec_kv import cloud_ai_100_exec_kv

    folder = recurrent_dir(model_type)
    tok, hf = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()
    onnx_path = QEFFAutoModelForCausalLM.from_pretrained(folder).export()
    qpc = QEfficient.compile(onnx_path=onnx_path, qpc_path=tmp_path / "qpc", num_cores=1, prompt_len=8, ctx_len=64, mxfp6=False)
    info = cloud_ai_100_exec_kv(tok, qpc, prompt=PROMPTS[1], generation_len=8, stream=False)
    assert real_tokens(info.generated_ids[0][0], tok.pad_token_id, 8) == hf_greedy(hf, tok, PROMPTS[1], 8)


def test_delta_rule_chunk_longer_than_its_exact_limit_is_refused(recurrent_dir):
    model = QEFFAutoModelForCausalLM.from_pretrained(recurrent_dir("qwen3_next"))
    with pytest.raises(ValueError, match="prefill_seq_len <= 256"):
        model.compile(prefill_seq_len=300, ctx_len=512, num_cores=1)


@pytest.mark.parametrize("prefill_seq_len", [8, 32])
def test_rwkv_halving_blocks_follow_hf(tmp_path, tokenizer_dir, prefill_seq_len):
    """RWKV halves the hidden state every ``rescale_every`` blocks and divides the blocks' output weights to
    match (transformers does it at its first inference call, and so does the export)."""
    config = sweep_config("rwkv")
    config.num_hidden_layers, config.rescale_every = 3, 1
    torch.manual_seed(7)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    tok, hf = AutoTokenizer.from_pretrained(tmp_path), AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    model = QEFFAutoModelForCausalLM.from_pretrained(tmp_path)
    model.compile(prefill_seq_len=prefill_seq_len, ctx_len=64, num_cores=1)
    info = model.generate(tok, [PROMPTS[1]], generation_len=10, stream=False)
    ref = hf_greedy(hf, tok, PROMPTS[1], 10)
    assert real_tokens(info.generated_ids[0][0], tok.pad_token_id, len(ref)) == ref


@pytest.mark.parametrize("seq", [21, 96])
def test_mlstm_chunk_equals_transformers_recurrence(seq):
    """xLSTM's closed form over a chunk against transformers' step-by-step recurrence (which its inference path
    runs for a prompt's tail and in decode) and its chunkwise kernel (whole 64-position chunks of a prompt), from a
    carried state: outputs and the final (C, n, m); right padding leaves the state as the real prefix left it."""
    from transformers.models.xlstm import modeling_xlstm as xlstm

    from QEfficient.transform.adapters.xlstm import mlstm_chunk

    gen = torch.Generator().manual_seed(0)
    b, h, dk, dv = 2, 4, 16, 32
    q, k, v = (torch.randn(b, h, seq, d, generator=gen) for d in (dk, dk, dv))
    igate = xlstm.soft_cap(torch.randn(b, h, seq, generator=gen) * 6 - 4, 15.0)
    fgate = xlstm.soft_cap(torch.randn(b, h, seq, generator=gen) * 4 + 3, 15.0)
    c0, n0, m0 = torch.randn(b, h, dk, dv, generator=gen), torch.randn(b, h, dk, generator=gen), torch.randn(b, h, 1, generator=gen)
    valid = torch.ones(b, seq, dtype=torch.bool)
    valid[1, 5:] = False  # row 1: five real positions, then padding
    out, (c, n, m) = mlstm_chunk(q, k, v, igate, fgate, (c0, n0, m0[..., 0]), valid, 1e-6)
    for row, length in ((0, seq), (1, 5)):
        args = [t[row : row + 1, :, :length] for t in (q, k, v, igate, fgate)] + [t[row : row + 1] for t in (c0, n0, m0)]
        refs = [xlstm.mlstm_recurrent_sequence_native(*args, return_last_states=True, eps=1e-6)]
        if length % 16 == 0:
            refs.append(xlstm.mlstm_chunkwise_native_autograd(*args, return_last_states=True, eps=1e-6, chunk_size=16))
        for ref_out, (ref_c, ref_n, ref_m) in refs:
            torch.testing.assert_close(out[row : row + 1, :, :length], ref_out, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(c[row : row + 1], ref_c, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(n[row : row + 1], ref_n, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(m[row : row + 1], ref_m[..., 0], rtol=1e-6, atol=1e-6)


def test_resident_cache_and_states_step_as_on_the_host(recurrent_dir):
    """The cache in ONNX Runtime's own allocations (as on a GPU, runtime/kv_storage.py), bound again each step with
    the states: a hybrid's logits equal the host cache's, whole batch and one row at a time."""
    import numpy as np

    from QEfficient.runtime.ort_session import open_kv_session

    model = QEFFAutoModelForCausalLM.from_pretrained(recurrent_dir("jamba"))
    qpc = model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    sessions = [open_kv_session(qpc, 1, resident=resident) for resident in (False, True)]
    rng = np.random.default_rng(3)
    calls = [(None, rng.integers(3, 300, (2, 8)), np.array([np.arange(8), [0, 1, 2, -1, -1, -1, -1, -1]]))]
    calls += [(None, rng.integers(3, 300, (2, 1)), np.array([[8 + i], [3 + i]])) for i in range(5)]
    calls += [(1, rng.integers(3, 300, (1, 8)), np.arange(8)[None]), (None, rng.integers(3, 300, (2, 1)), np.array([[13], [8]]))]
    for slot, ids, pos in calls:
        logits = [(s.run(ids, pos) if slot is None else s.run_slot(slot, ids, pos)).copy() for s in sessions]
        np.testing.assert_array_equal(logits[1], logits[0])
