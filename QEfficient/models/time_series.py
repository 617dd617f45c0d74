"""QEFFAutoModelForTimeSeriesPrediction: time-series models over a fixed context window (PatchTST and PatchTSMixer's
forecasting, regression and classification heads) as one graph, loaded by the head the checkpoint was saved with; a
TimesFM checkpoint loads as QEFFTimesFmModelForPrediction (models/timesfm.py), a TimesFM 2.5 one as
QEFFTimesFm2_5ModelForPrediction (models/timesfm2_5.py).

``generate({"past_values": [series, context_length, channels]})`` returns {output name: torch.Tensor} as transformers'
forward names it: ``prediction_outputs`` (a forecast [series, prediction_length, channels], or PatchTSMixer's class
logits), ``regression_outputs``, or PatchTST's ``prediction_logits``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import PreTrainedModel

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.export.task_graph_specs import PAST_OBSERVED_MASK, PAST_VALUES, TIME_SERIES_KIND, TimeSeriesGraphSpec
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.loading.hf_loader import load_config
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.base import QEFFBaseModel
from QEfficient.transform.time_series import TIME_SERIES_HEADS, UNSUPPORTED_TIME_SERIES, QEffTimeSeries
from QEfficient.utils.arrays import as_numpy


class QEFFAutoModelForTimeSeriesPrediction(QEFFBaseModel):
    """A time-series model (module docstring).

    >>> model = QEFFAutoModelForTimeSeriesPrediction.from_pretrained("path/to/patchtst-etth1-forecast")
    >>> model.compile(num_cores=16)
    >>> model.generate({"past_values": context})["prediction_outputs"]  # [series, prediction_length, channels]
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.model = QEffTimeSeries(model.eval())
        self.spec = TimeSeriesGraphSpec(self.model.output, self.model.mask_name is not None)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache, loaded with the head it was saved with (its config's
        architectures); other keyword arguments go to transformers."""
        folder, _ = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        config = load_config(folder)
        if config.model_type == "timesfm":  # transformers' AutoModelForTimeSeriesPrediction model: its own class here
            from QEfficient.models.timesfm import QEFFTimesFmModelForPrediction

            return QEFFTimesFmModelForPrediction.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if config.model_type == "timesfm2_5":
            from QEfficient.models.timesfm2_5 import QEFFTimesFm2_5ModelForPrediction

            return QEFFTimesFm2_5ModelForPrediction.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if config.model_type in UNSUPPORTED_TIME_SERIES:
            raise NotImplementedError(f"{config.model_type} is not supported: {UNSUPPORTED_TIME_SERIES[config.model_type]}.")
        head = next((a for a in config.architectures or [] if a in TIME_SERIES_HEADS), None)
        if head is None:
            raise NotImplementedError(
                f"'{pretrained_model_name_or_path}' ({', '.join(config.architectures or [config.model_type])}) is not a "
                f"time-series head run here: {', '.join(TIME_SERIES_HEADS)}."
            )
        return cls._from_hf(getattr(transformers, head), pretrained_model_name_or_path, *args, **kwargs)  # eager attention

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    @property
    def _window(self) -> tuple[int, int]:
        """(context_length, channels) the model reads."""
        return self.config.context_length, self.config.num_input_channels

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> Path:
        """Export to ONNX (cached under QEFF_HOME); returns the path."""
        return self._export_one_graph(self.spec, self.spec.dummy_inputs(*self._window), TIME_SERIES_KIND, export_dir, kwargs)

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        **compiler_options,
    ) -> Path:
        """Build the artifact for ``batch_size`` series at a time (the context window is the model's)."""
        return self._compile_graph(
            onnx_path,
            compile_dir,
            {"output_name": self.spec.output_name, "kind": TIME_SERIES_KIND},
            {},
            TimeSeriesGraphSpec.specializations(batch_size, self._window[0]),
            batch_size=batch_size,
            num_devices=num_devices,
            num_cores=num_cores,
            mxfp6_matmul=False,  # small models: float32
            compiler_options=compiler_options,
        )

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> dict[str, torch.Tensor]:
        """The head's output for {"past_values": [series, context_length, channels], "past_observed_mask": the same
        shape, 1 where observed (default: all)}. The series run ``batch_size`` at a time: a mean scaler's fallback for
        a channel observed nowhere averages over those series, as transformers' over the batch it is given."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        if not hasattr(inputs, "keys") or PAST_VALUES not in inputs:
            raise ValueError("Pass {'past_values': [series, context_length, channels]} (and past_observed_mask where known).")
        values = np.ascontiguousarray(as_numpy(inputs[PAST_VALUES]), dtype=np.float32)
        context, channels = self._window
        if values.ndim != 3 or values.shape[1:] != (context, channels) or not len(values):
            raise ValueError(f"past_values must be [series, {context}, {channels}] (the model's context window), got {list(values.shape)}.")
        observed = inputs.get(PAST_OBSERVED_MASK, inputs.get("observed_mask"))
        observed = np.ones_like(values) if observed is None else np.ascontiguousarray(as_numpy(observed), dtype=np.float32)
        if observed.shape != values.shape:
            raise ValueError(f"past_observed_mask must be shaped as past_values {list(values.shape)}, got {list(observed.shape)}.")
        if not self.spec.observed_mask and not observed.all():
            raise ValueError(f"{type(self.hf_model).__name__} reads no observed mask: fill the missing values instead.")
        columns = [values, observed] if self.spec.observed_mask else [values]
        if not runtime_ai100:
            with torch.no_grad():
                return {self.spec.output_name: self.model(*map(torch.from_numpy, columns))}
        session, params = self._graph_session("time_series", self.qpc_path)
        batch = params["batch_size"]
        feed = {PAST_VALUES: values, **({PAST_OBSERVED_MASK: observed} if self.spec.observed_mask else {})}
        out = run_in_batches(session, feed, batch)[0]
        return {self.spec.output_name: torch.from_numpy(out)}
