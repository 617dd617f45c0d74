"""Longrope rotary embeddings (Phi-3-mini-128k, Phi-3.5-mini, Phi-3.5-MoE, Phi-4-mini): within the positions they read
with their short factors, token-exact with transformers; past them, refused (transformers switches to the long factors
mid-generation, which a compiled graph does not reproduce)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks.arch_sweep import tiny_model
from QEfficient import QEFFAutoModelForCausalLM
from tests.tiny_models import build_tokenizer, sweep_config

PROMPT = "Once upon a time a robot learned to paint the sky"


def longrope_folder(model_type: str, folder):
    config = sweep_config(model_type)
    half = (config.hidden_size // config.num_attention_heads) // 2
    config.max_position_embeddings = 64
    config.original_max_position_embeddings = 32  # (Phi-3's config keeps it apart too)
    config.rope_parameters = {
        "rope_type": "longrope",
        "rope_theta": 10000.0,
        "short_factor": [1.0 + 0.1 * i for i in range(half)],
        "long_factor": [2.0 + i for i in range(half)],
        "original_max_position_embeddings": 32,
        **({"short_mscale": 1.1, "long_mscale": 1.2} if model_type == "phimoe" else {}),
    }
    config = type(config)(**config.to_dict())
    model = tiny_model(config)
    model.save_pretrained(folder)
    build_tokenizer().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("model_type", ["phi3", "phimoe"])
def test_longrope_within_its_short_positions_is_token_exact(model_type, tmp_path, qeff_home):
    folder = longrope_folder(model_type, tmp_path / model_type)
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    new = 32 - ids.shape[1]  # up to the last short position
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=new, min_new_tokens=new, pad_token_id=0)
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1)
    info = model.generate(tok, prompts=[PROMPT], generation_len=new, stream=False)
    assert info.generated_ids[0][0][:new].tolist() == out[0, ids.shape[1] :].tolist()
    assert hf.model.rotary_emb.rope_type == "longrope"  # the export's switch is undone
    with pytest.raises(ValueError, match=r"ctx_len \(64\) is past the 32 positions this model's longrope rotary embedding"):
        model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
