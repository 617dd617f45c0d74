"""FNet (QEFFAutoModel, its classifier): its Fourier token mixing as a DFT by MatMuls (transform/rewrites.py), and, as
it reads no attention mask, its graph run at the input's own width, padding included, as transformers runs it: every
column of a padded batch equal to transformers' within 1e-4, at a width between the compiled lengths, pooled, and from
the compiled artifact; a server batches only texts of one length, so that an answer does not depend on the texts
batched with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, FNetConfig

from QEfficient import QEFFAutoModel, QEFFAutoModelForSequenceClassification
from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.serving.encoder_artifact import CompiledEncoder
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http

TEXTS = ["a b c d e f g", "the quick brown fox jumps over the lazy dog"]


def _config(**extra) -> FNetConfig:
    return FNetConfig(vocab_size=320, hidden_size=64, num_hidden_layers=2, intermediate_size=96, max_position_embeddings=130, **extra)


def test_fnet_runs_at_the_input_s_width_as_transformers(tmp_path, tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    enc = tok(TEXTS, padding=True, return_tensors="np")
    width = enc["input_ids"].shape[1]
    torch.manual_seed(0)
    AutoModel.from_config(_config(pad_token_id=tok.pad_token_id)).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    hf = AutoModel.from_pretrained(tmp_path / "base").eval()
    with torch.no_grad():
        expected = hf(input_ids=torch.as_tensor(enc["input_ids"])).last_hidden_state.numpy()
    model = QEFFAutoModel.from_pretrained(tmp_path / "base")
    path = model.compile(seq_len=[8, width + 16], batch_size=2, num_cores=1)  # the input between the two
    got = model.generate(dict(enc))["output"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)  # the padding's columns too: transformers computes them
    alone = tok(TEXTS[:1], return_tensors="np")  # one row: a short last batch
    with torch.no_grad():
        reference = hf(input_ids=torch.as_tensor(alone["input_ids"])).last_hidden_state.numpy()
    np.testing.assert_allclose(model.generate(dict(alone))["output"], reference, atol=1e-4, rtol=0)
    np.testing.assert_allclose(CompiledEncoder(path, 1).generate(dict(enc))["output"], expected, atol=1e-4, rtol=0)
    wide = {k: np.pad(v, [(0, 0), (0, 17)]) for k, v in enc.items()}
    with pytest.raises(ValueError, match="padding included"):
        model.generate(wide)

    # encode() batches the texts longest first, as sentence-transformers: FNet's vectors depend on their batch's width
    texts = [TEXTS[0], TEXTS[1], "a b c d e f g h i"]  # batched as [1, 2] and [0]

    def mean_pooled(batch: list[str]) -> np.ndarray:
        e = tok(batch, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = hf(input_ids=e["input_ids"]).last_hidden_state
        m = e["attention_mask"][..., None]
        return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=1).numpy()

    by_length = np.concatenate([mean_pooled([texts[1], texts[2]]), mean_pooled([texts[0]])])[[2, 0, 1]]
    np.testing.assert_allclose(model.encode(texts, tok, batch_size=2), by_length, atol=1e-4, rtol=0)

    pooled = QEFFAutoModel.from_pretrained(tmp_path / "base", pooling="mean")
    pooled.compile(seq_len=width + 16, batch_size=2, num_cores=1)
    mask = enc["attention_mask"][..., None]
    np.testing.assert_allclose(pooled.generate(dict(enc))["output"], (expected * mask).sum(1) / mask.sum(1), atol=1e-4, rtol=0)


def test_fnet_classifier_equals_transformers_and_serves_each_text_as_alone(tmp_path, tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    enc = tok(TEXTS, padding=True, return_tensors="np")
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(
        _config(num_labels=3, pad_token_id=tok.pad_token_id, initializer_range=0.3)
    ).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = hf(input_ids=torch.as_tensor(enc["input_ids"]), token_type_ids=torch.zeros(enc["input_ids"].shape, dtype=torch.long))
    model = QEFFAutoModelForSequenceClassification.from_pretrained(tmp_path)
    model.compile(seq_len=64, batch_size=1, num_cores=1)
    np.testing.assert_allclose(model.generate(dict(enc))["logits"].numpy(), expected.logits.numpy(), atol=1e-4, rtol=0)
    # served (vLLM's /classify): texts batched with others get the answers each gets alone, the server batching only
    # texts of one length together (the padding of the others would enter their mixing)
    texts = TEXTS + ["a b c d e f h", "on the hill"]
    app, runner = build_from_args(parse_args(["--model_name", str(tmp_path), "--ctx_len", "64", "--num_cores", "1"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            together = loopback_http.post(f"{url}/classify", json={"input": texts}, timeout=120).json()["data"]
            alone = [loopback_http.post(f"{url}/classify", json={"input": [t]}, timeout=120).json()["data"][0] for t in texts]
    finally:
        runner.stop()
    for text, one, batched in zip(texts, alone, together):
        with torch.no_grad():
            logits = hf(input_ids=torch.as_tensor(tok([text], return_tensors="np")["input_ids"])).logits[0]
        np.testing.assert_allclose(batched["probs"], one["probs"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(one["probs"], torch.softmax(logits, -1).numpy(), atol=1e-5, rtol=0)


def test_fnet_with_tpu_fourier_matrices_says_how_to_load_it():
    """Its DFT matrices of one length (transformers builds them with SciPy, which this machine lacks: set on the config
    of a built model here)."""
    model = AutoModel.from_config(_config())
    model.config.use_tpu_fourier_optimizations = True
    with pytest.raises(ValueError, match="use_tpu_fourier_optimizations=False"):
        QEFFAutoModel(model)
