"""OpenAI-compatible HTTP API over the continuous-batching engine (FastAPI).

Routes: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions, each
completion route with ``"stream": true`` as server-sent events in OpenAI's chunk format; POST /v1/responses (OpenAI's
Responses API over the chat route: responses.py), POST /v1/messages and /v1/messages/count_tokens (Anthropic's
Messages API, as vLLM serves it: anthropic.py); vLLM's POST /tokenize,
POST /detokenize (tokenize_routes.py), GET /version and GET /metrics (metrics.py). Bad input
gets a 4xx with OpenAI's error body and never reaches the engine (protocol.py); anything
unexpected gets a JSON 500 in the same format. A full queue answers 429; a client that leaves
cancels its request, which frees its slot at the next step.

The event loop only moves bytes: bodies are read in pieces up to ``max_body_bytes`` (413 beyond),
and parsing, chat templates and tokenization run on worker threads, so /health and live streams
keep answering while a large prompt is tokenized. With an ``api_key`` every route but /health
needs ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from QEfficient._version import __version__
from QEfficient.generation.continuous_batching import Request as EngineRequest
from QEfficient.generation.lora_generation import LORA_ID
from QEfficient.generation.sampling import NoTokenLeft
from QEfficient.serving.anthropic import MESSAGES_FIELDS, MessagesCall
from QEfficient.serving.anthropic import chat_body as anthropic_chat_body
from QEfficient.serving.anthropic import error_body as anthropic_error
from QEfficient.serving.beam_answers import beam_chunks, beam_payloads, searches_done
from QEfficient.serving.choices import ChoiceText, TokenText
from QEfficient.serving.messages import holds_media_parts
from QEfficient.serving.metrics import ServerMetrics
from QEfficient.serving.protocol import APIError, Call, RequestParser, parse_json, served_model_names, template_options
from QEfficient.serving.reasoning import REASONING_PARSERS, default_parser
from QEfficient.serving.responses import RESPONSES_FIELDS, ResponsesCall
from QEfficient.serving.runner import EngineRunner, QueueFullError
from QEfficient.serving.tokenize_routes import add_tokenize_routes
from QEfficient.serving.tools import TOOL_CALL_PARSERS

logger = logging.getLogger(__name__)

# A full context of text is far smaller: 32k tokens are ~130 KB of text, ~800 KB if every character
# arrives as a \uXXXX escape; a list of 32k token ids is ~250 KB. 4 MiB leaves room for batches.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


def is_anthropic(path: str) -> bool:
    """Whether a route is Anthropic's Messages API's, whose errors come in its shape."""
    return path == "/v1/messages" or path.startswith("/v1/messages/")


class BearerAuth:
    """ASGI middleware: every HTTP route but /health needs ``Authorization: Bearer <api_key>`` (or Anthropic's
    ``x-api-key: <api_key>``, as its clients send the key)."""

    def __init__(self, app, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode("utf-8")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            headers = dict(scope["headers"])
            header, anthropic_key = headers.get(b"authorization"), headers.get(b"x-api-key")
            scheme, _, token = (header or b"").partition(b" ")
            bearer = scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
            if not (bearer or (anthropic_key is not None and hmac.compare_digest(anthropic_key.strip(), self.key))):
                header = header or anthropic_key
                message = (
                    "Incorrect API key provided."
                    if header
                    else "Missing API key: send the header 'Authorization: Bearer <key>' (or 'x-api-key: <key>') with the "
                    "server's --api-key."
                )
                failure = APIError(401, message, code="invalid_api_key")
                response = JSONResponse(anthropic_error(failure), 401) if is_anthropic(scope["path"]) else failure.response()
                response.headers["www-authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_limited_body(request: Request, max_body_bytes: int) -> bytes:
    """The body, read in pieces: one beyond ``max_body_bytes`` is refused before it is all in memory."""
    too_large = APIError(
        413,
        f"The request body is larger than this server's limit of {max_body_bytes} bytes (--max_body_bytes).",
        code="request_too_large",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body_bytes:
        raise too_large
    pieces, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > max_body_bytes:
            raise too_large
        pieces.append(piece)
    return b"".join(pieces)


def openai_app_basics(app: FastAPI, api_key: str | None) -> None:
    """What every app of this server has: the API key check, GET /version (vLLM's), and errors as OpenAI's JSON bodies
    (a 4xx for the client's mistakes, unknown routes and wrong methods included; a 500 for anything unexpected)."""
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key)

    @app.get("/version")
    async def version() -> dict:
        return {"version": __version__}

    @app.exception_handler(APIError)
    async def api_error(_, err: APIError):  # noqa: ANN001
        return err.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, err: StarletteHTTPException):  # noqa: ANN001 (unknown route, wrong method)
        failure = APIError(err.status_code, str(err.detail), kind="invalid_request_error")
        return JSONResponse(anthropic_error(failure), err.status_code) if is_anthropic(request.url.path) else failure.response()

    @app.exception_handler(Exception)
    async def unexpected(_, err: Exception):  # noqa: ANN001 (Starlette re-raises it after this answer: uvicorn logs it)
        return APIError(
            500, f"The server had an error while processing your request ({type(err).__name__}).", kind="server_error"
        ).response()


