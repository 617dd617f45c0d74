"""TimesFM through QEFFAutoModelForTimeSeriesPrediction (it loads as QEFFTimesFmModelForPrediction): a tiny random model's
mean and quantile forecasts equal transformers' forward within 1e-4 for series shorter than, as long as and longer than
its context, with the trend/residual decomposition, the forecast on the context and truncate_negative, at a batch
other than the export's; bad inputs are refused saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import TimesFmConfig, TimesFmModelForPrediction

from QEfficient import QEFFAutoModelForTimeSeriesPrediction, QEFFTimesFmModelForPrediction
from tests.helpers import widen_weights

TINY = dict(
    patch_length=8, context_length=32, horizon_length=16, hidden_size=16, intermediate_size=32, head_dim=8,
    num_attention_heads=2, num_hidden_layers=2, quantiles=[0.1, 0.5, 0.9],
)  # fmt: skip


@pytest.fixture(scope="module")
def timesfm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timesfm")
    torch.manual_seed(0)
    hf = TimesFmModelForPrediction(TimesFmConfig(**TINY)).eval()
    widen_weights(hf)
    hf.save_pretrained(folder)
    model = QEFFAutoModelForTimeSeriesPrediction.from_pretrained(folder)
    assert isinstance(model, QEFFTimesFmModelForPrediction)
    model.compile(batch_size=2, num_cores=1)  # three series: a full batch, then a short one
    return TimesFmModelForPrediction.from_pretrained(folder).eval(), model


def _series(positive: bool = False) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    series = [torch.randn(n, generator=generator).cumsum(0) + 3 * torch.sin(torch.arange(n) / 3.0) for n in (20, 32, 45)]
    return [s.abs() + 0.5 for s in series] if positive else series


@pytest.mark.parametrize(
    "options",
    [{}, {"window_size": 4}, {"return_forecast_on_context": True}, {"truncate_negative": True}],
    ids=["plain", "decomposed", "on-context", "truncate-negative"],
)
def test_forecasts_equal_transformers(timesfm, options):
    hf, model = timesfm
    series = _series(positive=bool(options.get("truncate_negative")))
    freq = [0, 1, 2]
    with torch.no_grad():
        expected = hf(past_values=series, freq=freq, **options)
    got = model.generate({"past_values": series, "freq": freq, **options})
    for name in ("mean_predictions", "full_predictions"):
        want = getattr(expected, name).numpy()
        assert getattr(got, name).shape == want.shape, name
        np.testing.assert_allclose(getattr(got, name).numpy(), want, atol=1e-4 * max(1.0, np.abs(want).max()), rtol=0, err_msg=name)
    assert float((expected.mean_predictions[0] - expected.mean_predictions[1]).abs().max()) > 1e-2  # the series decides


def test_bad_inputs(timesfm):
    _, model = timesfm
    with pytest.raises(ValueError, match="non-empty 1-D series"):
        model.generate({"past_values": []})
    with pytest.raises(ValueError, match="frequency class"):
        model.generate({"past_values": _series(), "freq": [0, 1, 7]})
    with pytest.raises(ValueError, match="leave forecast_context_len out"):
        model.generate({"past_values": _series(), "forecast_context_len": 16})
    with pytest.raises(ValueError, match="Unknown inputs"):
        model.generate({"past_values": _series(), "future_values": torch.zeros(3, 16)})
    rows = torch.stack([s[-20:] for s in _series()])  # a [series, length] tensor: its rows
    np.testing.assert_allclose(
        model.generate({"past_values": rows}).mean_predictions.numpy(), model.generate(list(rows)).mean_predictions.numpy()
    )
    with pytest.raises(NotImplementedError, match="use_positional_embedding"):
        QEFFTimesFmModelForPrediction(TimesFmModelForPrediction(TimesFmConfig(**TINY, use_positional_embedding=True)))
