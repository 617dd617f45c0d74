"""OpenAI request bodies -> validated jobs for the engine.

Everything a client can get wrong is answered here with a 400 (or 404 for an unknown model) in
OpenAI's error format, before anything reaches the engine: the JSON itself (NaN, Infinity, lone
surrogates, absurd nesting), the types of the fields (``"stream": "no"``, ``"n": true``), their
ranges, and the prompt forms OpenAI accepts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

from QEfficient.generation.beam_search import BeamSettings
from QEfficient.generation.sampling import SamplingParams
from QEfficient.serving.errors import APIError
from QEfficient.serving.messages import assistant_turn, chat_parts, openai_input_forms, param_of, text_content
from QEfficient.serving.params import boolean, number
from QEfficient.serving.reasoning import (
    CLOSED,
    OPEN,
    Reasoning,
    answer_turn,
    requested_reasoning,
    tags_are_special,
    turn_markers,
)
from QEfficient.serving.structured import requested_grammar
from QEfficient.serving.tools import AutoTools, ForcedTools, requested_tools
from QEfficient.serving.vllm_fields import (
    allowed_token_ids,
    bad_words_ids,
    check_allowed_tokens_left,
    refuse_prompt_fields,
    refuse_unapplied,
    requested_beams,
    truncate_prompt_tokens,
    truncated,
)

MAX_JSON_DEPTH = 64  # OpenAI bodies nest a handful of levels; tool schemas a few dozen at most
INT64 = 2**63
MAX_COMPLETION_LOGPROBS = 5  # OpenAI's limit for /v1/completions "logprobs"
MAX_CHAT_TOP_LOGPROBS = 20  # and for /v1/chat/completions "top_logprobs"
MAX_STOP_TOKEN_IDS = 1024
MAX_STOP_STRINGS = 64  # OpenAI takes 4, vLLM (and Anthropic's stop_sequences) more: each is looked for at every piece
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclasses.dataclass(frozen=True)
class EndRules:
    """vLLM's extensions on how a choice ends and reads: ``stop_token_ids`` end it as EOS does, ``ignore_eos`` lets EOS
    be generated like any token, no ending id or stop string comes before ``min_tokens`` new tokens; the ending id or
    stop string is left out of the text unless ``include_stop_str_in_output``; ``skip_special_tokens`` as in decode."""

    stop_token_ids: frozenset[int] = frozenset()
    ignore_eos: bool = False
    min_tokens: int = 0
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True


@dataclasses.dataclass
class Job:
    """One prompt of a request, validated and tokenized."""

    tokens: list[int]
    max_tokens: int | None  # None (a chat's default) until the prompt is known: what the context leaves
    sampling: SamplingParams
    stop: list[str]
    top_logprobs: int | None = None  # None: no logprobs; N: the token's and N alternatives per step
    extra: dict = dataclasses.field(default_factory=dict)  # what the prompt's prefill needs beyond tokens (its images)
    constraint: Any = None  # structured output: the prompt's own grammar state (generation/constraints.py)
    echo: str = ""  # completions' echo: the prompt's text, sent before the completion
    end_rules: EndRules = EndRules()
    echo_logprobs: bool = False  # echo with logprobs: the prompt's tokens' logprobs before the completion's
    echo_only: bool = False  # echo with max_tokens 0: the prompt (and its logprobs), nothing generated
    prompt_logprobs: int | None = None  # vLLM's prompt_logprobs field: each prompt token's and N alternatives
    tokens_as_ids: bool = False  # vLLM's return_tokens_as_token_ids: logprobs name tokens "token_id:N"
    return_token_ids: bool = False  # vLLM's: the prompt's and the answer's token ids in the response
    beams: BeamSettings | None = None  # vLLM's use_beam_search: the prompt's choices are its best hypotheses

    @property
    def prompt_top(self) -> int | None:
        """How many alternatives the engine keeps for each prompt token; None: the prompt is not scored."""
        wanted = [n for n in (self.prompt_logprobs, self.top_logprobs if self.echo_logprobs else None) if n is not None]
        return max(wanted) if wanted else None


@dataclasses.dataclass
class Call:
    """One HTTP request: its prompts (one choice each) and how to answer."""

    jobs: list[Job]
    chat: bool
    stream: bool = False
    include_usage: bool = False
    model: str | None = None  # the served name the request asked for (a LoRA adapter picks its adapter)
    grammar: tuple[str, Any, str] | None = None  # structured output: (kind, spec, field) of serving/structured.py
    n: int = 1  # choices per prompt: the jobs of one prompt are consecutive
    tools: ForcedTools | AutoTools | None = None  # chat: the tool calls the request forces or allows (serving/tools.py)
    continuous_usage: bool = False  # a stream's chunks carry their choice's usage so far (vLLM's continuous_usage_stats)
    reasoning: Reasoning | None = None  # chat on a server with a reasoning parser: the answer's thinking apart (serving/reasoning.py)
    chat_echo: str = ""  # vLLM's chat echo: the last (assistant) message's text, before the answer's content


def _chat_echo(body: dict) -> str:
    """vLLM's chat ``echo``: the last message's text (its text parts, joined by newlines) where it is the assistant's,
    whose answer continues it; else nothing."""
    last = body["messages"][-1]  # validated with the prompt
    if last.get("role") != "assistant":
        return ""
    content = last.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "\n".join(p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))


def _reject_constant(name: str) -> None:
    raise APIError(400, f"The request body contains {name}, which is not valid JSON; send finite numbers only.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise APIError(400, f"The number {text} is out of range; send finite numbers only.")
    return value


def parse_json(raw: bytes) -> dict:
    """The body as a dict, or a 400: strict UTF-8, no NaN/Infinity, no lone surrogates, bounded nesting."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError as err:
        raise APIError(400, f"The request body is not valid UTF-8: {err}.") from None
    except RecursionError:
        raise APIError(400, f"The request body is nested too deeply (more than {MAX_JSON_DEPTH} levels).") from None
    except json.JSONDecodeError as err:
        raise APIError(400, f"The request body is not valid JSON: {err}.") from None
    except ValueError:  # an integer beyond Python's 4300-digit limit
        raise APIError(400, "A number in the request body has too many digits.") from None
    if not isinstance(body, dict):
        raise APIError(400, "The request body must be a JSON object.")
    _check_tree(body)
    return body


