"""OpenAI's chat completions API over an image encoder-decoder (TrOCR, Donut, ViT-GPT2, Pix2Struct, Florence-2, BLIP, T5Gemma 2):
the user message's image is the encoder's input, its text (where it has any) what the model's ``image_request`` makes of
it (the decoder's prompt for Donut's task prompt ``<s_cord-v2>`` or a Pix2Struct caption start, the encoder's for a
Florence-2 task prompt, drawn onto the image for a Pix2Struct question), and the answer what the decoder writes after
it, as transformers' ``generate`` gives it for the checkpoint.

Routes: GET /health, GET /v1/models, POST /v1/chat/completions (``messages``: one user message holding one image, an
``image_url`` part with a data: URL or an http(s) URL, and optional text parts; ``max_tokens`` or
``max_completion_tokens``, ``temperature``, ``top_p``, ``top_k``, ``seed``, ``logprobs`` and ``top_logprobs`` (greedy or
sampled), ``n`` (samples of the one image, when sampling), ``stop`` with ``include_stop_str_in_output``
(serving/stop_strings.py), ``stream`` with ``stream_options.include_usage``). Requests run one at a time on a worker
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
from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES, openai_app_basics, single_model_routes
from QEfficient.serving.choices import TokenText, chat_logprobs
from QEfficient.serving.protocol import APIError, chat_top_logprobs, served_model_names, streaming_options
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.seq2seq_app import (
    MAX_PROMPTS,
    answer_of,
    before_cut,
    compiled_encoder_decoder,
    sampling_options,
    served_body,
    token_steps,
    usage_of,
)
from QEfficient.serving.stop_strings import StopStream, requested_stops
from QEfficient.serving.vision_language import read_image
from QEfficient.serving.vllm_fields import refuse_prompt_fields
from QEfficient.serving.worker_stream import RowsStreamer, error_event, worker_items


def image_and_prompt(messages) -> tuple[str, str]:
    """The one image URL and the text of a chat request's single user message."""
    if not isinstance(messages, list) or len(messages) != 1 or not isinstance(messages[0], dict) or messages[0].get("role") != "user":
        raise APIError(
            400, "Send one user message holding the image (and its text, such as a task prompt): this model answers one image.", "messages"
        )
    content = messages[0].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise APIError(400, "The message's content must be a string or a list of content parts.", "messages")
    urls = [p.get("image_url") for p in parts if p.get("type") == "image_url"]
    urls = [u.get("url") if isinstance(u, dict) else u for u in urls]  # {"url": ...}, or the URL itself
    if len(urls) != 1 or not isinstance(urls[0], str):
        raise APIError(400, f"The message must hold exactly one image_url part with a url; it holds {len(urls)}.", "messages")
    others = {p.get("type") for p in parts} - {"text", "image_url"}
    if others:
        raise APIError(400, f"Content parts of type {sorted(map(str, others))} are not read here: send text and one image_url.", "messages")
    texts = [p.get("text") or "" for p in parts if p.get("type") == "text"]
    if not all(isinstance(t, str) for t in texts):
        raise APIError(400, "A text part's 'text' must be a string.", "messages")
    return urls[0], "".join(texts).strip()


# chat fields this server does not apply, and the values that mean "none"
_NOT_APPLIED = {"tools": ([], None), "tool_choice": ("none", None), "min_tokens": (0, None), "ignore_eos": (False, None)}


