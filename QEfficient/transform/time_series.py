"""Time-series models over a fixed context window: PatchTST's and PatchTSMixer's forecasting, regression and
classification heads (forward(past_values [, past_observed_mask]) -> the head's output; heads that output a
distribution's parameters are not run here), and TimesFM's one decoding pass (QEffTimesFm; models/timesfm.py does what
transformers does around it)."""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.rewrites import apply_rewrites

# the transformers classes run here -> the attribute of their output the graph returns
TIME_SERIES_HEADS = {
    "PatchTSTForPrediction": "prediction_outputs",
    "PatchTSTForRegression": "regression_outputs",
    "PatchTSTForClassification": "prediction_logits",
    "PatchTSMixerForPrediction": "prediction_outputs",
    "PatchTSMixerForRegression": "regression_outputs",
    "PatchTSMixerForTimeSeriesClassification": "prediction_outputs",
}
# time-series types of transformers' mappings not run here, with why (TimesFM and TimesFM 2.5 run in their own classes)
UNSUPPORTED_TIME_SERIES: dict[str, str] = {}


class QEffTimeSeries(nn.Module):
    """The head's output for a batch of context windows."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        name = type(hf_model).__name__
        reason = UNSUPPORTED_TIME_SERIES.get(hf_model.config.model_type)
        if reason is None and name not in TIME_SERIES_HEADS:
            reason = f"the time-series heads run here are {', '.join(TIME_SERIES_HEADS)}"
        if reason is None and getattr(hf_model, "distribution_output", None) is not None:
            reason = f"its head outputs a {hf_model.config.distribution_output} distribution's parameters, not values"
        if reason is not None:
            raise NotImplementedError(f"{name} is not supported: {reason}.")
        apply_rewrites(hf_model)  # the patches by a gather (transform/rewrites.py)
        self.hf = hf_model
        self.output = TIME_SERIES_HEADS[name]
        parameters = inspect.signature(hf_model.forward).parameters
        # PatchTST's heads call it past_observed_mask, PatchTSMixer's forecaster observed_mask; its other heads take none
        self.mask_name = next((n for n in ("past_observed_mask", "observed_mask") if n in parameters), None)

    @property
    def config(self):
        return self.hf.config

    def forward(self, past_values: torch.Tensor, past_observed_mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = {} if self.mask_name is None else {self.mask_name: past_observed_mask}
        return getattr(self.hf(past_values=past_values, return_dict=True, **mask), self.output)


class QEffTimesFm(nn.Module):
    """TimesFM's one decoding pass (its forecast horizon is one output patch): forward(past_values [B, context],
    past_values_padding [B, context], freq [B, 1]) -> every patch's forecast [B, patches, horizon, 1 + quantiles],
    de-normalised, as transformers' forward computes it before picking the last patch (the host picks, and assembles
    the forecast on the context when asked)."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        if hf_model.config.model_type != "timesfm":
            raise NotImplementedError(f"{type(hf_model).__name__} is not a TimesFM forecaster.")
        if hf_model.config.use_positional_embedding:
            raise NotImplementedError(
                f"{type(hf_model).__name__} with use_positional_embedding=True is not supported: transformers repeats its "
                "position table by a Python count of the series, which the graph would fix at the export's."
            )
        self.hf = hf_model

    @property
    def config(self):
        return self.hf.config

    def forward(self, past_values: torch.Tensor, past_values_padding: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
        out = self.hf.decoder(past_values=past_values, past_values_padding=past_values_padding, freq=freq)
        return self.hf._postprocess_output(out.last_hidden_state, (out.loc, out.scale))
