"""Reasoning parsers (vLLM's --reasoning-parser): a chat answer's thinking comes back apart as ``reasoning``, its answer
as ``content``; streamed, the pieces add up to the same split; structured output and forced tool calls hold the answer
only after the end tag. The server checks run a tiny model whose ``</think>`` token comes in the middle of its greedy
answer (its row is a copy of the token the model writes there), against transformers' greedy decoding."""

from __future__ import annotations

import json
import shutil

import llguidance
import pytest
import torch

from QEfficient.serving.reasoning import CLOSED, OPEN, REASONING_PARSERS, SYNTAXES, UNPROMPTED, Reasoning
from tests.helpers import tiny_chat_server
from tests.loopback import loopback_http
from tests.test_server import post
from tests.test_structured_output import SCHEMA, TIME, TOOLS, hf_constrained_greedy

K3_THINK, K3_END = "<|open|>think<|sep|>hmm<|close|>think<|sep|>", "<|close|>message<|sep|>"
K3_TOOLS = "<|close|>response<|sep|><|open|>tools<|sep|>x" + K3_END
# (parser, prompt's end, chat_template_kwargs, answer, reasoning, content): vLLM's rules for each syntax
CASES = [
    ("deepseek_r1", "<think>\n", None, "Paris is big.</think>\n\nParis.", "Paris is big.", "\n\nParis."),
    ("deepseek_r1", "assistant:", None, "<think>hmm</think>yes", "hmm", "yes"),
    ("deepseek_r1", "assistant:", None, "no tags at all", "no tags at all", ""),  # R1 thinks unprompted: cut short
    ("deepseek_r1", "<think>\n", None, "abc</think>", "abc", ""),
    ("qwen3", "<think>\n", None, "a<tool_call>\n<function=f>", "a", "<tool_call>\n<function=f>"),
    ("qwen3", "<think>\n", None, "a <tool_call> b</think>c", "a <tool_call> b", "c"),
    ("qwen3", "assistant\n<think>\n\n</think>\n\n", None, "just an answer", None, "just an answer"),
    ("qwen3", "assistant\n", {"enable_thinking": False}, "just an answer", None, "just an answer"),
    ("qwen3", "<|im_start|>assistant\n", None, "42.", None, "42."),  # an instruct model: no thinking
    ("qwen3", "<|im_start|>assistant\n", None, "<think>hm</think>\n\n42.", "hm", "\n\n42."),  # Qwen3's first template
    ("deepseek_r1", "<think>\nx</think>\n\nThe answer is", None, " 42", None, " 42"),  # a final message continued
    ("mistral", "[/INST][THINK]Let me", None, " see[/THINK]ok", " see", "ok"),  # a thinking continued
    ("deepseek_v3", "<｜Assistant｜>", None, "<think>x</think>y", None, "<think>x</think>y"),  # thinking is off by default
    ("deepseek_v3", "<｜Assistant｜>", {"thinking": True}, "x</think>y", "x", "y"),
    ("holo2", "assistant", {"enable_thinking": False}, "x</think>y", None, "x</think>y"),
    ("holo2", "assistant", None, "x</think>y", "x", "y"),
    ("glm45", "<|assistant|>", None, "<think>plan  \n</think>answer", "plan", "answer"),
    ("glm47", "<|assistant|>", None, "plan<tool_call>get_time", "plan", "<tool_call>get_time"),
    ("kimi_k2", "assistant", None, "x<|tool_calls_section_begin|>c", "x", "<|tool_calls_section_begin|>c"),
    ("kimi_k2", "assistant", {"thinking": False}, "x</think>y", None, "x</think>y"),
    ("minimax_m2", "]~b]ai\n", None, "x</think>y", "x", "y"),
    ("minimax_m2_append_think", "]~b]ai\n<think>\n", None, "x</think>y", None, "<think>x</think>y"),  # nothing split
    ("step3", "assistant", None, "x</think>y", "x", "y"),
    ("seed_oss", "assistant\n", None, "<seed:think>x</seed:think>y", "x", "y"),
    ("mistral", "[/INST]", None, "[THINK]x[/THINK]y", "x", "y"),
    ("mistral", "[/INST]", None, "plain answer", None, "plain answer"),  # only an answer that opens [THINK] thinks
    ("mistral", "[/INST]", None, "[THINK]x[TOOL_CALLS]f[ARGS]{}", "x", "[TOOL_CALLS]f[ARGS]{}"),
    ("granite", "<|start_of_role|>assistant<|end_of_role|>", None, "Here's my thought process: a Here is my response: b", " a ", " b"),
    ("granite", "<|start_of_role|>assistant<|end_of_role|>", None, "Just b", None, "Just b"),
    ("poolside_v1", "<assistant>", {"thinking": True}, "x</think>y", "x", "y"),  # deepseek_v3's rules
    ("olmo3", "<|im_start|>assistant\n<think>", None, "plan</think>answer", "plan", "answer"),
    ("olmo3", "<|im_start|>assistant\n", None, "just an answer", None, "just an answer"),  # OLMo 3 Instruct
    ("deepseek_v4", "<｜Assistant｜>", {"thinking": True}, "plan \n</think>y", "plan \n", "y"),
    ("deepseek_v4", "<｜Assistant｜>", {"enable_thinking": True}, "plan<｜DSML｜tool_calls>", "plan", "<｜DSML｜tool_calls>"),
    ("deepseek_v4", "<｜Assistant｜>", None, "x</think>y", None, "x</think>y"),  # off by default, as deepseek_v3
    ("solar_open2", "<|think:start|>", None, "x<|think:end|>y", "x", "y"),
    ("gemma4", "<|turn>model\n", None, "<|channel>thought\nplan<channel|>answer", "plan", "answer"),  # its label left out
    ("gemma4", "<|turn>model\n", None, "just an answer", None, "just an answer"),
    ("gemma4", "<|turn>model\n<|channel>", None, "thought\nplan<channel|>x", "plan", "x"),
    ("gemma4", "<|turn>model\n", None, "<|channel>thought\nplan<|tool_call>call:f{}", "plan", "<|tool_call>call:f{}"),
    ("solar_open2", "assistant", None, "x<|tool_call:start|>f", "x", "<|tool_call:start|>f"),
    ("ling3", "<|assistant|>", None, "plan \n</think>answer", "plan", "answer"),  # GLM-4.7's rules
    ("nemotron_v3", "<think>\n", None, "plan \n</think>\nanswer", "plan \n", "\nanswer"),
    ("nemotron_v3", "assistant\n", None, "plan", "plan", ""),  # R1's: it thinks unprompted
    ("ernie45", "assistant", None, "plan</think>Write </response> to close", "plan", "Write </response> to close"),
    ("nemotron_v3", "assistant\n", {"enable_thinking": False}, "just an answer", None, "just an answer"),
    ("step3p5", "assistant", None, "plan\n\n</think>\n\nanswer", "plan\n", "\nanswer"),  # one newline each side
    ("step3p5", "assistant", None, "plan</think>answer", "plan", "answer"),
    ("hunyuan_a13b", "assistant", None, "<think>\nplan\n</think>\n<answer>\n42\n</answer>", "plan", "42"),
    ("hunyuan_a13b", "assistant<think>\n\n</think>\n<answer>\n", None, "42\n</answer>", None, "42"),  # no thinking
    ("hunyuan_a13b", "assistant", None, "plain answer", None, "plain answer"),
    ("ernie45", "assistant", None, "plan\n</think>\n\n<response>42</response>", "plan", "42"),
    ("ernie45", "assistant", None, "plan</think>42", "plan", "42"),
    # Hy3: thinking only when reasoning_effort is not "no_think" (its default); Hy4: unless it is
    (
        "hy_v3",
        "<｜hy_Assistant｜>\n<think>",
        {"reasoning_effort": "high"},
        "This is a reasoning section</think>rest",
        "This is a reasoning section",
        "rest",
    ),
    ("hy_v3", "<｜hy_Assistant｜>", None, "plain</think>x", None, "plain</think>x"),
    ("hy_v4", "<｜hy_Assistant｜>\n<think>", None, "plan</think>answer", "plan", "answer"),
    ("hy_v4", "<｜hy_Assistant｜>", {"reasoning_effort": "no_think"}, "just an answer", None, "just an answer"),
    # MiniMax-M3: thinking_mode "enabled" opens <mm:think> in the prompt; without it an answer may open it itself
    ("minimax_m3", "]~b]ai\n<mm:think>", {"thinking_mode": "enabled"}, "plan</mm:think>Answer", "plan", "Answer"),
    ("minimax_m3", "]~b]ai\n", None, "<mm:think>plan</mm:think>Answer", "plan", "Answer"),
    ("minimax_m3", "]~b]ai\n", None, "Just text", None, "Just text"),
    # PLaMo 3 thinks unprompted; its answer ends at <|plamo:tag|>
    ("plamo3", "assistant", None, "<|plamo:begin_think:plamo|>reason<|plamo:end_think:plamo|>answer<|plamo:tag|>x", "reason", "answer"),
    ("plamo3", "assistant", {"enable_thinking": False}, "answer<|plamo:tag|>x", None, "answer"),
    ("plamo3", "assistant", None, "reasoning<|plamo:tag|>ignored", "reasoning", ""),  # the turn ended in its thinking
    ("minimax_m3", "]~b]ai\n", None, "</mm:think>answer", None, "answer"),  # a stray end tag first: dropped
    ("minimax_m3", "]~b]ai\n", {"thinking_mode": "enabled"}, "plan</mm:think>x", "plan", "x"),  # the prompt's tag unseen
    ("hy_v4", "<think:opensource>", None, "plan</think:opensource>answer", "plan", "answer"),  # Hy4-preview's suffixed tags
    ("kimi_k3", "assistant", None, "step<|close|>think<|sep|><|open|>response<|sep|>answer", "step", "answer"),
    # Kimi K3: its think channel, then its reply channel unwrapped (a tools channel left for the tool parser)
    ("kimi_k3", "<|open|>assistant<|sep|>", None, K3_THINK + "<|open|>response<|sep|>Hi<|close|>response<|sep|>" + K3_END, "hmm", "Hi"),
    ("kimi_k3", "<|open|>think<|sep|>", None, "hmm<|close|>think<|sep|>Sure." + K3_TOOLS, "hmm", "Sure.<|open|>tools<|sep|>x"),
    ("kimi_k3", "<|open|>response<|sep|>", {"thinking": False}, "Hello" + K3_END, None, "Hello"),
]


