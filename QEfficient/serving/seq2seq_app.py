"""OpenAI's completions API over a text encoder-decoder (T5, BART, Marian, mBART, Pegasus, ...): the prompt is the
encoder's input and the completion the decoder's output, as transformers' ``generate`` gives it for the checkpoint
(its own beam search and generation rules, or sampling where the request sets a temperature above 0).

Routes: GET /health, GET /v1/models, POST /v1/completions (``prompt`` a string or a list of strings, ``max_tokens``,
``temperature``, ``top_p``, ``top_k``, ``seed``, ``n`` (sampled), ``logprobs`` (greedy or sampled), ``stop`` with
vLLM's ``include_stop_str_in_output`` (serving/stop_strings.py), ``stream`` with ``stream_options.include_usage``; no
``echo``: it is refused with what to send instead). Streamed,
greedy and sampled text comes as it is decoded, prompt after prompt (with ``logprobs``, a chunk per token); a checkpoint
that decodes with beams sends each completion whole. These models
have no chat template, so /v1/chat/completions says to use /v1/completions. Requests run one at a time on a worker
thread, so /health keeps answering.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from QEfficient.generation.seq2seq_generation import Seq2SeqRules
from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES, openai_app_basics, read_limited_body, single_model_routes
from QEfficient.serving.choices import TokenText, completion_logprobs
from QEfficient.serving.protocol import MAX_COMPLETION_LOGPROBS, APIError, number, parse_json, served_model_names, streaming_options
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.stop_strings import StopStream, cut_at_stop, requested_stops
from QEfficient.serving.vllm_fields import is_off
from QEfficient.serving.worker_stream import RowsStreamer, error_event, worker_items

MAX_PROMPTS = 64
_REFUSED = {
    "echo": '"echo" is not supported for encoder-decoders (the prompt is the encoder\'s input, not part of the output).',
    "suffix": '"suffix" is not supported: leave it out.',
}


def _prompts(raw) -> list[str]:
    prompts = [raw] if isinstance(raw, str) else raw
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
        message = "'prompt' must be a non-empty string or a non-empty list of non-empty strings (token ids are not taken here)."
        raise APIError(400, message, "prompt")
    if len(prompts) > MAX_PROMPTS:
        raise APIError(400, f"At most {MAX_PROMPTS} prompts per request; got {len(prompts)}.", "prompt")
    return prompts


# OpenAI / vLLM sampling options not applied here, and the value that means "off" for each
_NOT_APPLIED = {"frequency_penalty": 0, "presence_penalty": 0, "repetition_penalty": 1, "min_p": 0, "best_of": 1, "logit_bias": {}}
# ... and vLLM's (the checkpoint's generation config decides beam search here)
_NOT_APPLIED |= {"allowed_token_ids": None, "bad_words": [], "use_beam_search": False, "length_penalty": 1, "early_stopping": False}
_NOT_APPLIED |= {"prompt_embeds": None, "logits_processors": [], "return_tokens_as_token_ids": False, "return_token_ids": False}
_NOT_APPLIED |= {"truncate_prompt_tokens": None, "add_special_tokens": True, "stop_token_ids": [], "min_tokens": 0, "ignore_eos": False}


def sampling_options(body: dict, generation_config, max_tokens: int, top_logprobs: int | None = None, max_n: int = 1) -> dict:
    """generate() options of a completions request: greedy at temperature 0; sampled above it (or where the checkpoint
    samples and the request names no temperature) with its top_p, top_k (vLLM's -1 or 0: none; unset: the checkpoint's,
    else none, as vLLM) and seed; ``n`` samples per prompt (up to ``max_n``), sampled only; ``top_logprobs``: the
    alternatives per token the request's logprobs ask for (None: no logprobs), refused where the checkpoint decodes with
    beams."""
    for key, message in _REFUSED.items():
        value = body.get(key)
        if value is not None and value is not False and value != "" and value != []:
            raise APIError(400, message, key)
    for key, off in _NOT_APPLIED.items():
        if not is_off(body.get(key), (None, off)):
            raise APIError(400, f"'{key}' is not applied to encoder-decoders here: leave it out (or send {off!r}).", key)
    n = number(body, "n", int, 1, low=1)
    if n > max_n:
        more = " (send the request again, with another seed)" if max_n == 1 else ""
        raise APIError(400, f"'n' is at most {max_n} here{more}.", "n")
    options = {"generation_len": number(body, "max_tokens", int, None, low=1)}
    if options["generation_len"] is not None and options["generation_len"] > max_tokens:
        message = f"'max_tokens' is at most {max_tokens} here (the decoder's cache): ask for fewer, or serve with a larger --ctx_len."
        raise APIError(400, message, "max_tokens")
    temperature = number(body, "temperature", float, None, low=0.0, high=2.0)
    top_p = number(body, "top_p", float, None, low=0.0, high=1.0, low_open=True)
    top_k = number(body, "top_k", int, None, low=-1)
    seed = number(body, "seed", int, None, low=0)
    if temperature == 0:
        options["do_sample"] = False
    elif temperature is not None or generation_config.do_sample:
        no_top_k = generation_config.top_k if generation_config.top_k is not None else 0
        top_k = no_top_k if top_k is None else max(top_k, 0)
        options.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed)
    if n > 1 and not options.get("do_sample"):
        raise APIError(400, "'n' above 1 needs sampling (a temperature above 0): greedy decoding writes one answer.", "n")
    if body.get("n") is not None and max_n > 1:  # the request's, not the checkpoint's num_return_sequences
        options["num_return_sequences"] = n
    if top_logprobs is not None:
        if not options.get("do_sample") and (generation_config.num_beams or 1) > 1:
            message = (
                f"Log-probabilities are not given with this checkpoint's beam search (num_beams={generation_config.num_beams}): "
                "leave them out, or sample (a temperature above 0)."
            )
            raise APIError(400, message, "logprobs")
        options["top_logprobs"] = top_logprobs
    return options


async def served_body(request: Request, max_body_bytes: int, names: list[str]) -> tuple[dict, str | None]:
    """A request's JSON body and the model it names, which must be one of ``names`` (the served id first): else a 404."""
    body = parse_json(await read_limited_body(request, max_body_bytes))
    name = body.get("model")
    if name and name not in names:
        raise APIError(404, f"The model '{name}' does not exist; this server serves '{names[0]}'.", "model")
    return body, name


