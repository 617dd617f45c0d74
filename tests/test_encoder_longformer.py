"""Longformer as an encoder (QEFFAutoModel, QEFFAutoModelForSequenceClassification): its window attention by blocks
and its classifier's global first token (transform/adapters/longformer.py). Inputs longer than the example the graph
was traced with and shorter than the compiled length, in a padded batch: transformers' hidden states and logits within
1e-4; compiled lengths rounded up to the window, as transformers pads its inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, LongformerConfig

from QEfficient import QEFFAutoModel, QEFFAutoModelForSequenceClassification
from QEfficient.compile.ort_cpu import read_artifact


def _saved(auto, config, tok, folder):
    """(folder, transformers' model): a random ``auto`` model of ``config`` saved there with ``tok``."""
    torch.manual_seed(0)
    auto.from_config(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, auto.from_pretrained(folder).eval()


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
        folder, hf = _saved(auto, config, tok, tmp_path / name)
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


def test_global_attention_given_or_as_each_head_marks_it(tmp_path, tokenizer_dir):
    """A user's global_attention_mask (transformers' keyword, here a key of the inputs) reaches the graph; without one,
    each head marks what transformers' marks (the classifier its first token, the QA head the question, the base model
    none), in generate and in the compiled artifact a server opens; a QA input without three separators is refused."""
    from tokenizers import processors
    from transformers import AutoModelForQuestionAnswering

    from QEfficient import QEFFAutoModelForQuestionAnswering
    from QEfficient.serving.encoder_artifact import CompiledEncoder

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok._tokenizer.post_processor = processors.RobertaProcessing(("</s>", tok.eos_token_id), ("<s>", tok.bos_token_id))
    config = LongformerConfig(
        vocab_size=320, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
        max_position_embeddings=130, attention_window=[4, 8], pad_token_id=tok.pad_token_id, num_labels=2,
        sep_token_id=tok.eos_token_id, initializer_range=0.3,  # logits far enough apart to tell the masks apart
    )  # fmt: skip
    enc = tok(["who wrote it", "where"], ["the quick brown fox jumps over", "on the hill"], padding=True, return_tensors="np")
    marked = np.zeros_like(enc["input_ids"])
    marked[0, [0, 3, 9]] = 1
    marked[1, 2] = 1
    for auto, qeff, name in (
        (AutoModel, QEFFAutoModel, "output"),
        (AutoModelForSequenceClassification, QEFFAutoModelForSequenceClassification, "logits"),
        (AutoModelForQuestionAnswering, QEFFAutoModelForQuestionAnswering, "start_logits"),
    ):
        folder, hf = _saved(auto, config, tok, tmp_path / name)
        feed = {k: torch.as_tensor(enc[k]) for k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            by_default = getattr(hf(**feed), "last_hidden_state" if name == "output" else name).numpy()
            given = getattr(hf(**feed, global_attention_mask=torch.as_tensor(marked)), "last_hidden_state" if name == "output" else name)
        model = qeff.from_pretrained(folder)
        path = model.compile(seq_len=48, batch_size=2, num_cores=1)
        real = enc["attention_mask"].astype(bool) if name != "logits" else slice(None)  # a classifier's: one row each
        got = np.asarray(model.generate(dict(enc, global_attention_mask=marked))[name])
        np.testing.assert_allclose(got[real], given.numpy()[real], atol=1e-4, rtol=0)
        assert np.abs(given.numpy()[real] - by_default[real]).max() > 1e-3  # the mask matters
        got = np.asarray(model.generate(dict(enc))[name])
        np.testing.assert_allclose(got[real], by_default[real], atol=1e-4, rtol=0)
        if name == "logits":  # the server's runner: the artifact's default, without torch's model
            served = CompiledEncoder(path, 1)
            np.testing.assert_allclose(served.generate(dict(enc))["logits"], by_default, atol=1e-4, rtol=0)
            got = served.generate(dict(enc, global_attention_mask=marked))["logits"]
            np.testing.assert_allclose(got, given.numpy(), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="three separators"):
        model.generate(tok(["who wrote it"], return_tensors="np"))  # one text: one separator
    with pytest.raises(ValueError, match="must be input_ids'"):
        model.generate(dict(enc, global_attention_mask=marked[:, :4]))