@pytest.mark.parametrize("parser, tail, kwargs, text, reasoning, content", CASES)
def test_each_syntax_splits_an_answer_as_vllm_does(parser, tail, kwargs, text, reasoning, content):
    syntax = SYNTAXES[parser]
    split = Reasoning(syntax, syntax.state(tail, syntax.thinks(kwargs)))
    assert split.split(text) == (reasoning, content)
    fields = split.fields(reasoning)
    assert fields.get("reasoning_content") == fields.get("reasoning") == reasoning  # vLLM's name and its earlier one


def test_the_request_s_reasoning_effort_switches_hy3_s_thinking():
    """OpenAI's reasoning_effort field counts as the template variable of that name, which chat_template_kwargs
    overrides (vLLM's order)."""
    from QEfficient.serving.reasoning import requested_reasoning

    assert requested_reasoning({"reasoning_effort": "high"}, "hy_v3", "<think>", None).state == OPEN
    assert requested_reasoning({"reasoning_effort": "high"}, "hy_v3", "<think>", {"reasoning_effort": "no_think"}).state == CLOSED
    assert requested_reasoning({"reasoning_effort": "no_think"}, "hy_v4", "<think>", None).state == CLOSED


def test_the_answer_s_own_turn_decides_where_it_starts():
    """Tags of an earlier turn in the prompt's tail (a tool loop's thinking, gpt-oss's earlier final message) say
    nothing of this answer: the tail is read from the last turn-opening special token."""
    from QEfficient.serving.reasoning import answer_turn

    qwen = "</think>\n\n<tool_call>x</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n10\n</tool_response><|im_end|>\n"
    qwen += "<|im_start|>assistant\n"
    turn = answer_turn(qwen, ("<|im_start|>", "<|im_end|>"))
    assert turn == "assistant\n" and SYNTAXES["qwen3"].state(qwen) == CLOSED  # the whole tail would mislead
    assert (SYNTAXES["qwen3"].state(turn), SYNTAXES["deepseek_r1"].state(turn)) == (UNPROMPTED, OPEN)
    harmony, markers = SYNTAXES["openai_gptoss"], ("<|start|>", "<|end|>", "<|return|>")
    earlier = "<|channel|>final<|message|>Hello!<|end|><|start|>user<|message|>and 2+2?<|end|><|start|>assistant"
    assert harmony.state(answer_turn(earlier, markers)) == harmony.state(earlier) == OPEN
    continued = earlier + "<|channel|>final<|message|>It is"  # a final message continued: all of it content
    assert harmony.state(answer_turn(continued, markers)) == CLOSED


