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


def beam_payloads(call: Call, requests: list, tokenizer, head: dict) -> tuple[list[dict], dict]:
    """(the choices, the usage) of ended searches; a failed one is a 500 that says why."""
    choices, completion = [], 0
    for i, (job, request) in enumerate(zip(call.jobs, requests)):
        if request.finish_reason == "error":
            why = request.error or "the engine step failed"
            raise APIError(500, f"Beam search failed: {why}.", kind="server_error", code="engine_error")
        rules = job.end_rules
        for j, (tokens, reason) in enumerate(zip(request.beam_outputs, request.beam_finish_reasons)):
            ended_by = tokens[-1] if reason == "stop" and tokens else None
            shown = tokens[:-1] if ended_by is not None and not rules.include_stop_str_in_output else tokens
            text = tokenizer.decode(shown, skip_special_tokens=rules.skip_special_tokens)
            completion += len(tokens)
            body = {"message": _message(call, text)} if call.chat else {"text": text}
            stop_reason = ended_by if ended_by in rules.stop_token_ids else None  # vLLM's: a stop id, not EOS
            index = i * job.beams.num_return_sequences + j
            choices.append({"index": index, **body, "logprobs": None, "finish_reason": reason, "stop_reason": stop_reason})
    prompt = sum(len(job.tokens) for job in call.jobs)
    return choices, {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _message(call: Call, text: str) -> dict:
    """A chat choice's message: its thinking apart where the server reads it (serving/reasoning.py), as answer() does."""
    if call.reasoning is None:
        return {"role": "assistant", "content": text}
    reasoning, content = call.reasoning.split(text)
    return {"role": "assistant", "content": content if content or reasoning is None else None, **call.reasoning.fields(reasoning)}


def beam_chunks(call: Call, choices: list[dict], usage: dict, head: dict) -> list[dict]:
    """A stream's chunks: each choice whole (chat: its role and content in one delta), then the usage where asked."""
    head = {**head, "object": "chat.completion.chunk" if call.chat else "text_completion"}
    chunks = []
    for choice in choices:
        if call.chat:
            choice = {**{k: v for k, v in choice.items() if k != "message"}, "delta": choice["message"]}
        chunks.append({**head, "choices": [choice], **({"usage": None} if call.include_usage else {})})
    if call.include_usage:
        chunks.append({**head, "choices": [], "usage": usage})
    return chunks
