"""QEFFAutoModelForTimeSeriesPrediction: PatchTST's and PatchTSMixer's forecasting, regression and classification heads
as tiny random models, loaded by their saved head; each output equals transformers' within 1e-4 for a batch other than
the export's, with some values unobserved where the model reads that; TimesFM, distribution heads and other shapes are
refused saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from transformers import PatchTSMixerConfig, PatchTSTConfig

from QEfficient import QEFFAutoModelForTimeSeriesPrediction
from QEfficient.transform.time_series import TIME_SERIES_HEADS, UNSUPPORTED_TIME_SERIES
from tests.helpers import widen_weights

_WINDOW = dict(num_input_channels=3, context_length=32, patch_length=8, patch_stride=8, prediction_length=6, num_targets=2)
CONFIGS = {
    "PatchTST": lambda: PatchTSTConfig(**_WINDOW, d_model=16, num_attention_heads=2, num_hidden_layers=2, ffn_dim=32),
    "PatchTSMixer": lambda: PatchTSMixerConfig(**_WINDOW, d_model=16, num_layers=2),
}


def _saved(folder, head: str, **extra):
    torch.manual_seed(0)
    config = CONFIGS[head.split("For")[0]]()
    for name, value in extra.items():
        setattr(config, name, value)
    hf = getattr(transformers, head)(config).eval()
    widen_weights(hf)  # heads initialised near zero would answer alike for every series
    hf.save_pretrained(folder)
    return getattr(transformers, head).from_pretrained(folder).eval()


def test_every_time_series_type_runs_or_is_refused():
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_TIME_SERIES_CLASSIFICATION_MAPPING_NAMES,
        MODEL_FOR_TIME_SERIES_PREDICTION_MAPPING_NAMES,
        MODEL_FOR_TIME_SERIES_REGRESSION_MAPPING_NAMES,
    )

    run = {head.split("For")[0].lower() for head in TIME_SERIES_HEADS} | {"timesfm", "timesfm2_5"}  # tests/test_timesfm*.py
    for mapping in (
        MODEL_FOR_TIME_SERIES_CLASSIFICATION_MAPPING_NAMES,
        MODEL_FOR_TIME_SERIES_PREDICTION_MAPPING_NAMES,
        MODEL_FOR_TIME_SERIES_REGRESSION_MAPPING_NAMES,
    ):
        assert set(mapping) <= run | set(UNSUPPORTED_TIME_SERIES)


@pytest.mark.parametrize("head", list(TIME_SERIES_HEADS) + ["PatchTSTForPrediction-overlapping"])
def test_outputs_equal_transformers(head, tmp_path):
    overlapping = head.endswith("-overlapping")  # patches of 8 every 5 from position 2 (35 = 2 + 5 * 6 + 3): unfold's start
    head = head.removesuffix("-overlapping")
    hf = _saved(tmp_path, head, **(dict(context_length=35, patch_stride=5, use_cls_token=True) if overlapping else {}))
    context = 35 if overlapping else 32
    values = torch.randn(3, context, 3, generator=torch.Generator().manual_seed(1)) * 5 + 2
    observed = torch.ones_like(values)
    model = QEFFAutoModelForTimeSeriesPrediction.from_pretrained(tmp_path)
    inputs = {"past_values": values}
    if model.spec.observed_mask:
        observed[1, :5, 0] = 0  # unobserved values: the model's scaler leaves them out
        inputs["past_observed_mask"] = observed
    with torch.no_grad():
        expected = getattr(hf(**{model.model.mask_name: observed} if model.model.mask_name else {}, past_values=values), model.model.output)
    model.compile(batch_size=2, num_cores=1)  # a full batch, then a short one
    got = model.generate(inputs)[model.model.output]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4 * max(1.0, float(expected.abs().max())), rtol=0)
    assert float((expected[0] - expected[1]).abs().max() / expected.abs().max()) > 1e-2  # the series decides


def test_bad_inputs_and_refusals(tmp_path):
    _saved(tmp_path, "PatchTSTForPrediction")
    model = QEFFAutoModelForTimeSeriesPrediction.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="context window"):
        model.generate({"past_values": torch.randn(2, 16, 3)}, runtime_ai100=False)
    with pytest.raises(ValueError, match="shaped as past_values"):
        model.generate({"past_values": torch.randn(2, 32, 3), "past_observed_mask": torch.ones(2, 32, 1)}, runtime_ai100=False)
    nll = PatchTSTConfig(**_WINDOW, d_model=16, num_attention_heads=2, num_hidden_layers=1, ffn_dim=32, loss="nll")
    with pytest.raises(NotImplementedError, match="distribution's parameters"):
        QEFFAutoModelForTimeSeriesPrediction(transformers.PatchTSTForPrediction(nll))
    QEFFAutoModelForTimeSeriesPrediction(transformers.PatchTSTForClassification(nll))  # a classifier ignores the loss
    torch.manual_seed(0)
    transformers.PatchTSTModel(nll).save_pretrained(tmp_path / "base")
    with pytest.raises(NotImplementedError, match="not a time-series head run here"):
        QEFFAutoModelForTimeSeriesPrediction.from_pretrained(tmp_path / "base")