def _check_tree(body: dict) -> None:
    """Walk the parsed body without recursion: bounded depth, and no string (or key) with a lone surrogate."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise APIError(400, f"The request body is nested too deeply (more than {MAX_JSON_DEPTH} levels).")
        if isinstance(node, dict):
            for key, value in node.items():
                if _SURROGATE.search(key):
                    raise APIError(400, "A key in the request body contains an unpaired UTF-16 surrogate (\\ud800-\\udfff).")
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str) and _SURROGATE.search(node):
            raise APIError(400, "A string in the request body contains an unpaired UTF-16 surrogate (\\ud800-\\udfff).")


def chat_top_logprobs(body: dict) -> int | None:
    """The alternatives per token a chat request's ``logprobs`` / ``top_logprobs`` ask for (None: no logprobs)."""
    if boolean(body, "logprobs"):
        return number(body, "top_logprobs", int, 0, low=0, high=MAX_CHAT_TOP_LOGPROBS)
    if body.get("top_logprobs") is not None:
        raise APIError(400, "'top_logprobs' needs \"logprobs\": true.", "top_logprobs")
    return None


def stop_strings(body: dict) -> list[str]:
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > MAX_STOP_STRINGS:
        raise APIError(400, f"'stop' must be a string or a list of up to {MAX_STOP_STRINGS} non-empty strings.", "stop")
    return stop


