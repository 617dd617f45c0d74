"""TimesFM 2.5 through QEFFAutoModelForTimeSeriesPrediction (it loads as QEFFTimesFm2_5ModelForPrediction): a tiny random
model's mean and quantile forecasts equal transformers' forward within 1e-4 (its eager and SDPA attention) for series
shorter than, as long as and longer than its context, with flip invariance on and off, the trend/residual
decomposition, a shorter forecast_context_len (one graph serves any multiple of the patch), the continuous quantile head
on and off and truncate_negative, at a batch other than the export's; the running statistics as cumulative sums equal
transformers' patch-by-patch loop; bad inputs are refused saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import TimesFm2_5Config, TimesFm2_5ModelForPrediction
from transformers.models.timesfm2_5.modeling_timesfm2_5 import TimesFm2_5Model

from QEfficient import QEFFAutoModelForTimeSeriesPrediction, QEFFTimesFm2_5ModelForPrediction
from QEfficient.transform.timesfm2_5 import running_stats
from tests.helpers import widen_weights

TINY = dict(
    patch_length=8, context_length=64, horizon_length=16, hidden_size=16, intermediate_size=32, head_dim=8,
    num_attention_heads=2, num_key_value_heads=2, num_hidden_layers=2, quantiles=[0.1, 0.3, 0.5, 0.7, 0.9],
    output_quantile_len=24, decode_index=3,
)  # fmt: skip


@pytest.fixture(scope="module")
def timesfm2_5(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timesfm2_5")
    torch.manual_seed(0)
    hf = TimesFm2_5ModelForPrediction(TimesFm2_5Config(**TINY)).eval()
    widen_weights(hf)
    hf.save_pretrained(folder)
    model = QEFFAutoModelForTimeSeriesPrediction.from_pretrained(folder)
    assert isinstance(model, QEFFTimesFm2_5ModelForPrediction)
    model.compile(batch_size=2, num_cores=1)  # three series: a full batch, then a short one (flipped: three full ones)
    references = [TimesFm2_5ModelForPrediction.from_pretrained(folder, attn_implementation=a).eval() for a in ("eager", "sdpa")]
    return references, model


def _series(positive: bool = False, level: float = 0.0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    series = [torch.randn(n, generator=generator).cumsum(0) + 3 * torch.sin(torch.arange(n) / 3.0) for n in (20, 64, 90)]
    series = [s + level for s in series]
    return [s.abs() + 0.5 for s in series] if positive else series


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"force_flip_invariance": False},
        {"window_size": 4, "force_flip_invariance": False},
        {"forecast_context_len": 32},
        {"truncate_negative": True},
        {"truncate_negative": False, "level": 1000.0},
    ],
    ids=["plain", "no-flip", "decomposed", "shorter-context", "truncate-negative", "offset-not-truncated"],
)
def test_forecasts_equal_transformers(timesfm2_5, options):
    references, model = timesfm2_5
    options = dict(options)
    series = _series(positive=bool(options.get("truncate_negative")), level=options.pop("level", 0.0))
    got = model.generate({"past_values": series, **options})
    for hf in references:
        with torch.no_grad():
            expected = hf(past_values=series, **options)
        for name in ("mean_predictions", "full_predictions"):
            want = getattr(expected, name).numpy()
            assert getattr(got, name).shape == want.shape, name
            np.testing.assert_allclose(getattr(got, name).numpy(), want, atol=1e-4 * max(1.0, np.abs(want).max()), rtol=0, err_msg=name)
    assert float((expected.mean_predictions[0] - expected.mean_predictions[1]).abs().max()) > 1e-2  # the series decides


def test_without_the_continuous_quantile_head(timesfm2_5, tmp_path):
    references, _ = timesfm2_5
    hf = references[0]
    hf.config.use_continuous_quantile_head = False
    try:
        model = QEFFTimesFm2_5ModelForPrediction(hf)
        with torch.no_grad():
            expected = hf(past_values=_series()).full_predictions.numpy()
        got = model.generate(_series(), runtime_ai100=False).full_predictions.numpy()
    finally:
        hf.config.use_continuous_quantile_head = True
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max(), rtol=0)


@pytest.mark.parametrize("level, spread", [(1.0, 2.0), (5.6, 0.006)], ids=["centred", "a level far above the spread"])
def test_running_stats_equal_transformers_loop(level, spread):
    generator = torch.Generator().manual_seed(2)
    patches = torch.randn(3, 6, 8, generator=generator) * spread + level + torch.linspace(0, 3 * spread, 48).reshape(6, 8)
    masked = torch.zeros(3, 6, 8, dtype=torch.bool)
    masked[1, :2] = True  # two whole padded patches in front
    masked[2, :3, :5] = True  # padding ending inside a patch
    count, mean, std = (torch.zeros(3) for _ in range(3))
    means, stds = [], []
    for i in range(6):
        count, mean, std = TimesFm2_5Model._update_running_stats(count, mean, std, patches[:, i], masked[:, i])
        means.append(mean)
        stds.append(std)
    got_mean, got_std = running_stats(patches, masked)
    torch.testing.assert_close(got_mean, torch.stack(means, 1), atol=1e-5 * level, rtol=0)
    torch.testing.assert_close(got_std, torch.stack(stds, 1), atol=1e-4 * spread, rtol=0)
    assert (got_mean[1, :2] == 0).all() and (got_std[1, :2] == 0).all()


def test_bad_inputs(timesfm2_5):
    _, model = timesfm2_5
    with pytest.raises(ValueError, match="non-empty 1-D series"):
        model.generate({"past_values": []})
    with pytest.raises(ValueError, match="multiple of the patch length"):
        model.generate({"past_values": _series(), "forecast_context_len": 20})
    with pytest.raises(ValueError, match=r"one series: \[series\]"):
        model.generate({"past_values": _series()[0]})  # a single series, not in a list
    with pytest.raises(ValueError, match="window_size must be a positive integer"):
        model.generate({"past_values": _series(), "window_size": 0})
    with pytest.raises(ValueError, match="Unknown inputs"):
        model.generate({"past_values": _series(), "future_values": torch.zeros(3, 16)})
    with pytest.raises(TypeError, match="compile"):
        QEFFTimesFm2_5ModelForPrediction(model.hf_model).generate(_series())