TEXTS = [c[3] for c in CASES] + ["", "   ", "<th", "\n\n<think>x</thi", "x</thinking> y </think> z", "a\n\n</think>", "[THINK"]
TEXTS += ["a\n</think>\n<answer>\nb\n</ans", "x</think>\n<resp", "x</think><response>y</response>z"]


@pytest.mark.parametrize("parser", REASONING_PARSERS)
def test_a_streamed_answer_adds_up_to_the_same_split(parser):
    """Fed in pieces of 1, 2, 3 and 7 characters, the reasoning and content sent add up to the unstreamed split, for
    every state an answer can start in; no piece of a tag reaches the client before it is known not to be one."""
    syntax = SYNTAXES[parser]
    tags = syntax.starts + syntax.ends
    for state in (OPEN, UNPROMPTED, CLOSED):
        split = Reasoning(syntax, state)
        for text in TEXTS:
            reasoning, content = split.split(text)
            for size in (1, 2, 3, 7):
                stream, reasoning_sent, content_sent = split.stream(), "", ""
                pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
                for i, piece in enumerate(pieces):
                    new, more = stream.feed(piece, final=i == len(pieces) - 1)
                    reasoning_sent += new.get("reasoning", "")
                    content_sent += more
                    if state != CLOSED:
                        assert not any(tag in reasoning_sent for tag in tags), (parser, text, reasoning_sent)
                assert (reasoning_sent, content_sent) == (reasoning or "", content), (parser, state, text, size)


