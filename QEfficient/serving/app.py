"""OpenAI-compatible HTTP API over the continuous-batching engine (FastAPI).

Routes: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions, each
completion route with ``"stream": true`` as server-sent events in OpenAI's chunk format. Bad input
gets a 4xx with OpenAI's error body and never reaches the engine; a full queue answers 429; a
client that leaves a stream cancels its request, which frees its slot at the next step.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from QEfficient.generation.continuous_batching import Request as EngineRequest
from QEfficient.generation.sampling import SamplingParams
from QEfficient.serving.runner import EngineRunner, QueueFullError


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


@dataclass
class Job:
    """One request's parameters after validation."""

    tokens: list[int]
    max_tokens: int
    sampling: SamplingParams
    stop: list[str]
    stream: bool


def _number(body: dict, name: str, kind: type, default, low=None, high=None, low_open=False):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise APIError(400, f"'{name}' must be a {'integer' if kind is int else 'number'}, got {value!r}.", name)
    if (low is not None and (value <= low if low_open else value < low)) or (high is not None and value > high):
        raise APIError(400, f"'{name}' is out of range: {value}.", name)
    return kind(value)


def create_app(runner: EngineRunner, tokenizer, model_id: str, ctx_len: int) -> FastAPI:
    app = FastAPI(title="QEfficient", version="1")

    @app.exception_handler(APIError)
    async def api_error(_, err: APIError):  # noqa: ANN001
        return err.response()

    @app.get("/health")
    async def health() -> dict:
        return {
            "status": ("ok" if runner.error is None else "degraded") if runner.alive else "down",
            "busy_slots": len(runner.engine.busy_slots()),
            "waiting": runner.pending,
        }

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "qefficient"}]}

    async def read_body(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise APIError(400, f"The request body is not valid JSON: {err}.") from None
        if not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object.")
        return body

    def job_from(body: dict, prompt: str) -> Job:
        if body.get("n", 1) != 1:
            raise APIError(400, "Only n=1 is supported.", "n")
        max_tokens = _number(body, "max_tokens", int, 16, low=1)
        sampling = SamplingParams(
            temperature=_number(body, "temperature", float, 1.0, low=0, high=2),
            top_p=_number(body, "top_p", float, None, low=0, high=1, low_open=True),
            seed=_number(body, "seed", int, None),
        )
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
            raise APIError(400, "'stop' must be a string or a list of up to 4 non-empty strings.", "stop")
        tokens = tokenizer(prompt)["input_ids"]
        if not tokens:
            raise APIError(400, "The prompt is empty.", "prompt")
        if len(tokens) + max_tokens > ctx_len + 1:
            raise APIError(
                400,
                f"This model's context is {ctx_len} tokens; the prompt has {len(tokens)} and max_tokens asks for "
                f"{max_tokens}. Reduce the prompt or max_tokens.",
                "max_tokens",
                "context_length_exceeded",
            )
        return Job(tokens, max_tokens, sampling, stop, bool(body.get("stream", False)))

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await read_body(request)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt:
            raise APIError(400, "'prompt' is required and must be a non-empty string.", "prompt")
        return await serve(request, job_from(body, prompt), chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await read_body(request)
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages)
        ):
            raise APIError(400, "'messages' must be a non-empty list of {role, content} objects.", "messages")
        if not getattr(tokenizer, "chat_template", None):
            raise APIError(400, "This model has no chat template; use /v1/completions.", "messages")
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return await serve(request, job_from(body, prompt), chat=True)

    async def serve(http_request: Request, job: Job, chat: bool):
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        engine_request = EngineRequest(
            job.tokens,
            job.max_tokens,
            job.sampling,
            on_token=lambda r, t: loop.call_soon_threadsafe(events.put_nowait, ("token", t)),
            on_done=lambda r: loop.call_soon_threadsafe(events.put_nowait, ("done", r.finish_reason)),
        )
        try:
            runner.submit(engine_request)
        except QueueFullError as err:
            raise APIError(429, str(err), kind="rate_limit_error", code="queue_full") from None
        except RuntimeError as err:
            raise APIError(503, str(err), kind="server_error", code="engine_down") from None
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if job.stream:
            return StreamingResponse(stream(events, engine_request, job, chat, ident, created), media_type="text/event-stream")
        text, reason = "", None
        watcher = asyncio.create_task(cancel_on_disconnect(http_request, engine_request))
        try:
            async for piece, finish in deltas(events, engine_request, job):
                text += piece
                reason = finish or reason
        finally:
            watcher.cancel()
            engine_request.cancelled.set()  # a client that went away frees its slot at the next step
        usage = {
            "prompt_tokens": len(job.tokens),
            "completion_tokens": len(engine_request.output),
            "total_tokens": len(job.tokens) + len(engine_request.output),
        }
        choice: dict[str, Any] = {"index": 0, "finish_reason": reason}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice.update(text=text, logprobs=None)
        return {
            "id": ident,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": model_id,
            "choices": [choice],
            "usage": usage,
        }

    async def cancel_on_disconnect(http_request: Request, engine_request: EngineRequest) -> None:
        while not await http_request.is_disconnected():
            await asyncio.sleep(0.25)
        engine_request.cancelled.set()

    async def deltas(events: asyncio.Queue, engine_request: EngineRequest, job: Job):
        """(new text, finish_reason or None) as tokens arrive, cut at the first stop string.

        The last len(longest stop) - 1 characters are held back until they can no longer begin a
        stop string, so a stop string split across tokens never reaches the client.
        """
        sent = ""
        hold = max((len(s) for s in job.stop), default=1) - 1
        while True:
            kind, value = await events.get()
            done = kind == "done"
            text = tokenizer.decode(engine_request.output, skip_special_tokens=True)
            if not done and text.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            hits = [i for i in (text.find(s) for s in job.stop) if i >= 0]
            if hits:
                cut = min(hits)
                engine_request.cancelled.set()
                yield (text[len(sent) : cut], None)
                while not done:  # the engine answers "cancelled"; this request ended on its stop string
                    done = (await events.get())[0] == "done"
                yield ("", "stop")
                return
            if done:
                yield (text[len(sent) :], value)
                return
            safe = len(text) - hold
            if safe > len(sent):
                yield (text[len(sent) : safe], None)
                sent = text[:safe]

    async def stream(events, engine_request: EngineRequest, job: Job, chat: bool, ident: str, created: int):
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(piece: str | None, reason: str | None, first: bool = False) -> str:
            if chat:
                delta = {"role": "assistant", "content": ""} if first else ({"content": piece} if piece else {})
                choice = {"index": 0, "delta": delta, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": piece or "", "logprobs": None, "finish_reason": reason}
            return f"data: {json.dumps({'id': ident, 'object': kind, 'created': created, 'model': model_id, 'choices': [choice]})}\n\n"

        try:
            if chat:
                yield chunk(None, None, first=True)
            async for piece, reason in deltas(events, engine_request, job):
                if piece or reason:
                    yield chunk(piece, reason)
            yield "data: [DONE]\n\n"
        finally:
            engine_request.cancelled.set()  # a client that went away frees its slot at the next step

    return app
