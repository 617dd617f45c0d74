"""Multiple choice (QEFFAutoModelForMultipleChoice) and next sentence prediction (QEFFAutoModelForNextSentencePrediction):
every type of transformers' two mappings as a tiny random model (the encoder sweep's shrink), its logits equal to
transformers' within 1e-4 on padded inputs (two questions of three choices; two sentence pairs), or refused with the
reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForMultipleChoice,
    AutoModelForNextSentencePrediction,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES,
    MODEL_FOR_NEXT_SENTENCE_PREDICTION_MAPPING_NAMES,
)

from QEfficient import QEFFAutoModelForMultipleChoice, QEFFAutoModelForNextSentencePrediction, QEFFAutoModelForSequenceClassification
from QEfficient.models.token_heads import UNSUPPORTED_MULTIPLE_CHOICE
from QEfficient.transform.encoder import UNSUPPORTED_ENCODERS
from tests.test_encoder_sweep import PER_TYPE, SHRINK, with_no_zero_weights

QUESTIONS = ["The chef cut the onion", "She opened the umbrella"]
CHOICES = [["and cried a little.", "with a spoon.", "then it flew away over the hills."], ["because it rained.", "to eat it.", "."]]
# every type is run or refused: the refused ones are checked on the meta device (some cannot be built tiny)
REFUSED = set(UNSUPPORTED_MULTIPLE_CHOICE) | (set(UNSUPPORTED_ENCODERS) & set(MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES))

# random tiny models whose first token's state barely follows the rest, so every choice scores alike (within 1e-3)
FLAT_SCORES = {"mobilebert"}


def _tiny(model_type: str, auto_class, folder, tokenizer_dir, **extra):
    defaults = AutoConfig.for_model(model_type)
    values = {k: v for k, v in SHRINK.items() if hasattr(defaults, k)} | PER_TYPE.get(model_type, {}) | extra
    torch.manual_seed(0)
    model = with_no_zero_weights(auto_class.from_config(AutoConfig.for_model(model_type, **values)))
    with torch.no_grad():  # a multiple-choice score head's small initial range leaves every choice's score alike
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.out_features == 1:
                module.weight.mul_(1000.0)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return auto_class.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def test_every_type_is_swept_or_refused():
    assert set(MODEL_FOR_NEXT_SENTENCE_PREDICTION_MAPPING_NAMES) <= set(MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES) | {"fnet"}
    for model_type in sorted(REFUSED):
        with torch.device("meta"):
            model = AutoModelForMultipleChoice.from_config(AutoConfig.for_model(model_type))
        with pytest.raises((ValueError, NotImplementedError), match="not supported"):
            QEFFAutoModelForMultipleChoice(model)


@pytest.mark.sweep
@pytest.mark.parametrize("model_type", [t for t in MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES if t not in REFUSED] + ["modernbert-mean"])
def test_multiple_choice_equals_transformers(model_type, tmp_path, tokenizer_dir):
    # ModernBERT's checkpoints pool by the mask's mean (its head reads the 2-D mask too)
    extra = {"classifier_pooling": "mean"} if model_type == "modernbert-mean" else {}
    model_type = model_type.removesuffix("-mean")
    hf, tokenizer = _tiny(model_type, AutoModelForMultipleChoice, tmp_path, tokenizer_dir, **extra)
    pairs = [[q, c] for q, options in zip(QUESTIONS, CHOICES) for c in options]
    flat = tokenizer(pairs, padding=True, return_tensors="pt")
    inputs = {name: value.reshape(2, 3, -1) for name, value in flat.items()}
    with torch.no_grad():
        expected = hf(**inputs).logits.numpy()
    model = QEFFAutoModelForMultipleChoice.from_pretrained(tmp_path)
    model.compile(seq_len=inputs["input_ids"].shape[-1], batch_size=4, num_cores=1)  # rows: a full batch, then a short one
    got = model.generate(inputs)["logits"].numpy()
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, np.abs(expected).max()), rtol=0)
    if model_type not in FLAT_SCORES:
        assert float(np.abs(expected[0] - expected[0].mean()).max()) > 1e-2  # the choice decides


@pytest.mark.parametrize("model_type", list(MODEL_FOR_NEXT_SENTENCE_PREDICTION_MAPPING_NAMES))
def test_next_sentence_prediction_equals_transformers(model_type, tmp_path, tokenizer_dir):
    hf, tokenizer = _tiny(model_type, AutoModelForNextSentencePrediction, tmp_path, tokenizer_dir)
    inputs = tokenizer(QUESTIONS, [CHOICES[0][0], CHOICES[1][0]], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = hf(**inputs).logits.numpy()
    model = QEFFAutoModelForNextSentencePrediction.from_pretrained(tmp_path)
    model.compile(seq_len=inputs["input_ids"].shape[-1], batch_size=2, num_cores=1)
    np.testing.assert_allclose(model.generate(inputs)["logits"].numpy(), expected, atol=1e-4, rtol=0)


def test_modernbert_mean_pooling_classifier_equals_transformers(tmp_path, tokenizer_dir):
    hf, tokenizer = _tiny("modernbert", AutoModelForSequenceClassification, tmp_path, tokenizer_dir, classifier_pooling="mean")
    inputs = tokenizer(QUESTIONS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = hf(**inputs).logits.numpy()
    model = QEFFAutoModelForSequenceClassification.from_pretrained(tmp_path)
    model.compile(seq_len=32, batch_size=2, num_cores=1)  # longer than the input: padded columns
    np.testing.assert_allclose(model.generate(inputs)["logits"].numpy(), expected, atol=1e-4, rtol=0)


def test_multiple_choice_bad_inputs(tmp_path, tokenizer_dir):
    _tiny("bert", AutoModelForMultipleChoice, tmp_path, tokenizer_dir)
    model = QEFFAutoModelForMultipleChoice.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="questions, choices, tokens"):
        model.generate({"input_ids": torch.ones(3, 5, dtype=torch.long)})