def single_model_routes(app: FastAPI, model_id: str, busy) -> None:
    """GET /health and GET /v1/models of an app that runs one request at a time (``busy()``: whether one runs)."""

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "busy": busy()}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "qefficient"}]}


def structured_output_tables(tokenizer, engine):
    """A function giving the engine's GrammarTokenizer (structured output), built once at its first call (about a
    second for a large vocabulary; requests without a grammar never pay it)."""
    lock, built = threading.Lock(), []

    def tables():
        with lock:
            if not built:  # a failure is kept too: every later request gets the same answer at once
                from QEfficient.generation.constraints import GrammarTokenizer

                try:
                    built.append(GrammarTokenizer(tokenizer, engine.vocab, sorted(engine.eos_ids)))
                except (ImportError, ValueError, AttributeError) as err:
                    built.append(err)
            if isinstance(built[0], Exception):
                raise built[0]
            return built[0]

    return tables


class ReleasingStream(StreamingResponse):
    """A server-sent event stream that lets its engine requests go however it ends: also where it never starts (its
    client gone first), when no ``finally`` of its body runs, and where the ASGI server reports the client gone by an
    exception. ``gone``: whether the client has left; one gone before the first event is sent nothing."""

    def __init__(self, body: AsyncIterator[str], release: Callable[[], None], gone: Callable[[], Awaitable[bool]]) -> None:
        super().__init__(unless_gone(body, gone), media_type="text/event-stream")
        self.release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


