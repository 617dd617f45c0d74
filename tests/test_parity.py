"""Per architecture: the rewritten PyTorch module matches HF logits, and ONNX Runtime generation
matches HF greedy generation token for token."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from tests.helpers import hf_greedy, real_tokens
from tests.tiny_models import TINY_CONFIGS

ARCHS = sorted(TINY_CONFIGS)
PROMPTS = [
    "Once upon a time a robot learned to paint the sky blue and the grass green, then",  # several prefill chunks
    "My name is",
    "The sun rises over the quiet sea",
]


def run_static(qeff_module, ids: torch.Tensor, chunk: int, ctx_len: int):
    """Prefill ids [1,L] in right-padded chunks, then return (last logits, cache)."""
    past = [torch.zeros(qeff_module.kv_shape(1, ctx_len)) for _ in range(2 * qeff_module.num_layers)]
    length = ids.shape[1]
    for start in range(0, length, chunk):
        piece = ids[:, start : start + chunk]
        inp = torch.zeros(1, chunk, dtype=torch.long)
        pos = torch.full((1, chunk), -1)
        inp[:, : piece.shape[1]] = piece
        pos[:, : piece.shape[1]] = torch.arange(start, start + piece.shape[1])
        logits, *past = qeff_module(inp, pos, *past)
    return logits, past


@pytest.mark.parametrize("arch", ARCHS)
def test_pytorch_logits_match_hf(arch, tiny_model_dir):
    folder = tiny_model_dir(arch)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    qeff = QEFFAutoModelForCausalLM.from_pretrained(folder).model
    ids = torch.randint(3, 300, (1, 21), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = hf(ids).logits[0]
        logits, past = run_static(qeff, ids, chunk=8, ctx_len=32)
        assert torch.allclose(logits[0, 0], ref[-1], atol=1e-5, rtol=0), (logits[0, 0] - ref[-1]).abs().max()
        nxt = ref[-1].argmax().view(1, 1)
        ref2 = hf(torch.cat([ids, nxt], 1)).logits[0, -1]
        logits2, *_ = qeff(nxt, torch.tensor([[ids.shape[1]]]), *past)
        assert torch.allclose(logits2[0, 0], ref2, atol=1e-5, rtol=0), (logits2[0, 0] - ref2).abs().max()


@pytest.mark.parametrize("arch", ARCHS)
def test_onnxruntime_generation_matches_hf(arch, tiny_model_dir):
    folder = tiny_model_dir(arch)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=96, batch_size=2, num_cores=2)
    gen_len = 24
    info = model.generate(tokenizer, PROMPTS, generation_len=gen_len, stream=False)
    ours = [row for batch in info.generated_ids for row in batch]
    assert len(ours) == len(PROMPTS) and len(info.texts) == len(PROMPTS)
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    for prompt, row in zip(PROMPTS, ours):
        ref = hf_greedy(hf, tokenizer, prompt, gen_len)
        assert real_tokens(row, tokenizer.pad_token_id, len(ref)) == ref, prompt
