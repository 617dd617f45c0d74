"""Reference runs with Hugging Face transformers in PyTorch, to compare against."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import torch


def hf_greedy(hf_model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """Hugging Face's own greedy generation, one prompt at a time (no padding involved)."""
    enc = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = hf_model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    return out[0, enc["input_ids"].shape[1] :].tolist()


def real_tokens(row, pad_id: int, n_ref: int) -> list[int]:
    """Our padded output row cut to the reference length, after checking the rest is padding."""
    row = [int(t) for t in row]
    assert all(t == pad_id for t in row[n_ref:]), f"tokens after the reference's end: {row[n_ref:]}"
    return row[:n_ref]


def step_logits(session, ids: list[int], start: int) -> list:
    """Logits after each of ids[start:] from a KVCacheSession: ids[: start + 1] in one prefill chunk, then
    one token at a time."""
    import numpy as np

    out = [session.run(np.array([ids[: start + 1]]), np.arange(start + 1)[None]).reshape(-1).copy()]
    for i in range(start + 1, len(ids)):
        out.append(session.run(np.array([[ids[i]]]), np.array([[i]])).reshape(-1).copy())
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_on_loopback(app, log_level: str = "error") -> Iterator[str]:
    """A real uvicorn server for ``app`` on a free loopback port, in a thread; yields its base URL."""
    import httpx
    import uvicorn

    from tests.loopback import loopback_http

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            loopback_http.get(f"{url}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def tiny_chat_server(folder, chat_template: str, **options) -> Iterator[tuple]:
    """A continuous-batching server on loopback over the tiny model in ``folder``, its tokenizer given
    ``chat_template``: yields (url, runner, tokenizer, the HF model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from QEfficient.cloud.serve import build_server

    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = chat_template
    tok.save_pretrained(folder)
    app, runner = build_server(str(folder), None, num_cores=1, **options)
    try:
        with serve_on_loopback(app) as url:
            yield url, runner, tok, AutoModelForCausalLM.from_pretrained(folder).eval()
    finally:
        runner.stop()


def widen_weights(model) -> None:
    """Re-draw a tiny random model's convolution and linear weights at unit gain (Kaiming for convolutions, 1/sqrt(fan-in)
    for linears): transformers' small initial ranges leave deep vision models' outputs near constant, so that equal
    outputs would prove little; widened, they follow the input."""
    import torch
    from torch import nn

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=module.in_features**-0.5)


def infer_cli_in_process(argv: list[str], capsys, monkeypatch) -> str:
    """``python -m QEfficient.cloud.infer ARGV``'s output, run in this process: a subprocess would spend seconds importing
    torch and transformers again. The command line's process-wide settings (one-line warnings) are put back after."""
    import warnings

    from QEfficient.cloud.infer import main

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    capsys.readouterr()
    main(argv)
    return capsys.readouterr().out