def token_steps(row: np.ndarray, width: int, count: int, entries: list | None) -> tuple[list[int], list]:
    """The ``count`` tokens a decoder sequence generated after its ``width``-token prompt, and their logprob entries."""
    return [int(t) for t in row[width : width + count]], (entries or [])[:count]


def finish_and_count(row: np.ndarray, width: int, rules: Seq2SeqRules, generation_len: int | None, slots: int) -> tuple[str, int]:
    """A decoder sequence's finish reason and generated tokens (after its ``width``-token prompt, up to and with its
    end); ``generation_len``: the request's max_tokens (None: the checkpoint's length, within the decoder's ``slots``)."""
    generated = row[width:]
    ends = np.flatnonzero(np.isin(generated, list(rules.eos_token_ids)))
    limit = generation_len if generation_len is not None else min(rules.new_tokens(width), slots - width + 1)
    # without an end token the sequence ran to the limit (a sampled pad id among its tokens counts too)
    count = int(ends[0]) + 1 if len(ends) else min(len(generated), limit)
    # an end token at the limit may be the checkpoint's forced one (BART's, Marian's): the length stopped it
    return ("stop" if len(ends) and count < limit else "length"), count


def answer_of(
    row: np.ndarray, width: int, rules: Seq2SeqRules, generation_len: int | None, slots: int, decode, stops: tuple[list[str], bool]
) -> tuple[str, str, int, str | None]:
    """A decoder sequence's answer after its ``width``-token prompt: its text (cut at the first stop string, as vLLM
    cuts it), finish reason, tokens (up to and with its end, or the one that completed the stop string) and stop string
    (finish_and_count's arguments; ``decode``: the text of token ids; ``stops``: requested_stops')."""
    finish, count = finish_and_count(row, width, rules, generation_len, slots)
    text, count, stop_reason = cut_at_stop(decode, [int(t) for t in row[width : width + count]], *stops)
    return text, ("stop" if stop_reason is not None else finish), count, stop_reason


def before_cut(decode, ids: list[int], cut: int | None) -> list[int]:
    """Where the text of each of ``ids`` starts in their text, for those whose text begins before ``cut`` (a stop
    string's; None: all of them): the tokens whose logprobs an answer cut there gives."""
    offsets = [len(decode(ids[:i])) for i in range(len(ids))]
    return offsets if cut is None else [o for o in offsets if o < cut]


