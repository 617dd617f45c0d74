"""MarkupLM (web pages): each token's XPath in its HTML page (xpath_tags_seq, xpath_subs_seq, as its tokenizer writes
them from nodes and their XPaths) is a graph input. Tiny random models' outputs through the exported graph equal
transformers' on a padded batch of two pages tokenized by a real MarkupLM tokenizer (real tokens, within 1e-4) for the
token classifier, sequence classifier, QA head and base model, and without XPaths (transformers' default: every level
padding); the XPaths decide; bad XPaths are refused saying what to send, and so is a MarkupLM model or artifact by the
servers."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    MarkupLMConfig,
    MarkupLMTokenizer,
)

from QEfficient import (
    QEFFAutoModel,
    QEFFAutoModelForQuestionAnswering,
    QEFFAutoModelForSequenceClassification,
    QEFFAutoModelForTokenClassification,
)
from QEfficient.serving.encoder_artifact import is_encoder_artifact

HEADS = {
    "tokens": (AutoModelForTokenClassification, QEFFAutoModelForTokenClassification),
    "sequence": (AutoModelForSequenceClassification, QEFFAutoModelForSequenceClassification),
    "qa": (AutoModelForQuestionAnswering, QEFFAutoModelForQuestionAnswering),
    "base": (AutoModel, QEFFAutoModel),
}
TAGS = {"html": 0, "body": 1, "div": 2, "p": 3, "span": 4, "a": 5}
NODES = [["Hello there", "world"], ["Bye"]]
XPATHS = [["/html/body/div/p", "/html/body/div[2]/span[3]/a"], ["/html/body/p[4]"]]


def _tokenizer() -> MarkupLMTokenizer:
    """A byte-level BPE of single characters (no merges): RoBERTa's specials, then letters, the space marker, '?'."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {token: i for i, token in enumerate(specials + list(string.ascii_letters) + ["Ġ", "?"])}
    return MarkupLMTokenizer(tags_dict=TAGS, vocab=vocab, merges=[])


def _folder(tmp_path, head: str):
    torch.manual_seed(0)
    config = MarkupLMConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, pad_token_id=1)
    config.max_position_embeddings, config.num_labels = 64, 2 if head == "qa" else 3
    auto, _ = HEADS[head]
    model = auto.from_config(config)
    with torch.no_grad():  # the XPath embeddings start too small for the paths to show
        for name, weight in model.named_parameters():
            if "xpath" in name:
                weight.mul_(20.0)
    model.save_pretrained(tmp_path)
    _tokenizer().save_pretrained(tmp_path)
    return auto.from_pretrained(tmp_path).eval()


@pytest.mark.parametrize("head", list(HEADS))
def test_markuplm_equals_transformers(head, tmp_path):
    hf = _folder(tmp_path, head)
    tokenizer = MarkupLMTokenizer.from_pretrained(tmp_path)
    if head == "qa":
        inputs = tokenizer(["Where?", "Who?"], NODES, xpaths=XPATHS, padding=True, return_tensors="pt")
    else:
        inputs = tokenizer(NODES, xpaths=XPATHS, padding=True, return_tensors="pt")
    inputs = dict(inputs)
    assert inputs["attention_mask"][1].sum() < inputs["attention_mask"][0].sum()  # a padded row
    _, qeff = HEADS[head]
    model = qeff.from_pretrained(tmp_path)
    model.compile(seq_len=32, batch_size=2, num_cores=1)  # longer than the input: padded columns
    real = inputs["attention_mask"].numpy().astype(bool)
    without = {k: v for k, v in inputs.items() if not k.startswith("xpath")}
    with torch.no_grad():
        expected, plain = hf(**inputs), hf(**without)
    for given, theirs in ((inputs, expected), (without, plain)):
        got = model.generate(given)
        if head == "qa":
            pairs = [(got["start_logits"], theirs.start_logits), (got["end_logits"], theirs.end_logits)]
        elif head == "base":
            pairs = [(got["output"], theirs.last_hidden_state)]
        else:
            pairs = [(got["logits"], theirs.logits)]
        for ours, reference in pairs:
            ours, reference = np.asarray(ours), reference.numpy()
            assert ours.shape == reference.shape
            if head == "sequence":
                np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)
            else:
                np.testing.assert_allclose(ours[real], reference[real], atol=1e-4, rtol=0)
    first = {"qa": "start_logits", "base": "last_hidden_state"}.get(head, "logits")
    assert float((getattr(expected, first) - getattr(plain, first)).abs().max()) > 1e-3  # the XPaths decide
    qconfig = json.loads((model.qpc_path / "qconfig.json").read_text())
    with pytest.raises(ValueError, match="web-page model's artifact"):
        is_encoder_artifact(qconfig)


def test_markup_inputs_are_checked(tmp_path):
    _folder(tmp_path, "tokens")
    model = QEFFAutoModelForTokenClassification.from_pretrained(tmp_path)
    inputs = dict(MarkupLMTokenizer.from_pretrained(tmp_path)(NODES, xpaths=XPATHS, padding=True, return_tensors="pt"))
    with pytest.raises(ValueError, match=r"xpath_tags_seq must be integers \[texts, tokens, 50\]"):
        model.generate({**inputs, "xpath_tags_seq": inputs["xpath_tags_seq"][:, :, :10]}, runtime_ai100=False)
    with pytest.raises(ValueError, match="xpath_subs_seq must be integers"):
        model.generate({**inputs, "xpath_subs_seq": inputs["xpath_subs_seq"].float()}, runtime_ai100=False)
    with pytest.raises(ValueError, match="xpath_tags_seq holds ids from 0 to 256; this model's table has 0 to 255"):
        wrong = inputs["xpath_tags_seq"].clamp(max=0) + torch.tensor([0, 256])[:, None, None]
        model.generate({**inputs, "xpath_tags_seq": wrong}, runtime_ai100=False)
    from QEfficient.serving.scores_app import open_scores_app

    with pytest.raises(ValueError, match="reads web pages"):
        open_scores_app(str(tmp_path), 32, 1, False, None, None)


def test_a_text_encoder_refuses_xpaths(tmp_path):
    torch.manual_seed(0)
    config = AutoConfig.for_model("bert", vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    AutoModel.from_config(config).save_pretrained(tmp_path)
    model = QEFFAutoModel.from_pretrained(tmp_path)
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="reads no web page"):
        model.generate(
            {"input_ids": ids, "attention_mask": torch.ones_like(ids), "xpath_tags_seq": torch.zeros(1, 3, 50)}, runtime_ai100=False
        )
