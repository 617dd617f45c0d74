"""Heads over every token of a text encoder: token classification (NER), extractive question answering and masked
LM. A tiny random model of each encoder family below, a padded batch of two: the real tokens' logits equal
transformers' forward to 1e-4; a decoder's such head is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tokenizers import processors
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from QEfficient import QEFFAutoModel, QEFFAutoModelForMaskedLM, QEFFAutoModelForQuestionAnswering, QEFFAutoModelForTokenClassification

SHAPE = dict(vocab_size=320, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, max_position_embeddings=130)
TYPES = ["bert", "roberta", "deberta-v2", "distilbert", "longformer"]
QUESTION = ("Who wrote the letter?", "Ada wrote the letter to her friend on a quiet morning")


def _config(model_type: str, **extra):
    defaults = AutoConfig.for_model(model_type)
    shape = {k: v for k, v in SHAPE.items() if hasattr(defaults, k)}
    if model_type == "distilbert":
        shape = dict(vocab_size=320, dim=64, n_layers=2, n_heads=4, hidden_dim=96, max_position_embeddings=130)
    if model_type == "longformer":
        shape |= dict(attention_window=[4, 8], sep_token_id=2)  # the tiny tokenizer's </s>
    return AutoConfig.for_model(model_type, pad_token_id=0, **shape, **extra)


@pytest.mark.parametrize("model_type", TYPES)
def test_token_classification_and_question_answering_equal_transformers(model_type, tmp_path, tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if model_type == "longformer":  # its QA head marks the question global: the tokens before the first of three </s>
        tok._tokenizer.post_processor = processors.RobertaProcessing(("</s>", tok.eos_token_id), ("<s>", tok.bos_token_id))
    sentences = tok(["My name is Ada", "The sun rises over the quiet sea every morning"], padding=True, return_tensors="pt")
    pair = tok([QUESTION[0], "Where?"], [QUESTION[1], "On the hill by the sea"], padding=True, return_tensors="pt")
    heads = [(AutoModelForTokenClassification, QEFFAutoModelForTokenClassification, sentences, 5)]
    heads.append((AutoModelForQuestionAnswering, QEFFAutoModelForQuestionAnswering, pair, 2))
    heads.append((AutoModelForMaskedLM, QEFFAutoModelForMaskedLM, sentences, 2))
    for auto, qeff, inputs, labels in heads:
        folder = tmp_path / auto.__name__
        torch.manual_seed(0)
        auto.from_config(_config(model_type, num_labels=labels)).save_pretrained(folder)
        tok.save_pretrained(folder)
        hf = auto.from_pretrained(folder).eval()
        feed = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            expected = hf(**feed)
        model = qeff.from_pretrained(folder)
        width = inputs["input_ids"].shape[1]
        model.compile(seq_len=[width - 2, width + 8], batch_size=2, num_cores=1)  # a compiled length past the input
        got = model.generate({k: v.numpy() for k, v in feed.items()})
        # padded past its last real token (padding="max_length"): the input's columns still, those past the graph's zero
        wide = {k: torch.nn.functional.pad(v, (0, 40)) for k, v in feed.items()}
        assert all(v.shape[1] == width + 40 for v in model.generate({k: v.numpy() for k, v in wide.items()}).values())
        real = feed["attention_mask"].bool()
        names = ["start_logits", "end_logits"] if auto is AutoModelForQuestionAnswering else ["logits"]
        assert sorted(got) == sorted(names)
        for name in names:
            np.testing.assert_allclose(got[name][real].numpy(), getattr(expected, name)[real].numpy(), atol=1e-4, rtol=0)


def test_question_answering_heads_that_read_more_than_the_encoder_are_refused(tmp_path):
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(_config("big_bird", num_labels=2, attention_type="original_full")).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="first separator"):
        QEFFAutoModelForQuestionAnswering.from_pretrained(tmp_path)


def test_lxmert_is_refused_with_the_reason(tmp_path):
    from transformers import LxmertConfig, LxmertModel

    config = LxmertConfig(vocab_size=64, hidden_size=32, num_attention_heads=2, intermediate_size=32, l_layers=1, x_layers=1, r_layers=1)
    LxmertModel(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="region.*visual_feats"):
        QEFFAutoModel.from_pretrained(tmp_path)


def test_a_decoder_s_token_head_is_refused(tmp_path, tiny_model_dir):
    from transformers import LlamaForTokenClassification

    LlamaForTokenClassification.from_pretrained(tiny_model_dir("llama"), num_labels=3).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="run for encoders"):
        QEFFAutoModelForTokenClassification.from_pretrained(tmp_path)


@pytest.mark.parametrize("model_type", ["xlm", "modernbert", "fnet"])
def test_masked_lm_heads_of_other_shapes_equal_transformers(model_type, tmp_path, tokenizer_dir):
    """XLM's masked LM is its WithLMHeadModel class; ModernBERT's head reads the hidden states through its own
    normalization; FNet's reads every column (its graph runs at the input's width). The encoder sweep runs every text
    encoder type's masked LM (tests/test_encoder_sweep.py)."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    enc = tok(["My name is Ada", "The sun rises over the quiet sea every morning"], padding=True, return_tensors="np")
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(_config(model_type)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    hf = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = hf(input_ids=torch.as_tensor(enc["input_ids"]), attention_mask=torch.as_tensor(enc["attention_mask"])).logits
    model = QEFFAutoModelForMaskedLM.from_pretrained(tmp_path)
    model.compile(seq_len=enc["input_ids"].shape[1], batch_size=2, num_cores=1)
    real = enc["attention_mask"].astype(bool)
    np.testing.assert_allclose(model.generate(dict(enc))["logits"].numpy()[real], expected.numpy()[real], atol=1e-4, rtol=0)


def test_an_encoder_decoder_s_masked_lm_is_refused(tmp_path):
    from transformers import BartConfig, BartForConditionalGeneration

    shape = dict(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2)
    BartForConditionalGeneration(BartConfig(vocab_size=320, encoder_ffn_dim=32, decoder_ffn_dim=32, **shape)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="QEFFAutoModelForSeq2SeqLM"):
        QEFFAutoModelForMaskedLM.from_pretrained(tmp_path)