async def unless_gone(body: AsyncIterator[str], gone: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
    """``body``'s events, unless its client has left by the time the first is ready (then none: not even [DONE])."""
    first = True
    try:
        async for event in body:
            if first and await gone():
                return
            first = False
            yield event
    finally:
        await body.aclose()


def create_app(
    runner: EngineRunner,
    tokenizer,
    model_id: str,
    ctx_len: int,
    *,
    served_names: list[str] | None = None,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    adapters: list[str] | None = None,
    images=None,
    chat_template: str | None = None,
    tool_call_parser: str | None = None,
    reasoning_parser: str | None = None,
) -> FastAPI:
    """The app; ``served_names`` are other names a request's ``model`` may use (the id comes first).
    ``adapters``: LoRA adapter names in table order (row i + 1), each a model id of its own (as vLLM).
    ``images``: a vision-language model's prompts (serving/vision_language.ImagePrompts): chat takes image parts.
    ``chat_template``: the Jinja template chat requests go through, instead of the model's own (vLLM's --chat-template).
    ``tool_call_parser``: the model's tool-call syntax (serving/tools.py), which lets chat requests leave tool_choice
    "auto" (vLLM's --enable-auto-tool-choice --tool-call-parser). ``reasoning_parser``: the syntax of the model's
    thinking, which chat answers return apart as ``reasoning`` (serving/reasoning.py, vLLM's --reasoning-parser)."""
    if tool_call_parser not in (None, *TOOL_CALL_PARSERS):
        raise ValueError(f"tool_call_parser must be one of {TOOL_CALL_PARSERS}, got {tool_call_parser!r}.")
    if reasoning_parser not in (None, *REASONING_PARSERS):
        raise ValueError(f"reasoning_parser must be one of {REASONING_PARSERS}, got {reasoning_parser!r}.")
    reasoning_parser = default_parser(tokenizer, reasoning_parser)  # gpt-oss's harmony is read without being asked
    if chat_template is not None:  # a vision-language model's is set on its processor (vision_language.py)
        tokenizer.chat_template = chat_template
    app = FastAPI(title="QEfficient", version="1")
    app.state.tokenizer, app.state.runner, app.state.model_id = tokenizer, runner, model_id
    adapter_ids = {name: row for row, name in enumerate(adapters or [], start=1)}
    names = served_model_names(model_id, served_names) + list(adapter_ids)
    grammars = structured_output_tables(tokenizer, runner.engine)
    parser = RequestParser(
        tokenizer, names, ctx_len, runner.engine.vocab, runner.max_queue, images, grammars, tool_call_parser, reasoning_parser
    )
    parser.beam_slots = runner.engine.beam_slots
    recorded_lock = threading.Lock()
    token_text = TokenText(tokenizer)
    metrics = ServerMetrics(model_id, lambda: len(runner.engine.busy_slots()), lambda: runner.pending)
    openai_app_basics(app, api_key)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": ("ok" if runner.error is None else "degraded") if runner.alive else "down",
            "busy_slots": len(runner.engine.busy_slots()),
            "waiting": runner.pending,
        }

    @app.get("/v1/models")
    async def models() -> dict:
        # vLLM's model card: the context a client may fill (max_model_len), the model each name serves (root, parent)
        base = {"id": model_id, "object": "model", "created": 0, "owned_by": "qefficient", "root": model_id, "parent": None}
        base["max_model_len"] = parser.ctx_len
        return {"object": "list", "data": [base] + [{**base, "id": name, "root": name, "parent": model_id} for name in adapter_ids]}

    async def read_body(request: Request) -> bytes:
        return await read_limited_body(request, max_body_bytes)

    add_tokenize_routes(app, parser, read_body)

    @app.post("/v1/completions")
    async def completions(request: Request):
        raw = await read_body(request)
        return await answer(request, await asyncio.to_thread(lambda: parser.completion(parse_json(raw))))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        raw = await read_body(request)
        body = await asyncio.to_thread(parse_json, raw)
        # chats with images fetch them: on a pool of their own, so that slow image hosts hold up no other request
        executor = images.executor if images is not None and holds_media_parts(body) else None
        chat = await asyncio.get_running_loop().run_in_executor(executor, parser.chat, body)
        return await answer(request, chat)

    @app.post("/v1/responses")
    async def responses(request: Request):
        raw = await read_body(request)
        body = await asyncio.to_thread(parse_json, raw)
        shape = ResponsesCall(body, model_id, lambda text: len(tokenizer.encode(text, add_special_tokens=False)))
        executor = images.executor if images is not None and holds_media_parts(shape.chat) else None
        try:
            chat = await asyncio.get_running_loop().run_in_executor(executor, parser.chat, shape.chat)
        except APIError as err:  # the chat route's 400, naming the Responses API's fields
            raise err.in_terms_of(RESPONSES_FIELDS) from None
        return await answer(request, chat, shape)

    @app.post("/v1/messages")
    async def messages(request: Request):
        async def reply():
            body = await asyncio.to_thread(parse_json, await read_body(request))
            shape = MessagesCall(body, model_id)
            executor = images.executor if images is not None and holds_media_parts(shape.chat) else None
            try:
                chat = await asyncio.get_running_loop().run_in_executor(executor, parser.chat, shape.chat)
            except APIError as err:  # the chat route's 400, naming the Messages API's fields
                raise err.in_terms_of(MESSAGES_FIELDS) from None
            return await answer(request, chat, shape)

        return await in_anthropic_shape(reply)

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request):
        def count(raw: bytes) -> dict:
            chat = anthropic_chat_body(parse_json(raw), count_only=True)
            parser.check_model(chat)
            if images is not None:  # the prompt as a chat request makes it, its images' tokens in it
                return {"input_tokens": len(parser.chat({**chat, "max_tokens": 1}).jobs[0].tokens)}
            tools = chat.get("tools") or None  # as the answer's prompt has them, tool_choice "none"'s too
            text = parser.chat_prompt(chat["messages"], tools=tools, options=template_options(chat))
            return {"input_tokens": len(tokenizer(text, add_special_tokens=False)["input_ids"])}

        async def reply():
            try:
                return await asyncio.to_thread(count, await read_body(request))
            except APIError as err:  # the chat route's 400, naming the Messages API's fields
                raise err.in_terms_of(MESSAGES_FIELDS) from None

        return await in_anthropic_shape(reply)

    async def in_anthropic_shape(reply):
        """``reply()``'s answer, or its error in Anthropic's shape (a 500 for anything unexpected), as its clients read
        them."""
        try:
            return await reply()
        except APIError as err:
            return JSONResponse(anthropic_error(err), status_code=err.status)
        except Exception as err:
            logger.error("a /v1/messages request failed", exc_info=err)
            failure = APIError(500, f"The server had an error while processing your request ({type(err).__name__}).", kind="server_error")
            return JSONResponse(anthropic_error(failure), status_code=500)

    async def answer(http_request: Request, call: Call, shape: ResponsesCall | MessagesCall | None = None):
        """The engine's answer to ``call``, in chat's or completions' shape, or the Responses API's or Anthropic's
        Messages API's (``shape``)."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def tell(item: tuple) -> None:  # on the engine's thread
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the answer's loop is closed (its client gone): nothing to tell, the engine goes on
                pass

        def ended(request: EngineRequest, index: int) -> None:  # on the engine's thread
            try:
                if request.cancelled.is_set():  # a stop string found, or the client gone: nothing more will change it
                    record(request)
            finally:  # the answer never waits on a metric
                tell((index, True, request.finish_reason))

        def engine_request(index: int) -> EngineRequest:
            job = call.jobs[index]
            return EngineRequest(
                job.tokens,
                job.max_tokens,
                job.sampling,
                on_token=lambda r, t: tell((index, False, None)),
                on_done=lambda r: ended(r, index),
                top_logprobs=job.top_logprobs,
                prompt_logprobs=job.prompt_top,
                constraint=job.constraint,
                stop_token_ids=job.end_rules.stop_token_ids,
                ignore_eos=job.end_rules.ignore_eos,
                min_tokens=job.end_rules.min_tokens,
                beams=job.beams,
                prompt_only=job.echo_only,
                extra={**job.extra, **({LORA_ID: adapter_ids[call.model]} if call.model in adapter_ids else {})},
            )

        requests = [engine_request(i) for i in range(len(call.jobs))]
        for r in requests:  # known before the first byte: min_tokens (and one-token bad words) bar every allowed id at first
            allowed = set(r.sampling.allowed_token_ids or ()) - {w[0] for w in r.sampling.bad_words_ids or () if len(w) == 1}
            if r.sampling.allowed_token_ids and r.min_tokens and runner.engine.ending_ids(r).issuperset(allowed):
                message = "'allowed_token_ids' are all ending ids, which 'min_tokens' bars at first: nothing could be written."
                raise APIError(400, message, "allowed_token_ids")
        try:
            runner.submit_all(requests)
        except QueueFullError as err:
            raise APIError(429, str(err), kind="rate_limit_error", code="queue_full") from None
        except RuntimeError as err:
            raise APIError(503, str(err), kind="server_error", code="engine_down") from None
        try:  # from here the requests run: whatever fails lets them go (and counts them)
            head = {
                "id": f"{'chatcmpl' if call.chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion" if call.chat else "text_completion",
                "created": int(time.time()),
                "model": call.model if call.model in adapter_ids else model_id,
            }
            if call.jobs[0].beams is not None:
                return await beam_answer(http_request, call, requests, events, head)
            ending = runner.engine.ending_ids
            choices = [ChoiceText(tokenizer, token_text, r, job, call.chat, ending(r)) for r, job in zip(requests, call.jobs)]
            if shape is not None:
                shape.prompt_tokens = len(call.jobs[0].tokens)  # Anthropic's stream opens with it
            if call.stream:
                source = payloads(call, requests, choices, events, head)
                events_out = sse(source) if shape is None else shape.events(source)
                return ReleasingStream(events_out, lambda: release(requests), http_request.is_disconnected)
        except BaseException:
            release(requests)
            raise
        texts, reasons = [""] * len(choices), [None] * len(choices)
        watcher = asyncio.create_task(cancel_on_disconnect(http_request, requests))
        try:
            async for index, piece, reason, _ in progress(events, choices):
                texts[index] += piece
                reasons[index] = reason or reasons[index]
        finally:
            watcher.cancel()
            release(requests)
        out: list[dict[str, Any]] = []
        for index, choice in enumerate(choices):
            reason = reasons[index]
            if call.chat:
                reasoning, content = call.reasoning.split(texts[index]) if call.reasoning is not None else (None, texts[index])
                thinking = call.reasoning.fields(reasoning) if call.reasoning is not None else {}
                body = {"message": {"role": "assistant", "content": content if content or reasoning is None else None, **thinking}}
                read = texts[index] if reads_markup(call) else content
                message = call.tools.message(read) if call.tools is not None else None
                if message is not None:  # tool calls (serving/tools.py)
                    body, reason = {"message": {**message, **thinking}}, call.tools.finish_reason(reason, read)
                elif call.tools is not None and content:  # no calls: the text less the syntax's markers, as streamed
                    body["message"]["content"] = call.tools.plain(read)
                if call.chat_echo:  # vLLM's: the continued message's text first
                    body["message"]["content"] = call.chat_echo + (body["message"]["content"] or "")
            else:
                body = {"text": texts[index]}
            scored = {} if call.chat or call.jobs[index].prompt_logprobs is None else {"prompt_logprobs": choice.vllm_prompt_logprobs()}
            end = {"finish_reason": reason, "stop_reason": choice.stop_reason}
            ids = choice.token_ids(with_prompt=not call.chat)  # vLLM's return_token_ids: a chat's prompt ids beside the choices
            out.append({"index": index, **body, "logprobs": choice.all_logprobs(), **end, **scored, **ids})
        if call.chat and call.jobs[0].prompt_logprobs is not None:  # vLLM's chat answer has them once, beside the choices
            head["prompt_logprobs"] = choices[0].vllm_prompt_logprobs()
        if call.chat and call.jobs[0].return_token_ids:
            head["prompt_token_ids"] = list(call.jobs[0].tokens)
        answered = {**head, "choices": out, "usage": usage(call, choices)}
        return answered if shape is None else shape.response(answered)

    async def beam_answer(http_request: Request, call: Call, requests: list[EngineRequest], events: asyncio.Queue, head: dict):
        """A use_beam_search call's answer once its searches end (serving/beam_answers.py)."""
        watcher = asyncio.create_task(cancel_on_disconnect(http_request, requests))
        try:
            await searches_done(events, len(requests))
        finally:
            watcher.cancel()
            release(requests)
        choices, used, each = beam_payloads(call, requests, tokenizer)
        if not call.stream:
            return {**head, "choices": choices, "usage": used}

        async def chunks():
            for chunk in beam_chunks(call, choices, used, each, head):
                yield chunk

        return ReleasingStream(sse(chunks()), lambda: None, http_request.is_disconnected)

    def release(requests: list[EngineRequest]) -> None:
        """A client that went away (or an answer sent) frees its slots at the engine's next step; the requests that
        ended go into the metrics, as the answer read them (a stop string the engine wrote past, found only now)."""
        for r in requests:
            r.cancelled.set()
            if r.finish_reason is not None:
                record(r)

    def record(request: EngineRequest) -> None:
        """A request into /metrics, once (from the engine's thread or the answer's, whichever sees it end last)."""
        with recorded_lock:
            if request.counted:
                return
            request.counted = True
        try:
            metrics.finished(request)
        except Exception:  # a metric never fails an answer
            logger.exception("metrics failed")

    def reads_markup(call: Call) -> bool:
        """Whether the tool parser reads the whole answer, not the content: harmony's calls are messages of it."""
        return call.reasoning is not None and call.reasoning.syntax.markup and call.tools is not None and call.tools.reads_markup

    def usage(call: Call, choices: list[ChoiceText]) -> dict:
        prompt = sum(len(job.tokens) for job in call.jobs[:: call.n])  # each prompt once, whatever its n
        completion = sum(choice.generated for choice in choices)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    async def cancel_on_disconnect(http_request: Request, requests: list[EngineRequest]) -> None:
        while not await http_request.is_disconnected():
            await asyncio.sleep(0.25)
        for r in requests:
            r.cancelled.set()

    async def progress(events: asyncio.Queue, choices: list[ChoiceText]) -> AsyncIterator[tuple[int, str, str | None, dict | None]]:
        """(choice index, new text, finish reason or None, logprobs or None) as the engine goes."""
        remaining = len(choices)
        while remaining:
            index, done, reason = await events.get()
            remaining -= done
            update = choices[index].update(done, reason)
            if update is None:
                continue
            if update[1] == "error":
                failure = choices[index].request.error
                if isinstance(failure, NoTokenLeft):  # the request's own rules: a client error
                    raise APIError(400, f"Generation stopped: {failure}")
                raise APIError(500, f"Generation failed: {failure or 'the engine step failed'}.", kind="server_error", code="engine_error")
            yield (index, *update)

    async def sse(source: AsyncIterator[dict]) -> AsyncIterator[str]:
        """A stream's payloads as server-sent events, then OpenAI's [DONE]."""
        try:
            async for payload in source:
                yield f"data: {json.dumps(payload)}\n\n"
        finally:
            await source.aclose()  # a client that went away: the engine's requests are let go now
        yield "data: [DONE]\n\n"

    async def payloads(call: Call, requests, choices, events, head: dict) -> AsyncIterator[dict]:
        """A stream's chunks (and its usage chunk, or an error body where it fails) as the engine goes."""
        head = {**head, "object": "chat.completion.chunk" if call.chat else "text_completion"}

        tool_streams = [call.tools.stream() for _ in choices] if call.tools is not None else None  # serving/tools.py
        thinking = [call.reasoning.stream() for _ in choices] if call.reasoning is not None else None  # serving/reasoning.py
        opened: set[int] = set()  # the choices that sent a chunk

        def chunk(index: int, piece: str | None, reason: str | None, logprobs: dict | None, first: bool = False) -> dict | None:
            if call.chat:
                delta = {"role": "assistant", "content": ""} if first else ({"content": piece} if piece else {})
                if not first and (thinking is not None or tool_streams is not None):
                    raw = piece or ""
                    fields, piece = thinking[index].feed(raw, final=reason is not None) if thinking else ({}, raw)
                    delta = {"content": piece} if piece else {}
                    if tool_streams is not None:  # the calls as they are written, in the content (harmony's: the answer)
                        calls = tool_streams[index]
                        delta = calls.delta(raw if reads_markup(call) else piece, final=reason is not None) or {}
                        reason = call.tools.finish_reason(reason, calls.text) if calls.called else reason
                    delta = {**fields, **delta}
                    if not (delta or reason or (logprobs and any(logprobs.values()))):
                        return None  # a piece held back (it may begin a call or a tag)
                    if not (delta or reason) and thinking is not None and not call.reasoning.include and not thinking[index].sent_content:
                        return None  # vLLM's: a stream without the reasoning leaves out its tokens' chunks, logprobs too
                choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
            else:
                choice = {"index": index, "text": piece or "", "logprobs": logprobs, "finish_reason": reason}
            if reason is not None:  # vLLM's, in the last chunk of a choice
                choice["stop_reason"] = choices[index].stop_reason
            # vLLM's return_token_ids: each chunk's new ids; the prompt's in a completion choice's first chunk, and in
            # a chat stream's first chunk, beside the choices
            ids = choices[index].token_ids(with_prompt=index not in opened and (not call.chat or index == 0))
            opened.add(index)
            prompt_ids = {"prompt_token_ids": ids.pop("prompt_token_ids")} if call.chat and "prompt_token_ids" in ids else {}
            choice |= ids
            return {**head, "choices": [choice], **({"usage": chunk_usage(index)} if call.include_usage else {}), **prompt_ids}

        def chunk_usage(index: int) -> dict | None:
            if not call.continuous_usage:
                return None
            prompt, completion = len(call.jobs[index].tokens), choices[index].generated
            return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

        try:
            if call.chat:
                for index in range(len(choices)):
                    yield chunk(index, None, None, None, first=True)
                for index in range(len(choices) if call.chat_echo else 0):  # vLLM's echo: the continued message's text
                    echoed = {"index": index, "delta": {"content": call.chat_echo}, "logprobs": None, "finish_reason": None}
                    yield {**head, "choices": [echoed], **({"usage": chunk_usage(index)} if call.include_usage else {})}
            async for index, piece, reason, logprobs in progress(events, choices):
                if piece or reason or (logprobs and any(logprobs.get(k) for k in ("content", "tokens"))):
                    sent = chunk(index, piece, reason, logprobs)
                    if sent is not None:
                        yield sent
            if call.include_usage:
                yield {**head, "choices": [], "usage": usage(call, choices)}
        except APIError as err:  # the status line has gone: the error travels as an event, as vLLM sends it
            yield err.body()
        except Exception as err:
            logger.error("stream failed", exc_info=err)
            yield APIError(500, f"The server had an error while streaming ({type(err).__name__}).", kind="server_error").body()
        finally:
            release(requests)

    return app
