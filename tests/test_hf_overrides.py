"""vLLM's hf_overrides: the config changed before the weights are loaded, from Python (``from_pretrained(...,
hf_overrides=)``) and from the server (``--hf_overrides``), with vLLM's merge of sub-configs."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2VLConfig

from QEfficient import QEFFAutoModelForCausalLM, QEFFAutoModelForImageTextToText
from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.loading.config_overrides import apply_hf_overrides
from tests.vlm_fixtures import build_qwen2_vl

PROMPT = "My name is"


def test_overrides_merge_sub_configs_and_rebuild_the_config(caplog):
    """A flat key replaces its value; a sub-config is merged key by key (vLLM's rule); the config is built again, so
    transformers reads a rope_scaling as it reads one in config.json; the given config is left as it was."""
    base = LlamaConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, intermediate_size=128)
    given = {"num_hidden_layers": 1, "rope_scaling": {"rope_type": "linear", "factor": 2.0}}
    changed = apply_hf_overrides(base, given)
    assert given["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}  # transformers filled in a copy
    assert (changed.num_hidden_layers, base.num_hidden_layers) == (1, 2)
    assert changed.rope_parameters == {"rope_type": "linear", "factor": 2.0, "rope_theta": base.rope_parameters["rope_theta"]}
    assert base.rope_parameters["rope_type"] == "default"

    vl = Qwen2VLConfig(text_config={"hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2})
    merged = apply_hf_overrides(vl, {"text_config": {"num_hidden_layers": 1}, "vision_config": {"depth": 1}})
    assert (merged.text_config.num_hidden_layers, merged.text_config.hidden_size) == (1, 64)  # the rest of text_config kept
    assert (merged.vision_config.depth, merged.vision_config.embed_dim) == (1, vl.vision_config.embed_dim)

    assert apply_hf_overrides(base, lambda c: LlamaConfig(**{**c.to_dict(), "num_hidden_layers": 3})).num_hidden_layers == 3
    with caplog.at_level(logging.WARNING, logger="QEfficient.loading.config_overrides"):
        assert apply_hf_overrides(base, {"no_such_key": 7}).no_such_key == 7  # set, as vLLM sets it, and said
    assert "has no 'no_such_key'" in caplog.text
    with pytest.raises(ValueError, match="model_type cannot change"):
        apply_hf_overrides(base, {"model_type": "mistral"})
    with pytest.raises(ValueError, match="must be a mapping"):
        apply_hf_overrides(base, ["num_hidden_layers", 1])
    with pytest.raises(TypeError, match="must return the config"):
        apply_hf_overrides(base, lambda c: None)


def _hf_greedy(folder, n: int, **config_kwargs) -> list[int]:
    tok = AutoTokenizer.from_pretrained(folder)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **config_kwargs).eval()
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        out = hf.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id or 0)
    return out[0, ids.shape[1] :].tolist()


def test_from_pretrained_and_the_server_run_the_overridden_model(tiny_model_dir):
    """One layer of two (a config key), token for token HF's model loaded with the same config, from Python and
    through the server; the overridden model is cached apart from the folder's own; a compiled length past an
    overridden max_position_embeddings is refused."""
    folder = tiny_model_dir("llama")
    expected = _hf_greedy(folder, 8, num_hidden_layers=1)
    assert expected != _hf_greedy(folder, 8)  # the override changes the answer

    model = QEFFAutoModelForCausalLM.from_pretrained(folder, hf_overrides={"num_hidden_layers": 1})
    assert model.config.num_hidden_layers == 1
    model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    tok = AutoTokenizer.from_pretrained(folder)
    info = model.generate(tok, [PROMPT], generation_len=8, stream=False)
    assert [int(t) for t in info.generated_ids[0][0][:8]] == expected
    assert model.onnx_path != QEFFAutoModelForCausalLM.from_pretrained(folder).export()  # its own cache entry
    beside = QEFFAutoModelForCausalLM.from_pretrained(folder, hf_overrides={"max_position_embeddings": 256}, num_hidden_layers=1)
    assert (beside.config.num_hidden_layers, beside.config.max_position_embeddings) == (1, 256)  # a config keyword beside them

    overrides = json.dumps({"num_hidden_layers": 1, "max_position_embeddings": 256})
    args = ["--model_name", str(folder), "--num_cores", "1", "--prefill_seq_len", "8", "--full_batch_size", "2"]
    app, runner = build_from_args(parse_args([*args, "--ctx_len", "128", "--hf_overrides", overrides]))
    try:
        with TestClient(app) as client:
            r = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 8, "temperature": 0, "logprobs": 1})
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["logprobs"]["tokens"] == [tok.decode([t]) for t in expected]
    finally:
        runner.stop()
    with pytest.raises(ValueError, match=r"ctx_len \(128\) exceeds the model's max_position_embeddings \(64\)"):
        build_from_args(parse_args([*args, "--ctx_len", "128", "--hf_overrides", '{"max_position_embeddings": 64}']))
    with pytest.raises(ValueError, match="model_type cannot change"):
        build_from_args(parse_args([*args, "--hf_overrides", '{"model_type": "mistral"}']))
    with pytest.raises(ValueError, match=r"weights do not fit the config as hf_overrides changed it \(intermediate_size\)"):
        QEFFAutoModelForCausalLM.from_pretrained(folder, hf_overrides={"intermediate_size": 99})


def test_a_vision_language_model_takes_overrides_of_its_sub_configs(tmp_path):
    """``text_config`` merged into the model's, the rest of it and the vision tower as saved (no compile: the language
    model's parity is the causal-LM test's)."""
    folder = build_qwen2_vl(tmp_path / "qwen2-vl")
    saved = AutoConfig.from_pretrained(folder)
    model = QEFFAutoModelForImageTextToText.from_pretrained(folder, hf_overrides={"text_config": {"num_hidden_layers": 1}})
    text = model.config.text_config
    assert (text.num_hidden_layers, text.hidden_size) == (1, saved.text_config.hidden_size)
    assert len(model.hf_model.model.language_model.layers) == 1
    vision = [{k: v for k, v in c.vision_config.to_dict().items() if k != "dtype"} for c in (model.config, saved)]
    assert vision[0] == vision[1]
