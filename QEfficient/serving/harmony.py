"""gpt-oss's harmony format, read from an answer's text (decoded with its special tokens): the answer is a run of
messages, each ``<|channel|>CHANNEL[ to=RECIPIENT][ <|constrain|>TYPE]<|message|>TEXT`` ended by ``<|end|>`` (the next
one opens with ``<|start|>assistant``), the last by ``<|return|>`` or ``<|call|>`` (end-of-sequence ids, left out of
the text). As vLLM reads it: the ``analysis`` channel is the reasoning (``--reasoning_parser openai_gptoss``, chosen
by itself for a tokenizer that writes harmony, as vLLM serves gpt-oss), the ``final`` channel and the ``commentary``
channel's messages to no one (preambles) the content, and a message to ``functions.NAME`` a tool call whose arguments
are its text (``--tool_call_parser openai``). An answer that does not open with a harmony header is content as it is. The reasoning
parser's side (where an answer starts, what a grammar waits for) is serving/reasoning.HarmonySyntax.
"""

from __future__ import annotations

import dataclasses

from QEfficient.serving.tool_parsers import tool_call

START, END, CALL, RETURN = "<|start|>", "<|end|>", "<|call|>", "<|return|>"
CHANNEL, CONSTRAIN, MESSAGE = "<|channel|>", "<|constrain|>", "<|message|>"
_BODY_ENDS = (END, CALL, RETURN, START)
_OPENINGS = (CHANNEL, START, " to=", CONSTRAIN)  # how an answer in harmony begins (the prompt ends with <|start|>assistant)
FINAL_MARKER = CHANNEL + "final" + MESSAGE  # what begins the answer proper: structured output holds what follows


@dataclasses.dataclass(frozen=True)
class HarmonyMessage:
    channel: str | None
    recipient: str | None
    content_type: str | None
    text: str

    @property
    def call(self) -> str | None:
        """The function a tool call addresses (None for other messages)."""
        return self.recipient[len("functions.") :] if self.recipient and self.recipient.startswith("functions.") else None

    @property
    def shown(self) -> bool:
        """Whether the message is content: the final channel, or a commentary to no one (a preamble)."""
        return self.channel == "final" or (self.channel == "commentary" and not self.recipient)


def partial_tag(text: str, tags: tuple[str, ...]) -> int:
    """The length of the longest end of ``text`` that begins one of ``tags`` (and is not all of it)."""
    return max((n for tag in tags for n in range(1, min(len(tag), len(text) + 1)) if tag.startswith(text[-n:])), default=0)


def is_harmony(text: str, final: bool) -> bool | None:
    """Whether an answer is in harmony; None while its beginning cannot tell yet."""
    if text.startswith(_OPENINGS):
        return True
    if not final and any(len(text) < len(opening) and opening.startswith(text) for opening in _OPENINGS):
        return None
    return False


def read_messages(text: str, final: bool = True) -> list[HarmonyMessage]:
    """The messages of a harmony answer, the last one perhaps unfinished; of an answer being written (``final`` false) a
    message whose header is not complete is left out, and a tail of its text that may begin a marker is held back."""
    messages, at = [], 0
    while at < len(text):
        head_end = text.find(MESSAGE, at)
        if head_end < 0:
            break  # the header is still being written, or the answer ended in it
        header, start = text[at + (len(START) if text.startswith(START, at) else 0) : head_end], head_end + len(MESSAGE)
        found = [(i, marker) for i, marker in ((text.find(m, start), m) for m in _BODY_ENDS) if i >= 0]
        if found:
            end, marker = min(found)
            body, at = text[start:end], end + (0 if marker == START else len(marker))
        else:
            body, at = text[start:], len(text)
            if not final:
                body = body[: len(body) - partial_tag(body, _BODY_ENDS)]
        messages.append(_message(header, body))
    return messages


def _message(header: str, text: str) -> HarmonyMessage:
    """A message from its header: ``[ROLE][ to=R]<|channel|>CHANNEL[ to=R][ TYPE][<|constrain|>TYPE]``."""
    role, _, channel_part = header.partition(CHANNEL)
    channel_part, _, constrain = channel_part.partition(CONSTRAIN)
    words = channel_part.split()
    recipient = next((w[3:] for w in role.split() + words[1:] if w.startswith("to=")), None)
    kind = constrain.strip() or next((w for w in words[1:] if not w.startswith("to=")), None)
    return HarmonyMessage(words[0] if words else None, recipient, kind, text)


def split(text: str, final: bool = True) -> tuple[str | None, str]:
    """(reasoning, content) of an answer: the analysis messages' texts, and the final and preamble messages' (each set
    joined by new lines, as vLLM joins them); an answer not in harmony is content as it is."""
    harmony = is_harmony(text, final)
    if harmony is None:
        return None, ""
    if not harmony:
        return None, text
    messages = read_messages(text, final)
    reasoning = [m.text for m in messages if m.channel == "analysis"]
    return ("\n".join(reasoning) if reasoning else None), "\n".join(m.text for m in messages if m.shown)


def tool_message(text: str) -> dict | None:
    """vLLM's ``openai`` tool parser: the assistant message with the answer's calls (messages to ``functions.NAME``, their
    text the arguments as written) and its content, or None where it makes none."""
    if not is_harmony(text, True):
        return None
    messages = read_messages(text)
    calls = [tool_call(m.call, m.text) for m in messages if m.call]
    if not calls:
        return None
    return {"role": "assistant", "content": "\n".join(m.text for m in messages if m.shown) or None, "tool_calls": calls}


def tool_scan(text: str, final: bool) -> tuple[str | None, list]:
    """(content so far, calls so far) of an answer being written, for serving/tools.ToolCallStream."""
    harmony = is_harmony(text, final)
    if not harmony:
        return (None if harmony is None else text), []
    messages = read_messages(text, final)
    calls = [(m.call, m.text, None) for m in messages if m.call]
    return "\n".join(m.text for m in messages if m.shown), calls


def writes_harmony(special_tokens: set[str]) -> bool:
    """Whether a tokenizer with these special tokens writes harmony (gpt-oss's o200k_harmony)."""
    return {START, END, CHANNEL, MESSAGE} <= special_tokens
