"""Reference runs with Hugging Face transformers in PyTorch, to compare against."""

from __future__ import annotations

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
