"""vLLM's ``use_beam_search`` answers: each prompt's ``n`` best hypotheses (transformers' beam search in the engine,
generation/beam_batching.py) are its choices, prompt after prompt; a stream sends each choice whole once the searches
end, as vLLM's beam search does."""

from __future__ import annotations

import asyncio

from QEfficient.serving.errors import APIError
from QEfficient.serving.protocol import Call


async def searches_done(events: asyncio.Queue, count: int) -> None:
    """Until ``count`` requests have ended (the engine's (index, done, reason) events)."""
    ended = 0
    while ended < count:
        _, done, _ = await events.get()
        ended += bool(done)


def beam_payloads(call: Call, requests: list, tokenizer) -> tuple[list[dict], dict, list[dict]]:
    """(the choices, the usage, each choice's own usage) of ended searches; a failed one is a 500 that says why."""
    choices, each = [], []
    for i, (job, request) in enumerate(zip(call.jobs, requests)):
        if request.finish_reason == "error":
            why = request.error or "the engine step failed"
            raise APIError(500, f"Beam search failed: {why}.", kind="server_error", code="engine_error")
        rules = job.end_rules
        for j, (tokens, reason) in enumerate(zip(request.beam_outputs, request.beam_finish_reasons)):
            ended_by = tokens[-1] if reason == "stop" and tokens else None
            shown = tokens[:-1] if ended_by is not None and not rules.include_stop_str_in_output else tokens
            text = tokenizer.decode(shown, skip_special_tokens=rules.skip_special_tokens)
            body = {"message": _message(call, text)} if call.chat else {"text": text}
            # vLLM's: the id that ended it, but for the tokenizer's own EOS (as serving/choices.py reports it)
            stop_reason = ended_by if ended_by is not None and ended_by != tokenizer.eos_token_id else None
            index = i * job.beams.num_return_sequences + j
            choices.append({"index": index, **body, "logprobs": None, "finish_reason": reason, "stop_reason": stop_reason})
            each.append(_usage(len(job.tokens), len(tokens)))
    prompt = sum(len(job.tokens) for job in call.jobs)
    return choices, _usage(prompt, sum(u["completion_tokens"] for u in each)), each


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _message(call: Call, text: str) -> dict:
    """A chat choice's message: its thinking apart where the server reads it (serving/reasoning.py), as answer() does."""
    if call.reasoning is None:
        return {"role": "assistant", "content": text}
    reasoning, content = call.reasoning.split(text)
    return {"role": "assistant", "content": content if content or reasoning is None else None, **call.reasoning.fields(reasoning)}


def beam_chunks(call: Call, choices: list[dict], usage: dict, each: list[dict], head: dict) -> list[dict]:
    """A stream's chunks: each choice whole (chat: its role and content in one delta), then the usage where asked
    (with vLLM's continuous_usage_stats, each chunk its choice's too: ``each``)."""
    head = {**head, "object": "chat.completion.chunk" if call.chat else "text_completion"}
    chunks = []
    for choice, used in zip(choices, each):
        if call.chat:
            choice = {**{k: v for k, v in choice.items() if k != "message"}, "delta": choice["message"]}
        chunk = {**head, "choices": [choice]}
        if call.include_usage:
            chunk["usage"] = used if call.continuous_usage else None
        chunks.append(chunk)
    if call.include_usage:
        chunks.append({**head, "choices": [], "usage": usage})
    return chunks