def streaming_options(body: dict) -> tuple[bool, bool, bool]:
    """(stream, include_usage, vLLM's continuous_usage_stats: the usage so far in every chunk, with include_usage)."""
    stream = boolean(body, "stream")
    options = body.get("stream_options")
    if options is None:
        return stream, False, False
    if not stream:
        raise APIError(400, "'stream_options' is only allowed when 'stream' is true.", "stream_options")
    if not isinstance(options, dict):
        raise APIError(400, "'stream_options' must be an object such as {\"include_usage\": true}.", "stream_options")
    include = boolean(options, "include_usage")
    return stream, include, include and boolean(options, "continuous_usage_stats")


def _nth_sample(sampling: SamplingParams, j: int) -> SamplingParams:
    """The sampling of a prompt's choice ``j`` (n > 1): a seeded request's choices draw from seeds of their own."""
    if j == 0 or sampling.seed is None:
        return sampling
    return dataclasses.replace(sampling, seed=(sampling.seed + j) % 2**64)


class RequestParser:
    """Turns the two routes' bodies into Calls. Runs off the event loop: it tokenizes."""

    def __init__(
        self,
        tokenizer,
        served_names: list[str],
        ctx_len: int,
        vocab_size: int,
        max_prompts: int,
        images=None,
        grammars=None,
        tool_call_parser: str | None = None,
        reasoning_parser: str | None = None,
    ) -> None:
        """``images``: a vision-language model's prompts (serving/vision_language.ImagePrompts); None for text models.
        ``grammars()``: the server's generation/constraints.GrammarTokenizer, built at first use; None on a server
        that generates nothing (the scores and embeddings servers' /tokenize). ``tool_call_parser``: the parser of
        the model's tool calls that lets a request's tool_choice be "auto" (serving/tools.py); ``reasoning_parser``: the
        syntax of its thinking, split from chat answers (serving/reasoning.py)."""
        self.grammars = grammars
        self.tool_call_parser = tool_call_parser
        self.reasoning_parser = reasoning_parser
        self.reasoning_tags_special = tags_are_special(tokenizer, reasoning_parser)
        self.turn_markers = turn_markers(tokenizer, reasoning_parser)
        self.tokenizer = tokenizer
        self.images = images
        self.served_names = served_names
        self.ctx_len = ctx_len
        self.vocab_size = vocab_size
        self.max_prompts = max_prompts
        self.beam_slots = 0  # the most beams a use_beam_search request may ask for (0: none; create_app sets it)

    def completion(self, body: dict) -> Call:
        for name, ok in (("suffix", body.get("suffix") is None), ("best_of", body.get("best_of") in (None, 1))):
            if not ok:
                raise APIError(400, f"'{name}' is not supported by this server; leave it out.", name)
        logprobs = number(body, "logprobs", int, None, low=0, high=MAX_COMPLETION_LOGPROBS)
        echo = boolean(body, "echo")
        call = self._options(body, logprobs, chat=False)
        job = call.jobs[0]
        job.echo_logprobs = echo and logprobs is not None  # the prompt's logprobs, as vLLM gives them with echo
        if job.echo_logprobs:
            self._check_scored("echo")
        if job.max_tokens == 0:  # vLLM's (and OpenAI's legacy) way to score a prompt without generating
            if not echo:
                raise APIError(400, "'max_tokens' is 0, which generates nothing: send 1 or more, or 0 with \"echo\": true.", "max_tokens")
            job.max_tokens, job.echo_only = 1, True
        prompts = self._prompts(body.get("prompt"))
        wheres = [f"prompt[{i}]" if len(prompts) > 1 else "prompt" for i in range(len(prompts))]
        if self.images is None:
            shaping = {"special_tokens": boolean(body, "add_special_tokens", True), "keep": truncate_prompt_tokens(body, self.ctx_len)}
            call = self._with_prompts(call, [self._tokens(p, where, **shaping) for p, where in zip(prompts, wheres)])
            return self._echoed(call, prompts) if echo else call
        refuse_prompt_fields(body, chat=False)
        # a string through the processor (its tokens may differ from the tokenizer's); ids as they are
        max_tokens = 0 if call.jobs[0].echo_only else call.jobs[0].max_tokens
        made = [
            self.images.text(p if isinstance(p, str) else self._tokens(p, where)[0], where, self._fits(max_tokens, where))
            for p, where in zip(prompts, wheres)
        ]
        call = self._with_prompts(call, [(ids, where) for (ids, _), where in zip(made, wheres)], [x for _, x in made])
        return self._echoed(call, prompts) if echo else call

    def _echoed(self, call: Call, prompts: list[str | list[int]]) -> Call:
        """Each choice with its prompt's text to echo: a string as sent, token ids decoded as the completion is (those
        kept, where truncate_prompt_tokens cut them)."""
        for i, prompt in enumerate(prompts):
            first = call.jobs[i * call.n]
            skip = first.end_rules.skip_special_tokens  # (the request's, as its text_offset count them)
            text = prompt if isinstance(prompt, str) else self.tokenizer.decode(first.tokens, skip_special_tokens=skip)
            for job in call.jobs[i * call.n : (i + 1) * call.n]:
                job.echo = text
        return call

    def chat(self, body: dict) -> Call:
        if body.get("chat_template") is not None:  # vLLM refuses it too unless told to trust requests' templates
            raise APIError(
                400, "'chat_template' is not taken from a request: start the server with --chat_template; leave it out.", "chat_template"
            )
        top = chat_top_logprobs(body)
        if body.get("max_completion_tokens") is not None:  # the newer name; max_tokens is deprecated in OpenAI's API
            body = {**body, "max_tokens": body["max_completion_tokens"]}
        call = self._options(body, top, chat=True)
        tools = body.get("tools") or None  # tool_choice "none"'s too (vLLM's default; requested_tools checked them)
        if self.images is not None:
            refuse_prompt_fields(body, chat=True)
            call = self._image_chat(call, body, tools)
        else:
            prompt = self.chat_prompt(body.get("messages"), tools=tools, options=template_options(body))
            special = boolean(body, "add_special_tokens", False)  # vLLM's default for chat: the template writes them
            ids = self._tokens(prompt, "messages", special_tokens=special, keep=truncate_prompt_tokens(body, self.ctx_len))
            call = self._with_prompts(self._reasoning(call, body, ids[0]), [ids])
        call.chat_echo = _chat_echo(body) if boolean(body, "echo") else ""
        return call

    def _reasoning(self, call: Call, body: dict, ids: list[int]) -> Call:
        """The call with its answer's reasoning split (where the server has a reasoning parser), read from the end of
        its prompt ``ids``."""
        tail = self.tokenizer.decode(ids[-32:], skip_special_tokens=False) if self.reasoning_parser else ""
        tail = answer_turn(tail, self.turn_markers)  # an earlier turn's tags say nothing of this answer
        call.reasoning = requested_reasoning(body, self.reasoning_parser, tail, body.get("chat_template_kwargs"))
        if call.reasoning is not None and call.reasoning.syntax.markup and isinstance(call.tools, ForcedTools):
            raise APIError(
                400,
                'gpt-oss writes its tool calls as harmony messages: send tool_choice "auto" to a server started with '
                "--enable_auto_tool_choice --tool_call_parser openai.",
                "tool_choice",
            )
        if call.reasoning is not None and call.reasoning.state != CLOSED and self.reasoning_tags_special:
            job = call.jobs[0]  # the thinking tags are special tokens: the split reads them
            job.end_rules = dataclasses.replace(job.end_rules, skip_special_tokens=False)
        return call

    def chat_prompt(self, messages, tools: list[dict] | None = None, options: dict | None = None) -> str:
        """Text messages (and ``tools``, OpenAI's tool objects) through the chat template, with ``options``
        (template_options: by default a generation prompt). The text is tokenized without the tokenizer's own special
        tokens, as HF's apply_chat_template(tokenize=True) and vLLM tokenize a rendered chat: the template writes them
        (a BOS would otherwise come twice)."""
        messages = self._messages(messages)
        if not getattr(self.tokenizer, "chat_template", None):
            raise APIError(400, "This model has no chat template; use /v1/completions.", "messages")
        try:
            return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, **(options or template_options({})))
        except Exception as err:  # the template's own checks (roles must alternate, ...) and jinja errors
            raise APIError(400, f"The chat template rejected these messages: {err}", "messages") from None

    def _image_chat(self, call: Call, body: dict, tools: list[dict] | None) -> Call:
        if not self.images.has_chat_template:
            raise APIError(400, "This model's processor has no chat template; use /v1/completions.", "messages")
        out, urls = [], []
        for i, m in enumerate(self._message_list(body.get("messages"))):
            parts, found = chat_parts(m.get("content"), i, self.images.takes_audio)
            out.append({**m, "content": parts, **assistant_turn(m)})
            urls += found
            if len(urls) > self.images.max_images:  # before any image is fetched or decoded
                media = "audio clips" if self.images.takes_audio else "image(s)"
                raise APIError(
                    400,
                    f"The messages hold more than {self.images.max_images} {media}; this server takes at most "
                    f"{self.images.max_images} per request (--max_num_images).",
                    "messages",
                )
        options = {**template_options(body), **({"tools": tools} if tools else {})}
        ids, extra = self.images.chat(out, urls, self._fits(call.jobs[0].max_tokens, "messages"), options)
        return self._with_prompts(self._reasoning(call, body, ids), [(ids, "messages")], [extra])

    def _fits(self, max_tokens: int | None, where: str):
        """A check of a vision-language prompt's tokens (image tokens included) against the context, run before its
        vision graph."""

        def check(ids: list[int]) -> None:
            if not ids:
                raise APIError(400, f"{where} is empty.", param_of(where))
            media = "audio" if self.images.takes_audio else "image"
            self._check_context(ids, max_tokens, f"{where} ({media} tokens included)")

        return check

    def _check_context(self, ids: list[int], max_tokens: int | None, where: str) -> None:
        """A 400 where the prompt and ``max_tokens`` (None: at least one token) exceed the context (vLLM's max_model_len:
        prompt and output together)."""
        if len(ids) + (1 if max_tokens is None else max_tokens) > self.ctx_len:
            raise APIError(
                400,
                f"This model's context is {self.ctx_len} tokens; {where} has {len(ids)} and max_tokens asks for "
                f"{max_tokens}. Reduce the prompt or max_tokens.",
                "max_tokens",
                "context_length_exceeded",
            )

    def check_model(self, body: dict) -> None:
        """A 400 for a ``model`` that is not a string, a 404 for one this server does not serve."""
        served_model(body, self.served_names)

    def _logit_bias(self, value) -> tuple[tuple[int, float], ...] | None:
        """OpenAI's ``logit_bias``: {token id (a string in JSON): a value in [-100, 100] added to its logit}."""
        if value is None or value == {}:
            return None
        if not isinstance(value, dict):
            raise APIError(400, "'logit_bias' must be an object mapping token ids to numbers in [-100, 100].", "logit_bias")
        pairs = []
        for key, bias in value.items():
            digits = key.strip() if isinstance(key, str) else ""
            token = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 12 else None
            if token is None or not 0 <= token < self.vocab_size:
                raise APIError(400, f"'logit_bias' key {key!r} is not a token id of this model (0..{self.vocab_size - 1}).", "logit_bias")
            pairs.append((token, number({"logit_bias": bias}, "logit_bias", float, 0.0, low=-100, high=100)))
        return tuple(pairs)

    def _common(self, body: dict) -> int:
        """The request's ``n`` (choices per prompt), once its model is checked."""
        self.check_model(body)
        return number(body, "n", int, 1, low=1, high=self.max_prompts)

    def _options(self, body: dict, top: int | None, chat: bool) -> Call:
        """Everything but the prompts, checked before anything is tokenized; a Call with one template job."""
        n = self._common(body)
        refuse_unapplied(body)
        beams = requested_beams(body, n, self.beam_slots > 0 and self.images is None)
        if beams is not None:  # the n choices of a prompt are its n beams' best hypotheses: one job each
            if n > self.beam_slots:
                raise APIError(400, f"'n' (the beams) is at most {self.beam_slots} here, the engine's slots.", "n")
            n = 1
        stream, include_usage, continuous_usage = streaming_options(body)
        tools = requested_tools(body, self.tool_call_parser) if chat else None
        seed = number(body, "seed", int, None, low=-INT64, high=INT64 - 1)
        top_k = number(body, "top_k", int, None, low=-1)  # vLLM's extension: -1 or 0 keeps every token
        sampling = SamplingParams(
            temperature=number(body, "temperature", float, 1.0, low=0, high=2),
            top_k=None if top_k in (None, -1, 0) else top_k,
            top_p=number(body, "top_p", float, None, low=0, high=1, low_open=True),
            repetition_penalty=number(body, "repetition_penalty", float, None, low=0, high=2, low_open=True),  # vLLM's too
            seed=None if seed is None else seed % 2**64,  # OpenAI's seeds are int64; numpy wants them non-negative
            presence_penalty=number(body, "presence_penalty", float, None, low=-2, high=2),
            frequency_penalty=number(body, "frequency_penalty", float, None, low=-2, high=2),
            min_p=number(body, "min_p", float, None, low=0, high=1),  # vLLM's
            logit_bias=self._logit_bias(body.get("logit_bias")),
            allowed_token_ids=allowed_token_ids(body, min(self.vocab_size, len(self.tokenizer))),
            bad_words_ids=bad_words_ids(body, self.tokenizer, self.vocab_size),
        )
        check_allowed_tokens_left(sampling.allowed_token_ids, sampling.bad_words_ids)
        # OpenAI's completions default to 16 tokens; a chat answer (vLLM's too) to what the context leaves (None here)
        max_tokens = number(body, "max_tokens", int, None if chat else 16, low=1 if chat else 0)  # 0: completions' echo
        job = Job([], max_tokens, sampling, stop_strings(body), top, end_rules=self._end_rules(body, max_tokens))
        job.prompt_logprobs = number(body, "prompt_logprobs", int, None, low=0, high=MAX_CHAT_TOP_LOGPROBS)
        job.tokens_as_ids = boolean(body, "return_tokens_as_token_ids")
        job.beams = beams
        job.return_token_ids = boolean(body, "return_token_ids")
        if job.prompt_logprobs is not None:
            if stream:
                raise APIError(400, "'prompt_logprobs' are not available with \"stream\": true (as in vLLM).", "prompt_logprobs")
            self._check_scored("prompt_logprobs")
        grammar = requested_grammar(body)
        if tools is not None:
            if grammar is not None:
                raise APIError(400, f"Ask for tool calls or for '{grammar[2]}', not both.", "tool_choice")
            schema = tools.schema()
            if schema is not None:  # forced calls: the answer is held to the tools' JSON schema
                grammar = ("json", schema, "tool_choice")
            elif tools.special_tokens:  # the parser reads markers that are special tokens (vLLM's mistral parser too)
                job.end_rules = dataclasses.replace(job.end_rules, skip_special_tokens=False)
        if grammar is not None and self.grammars is None:
            raise APIError(400, "Structured output is not available on this server; leave it out.", grammar[2])
        return Call([job], chat, stream, include_usage, body.get("model"), grammar, n, tools, continuous_usage)

    def _check_scored(self, field: str) -> None:
        """A 400 where the prompt's logprobs are asked of a server that does not compute them."""
        if self.images is not None:
            raise APIError(400, "This vision-language server does not compute a prompt's logprobs; leave them out.", field)

    def _end_rules(self, body: dict, max_tokens: int | None) -> EndRules:
        ids = body.get("stop_token_ids")
        if ids is not None and (
            not isinstance(ids, list) or len(ids) > MAX_STOP_TOKEN_IDS or not all(type(t) is int and 0 <= t < self.vocab_size for t in ids)
        ):
            raise APIError(
                400,
                f"'stop_token_ids' must be a list of up to {MAX_STOP_TOKEN_IDS} token ids of this model (0..{self.vocab_size - 1}).",
                "stop_token_ids",
            )
        return EndRules(
            frozenset(ids or ()),
            boolean(body, "ignore_eos"),
            number(body, "min_tokens", int, 0, low=0, high=self.ctx_len if max_tokens is None else max(max_tokens, 1)),
            boolean(body, "include_stop_str_in_output"),
            boolean(body, "skip_special_tokens", True),
        )

    def _with_prompts(self, call: Call, prompts: list[tuple[list[int], str]], extras: list[dict] | None = None) -> Call:
        """The call with one job per tokenized prompt (``extras``: each one's Job.extra), each checked against the context."""
        template = call.jobs[0]
        for ids, where in prompts:  # (echo with max_tokens 0 asks for none: a prompt may fill the context, as vLLM)
            self._check_context(ids, 0 if template.echo_only else template.max_tokens, where)
            if template.end_rules.min_tokens > (template.max_tokens or self.ctx_len - len(ids)):
                raise APIError(
                    400, f"'min_tokens' is more than the {self.ctx_len - len(ids)} tokens {where} leaves in the context.", "min_tokens"
                )
        extras = extras or [{}] * len(prompts)
        if len(prompts) * call.n > self.max_prompts:
            raise APIError(
                400, f"{len(prompts)} prompts x n={call.n} is {len(prompts) * call.n} choices; this server takes {self.max_prompts}.", "n"
            )
        call.jobs = [
            dataclasses.replace(
                template,
                tokens=ids,
                max_tokens=template.max_tokens or self.ctx_len - len(ids),  # a chat's default: what the context leaves
                extra=dict(extra),
                sampling=_nth_sample(template.sampling, j),
            )
            for (ids, _), extra in zip(prompts, extras)
            for j in range(call.n)
        ]
        if call.grammar is not None:
            thinking = call.reasoning is not None and call.reasoning.state == OPEN
            for job in call.jobs:  # each prompt its own grammar state; a reasoning model's thinking is left free
                job.constraint = self._constraint(*call.grammar, after=call.reasoning.syntax.ends if thinking else ())
        return call

    def _constraint(self, kind: str, spec: Any, field: str, after: tuple[str, ...] = ()):
        from QEfficient.generation.constraints import GrammarError

        try:
            tables = self.grammars()
        except ImportError:
            raise APIError(400, 'Structured output needs the llguidance package: pip install "QEfficient[serve]".', field) from None
        except (ValueError, AttributeError) as err:  # no fast tokenizer, or one llguidance cannot read
            raise APIError(400, f"Structured output is not available for this model's tokenizer: {err}", field) from None
        try:
            return tables.constraint(kind, spec, after)
        except GrammarError as err:
            raise APIError(400, f"The structured output's {kind} cannot be used: {err}", field) from None

    def _prompts(self, prompt) -> list[str | list[int]]:
        return openai_input_forms(prompt, "prompt", self.max_prompts, " (the server's --max_queue)")

    def _tokens(self, prompt: str | list[int], where: str, special_tokens: bool = True, keep: int | None = None) -> tuple[list[int], str]:
        """A prompt's token ids, checked (``keep``: vLLM's truncate_prompt_tokens, the last ones kept)."""
        if isinstance(prompt, str):
            # truncation=True would split a huge prompt into thousands of overflow encodings
            ids = self.tokenizer(prompt, add_special_tokens=special_tokens)["input_ids"]
        else:
            ids = prompt
        if keep is not None and len(ids) > keep:
            ids = truncated(self.tokenizer, prompt, ids, keep) if special_tokens else ids[-keep:]
        if len(ids) > self.ctx_len:
            raise APIError(
                400,
                f"{where} has more than this model's context of {self.ctx_len} tokens. Shorten it.",
                "prompt" if where.startswith("prompt") else where,
                "context_length_exceeded",
            )
        bad = next((t for t in ids if not 0 <= t < self.vocab_size), None) if not isinstance(prompt, str) else None
        if bad is not None:
            raise APIError(400, f"{where} has the token id {bad}, outside this model's vocabulary [0, {self.vocab_size}).", "prompt")
        if not ids:
            raise APIError(400, f"{where} is empty.", "prompt" if where.startswith("prompt") else where)
        return list(ids), where

    @staticmethod
    def _message_list(messages) -> list[dict]:
        shape = "'messages' must be a non-empty list of {role, content} objects"
        if not isinstance(messages, list) or not messages:
            raise APIError(400, f"{shape}.", "messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise APIError(400, f"{shape}; messages[{i}] is not.", "messages")
        return messages

    def _messages(self, messages) -> list[dict]:
        return [
            {**m, "content": text_content(m.get("content"), i), **assistant_turn(m)} for i, m in enumerate(self._message_list(messages))
        ]


# apply_chat_template's own arguments, which chat_template_kwargs may not set
_TEMPLATE_ARGUMENTS = frozenset(
    {"conversation", "messages", "tools", "documents", "chat_template", "add_generation_prompt", "continue_final_message"}
    | {"tokenize", "padding", "truncation", "max_length", "return_tensors", "return_dict", "return_assistant_tokens_mask"}
    | {"tokenizer_kwargs"}
    | {"processor_kwargs", "load_audio_from_video", "sanitize_control_tokens"}  # a processor's
)


def template_options(body: dict) -> dict:
    """vLLM's chat template fields as apply_chat_template's arguments: ``add_generation_prompt`` (default true),
    ``continue_final_message`` (the last assistant message continued, not closed) and ``chat_template_kwargs`` (more
    template variables, such as Qwen3's ``enable_thinking``); OpenAI's ``reasoning_effort`` is the template's variable
    of that name (gpt-oss's), unless chat_template_kwargs sets it."""
    add = boolean(body, "add_generation_prompt", True)
    extend = boolean(body, "continue_final_message")
    if add and extend:
        raise APIError(400, "'continue_final_message' needs \"add_generation_prompt\": false.", "continue_final_message")
    kwargs = body.get("chat_template_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise APIError(400, "'chat_template_kwargs' must be an object of template variables.", "chat_template_kwargs")
    clashes = sorted(set(kwargs or ()) & _TEMPLATE_ARGUMENTS)
    if clashes:
        raise APIError(400, f"'chat_template_kwargs' may not set {clashes}: send them as fields of their own.", "chat_template_kwargs")
    effort = body.get("reasoning_effort")
    if effort is not None and not isinstance(effort, str):
        raise APIError(400, '\'reasoning_effort\' must be a string, such as "low", "medium" or "high".', "reasoning_effort")
    effort = {} if effort is None else {"reasoning_effort": effort}
    return {**effort, **(kwargs or {}), "add_generation_prompt": add, "continue_final_message": extend}


def served_model_names(model_id: str, served_names) -> list[str]:
    """The names a request's ``model`` may use: the model's id (the one /v1/models lists and answers carry, as vLLM's
    first --served-model-name), then its other names (the folder's path or hub id as given, an artifact's recorded
    name), each once."""
    return [model_id] + [n for n in dict.fromkeys(served_names or []) if n and n != model_id]


def artifact_model_names(recorded: str, aliases) -> list[str]:
    """An artifact's names, its model id first: ``serve --qpc_path A --model_name NAME`` serves the model as NAME (the
    id /v1/models lists and answers carry), as vLLM's --served-model-name; the name recorded at compile time is
    accepted too."""
    aliases = [n for n in aliases or [] if n]
    return served_model_names(aliases[0], [recorded, *aliases[1:]]) if aliases else [recorded]


def served_model(body: dict, served_names: list[str] | tuple[str, ...]) -> str:
    """The request's ``model``, else the served model's id (``served_names[0]``); a 400 for a ``model`` that is not a
    string, a 404 for one this server does not serve."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise APIError(400, f"'model' must be a string, got {model!r}.", "model")
    if model is not None and model not in served_names:
        raise APIError(
            404,
            f"The model '{model}' does not exist; this server serves '{served_names[0]}' (see /v1/models).",
            "model",
            "model_not_found",
        )
    return model or served_names[0]