def create_vision_seq2seq_app(
    model,
    image_processor,
    tokenizer,
    model_id: str,
    max_tokens: int,
    *,
    served_names=None,
    api_key=None,
    max_body_bytes=DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The app over a compiled QEFFAutoModelForVisionEncoderDecoder or a subclass (``max_tokens``: the most its
    decoder's cache holds), its image processor and tokenizer."""
    app = FastAPI(title="QEfficient image encoder-decoder", version="1")
    names = served_model_names(model_id, served_names)
    lock = asyncio.Lock()  # one request at a time on the sessions
    rules = Seq2SeqRules.from_generation_config(model.generation_config, model.config)  # the tokens generate() uses
    token_text = TokenText(tokenizer)
    openai_app_basics(app, api_key)
    single_model_routes(app, model_id, lock.locked)

    @app.post("/v1/completions")
    async def completions(_: Request):
        raise APIError(400, f"'{model_id}' reads images: send the image in a user message to /v1/chat/completions.")

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body, name = await served_body(request, max_body_bytes, names)
        if body.get("max_completion_tokens") is not None:  # the newer name; max_tokens is deprecated in OpenAI's API
            body = {**body, "max_tokens": body["max_completion_tokens"]}
        top_logprobs = chat_top_logprobs(body)
        for key, off in _NOT_APPLIED.items():
            if body.get(key) not in off:
                raise APIError(400, f"'{key}' is not applied to image encoder-decoders here: leave it out.", key)
        response_format = body.get("response_format")
        if response_format is not None and (not isinstance(response_format, dict) or response_format.get("type", "text") != "text"):
            message = "Structured output is not applied to image encoder-decoders here: leave response_format out."
            raise APIError(400, message, "response_format")
        url, prompt = image_and_prompt(body.get("messages"))
        refuse_prompt_fields(body, chat=True)  # vLLM's chat defaults pass
        options = sampling_options(
            {k: v for k, v in body.items() if k not in ("messages", "logprobs", "top_logprobs", "add_special_tokens")},
            model.generation_config,
            max_tokens,
            top_logprobs,
            max_n=MAX_PROMPTS,
        )
        stops = requested_stops(body)
        answers = options.get("num_return_sequences") or 1  # the request's n (a checkpoint's further samples unanswered)
        image = await asyncio.to_thread(read_image, url, "The image")  # fetched and decoded off the event loop
        try:  # the processor may refuse the text (a Pix2Struct question checkpoint without one, a Florence-2 task token with more)
            request = await asyncio.to_thread(model.image_request, image, prompt, tokenizer, image_processor)
        except ValueError as exc:
            raise APIError(400, f"The message's text does not suit this model's processor: {exc}", "messages") from exc
        inputs, width, prompt_tokens = request  # prompt_tokens: the encoder's positions (the image's, the text's) and the decoder's prompt
        if width + (options["generation_len"] or 1) - 1 > max_tokens:  # before a stream's first byte
            need = f"The prompt's {width} tokens and max_tokens={options['generation_len']}"
            raise APIError(400, f"{need} need more than the decoder's {max_tokens} slots: ask for fewer tokens.", "max_tokens")
        options |= inputs
        stream, include_usage, continuous_usage = streaming_options(body)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": name or model_id}
        if stream:
            return await streamed(options, stops, answers, head, width, prompt_tokens if include_usage else None, continuous_usage)
        async with lock:
            try:
                info = await asyncio.to_thread(model.generate, tokenizer, **options)
            except (ValueError, NotImplementedError) as err:
                raise APIError(400, str(err)) from None
        choices, completion_tokens = [], 0
        for index, row in enumerate(rows_of(info)[:answers]):
            text, finish, count, stop_reason = answer(row, width, options["generation_len"], stops)
            completion_tokens += count
            logprobs = None
            if info.logprobs is not None:
                ids, steps = token_steps(row, width, count, info.logprobs[index])
                if stop_reason is not None:  # the tokens whose text begins before the cut
                    ids = ids[: len(before_cut(decode, ids, len(text)))]
                logprobs = chat_logprobs(token_text, ids, steps[: len(ids)])
            message = {"role": "assistant", "content": text}
            choices.append({"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish, "stop_reason": stop_reason})
        return head | {"object": "chat.completion", "choices": choices, "usage": usage_of(prompt_tokens, completion_tokens)}

    def rows_of(info) -> list[np.ndarray]:
        return [row for batch in info.generated_ids for row in batch]

    def decode(ids) -> str:
        return model.text_of(tokenizer, ids)

    def answer(row: np.ndarray, width: int, generation_len: int | None, stops: tuple[list[str], bool]) -> tuple[str, str, int, str | None]:
        return answer_of(row, width, rules, generation_len, max_tokens, decode, stops)

    async def streamed(
        options: dict, stops: tuple[list[str], bool], answers: int, head: dict, width: int, prompt_tokens: int | None, continuous: bool
    ) -> StreamingResponse:
        """vLLM's chat stream: each of the ``answers`` choices' role, its text in pieces as it is decoded (with beams,
        whole), its finish reason, the usage where asked (``prompt_tokens`` not None; ``continuous``: in every chunk too,
        vLLM's continuous_usage_stats), then [DONE]; a failure after the first piece ends it with vLLM's error event
        (before it, it is an error answer: worker_items)."""
        beams = not options.get("do_sample") and (model.generation_config.num_beams or 1) > 1
        held = [StopStream(*stops, decode) for _ in range(answers)]  # with stop strings: the text that may begin one

        def work(send) -> None:  # on the worker thread
            def piece(row: int, text: str, step: tuple | None) -> None:
                if row < answers:
                    steps, generated = [] if step is None else [step], streamer.generated(row)
                    if stops[0]:
                        text, steps = held[row].feed(text, step, streamer.tokens(row))
                        generated = generated if held[row].kept is None else held[row].kept
                    if text or steps:
                        send("text", row, text, steps, generated)

            streamer = None if beams else RowsStreamer(decode, piece, open_words=options.get("top_logprobs") is None)
            send("done", model.generate(tokenizer, streamer=streamer, **options), streamer)

        items = await worker_items(lock, work)

        def event(choices: list[dict], **more) -> str:
            return f"data: {json.dumps(head | {'object': 'chat.completion.chunk', 'choices': choices} | more)}\n\n"

        def step_logprobs(steps: list) -> dict | None:
            return chat_logprobs(token_text, [s[0] for s in steps], [s[1] for s in steps]) if steps else None

        def choice_event(
            index: int, delta: dict, logprobs: dict | None, finish: str | None, generated: int, stop_reason: str | None = None
        ) -> str:
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish, "stop_reason": stop_reason}
            if prompt_tokens is None:
                return event([choice])
            return event([choice], usage=usage_of(prompt_tokens, generated) if continuous else None)

        async def events():
            for index in range(answers):
                yield choice_event(index, {"role": "assistant", "content": ""}, None, None, 0)
            async for kind, *rest in items:
                if kind == "text":
                    index, text, steps, generated = rest
                    yield choice_event(index, {"content": text}, step_logprobs(steps), None, generated)
                elif kind == "done":
                    info, streamer = rest
                    completion_tokens = 0
                    for index, row in enumerate(rows_of(info)[:answers]):
                        text, finish, count, stop_reason = answer(row, width, options["generation_len"], stops)
                        completion_tokens += count
                        if stops[0]:
                            tail, steps = held[index].finish(text, cut=stop_reason is not None)
                        else:  # what the pieces did not give yet (all of it, with beams)
                            tail, steps = (streamer.rest(index, text) if streamer else text), []
                        delta = {"content": tail} if tail else {}
                        yield choice_event(index, delta, step_logprobs(steps), finish, count, stop_reason)
                    if prompt_tokens is not None:
                        yield event([], usage=usage_of(prompt_tokens, completion_tokens))
                else:
                    yield error_event(*rest)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def open_vision_seq2seq_app(model_name: str, ctx_len: int, num_cores: int, mxfp6_matmul: bool, api_key, max_body_bytes, hf_overrides=None):
    """(app, runner) for an image encoder-decoder, compiled for ``ctx_len`` decoder tokens."""
    from transformers import AutoImageProcessor

    from QEfficient.base.common import QEFFCommonLoader

    model_class = QEFFCommonLoader.model_class(model_name)  # TrOCR-like, Pix2Struct, Florence-2, BLIP or T5Gemma 2
    model, tokenizer = compiled_encoder_decoder(model_class, model_name, ctx_len, num_cores, mxfp6_matmul, hf_overrides)
    image_processor = AutoImageProcessor.from_pretrained(model.local_model_dir)
    limits = {"served_names": [model_name], "api_key": api_key, "max_body_bytes": max_body_bytes or DEFAULT_MAX_BODY_BYTES}
    app = create_vision_seq2seq_app(model, image_processor, tokenizer, model.model_name, ctx_len, **limits)
    app.state.qpc_path = model.qpc_paths["decoder_qpc_path"]
    return app, NoRunner()