THINK_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {% if m.reasoning_content %}({{ m.reasoning_content }}) {% endif %}"
    "{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<s>assistant:{% if enable_thinking is defined and not enable_thinking %}"
    "<think>\n\n</think>\n\n{% else %}<think>\n{% endif %}{% endif %}"
)
MESSAGES = [{"role": "user", "content": "paint the sky"}]
MAX_TOKENS = 20


def greedy(hf, ids: list[int], n: int) -> list[int]:
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, len(ids) :].tolist()


def thinking_model(folder, template: str):
    """The tiny model with <think> and </think> added; </think>'s rows copy those of the token its greedy answer writes
    first at position 3 or later (its logit 0.1 % higher), so that it ends its thinking there. Returns the end id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_tokens(["<think>", "</think>"])
    tok.chat_template = template
    start, end = tok.convert_tokens_to_ids(["<think>", "</think>"])
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_pretrained(folder)
    hf.resize_token_embeddings(len(tok), mean_resizing=False)
    embed, head = hf.get_input_embeddings().weight, hf.get_output_embeddings().weight
    with torch.no_grad():
        embed[start:], head[start:] = 0, 0
        ids = tok(tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True), add_special_tokens=False)
        out = greedy(hf, ids["input_ids"], MAX_TOKENS)
        at = next(i for i in range(3, len(out)) if out[i] not in out[:i])
        embed[end], head[end] = embed[out[at]], head[out[at]] * 1.001
    hf.save_pretrained(folder)
    tok.save_pretrained(folder)
    return end


OPTIONS = dict(prefill_seq_len=8, ctx_len=128, full_batch_size=2, reasoning_parser="qwen3")


@pytest.fixture(scope="module")
def thinking(tiny_model_dir, tmp_path_factory):
    """(the tiny thinking model's folder, the id of its </think>)."""
    folder = shutil.copytree(tiny_model_dir("qwen2"), tmp_path_factory.mktemp("thinking") / "qwen2")
    return folder, thinking_model(folder, THINK_TEMPLATE)


@pytest.fixture(scope="module")
def server(thinking):
    folder, end = thinking
    with tiny_chat_server(folder, THINK_TEMPLATE, tool_call_parser="hermes", **OPTIONS) as (url, _, tok, hf):
        yield url, tok, hf, end


def prompt_ids(tok, messages=MESSAGES, **options) -> list[int]:
    return tok(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **options), add_special_tokens=False)[
        "input_ids"
    ]


