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


THINKING_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% if not loop.last or add_generation_prompt %}</s>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% if enable_thinking is defined and not enable_thinking %}"
    "<think></think>{% endif %}{% endif %}"
)


def test_chat_template_options_as_vllm():
    """vLLM's chat fields: chat_template_kwargs reach the template as variables (Qwen3's enable_thinking),
    add_generation_prompt false leaves the prompt open, continue_final_message continues the last assistant turn; a
    chat request and /tokenize's parser give HF's apply_chat_template tokens with the same arguments, for a model
    folder's tokenizer and an artifact's; contradictions and clashing variables are 400s."""
    from QEfficient.serving.errors import APIError
    from QEfficient.serving.protocol import template_options

    hf = build_tokenizer()
    hf.chat_template = THINKING_TEMPLATE
    turn = MESSAGES + [{"role": "assistant", "content": "It is"}]
    cases = [
        ({"chat_template_kwargs": {"enable_thinking": False}}, MESSAGES, {"add_generation_prompt": True, "enable_thinking": False}),
        ({"add_generation_prompt": False}, MESSAGES, {"add_generation_prompt": False}),
        ({"add_generation_prompt": False, "continue_final_message": True}, turn, {"continue_final_message": True}),
    ]
    for tokenizer in (hf, RuntimeTokenizer.from_hf(hf)):
        parser = RequestParser(tokenizer, ["m"], 128, len(hf), 8)
        for fields, messages, hf_kwargs in cases:
            expected = hf.apply_chat_template(messages, tokenize=True, return_dict=False, **hf_kwargs)
            assert parser.chat({"messages": messages, "max_tokens": 4, **fields}).jobs[0].tokens == expected
        assert "<think></think>" in parser.chat_prompt(MESSAGES, options=template_options(cases[0][0]))
        assert parser.chat_prompt(turn, options=template_options(cases[2][0])).endswith("It is")
    for bad, param in [
        ({"continue_final_message": True}, "continue_final_message"),  # with the default generation prompt
        ({"chat_template_kwargs": ["enable_thinking"]}, "chat_template_kwargs"),
        ({"chat_template_kwargs": {"tokenize": True}}, "chat_template_kwargs"),
        ({"chat_template_kwargs": {"tokenizer_kwargs": {}}}, "chat_template_kwargs"),  # apply_chat_template's own
        ({"add_generation_prompt": "yes"}, "add_generation_prompt"),
        ({"chat_template": "{{ messages }}"}, "chat_template"),  # a request's own template: vLLM refuses it by default
    ]:
        with pytest.raises(APIError) as err:
            RequestParser(hf, ["m"], 128, len(hf), 8).chat({"messages": turn, "max_tokens": 4, **bad})
        assert err.value.param == param
