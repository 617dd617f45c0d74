"""Longformer as an encoder (QEFFAutoModel, QEFFAutoModelForSequenceClassification): its window attention by blocks
and its classifier's global first token (transform/adapters/longformer.py). Inputs longer than the example the graph
was traced with and shorter than the compiled length, in a padded batch: transformers' hidden states and logits within
1e-4; compiled lengths rounded up to the window, as transformers pads its inputs."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, LongformerConfig

from QEfficient import QEFFAutoModel, QEFFAutoModelForSequenceClassification
from QEfficient.compile.ort_cpu import read_artifact


def test_longformer_equals_transformers_past_its_windows(tmp_path, tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LongformerConfig(
        vocab_size=320, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
        max_position_embeddings=130, attention_window=[4, 8], pad_token_id=tok.pad_token_id, num_labels=3,
    )  # fmt: skip
    texts = ["a b c d e f g", "the quick brown fox jumps over"]
    enc = tok(texts, padding=True, return_tensors="np")
    assert enc["input_ids"].shape[1] > 16  # past the traced example (8) and the first compiled length
    for auto, qeff, name in (
        (AutoModel, QEFFAutoModel, "output"),
        (AutoModelForSequenceClassification, QEFFAutoModelForSequenceClassification, "logits"),
    ):
        folder = tmp_path / name
        torch.manual_seed(0)
        auto.from_config(config).save_pretrained(folder)
        tok.save_pretrained(folder)
        hf = auto.from_pretrained(folder).eval()
        with torch.no_grad():
            expected = hf(input_ids=torch.as_tensor(enc["input_ids"]), attention_mask=torch.as_tensor(enc["attention_mask"]))
        model = qeff.from_pretrained(folder)
        path = model.compile(seq_len=[10, 40], batch_size=2, num_cores=1)
        assert read_artifact(path)["compile_params"]["seq_len"] == [16, 40]  # multiples of the widest window (8)
        got = np.asarray(model.generate(dict(enc))[name])
        if name == "logits":  # its classifier's first token attends globally
            np.testing.assert_allclose(got, expected.logits.numpy(), atol=1e-4, rtol=0)
        else:
            real = enc["attention_mask"].astype(bool)
            np.testing.assert_allclose(got[real], expected.last_hidden_state.numpy()[real], atol=1e-4, rtol=0)
        short = tok(texts[:1], return_tensors="np")  # fewer than 16 tokens: the 16-token graph
        with torch.no_grad():
            alone = hf(input_ids=torch.as_tensor(short["input_ids"]))
        reference = alone.logits.numpy() if name == "logits" else alone.last_hidden_state.numpy()
        np.testing.assert_allclose(np.asarray(model.generate(dict(short))[name]), reference, atol=1e-4, rtol=0)