def usage_of(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


def create_seq2seq_app(
    model, tokenizer, model_id: str, max_tokens: int, *, served_names=None, api_key=None, max_body_bytes=DEFAULT_MAX_BODY_BYTES
) -> FastAPI:
    """The app over a compiled QEFFAutoModelForSeq2SeqLM (``max_tokens``: the most its decoder's cache holds) and its
    tokenizer."""
    app = FastAPI(title="QEfficient encoder-decoder", version="1")
    names = served_model_names(model_id, served_names)
    lock = asyncio.Lock()  # one request at a time on the sessions
    rules = Seq2SeqRules.from_generation_config(model.generation_config, model.config)
    token_text = TokenText(tokenizer)
    decode = lambda ids: model.text_of(tokenizer, ids)  # noqa: E731
    if model.two_vocabularies():
        raise ValueError(f"'{model_id}' reads prompts and writes answers in two vocabularies (two tokenizers): it is not served here.")
    max_input = model.max_input_positions()
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    @app.post("/v1/chat/completions")
    async def chat(_: Request):
        raise APIError(400, f"'{model_id}' is an encoder-decoder without a chat template: send the text as 'prompt' to /v1/completions.")

    @app.post("/v1/completions")
    async def completions(request: Request):
        body, name = await served_body(request, max_body_bytes, names)
        prompts = _prompts(body.get("prompt"))
        logprobs = number(body, "logprobs", int, None, low=0, high=MAX_COMPLETION_LOGPROBS)
        options = sampling_options(body, model.generation_config, max_tokens, logprobs, max_n=MAX_PROMPTS)
        stops = requested_stops(body)
        # the choices of each prompt: the request's n, else the checkpoint's num_return_sequences
        per_prompt = options.get("num_return_sequences") or model.generation_config.num_return_sequences or 1
        if len(prompts) * per_prompt > MAX_PROMPTS:
            raise APIError(400, f"At most {MAX_PROMPTS} choices per request; these prompts ask for {len(prompts) * per_prompt}.", "n")
        prompt_ids = tokenizer(prompts)["input_ids"]
        longest = max(len(ids) for ids in prompt_ids)
        if max_input and longest > max_input:
            raise APIError(400, f"A prompt has {longest} tokens; this model reads at most {max_input}: shorten it.", "prompt")
        stream, include_usage, continuous_usage = streaming_options(body)
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()), "model": name or model_id}
        prompt_tokens = sum(len(ids) for ids in prompt_ids)
        if stream:
            per_choice = [len(ids) for ids in prompt_ids for _ in range(per_prompt)]
            usage = (per_choice, continuous_usage, prompt_tokens) if include_usage else None
            return await streamed(prompts, options, stops, head, usage)
        async with lock:
            try:
                info = await asyncio.to_thread(model.generate, tokenizer, prompts, **options)
            except (ValueError, NotImplementedError) as err:
                raise APIError(400, str(err)) from None
        rows = [row for batch in info.generated_ids for row in batch]
        choices, completion_tokens = [], 0
        for i, (row, text) in enumerate(zip(rows, info.texts)):
            text, finish, count, stop_reason = answer(row, text, options["generation_len"], stops)
            completion_tokens += count
            logprobs = choice_logprobs(row, count, info, i, len(text) if stop_reason is not None else None)
            choices.append({"index": i, "text": text, "logprobs": logprobs, "finish_reason": finish, "stop_reason": stop_reason})
        return head | {"choices": choices, "usage": usage_of(prompt_tokens, completion_tokens)}

    def answer(row: np.ndarray, text: str, generation_len: int | None, stops: tuple[list[str], bool]) -> tuple[str, str, int, str | None]:
        """answer_of for a choice; without stop strings its text is generate()'s ``text``."""
        if not stops[0]:
            return (text, *finish_and_count(row, 1, rules, generation_len, max_tokens), None)
        return answer_of(row, 1, rules, generation_len, max_tokens, decode, stops)

    def choice_logprobs(row: np.ndarray, count: int, info, index: int, cut: int | None) -> dict | None:
        """The logprobs of a choice's ``count`` tokens; with a stop string's ``cut``, of those whose text begins before."""
        if info.logprobs is None:
            return None
        ids, steps = token_steps(row, 1, count, info.logprobs[index])
        offsets = before_cut(decode, ids, cut)
        return completion_logprobs(token_text, ids[: len(offsets)], steps[: len(offsets)], offsets)

    async def streamed(
        prompts: list[str], options: dict, stops: tuple[list[str], bool], head: dict, usage: tuple[list[int], bool, int] | None
    ) -> StreamingResponse:
        """Server-sent events as vLLM sends them: each choice's text in pieces as it is decoded (one generate() call for
        every prompt, as without streaming: the same batches and seeds), then each choice's finish reason, the usage
        where asked (``usage``: each choice's prompt tokens, whether every chunk carries its choice's usage so far, vLLM's
        continuous_usage_stats, and the prompts' tokens, each prompt once), then [DONE]; a failure after the first piece
        ends it with vLLM's error event (before it, it is an error answer: worker_items). The lock is held until the
        worker thread is done, even when the client leaves first. With stop strings each choice's text is held back where
        it may begin one (StopStream)."""
        beams = not options.get("do_sample") and (model.generation_config.num_beams or 1) > 1
        held: dict[int, StopStream] = {}

        def work(send) -> None:  # on the worker thread
            def piece(row: int, text: str, step: tuple | None) -> None:
                steps, generated = [] if step is None else [step], streamer.generated(row)
                if stops[0]:
                    stream = held.setdefault(row, StopStream(*stops, decode))
                    text, steps = stream.feed(text, step, streamer.tokens(row))
                    generated = generated if stream.kept is None else stream.kept
                if text or steps:
                    send("text", row, text, steps, generated)

            streamer = None if beams else RowsStreamer(decode, piece, open_words=options.get("top_logprobs") is None)
            send("done", model.generate(tokenizer, prompts, streamer=streamer, **options), streamer)

        items = await worker_items(lock, work)

        def event(choices: list[dict], **more) -> str:
            return f"data: {json.dumps(head | {'choices': choices} | more)}\n\n"

        def choice_event(index: int, text: str, finish: str | None, steps: list, generated: int, stop_reason: str | None = None) -> str:
            logprobs = completion_logprobs(token_text, *([s[i] for s in steps] for i in range(3))) if steps else None
            choice = {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish, "stop_reason": stop_reason}
            if usage is None:
                return event([choice])
            prompt_counts, continuous, _ = usage
            return event([choice], usage=usage_of(prompt_counts[index], generated) if continuous else None)

        async def events():
            async for kind, *rest in items:
                if kind == "text":
                    row, piece, steps, generated = rest
                    yield choice_event(row, piece, None, steps, generated)
                elif kind == "done":
                    info, streamer = rest
                    rows = [row for batch in info.generated_ids for row in batch]
                    completion_tokens = 0
                    for i, (row, text) in enumerate(zip(rows, info.texts)):
                        text, finish, count, stop_reason = answer(row, text, options["generation_len"], stops)
                        completion_tokens += count
                        # what the pieces did not give yet (all of it, with beams)
                        if stops[0]:
                            tail, steps = held.setdefault(i, StopStream(*stops, decode)).finish(text, cut=stop_reason is not None)
                        else:
                            tail, steps = (streamer.rest(i, text) if streamer else text), []
                        yield choice_event(i, tail, finish, steps, count, stop_reason)
                    if usage is not None:
                        yield event([], usage=usage_of(usage[2], completion_tokens))
                else:  # the request failed after its first byte: vLLM's error event
                    yield error_event(*rest)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def compiled_encoder_decoder(model_class, model_name: str, ctx_len: int, num_cores: int, mxfp6_matmul: bool, hf_overrides=None):
    """(model, tokenizer): an encoder-decoder of ``model_class`` loaded and compiled for ``ctx_len`` decoder tokens."""
    from transformers import AutoTokenizer

    model = model_class.from_pretrained(model_name, hf_overrides=hf_overrides or None)
    if getattr(model, "two_vocabularies", lambda: False)():  # refused before the compile it would not use
        raise ValueError(f"'{model_name}' reads prompts and writes answers in two vocabularies (two tokenizers): it is not served here.")
    model.compile(ctx_len=ctx_len, num_cores=num_cores, mxfp6_matmul=mxfp6_matmul)
    return model, AutoTokenizer.from_pretrained(model.local_model_dir)


def open_seq2seq_app(model_name: str, ctx_len: int, num_cores: int, mxfp6_matmul: bool, api_key, max_body_bytes, hf_overrides=None):
    """(app, runner) for a text encoder-decoder, compiled for ``ctx_len`` decoder tokens."""
    from QEfficient import QEFFAutoModelForSeq2SeqLM

    model, tokenizer = compiled_encoder_decoder(QEFFAutoModelForSeq2SeqLM, model_name, ctx_len, num_cores, mxfp6_matmul, hf_overrides)
    limits = {"served_names": [model_name], "api_key": api_key, "max_body_bytes": max_body_bytes or DEFAULT_MAX_BODY_BYTES}
    app = create_seq2seq_app(model, tokenizer, model.model_name, ctx_len, **limits)
    app.state.qpc_path = model.qpc_paths["decoder_qpc_path"]
    return app, NoRunner()
