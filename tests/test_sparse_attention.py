"""DeepSeek Sparse Attention (deepseek_v32, glm_moe_dsa, axk2, hy_v4): exact while the context holds no more keys
than the indexer selects (``index_topk``), refused past it. Token parity with HF is the architecture sweep's job
(tests/test_arch_sweep.py); here, at the limit itself, the graph without the indexer, and the refusal."""

from __future__ import annotations

import onnx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from tests.helpers import hf_greedy, real_tokens
from tests.tiny_models import sweep_config

CTX = 32


@pytest.fixture(scope="module")
def dsa_dir(tmp_path_factory, tokenizer_dir):
    """A tiny DeepSeek-V3.2 whose indexer selects at most CTX keys."""
    folder = tmp_path_factory.mktemp("deepseek_v32")
    config = sweep_config("deepseek_v32")
    config.index_topk = CTX
    torch.manual_seed(3)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


def test_generation_up_to_index_topk_keys_equals_hf(dsa_dir):
    tok, hf = AutoTokenizer.from_pretrained(dsa_dir), AutoModelForCausalLM.from_pretrained(dsa_dir).eval()
    model = QEFFAutoModelForCausalLM.from_pretrained(dsa_dir)
    model.compile(prefill_seq_len=8, ctx_len=CTX, num_cores=1)
    prompt = "Once upon a time a robot learned to paint the sky"
    n_new = CTX - len(tok(prompt)["input_ids"])  # the last step attends to all CTX keys, as HF's indexer selects them all
    ref = hf_greedy(hf, tok, prompt, n_new)
    info = model.generate(tok, [prompt], generation_len=n_new, stream=False)
    assert real_tokens(info.generated_ids[0][0], tok.pad_token_id, len(ref)) == ref
    graph = onnx.load(model.onnx_path, load_external_data=False).graph
    # the indexer's projections, norm and scores left the graph (its nodes would be named after the module)
    assert not [n.name for n in graph.node if "indexer" in n.name] + [i.name for i in graph.initializer if "indexer" in i.name]


def test_context_past_index_topk_is_refused_with_the_reason(dsa_dir):
    model = QEFFAutoModelForCausalLM.from_pretrained(dsa_dir)
    with pytest.raises(ValueError, match=rf"ctx_len \({2 * CTX}\) exceeds {CTX}: past index_topk .* ctx_len <= {CTX}"):
        model.compile(prefill_seq_len=8, ctx_len=2 * CTX, num_cores=1)