def chat(url: str, **body) -> dict:
    r = post(url, "chat/completions", {"messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0, **body})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]


def streamed(url: str, **body) -> tuple[str | None, str, str]:
    """(reasoning, content, finish reason) of a streamed chat answer, its pieces put together."""
    payload = {"messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True, **body}
    with loopback_http.stream("POST", f"{url}/v1/chat/completions", json=payload, timeout=60) as r:
        chunks = [json.loads(line[6:])["choices"][0] for line in r.iter_lines() if line.startswith("data: {")]
    pieces = [c["delta"].get("reasoning") for c in chunks if "reasoning" in c["delta"]]
    assert all(c["delta"].get("reasoning_content") == c["delta"].get("reasoning") for c in chunks)
    content = "".join(c["delta"].get("content") or "" for c in chunks)
    return ("".join(pieces) if pieces else None), content, chunks[-1]["finish_reason"]


def test_the_thinking_comes_back_apart_streamed_or_not(server):
    """The answer is HF's greedy text; what the model wrote before </think> is the reasoning, the rest the content;
    a stream's pieces add up to the same; include_reasoning false leaves the reasoning out."""
    url, tok, hf, end = server
    out = greedy(hf, prompt_ids(tok), MAX_TOKENS)
    assert end in out[3:] and end not in out[:3]  # the premise: the model ends its thinking mid-answer
    reasoning, _, content = tok.decode(out, skip_special_tokens=True).partition("</think>")
    answer = chat(url)
    message = answer["message"]
    assert (message["reasoning"], message["reasoning_content"], message["content"]) == (reasoning, reasoning, content or None)
    assert answer["finish_reason"] in ("stop", "length")
    assert streamed(url) == (reasoning, content, answer["finish_reason"])
    assert chat(url, tools=TOOLS)["message"] == message  # the hermes parser reads the content: no call in it
    assert streamed(url, tools=TOOLS) == (reasoning, content, answer["finish_reason"])
    hidden = chat(url, include_reasoning=False)["message"]
    assert "reasoning" not in hidden and "reasoning_content" not in hidden and hidden["content"] == message["content"]
    assert streamed(url, include_reasoning=False) == (None, content, answer["finish_reason"])
    # with logprobs: the thinking's tokens send no chunk (vLLM's), the answer's chunks carry theirs
    payload = {"messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True, "logprobs": True}
    with loopback_http.stream("POST", f"{url}/v1/chat/completions", json={**payload, "include_reasoning": False}, timeout=60) as r:
        chunks = [json.loads(line[6:])["choices"][0] for line in r.iter_lines() if line.startswith("data: {")][1:]
    assert all(c["delta"] or c["finish_reason"] for c in chunks)
    sent = [t["token"] for c in chunks for t in (c["logprobs"] or {}).get("content") or []]
    # the answer's tokens, and thinking tokens only where they share an engine event (a chunk) with the answer's
    assert len(sent) >= len(out) - out.index(end) - 1 and sent == [tok.decode([t]) for t in out[len(out) - len(sent) :]]
    r = post(url, "chat/completions", {"messages": MESSAGES, "include_reasoning": "yes"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "include_reasoning"


def test_a_prompt_that_closes_the_thinking_gets_its_answer_as_content(server):
    """Qwen3's enable_thinking false: the template writes an empty <think></think>; the answer is all content."""
    url, tok, hf, _ = server
    ids = prompt_ids(tok, enable_thinking=False)
    text = tok.decode(greedy(hf, ids, MAX_TOKENS), skip_special_tokens=True)
    message = chat(url, chat_template_kwargs={"enable_thinking": False})["message"]
    assert "reasoning" not in message and message["content"] == text
    assert streamed(url, chat_template_kwargs={"enable_thinking": False})[:2] == (None, text)


def hf_after_thinking(hf, tok, ids: list[int], end: int, grammar: str) -> list[int]:
    """HF's greedy tokens, free up to and including </think>, then under llguidance's mask of ``grammar``."""
    free = greedy(hf, ids, MAX_TOKENS)
    thought = free[: free.index(end) + 1]
    return thought + hf_constrained_greedy(hf, tok, ids + thought, grammar, MAX_TOKENS * 3 - len(thought))


def test_a_grammar_holds_the_answer_after_the_thinking(server):
    """response_format json_schema and a forced tool call, as vLLM's structured outputs with a reasoning parser: the
    thinking is free, the content after </think> follows the schema (transformers' greedy under the same mask)."""
    url, tok, hf, end = server
    grammar = llguidance.LLMatcher.grammar_from_json_schema(SCHEMA, defaults={"whitespace_flexible": False})
    expected = tok.decode(hf_after_thinking(hf, tok, prompt_ids(tok), end, grammar), skip_special_tokens=True)
    reasoning, _, content = expected.partition("</think>")
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
    message = chat(url, response_format=response_format, max_tokens=MAX_TOKENS * 3)["message"]
    assert (message["reasoning"], message["content"]) == (reasoning, content)
    assert set(json.loads(content)) == {"name", "age"}
    tools = {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_time"}}}
    grammar = llguidance.LLMatcher.grammar_from_json_schema(TIME["parameters"], defaults={"whitespace_flexible": False})
    ids = prompt_ids(tok, tools=TOOLS)  # the template leaves the tools out: the same prompt, the same thinking
    expected = tok.decode(hf_after_thinking(hf, tok, ids, end, grammar), skip_special_tokens=True)
    reasoning, _, arguments = expected.partition("</think>")
    message = chat(url, max_tokens=MAX_TOKENS * 3, **tools)["message"]
    assert message["reasoning"] == reasoning
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]] == [("get_time", arguments)]


@pytest.mark.parametrize("speculation", [{"prompt_lookup_num_tokens": 3}, "draft"])
def test_speculative_decoding_leaves_the_thinking_free_and_holds_the_answer(thinking, speculation):
    """Drafts verified a chunk at a time pass the end tag within one step: the answer is the same as one token a step
    (the target drafting for itself: its drafts run through </think> into the answer unmasked)."""
    folder, end = thinking
    if speculation == "draft":
        speculation = {"draft_model": str(folder), "num_speculative_tokens": 3}
    with tiny_chat_server(folder, THINK_TEMPLATE, **OPTIONS, **speculation) as (url, _, tok, hf):
        grammar = llguidance.LLMatcher.grammar_from_json_schema(SCHEMA, defaults={"whitespace_flexible": False})
        expected = tok.decode(hf_after_thinking(hf, tok, prompt_ids(tok), end, grammar), skip_special_tokens=True)
        response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
        message = chat(url, response_format=response_format, max_tokens=MAX_TOKENS * 3)["message"]
        assert (message["reasoning"], message["content"]) == tuple(expected.split("</think>", 1))
        reasoning, _, content = tok.decode(greedy(hf, prompt_ids(tok), MAX_TOKENS), skip_special_tokens=True).partition("</think>")
        assert (chat(url)["message"]["reasoning"], streamed(url)[1]) == (reasoning, content)


def test_an_assistant_turn_sends_its_reasoning_back_to_the_template(server):
    """An earlier answer's ``reasoning`` (vLLM's name) or ``reasoning_content`` reaches the template, which reads it."""
    url, tok, _, _ = server
    for key in ("reasoning", "reasoning_content"):
        messages = [*MESSAGES, {"role": "assistant", "content": "blue", key: "it is day"}, {"role": "user", "content": "why"}]
        counted = loopback_http.post(f"{url}/tokenize", json={"messages": messages}, timeout=60).json()["tokens"]
        rendered = tok.apply_chat_template(
            [{**m, "reasoning_content": "it is day"} if m["role"] == "assistant" else m for m in messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        assert "(it is day) blue" in rendered and counted == tok(rendered, add_special_tokens=False)["input_ids"]


def test_the_command_line_names_the_parsers():
    from QEfficient.cloud import serve_args

    assert serve_args.REASONING_PARSERS == REASONING_PARSERS  # kept without the serve extra
    with pytest.raises(SystemExit):
        serve_args.parse_args(["--model_name", "m", "--reasoning_parser", "nonesuch"])


HARMONY_CALL = (
    "<|channel|>analysis<|message|>The user wants the time.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.get_time <|constrain|>json<|message|>{"zone": 2}'
)
HARMONY_ANSWERS = [  # (gpt-oss's answer as decoded, its <|return|> / <|call|> left out: reasoning, content, calls)
    (HARMONY_CALL, "The user wants the time.", "", [("get_time", '{"zone": 2}')]),
    ("<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>Hello!", "Simple.", "Hello!", []),
    (
        "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>analysis<|message|>b<|end|><|start|>assistant"
        "<|channel|>commentary<|message|>Let me check.<|end|><|start|>assistant to=functions.get_weather<|channel|>"
        'commentary json<|message|>{"city":"Oslo"}',
        "a\nb",
        "Let me check.",
        [("get_weather", '{"city":"Oslo"}')],
    ),
    ("a plain answer", None, "a plain answer", []),  # not in harmony: content as it is
    ("<|channel|>analysis<|message|>cut sho", "cut sho", "", []),
    ("<|channel|>analy", None, "", []),
]


@pytest.mark.parametrize("text, reasoning, content, calls", HARMONY_ANSWERS)
def test_gpt_oss_harmony_reads_as_vllm_reads_it(text, reasoning, content, calls):
    """openai_gptoss: the analysis channel is the reasoning, the final channel and preambles the content; the openai
    tool parser makes each message to functions.NAME a call. Streamed in pieces, reasoning, content and calls add up to
    the same."""
    from QEfficient.serving.tools import AutoTools

    split = Reasoning(SYNTAXES["openai_gptoss"], OPEN)
    assert split.split(text) == (reasoning, content)
    tools = AutoTools(TOOLS, "openai")
    message = tools.message(text)
    assert ([] if message is None else [(c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]]) == calls
    assert message is None or message["content"] == (content or None)
    for size in (1, 2, 3, 7):
        thinking, stream, sent = split.stream(), tools.stream(), {"reasoning": "", "content": "", "calls": {}}
        for start in range(0, len(text), size):
            piece, final = text[start : start + size], start + size >= len(text)
            sent["reasoning"] += thinking.feed(piece, final)[0].get("reasoning", "")
            delta = stream.delta(piece, final) or {}  # the tool parser reads the whole answer (markup)
            sent["content"] += delta.get("content", "")
            for c in delta.get("tool_calls", []):
                sent["calls"].setdefault(c["index"], [c["function"].get("name"), ""])[1] += c["function"]["arguments"]
        assert (sent["reasoning"] or None, sent["content"]) == (reasoning, content), size
        assert [tuple(sent["calls"][i]) for i in sorted(sent["calls"])] == calls and stream.called == bool(calls)


def test_a_tokenizer_that_writes_harmony_gets_its_parser(tiny_model_dir, tmp_path):
    """A server over a tokenizer with harmony's special tokens reads answers as gpt-oss's without --reasoning_parser (as
    vLLM serves gpt-oss) and keeps the special tokens in the text it reads; an answer the model does not write in
    harmony (this tiny model's, special tokens and all) comes back whole as content, with the openai tool parser too."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from QEfficient.serving.reasoning import default_parser, tags_are_special

    folder = shutil.copytree(tiny_model_dir("qwen2"), tmp_path / "qwen2")
    tok = AutoTokenizer.from_pretrained(folder)
    assert default_parser(tok, None) is None
    tok.add_special_tokens({"additional_special_tokens": ["<|start|>", "<|end|>", "<|channel|>", "<|message|>", "<|call|>"]})
    assert default_parser(tok, None) == "openai_gptoss" and default_parser(tok, "qwen3") == "qwen3"
    assert tags_are_special(tok, "openai_gptoss") and not tags_are_special(tok, "qwen3")
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_pretrained(folder)
    hf.resize_token_embeddings(len(tok), mean_resizing=False)
    template = THINK_TEMPLATE.replace("<think>\n", "")
    tok.chat_template = template
    out = greedy(hf, prompt_ids(tok), MAX_TOKENS)
    copied, marker = next(t for i, t in enumerate(out) if i >= 3 and t not in out[:i]), tok.convert_tokens_to_ids("<|message|>")
    with torch.no_grad():  # <|message|> written where that token was, mid-answer
        embed, head = hf.get_input_embeddings().weight, hf.get_output_embeddings().weight
        embed[marker], head[marker] = embed[copied], head[copied] * 1.001
    hf.save_pretrained(folder)
    tok.save_pretrained(folder)
    with tiny_chat_server(folder, template, **{**OPTIONS, "reasoning_parser": None, "tool_call_parser": "openai"}) as up:
        url, _, tok, hf = up
        text = tok.decode(greedy(hf, prompt_ids(tok), MAX_TOKENS), skip_special_tokens=False)
        assert "<|" in text and not text.startswith("<|")  # the premise: special tokens written, not a harmony header
        assert chat(url)["message"] == {"role": "assistant", "content": text}
        assert streamed(url)[:2] == (None, text)
        assert chat(url, tools=TOOLS)["message"] == {"role": "assistant", "content": text}  # the openai parser: no call
        assert streamed(url, tools=TOOLS)[:2] == (None, text)
        forced = post(url, "chat/completions", {"messages": MESSAGES, "tools": TOOLS, "tool_choice": "required"})
        assert forced.status_code == 400 and "tool_choice" in forced.json()["error"]["message"]  # gpt-oss calls in harmony
