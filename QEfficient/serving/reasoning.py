"""A reasoning model's thinking, apart from its answer (vLLM's ``--reasoning_parser NAME``): a chat answer's text is split
into ``reasoning`` (what the model wrote between its thinking tags) and ``content`` (the rest), in the message and in
each streamed delta. The message carries the reasoning as ``reasoning`` (vLLM's name) and as ``reasoning_content`` (its
name before, and DeepSeek's API's), which chat templates read back from an assistant turn.

Where the answer begins is read from the end of the prompt: a prompt that ends inside the start tag's thinking (DeepSeek-R1's
and Qwen3.5's templates write ``<think>\\n`` there) or a syntax whose models think unprompted starts the answer in
reasoning; a prompt that ends with the end tag (Qwen3 with ``enable_thinking`` false writes ``<think>\\n\\n</think>``) leaves
no reasoning to split. The tool-call parser and structured output see the content alone: a grammar holds the answer only
after the end tag (generation/constraints.AfterMarker), as vLLM's structured outputs do with a reasoning parser.

A stream holds back the end of the text while it may be the beginning of a tag, so the pieces of a stream add up to the
reasoning and content of the same answer unstreamed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from QEfficient.serving import harmony
from QEfficient.serving.errors import APIError

OPEN, UNPROMPTED, CLOSED = "open", "unprompted", "closed"  # where an answer starts: in reasoning, either, in content


@dataclasses.dataclass(frozen=True)
class ReasoningSyntax:
    """How one family writes its thinking: after one of ``starts`` (none: the answer simply begins with it), up to one of
    ``ends``. ``unprompted``: the answer is reasoning from its first character whether or not it writes a start tag
    (else only an answer that begins with one reasons); ``implicit_ends``: text that ends the reasoning without an end
    tag and begins the content (a tool call written while thinking); ``switches``: the chat_template_kwargs variables
    that turn thinking on or off (any of them true: on), and whether it is on when none is given; ``strip``: trailing
    whitespace is cut from the reasoning (GLM's); ``newline``: one newline before the end tag is cut from the reasoning
    and one after it from the content (Step-3.5's); ``answer``: the markers around the answer after the thinking, the
    first dropped and the content ending at the second (Hunyuan's ``</answer>``, ERNIE's ``<response>``); ``mode``: a
    chat_template_kwargs variable (or the request's field of that name) with the value that turns thinking on (or off,
    with False), for families switched by a word rather than a boolean (Hy3's ``reasoning_effort`` "no_think",
    MiniMax-M3's ``thinking_mode`` "enabled"); ``off_state``: where an answer starts with thinking off (UNPROMPTED:
    an answer that opens the start tag still reasons); ``dropped``: markers taken out of the content wherever they are
    (Kimi K3's reply channel, whose calls channel the tool-call parser then reads)."""

    starts: tuple[str, ...]
    ends: tuple[str, ...]
    unprompted: bool = True
    implicit_ends: tuple[str, ...] = ()
    switches: tuple[str, ...] = ()
    thinking_default: bool = True
    strip: bool = False
    newline: bool = False
    answer: tuple[str, str] | None = None
    mode: tuple[str, str, bool] | None = None
    off_state: str = CLOSED
    dropped: tuple[str, ...] = ()
    markup = False  # the tool-call parser reads the content (harmony's reads the whole answer: serving/harmony.py)

    def thinks(self, template_kwargs: dict | None) -> bool:
        """Whether the request leaves the model thinking (its chat_template_kwargs' switches, or the default)."""
        if self.mode is not None:
            key, value, turns_on = self.mode
            given = (template_kwargs or {}).get(key)
            return self.thinking_default if given is None else (str(given) == value) == turns_on
        given = [bool(template_kwargs[key]) for key in self.switches if key in (template_kwargs or {})]
        return any(given) if given else self.thinking_default

    def state(self, prompt_tail: str, thinking: bool = True) -> str:
        """Where an answer to a prompt ending in ``prompt_tail`` starts: OPEN (in reasoning), UNPROMPTED (in reasoning
        if it begins with a start tag, else in content) or CLOSED (no reasoning to split). The last tag in the tail
        decides: an end tag (Qwen3's empty thinking with enable_thinking false, a final message continued after its
        thinking) closes it, a start tag (a template that opens the thinking, a thinking continued) opens it."""
        last_start = max((prompt_tail.rfind(tag) for tag in self.starts), default=-1)
        last_end = max(prompt_tail.rfind(tag) for tag in self.ends)
        if last_end > last_start:
            return CLOSED
        if not thinking:
            return self.off_state
        if last_start >= 0 or self.unprompted:
            return OPEN
        return UNPROMPTED

    def split(self, text: str, state: str, final: bool = True) -> tuple[str | None, str]:
        """(reasoning, content) of an answer's ``text``; with ``final`` false, the text so far of a stream, less its end
        while that may begin a tag (what is held back belongs to neither yet). Reasoning is None where the answer has
        none."""
        if state == CLOSED:
            return None, self._content(text, final)
        body = text.lstrip()
        if not final and any(len(body) < len(s) and s.startswith(body) for s in self.starts):
            return None, ""  # a start tag may be on its way (after blank lines, which it would drop)
        start = next((s for s in self.starts if body.startswith(s)), None)
        if start is not None:
            body = body[len(start) :]
        elif state == UNPROMPTED:
            return None, self._content(text, final)
        else:
            body = text
        cut, after = _first_end(body, self.ends, self.implicit_ends)
        if cut is not None:
            reasoning, content = (body[:cut].rstrip() if self.strip else body[:cut]), body[after:]
            if self.newline and after > cut:  # an end tag's newlines, not an implicit end's
                reasoning, content = reasoning.removesuffix("\n"), content.removeprefix("\n")
            return reasoning, self._content(content, final)
        if final:
            return (body.rstrip() if self.strip else body), ""
        held = harmony.partial_tag(body, self.ends + self.implicit_ends)
        if self.strip:  # whitespace before an end tag is cut: it waits for what follows
            held = len(body) - len(body[: len(body) - held].rstrip())
        elif self.newline and body[: len(body) - held].endswith("\n"):
            held += 1  # a newline before an end tag is cut: it waits for what follows
        return body[: len(body) - held], ""

    def _content(self, content: str, final: bool) -> str:
        """The answer within ``answer``'s markers: the opening one dropped with the blank lines before it, the content
        ending at the closing one (what follows it dropped; with an opening marker, only an answer that opens with it is
        unwrapped); with ``final`` false, less an end that may begin either. ``dropped`` markers are taken out."""
        if self.dropped:
            for marker in self.dropped:
                content = content.replace(marker, "")
            return content if final else content[: len(content) - harmony.partial_tag(content, self.dropped)]
        if self.answer is None:
            return content
        opening, closing = self.answer
        body = content.lstrip()
        if not final and len(body) < len(opening) and opening.startswith(body):
            return ""  # the opening marker may be on its way (after blank lines, which it would drop)
        if opening and not body.startswith(opening):
            return content  # not wrapped: all of it is the answer
        content = body[len(opening) :] if opening else content
        if not closing:
            return content
        at = content.find(closing)
        if at >= 0:
            return content[:at]
        return content[: len(content) - (0 if final else harmony.partial_tag(content, (closing,)))]


def _first_end(text: str, ends: tuple[str, ...], implicit: tuple[str, ...]) -> tuple[int | None, int]:
    """Where the reasoning in ``text`` ends and where the content begins: after an end tag, or at an implicit end (which
    stays in the content), whichever comes first; (None, 0) where none is in it."""
    found = [(text.find(end), len(end)) for end in ends] + [(text.find(marker), 0) for marker in implicit]
    found = [(at, skip) for at, skip in found if at >= 0]
    if not found:
        return None, 0
    at, skip = min(found)
    return at, at + skip


class HarmonySyntax:
    """The ``openai_gptoss`` reasoning parser (serving/harmony.py reads the messages), in ReasoningSyntax's terms: the answer starts in
    harmony's first message (the prompt ends with ``<|start|>assistant``); structured output holds what follows the
    final channel's header; the tool-call parser reads the whole answer (``markup``), where the calls are messages."""

    starts = (harmony.CHANNEL + "analysis" + harmony.MESSAGE,)
    ends = (harmony.FINAL_MARKER,)
    implicit_ends: tuple[str, ...] = ()
    markup = True

    def thinks(self, template_kwargs: dict | None) -> bool:
        return True  # gpt-oss always writes its analysis channel (its reasoning_effort only sets how much)

    def state(self, prompt_tail: str, thinking: bool = True) -> str:
        continued = prompt_tail.rfind(harmony.FINAL_MARKER) > prompt_tail.rfind(harmony.START)  # a final message, continued
        return CLOSED if continued else OPEN

    def split(self, text: str, state: str, final: bool = True) -> tuple[str | None, str]:
        return (None, text) if state == CLOSED else harmony.split(text, final)


class AppendThinkSyntax:
    """vLLM's ``minimax_m2_append_think``: nothing is split; the answer is content with the ``<think>`` its prompt opened
    put back in front (for clients that read the thinking from the text); structured output holds what follows
    ``</think>``."""

    starts = ("<think>",)
    ends = ("</think>",)
    implicit_ends: tuple[str, ...] = ()
    markup = False

    def thinks(self, template_kwargs: dict | None) -> bool:
        return True

    def state(self, prompt_tail: str, thinking: bool = True) -> str:
        return OPEN

    def split(self, text: str, state: str, final: bool = True) -> tuple[str | None, str]:
        return None, self.starts[0] + text


_THINK = ReasoningSyntax(("<think>",), ("</think>",))
_QWEN3_CALL = ("<tool_call>\n<function", "<tool_call><function")  # Qwen3.5's calls (qwen3_coder syntax)
_GRANITE = (("Here is my thought process:", "Here's my thought process:"), ("Here is my response:", "Here's my response:"))
SYNTAXES: dict[str, ReasoningSyntax] = {  # vLLM's --reasoning-parser names and rules
    "deepseek_r1": _THINK,
    "deepseek_v3": dataclasses.replace(_THINK, switches=("thinking", "enable_thinking"), thinking_default=False),
    "holo2": dataclasses.replace(_THINK, switches=("thinking", "enable_thinking")),
    # Qwen3's first templates let the model open <think>, Qwen3.5's open it in the prompt, instruct models never write it
    "qwen3": dataclasses.replace(_THINK, unprompted=False, implicit_ends=_QWEN3_CALL, switches=("enable_thinking",)),
    "glm45": dataclasses.replace(_THINK, implicit_ends=("<tool_call>",), switches=("thinking", "enable_thinking"), strip=True),
    "glm47": dataclasses.replace(_THINK, implicit_ends=("<tool_call>",), switches=("thinking", "enable_thinking"), strip=True),
    "kimi_k2": dataclasses.replace(
        _THINK, implicit_ends=("<|tool_calls_section_begin|>", "<|tool_call_section_begin|>"), switches=("thinking",)
    ),
    "minimax_m2": _THINK,
    "minimax_m2_append_think": AppendThinkSyntax(),
    "step3": ReasoningSyntax((), ("</think>",)),
    "seed_oss": ReasoningSyntax(("<seed:think>",), ("</seed:think>",), implicit_ends=("<seed:tool_call>",), switches=("enable_thinking",)),
    "mistral": ReasoningSyntax(("[THINK]",), ("[/THINK]",), unprompted=False, implicit_ends=("[TOOL_CALLS]",)),
    "granite": ReasoningSyntax(*_GRANITE, unprompted=False),
    "openai_gptoss": HarmonySyntax(),
}
SYNTAXES["mimo"] = SYNTAXES["qwen3"]  # vLLM reads MiMo's thinking as Qwen3's
# OLMo 3: an answer that opens <think> (or whose prompt does) reasons; an instruct model's answer is content
SYNTAXES["olmo3"] = dataclasses.replace(_THINK, unprompted=False)
SYNTAXES["poolside_v1"] = SYNTAXES["deepseek_v3"]  # vLLM's: DeepSeek-V3's, read in the prompt's last assistant turn
SYNTAXES["deepseek_v4"] = dataclasses.replace(  # deepseek_v3's, and a tool call written while thinking ends it
    SYNTAXES["deepseek_v3"], implicit_ends=("<｜DSML｜tool_calls>",)
)
# Gemma 4 opens its thinking channel itself (the template's enable_thinking asks it to), its label "thought" first
SYNTAXES["gemma4"] = ReasoningSyntax(
    ("<|channel>thought\n", "<|channel>", "thought\n"), ("<channel|>",), unprompted=False, implicit_ends=("<|tool_call>",)
)
SYNTAXES["solar_open2"] = ReasoningSyntax(("<|think:start|>",), ("<|think:end|>",), implicit_ends=("<|tool_call:start|>",))
SYNTAXES["ling3"] = SYNTAXES["glm47"]  # vLLM reads Ling 3's thinking as GLM-4.7's
# Nemotron 3: DeepSeek-R1's; with enable_thinking false its answer is content (vLLM swaps an unended thinking into it)
SYNTAXES["nemotron_v3"] = dataclasses.replace(_THINK, switches=("enable_thinking",))
SYNTAXES["step3p5"] = dataclasses.replace(_THINK, newline=True)
# Hunyuan: <think>\n...\n</think>\n<answer>\n...\n</answer> (also its small dense models); no thinking: the answer alone
SYNTAXES["hunyuan_a13b"] = ReasoningSyntax(("<think>\n",), ("\n</think>\n<answer>\n",), unprompted=False, answer=("", "\n</answer>"))
# ERNIE 4.5 thinks unprompted; its answer may come in <response> ... </response>
SYNTAXES["ernie45"] = dataclasses.replace(_THINK, newline=True, answer=("<response>", "</response>"))
# Hy3 thinks unless its reasoning_effort is "no_think", its default; Hy4 thinks unless told "no_think". Their tags may
# carry the checkpoint's suffix (Hy4-preview's ":opensource")
_HY = ReasoningSyntax(("<think>", "<think:opensource>"), ("</think>", "</think:opensource>"), mode=("reasoning_effort", "no_think", False))
SYNTAXES["hy_v3"] = dataclasses.replace(_HY, thinking_default=False)
SYNTAXES["hy_v4"] = _HY
# MiniMax-M3: thinking_mode "enabled" starts the answer in its thinking (the template opens <mm:think>); otherwise an
# answer may still open it, and an end tag it begins with is dropped
SYNTAXES["minimax_m3"] = ReasoningSyntax(
    ("<mm:think>",), ("</mm:think>",), mode=("thinking_mode", "enabled", True), thinking_default=False, off_state=UNPROMPTED,
    answer=("</mm:think>", ""),
)  # fmt: skip
# PLaMo 3 thinks unprompted (enable_thinking, on by default); the answer ends at its end-of-turn tag, thinking or not
_PLAMO = ("<|plamo:begin_think:plamo|>", "<|plamo:end_think:plamo|>", "<|plamo:tag|>")
SYNTAXES["plamo3"] = ReasoningSyntax(
    (_PLAMO[0],), (_PLAMO[1],), implicit_ends=(_PLAMO[2],), switches=("enable_thinking",), answer=("", _PLAMO[2])
)
# Kimi K3: a think channel, then the reply channel (its markers dropped; a calls channel stays for the tool parser)
SYNTAXES["kimi_k3"] = ReasoningSyntax(
    ("<|open|>think<|sep|>",),
    ("<|close|>think<|sep|>",),
    switches=("thinking", "enable_thinking"),
    dropped=("<|open|>response<|sep|>", "<|close|>response<|sep|>", "<|close|>message<|sep|>"),
)
REASONING_PARSERS = tuple(SYNTAXES)  # the names served here


@dataclasses.dataclass(frozen=True)
class Reasoning:
    """One chat request's reasoning split: the syntax, where its answer starts, and whether the reasoning goes out
    (vLLM's ``include_reasoning``)."""

    syntax: ReasoningSyntax | HarmonySyntax | AppendThinkSyntax
    state: str
    include: bool = True

    def split(self, text: str) -> tuple[str | None, str]:
        """(reasoning or None, content) of an answer's ``text``; the content is what the tool parser reads."""
        return self.syntax.split(text, self.state)

    def fields(self, reasoning: str | None) -> dict:
        """The message's (or a delta's) reasoning fields: vLLM's name and its earlier one, unless left out."""
        if reasoning is None or not self.include:
            return {}
        return {"reasoning": reasoning, "reasoning_content": reasoning}

    def stream(self) -> ReasoningStream:
        return ReasoningStream(self)


class ReasoningStream:
    """One streamed choice: ``feed(piece, final)`` gives the reasoning fields and the content new with the piece."""

    def __init__(self, reasoning: Reasoning) -> None:
        self.reasoning, self.text, self.sent_reasoning, self.sent_content = reasoning, "", 0, 0

    def feed(self, piece: str, final: bool) -> tuple[dict, str]:
        self.text += piece
        reasoning, content = self.reasoning.syntax.split(self.text, self.reasoning.state, final)
        new_reasoning = None
        if reasoning is not None and len(reasoning) > self.sent_reasoning:
            new_reasoning, self.sent_reasoning = reasoning[self.sent_reasoning :], len(reasoning)
        new_content, self.sent_content = content[self.sent_content :], max(self.sent_content, len(content))
        return self.reasoning.fields(new_reasoning), new_content


def requested_reasoning(body: dict, parser: str | None, prompt_tail: str, template_kwargs: dict | None) -> Reasoning | None:
    """The reasoning split of a chat request on a server started with ``parser`` (None: no split), from the end of its
    rendered prompt; a 400 for a malformed ``include_reasoning``."""
    include = body.get("include_reasoning", True)
    if not isinstance(include, bool):
        raise APIError(400, "'include_reasoning' must be true or false.", "include_reasoning")
    if parser is None:
        return None
    syntax = SYNTAXES[parser]
    mode = getattr(syntax, "mode", None)
    if mode is not None and isinstance(body.get(mode[0]), str):  # the request's own field (OpenAI's reasoning_effort)
        template_kwargs = {mode[0]: body[mode[0]], **(template_kwargs or {})}
    return Reasoning(syntax, syntax.state(prompt_tail, syntax.thinks(template_kwargs)), include)


def special_tokens(tokenizer: Any) -> set[str]:
    """The texts of a tokenizer's special tokens: its added tokens marked special (transformers' tokenizers and the
    artifact's runtime one alike, through their ``tokenizers`` backend)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    added = backend.get_added_tokens_decoder() if backend is not None else getattr(tokenizer, "added_tokens_decoder", None) or {}
    return {t.content for t in added.values() if getattr(t, "special", False)} | set(getattr(tokenizer, "all_special_tokens", ()))


def default_parser(tokenizer: Any, parser: str | None) -> str | None:
    """The server's reasoning parser: the one asked for, else harmony's for a tokenizer that writes it (as vLLM reads
    gpt-oss's answers without being told)."""
    return parser if parser is not None or not harmony.writes_harmony(special_tokens(tokenizer)) else "openai_gptoss"


def turn_markers(tokenizer: Any, parser: str | None) -> tuple[str, ...]:
    """The special tokens that open a turn or a role's header (those of the parser's tags aside): where the answer's
    own turn begins in a prompt, so that the tags of earlier turns say nothing of where the answer starts."""
    if parser is None:
        return ()
    syntax = SYNTAXES[parser]
    tags = syntax.starts + syntax.ends + syntax.implicit_ends
    return tuple(token for token in special_tokens(tokenizer) if not any(token in tag for tag in tags))


def answer_turn(prompt_tail: str, markers: tuple[str, ...]) -> str:
    """The end of a prompt after the last of ``markers`` (the answer's turn so far), or all of it where none is."""
    cut = max((prompt_tail.rfind(m) + len(m) for m in markers if m in prompt_tail), default=0)
    return prompt_tail[cut:]


def tags_are_special(tokenizer: Any, parser: str | None) -> bool:
    """Whether ``parser``'s tags hold special tokens of ``tokenizer``, which the answer's text must then keep."""
    if parser is None:
        return False
    syntax = SYNTAXES[parser]
    tags = syntax.starts + syntax.ends + syntax.implicit_ends
    return any(token in tag for token in special_tokens(tokenizer) for tag in tags)
