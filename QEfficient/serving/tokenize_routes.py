"""vLLM's POST /tokenize and /detokenize: what clients use to count a prompt's tokens against the
context, or to turn ids back into text, with the server's own tokenizer and chat template.

/tokenize takes a ``prompt`` (tokenized with the tokenizer's special tokens unless ``add_special_tokens`` is false)
or chat ``messages`` (through the chat template, without the tokenizer's special tokens unless asked, as a chat
request is tokenized; a vision-language model's, the prompt its chat request makes, each image's tokens in it), and
answers ``count``, ``max_model_len``, ``tokens`` and, with ``return_token_strs``, the tokens' strings. /detokenize
takes ``tokens`` and answers the ``prompt`` they decode to.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request

from QEfficient.serving.protocol import APIError, RequestParser, boolean, parse_json, template_options

# fields of vLLM's tokenize requests that would change the tokens, with the values that do not
_UNHONOURED = {"chat_template": (None,), "mm_processor_kwargs": (None, {})}


# what /tokenize passes on from a body of messages to a vision-language model's chat parsing
_CHAT_FIELDS = ("model", "messages", "tools", "add_generation_prompt", "continue_final_message", "chat_template_kwargs")


def add_tokenize_routes(app: FastAPI, parser: RequestParser, read_body) -> None:
    """The routes over ``parser``'s tokenizer, served names, context and chat template; ``read_body(request)``
    reads a body within the server's limit."""
    tokenizer = parser.tokenizer

    def tokenize(body: dict) -> dict:
        parser.check_model(body)
        for name, neutral in _UNHONOURED.items():
            if body.get(name) not in neutral:
                raise APIError(400, f"'{name}' is not supported by /tokenize here; leave it out (--chat_template sets the template).", name)
        has_prompt, has_messages = body.get("prompt") is not None, body.get("messages") is not None
        if has_prompt == has_messages:
            raise APIError(400, "Send either 'prompt' (a string) or 'messages' (a chat), one of them.", "prompt")
        if has_messages and parser.images is not None:  # the prompt a chat request makes, its images' (or audio's) tokens in it
            chat = {key: body[key] for key in _CHAT_FIELDS if key in body}
            tokens = parser.chat({**chat, "max_tokens": 1}).jobs[0].tokens
        elif has_messages:
            tools = body.get("tools") or None
            if tools is not None and not isinstance(tools, list):
                raise APIError(400, "'tools' must be a list of tool objects.", "tools")
            text = parser.chat_prompt(body["messages"], tools=tools, options=template_options(body))
            special = boolean(body, "add_special_tokens", False)
        else:
            text = body["prompt"]
            if not isinstance(text, str):
                raise APIError(400, "'prompt' must be a string.", "prompt")
            special = boolean(body, "add_special_tokens", True)
        if not (has_messages and parser.images is not None):
            tokens = tokenizer(text, add_special_tokens=special)["input_ids"]
        strings = tokenizer.convert_ids_to_tokens(tokens) if boolean(body, "return_token_strs", False) else None
        return {"count": len(tokens), "max_model_len": parser.ctx_len, "tokens": tokens, "token_strs": strings}

    def detokenize(body: dict) -> dict:
        parser.check_model(body)
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
            raise APIError(400, "'tokens' must be a list of token ids.", "tokens")
        bad = next((t for t in tokens if not 0 <= t < parser.vocab_size), None)
        if bad is not None:
            raise APIError(400, f"'tokens' has the token id {bad}, outside this model's vocabulary [0, {parser.vocab_size}).", "tokens")
        return {"prompt": tokenizer.decode(tokens)}

    @app.post("/tokenize")
    async def tokenize_route(request: Request):
        raw = await read_body(request)
        return await asyncio.to_thread(lambda: tokenize(parse_json(raw)))

    @app.post("/detokenize")
    async def detokenize_route(request: Request):
        raw = await read_body(request)
        return await asyncio.to_thread(lambda: detokenize(parse_json(raw)))
