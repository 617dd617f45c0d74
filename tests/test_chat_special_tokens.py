"""A chat template that writes the BOS its tokenizer also adds (Llama 3, Gemma, Mistral), or none though the
tokenizer adds one (Phi-3): the server's chat requests and `infer --chat` give HF's apply_chat_template(tokenize=True)
tokens (one BOS and not two; none where the template writes none)."""

from __future__ import annotations

import pytest
from tokenizers import processors
from transformers import AutoTokenizer

from QEfficient.cloud.infer import ChatTokenizer, apply_chat_template
from QEfficient.runtime.tokenizer import RuntimeTokenizer
from QEfficient.serving.protocol import RequestParser
from tests.tiny_models import build_tokenizer

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module", params=["writes BOS", "no BOS"])
def bos_tokenizer(request, tmp_path_factory):
    """A tokenizer that adds <s> itself, with a template that writes {{ bos_token }} too (or does not)."""
    tok = build_tokenizer()
    bos = tok.convert_tokens_to_ids("<s>")
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    start = "{{ bos_token }}" if request.param == "writes BOS" else ""
    tok.chat_template = start + "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    folder = tmp_path_factory.mktemp("bos-tokenizer")
    tok.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder), request.param


def test_the_server_tokenizes_a_chat_as_hf(bos_tokenizer):
    hf, _ = bos_tokenizer
    expected = hf.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True, return_dict=False)
    for tokenizer in (hf, RuntimeTokenizer.from_hf(hf)):  # a model folder, and an artifact (serve --qpc_path)
        call = RequestParser(tokenizer, ["m"], 128, len(hf), 8).chat({"messages": MESSAGES, "max_tokens": 4})
        assert call.jobs[0].tokens == expected


def test_infer_chat_tokenizes_as_hf(bos_tokenizer):
    hf, _ = bos_tokenizer
    tokenizer = ChatTokenizer(hf)
    tokens = tokenizer(apply_chat_template(hf, [MESSAGES[0]["content"]]))["input_ids"]
    assert tokens == [hf.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True, return_dict=False)]
    assert tokenizer.bos_token_id == hf.bos_token_id and tokenizer.decode(tokens[0]) == hf.decode(tokens[0])
