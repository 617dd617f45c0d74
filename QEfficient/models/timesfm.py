"""TimesFM (Google's time-series foundation model; transformers' ``TimesFmModelForPrediction``, what
``AutoModelForTimeSeriesPrediction`` loads for it) as one graph: its decoder and forecast head over the context window,
one pass (its horizon is one output patch). What transformers' forward does around that pass in Python runs on the host
with numpy, in its order: each series cut to its last ``context_length`` values or padded in front, the optional
trend/residual decomposition (``window_size``), the last patch's forecast (and the forecast on the context, when
asked), and ``truncate_negative``.

``generate({"past_values": [series, ...], "freq": [...]})`` returns transformers' TimesFmOutputForPrediction with
``mean_predictions`` [series, horizon] and ``full_predictions`` [series, horizon, 1 + quantiles].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, TimesFmModelForPrediction
from transformers.models.timesfm.modeling_timesfm import TimesFmOutputForPrediction

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.export.task_graph_specs import FREQ, PAST_VALUES, PAST_VALUES_PADDING, PATCH_FORECASTS, TIME_SERIES_KIND, TimesFmGraphSpec
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.models.base import QEFFBaseModel
from QEfficient.transform.time_series import QEffTimesFm
from QEfficient.utils.arrays import as_numpy


def moving_average(series: np.ndarray, window: int) -> list[np.ndarray]:
    """transformers' trend/residual decomposition: the mean of each value's window (zeros before the series), and what
    is left."""
    padded = np.concatenate([np.zeros(window - 1, series.dtype), series])
    smoothed = np.lib.stride_tricks.sliding_window_view(padded, window).mean(-1, dtype=np.float32).astype(series.dtype)
    return [smoothed, series - smoothed]


def series_inputs(given, context: int) -> list[np.ndarray]:
    """``past_values`` (a list of 1-D series, or a [series, length] array or tensor: its rows), each cut to its last
    ``context`` values, checked."""
    series = [np.asarray(as_numpy(ts), np.float32) for ts in ([] if given is None else given)]
    if not series or any(ts.ndim != 1 or not len(ts) for ts in series):
        raise ValueError("past_values must be a list of non-empty 1-D series (one series: [series]).")
    return [ts[-context:] for ts in series]


def window_option(options: dict) -> int | None:
    """The trend/residual decomposition's ``window_size``: None, or a positive integer."""
    window = options.get("window_size")
    if window is not None and (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1):
        raise ValueError(f"window_size must be a positive integer, got {window!r}.")
    return None if window is None else int(window)


class TimesFmForecaster(QEFFBaseModel):
    """What the TimesFM classes share: loading transformers' forecaster (``hf_class``), wrapped in the graph's module
    (``module_class``), and the compiled artifact's session."""

    hf_class: type[PreTrainedModel]
    module_class: type[torch.nn.Module]

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.model = self.module_class(model.eval())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        obj = cls._from_hf(cls.hf_class, pretrained_model_name_or_path, *args, **kwargs)  # eager attention
        saved, name = obj.config.architectures or [], cls.hf_class.__name__
        if saved and name not in saved:  # its forecast head would be untrained
            raise ValueError(f"'{pretrained_model_name_or_path}' holds a {saved[0]}, not TimesFM's forecaster ({name}).")
        return obj

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    def _forecast_session(self) -> tuple:
        """(session, compile params) of the artifact compile() built."""
        return self._graph_session("timesfm", self.qpc_path)


class QEFFTimesFmModelForPrediction(TimesFmForecaster):
    """TimesFM (module docstring).

    >>> model = QEFFAutoModelForTimeSeriesPrediction.from_pretrained("path/to/timesfm-2.0-500m-pytorch")  # this class
    >>> model.compile(num_cores=16)
    >>> model.generate({"past_values": [series_a, series_b], "freq": [0, 1]}).mean_predictions
    """

    hf_class = TimesFmModelForPrediction
    module_class = QEffTimesFm

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> Path:
        """Export to ONNX (cached under QEFF_HOME); returns the path."""
        spec = TimesFmGraphSpec()
        args = spec.dummy_inputs(self.config.context_length)
        return self._export_one_graph(spec, args, f"{TIME_SERIES_KIND}-timesfm", export_dir, kwargs)

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        **compiler_options,
    ) -> Path:
        """Build the artifact for ``batch_size`` series at a time; ``mxfp6_matmul``: the MatMuls as int8 GEMMs."""
        return self._compile_graph(
            onnx_path,
            compile_dir,
            {"output_name": PATCH_FORECASTS, "kind": f"{TIME_SERIES_KIND}-timesfm"},
            {"context_length": self.config.context_length},
            TimesFmGraphSpec.specializations(batch_size, self.config.context_length),
            batch_size=batch_size,
            num_devices=num_devices,
            num_cores=num_cores,
            mxfp6_matmul=mxfp6_matmul,
            compiler_options=compiler_options,
        )

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> TimesFmOutputForPrediction:
        """Forecasts for {"past_values": a list of 1-D series of any lengths, "freq": a frequency class per series (0
        high, 1 medium, 2 low; default 0), "window_size", "forecast_context_len", "return_forecast_on_context",
        "truncate_negative"}, as transformers' forward takes them (or the list of series alone)."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        options = dict(inputs) if hasattr(inputs, "keys") else {PAST_VALUES: inputs}
        unknown = set(options) - {
            PAST_VALUES,
            FREQ,
            "window_size",
            "forecast_context_len",
            "return_forecast_on_context",
            "truncate_negative",
        }
        if unknown:
            raise ValueError(f"Unknown inputs {sorted(unknown)}: TimesFM takes past_values, freq, window_size, forecast_context_len, ...")
        context, horizon, patch = self.config.context_length, self.config.horizon_length, self.config.patch_length
        if options.get("forecast_context_len") not in (None, context):
            raise ValueError(f"The graph reads {context} values of context (the model's context_length): leave forecast_context_len out.")
        series = series_inputs(options.get(PAST_VALUES), context)
        freq = options.get(FREQ)
        freq = [0] * len(series) if freq is None else [int(f) for f in np.asarray(as_numpy(freq)).reshape(-1)]
        if len(freq) != len(series) or any(not 0 <= f < self.config.freq_size for f in freq):
            raise ValueError(f"freq must hold one frequency class (0 to {self.config.freq_size - 1}) per series.")
        lowest = float(np.min([ts.min() for ts in series]))  # NaN if any is, as torch.min
        window = window_option(options)
        if window is not None:  # each series as its trend and its residual, forecast apart and summed
            series = [part for ts in series for part in moving_average(ts, window)]
            freq = [f for f in freq for _ in range(2)]
        values = np.zeros((len(series), context), np.float32)
        padding = np.ones((len(series), context), np.float32)
        for row, ts in enumerate(series):  # padded in front, as transformers' _preprocess
            values[row, context - len(ts) :], padding[row, context - len(ts) :] = ts, 0
        forecasts = self._forecasts(values, padding, np.asarray(freq, np.int32)[:, None], runtime_ai100)
        full = forecasts[:, -1, :horizon, :]
        if options.get("return_forecast_on_context"):
            on_context = forecasts[:, :-1, :patch, :].reshape(len(series), -1, forecasts.shape[-1])
            full = np.concatenate([on_context, full], axis=1)[:, : context - patch + horizon]
        mean = full[..., 0]
        if window is not None:
            mean, full = mean[0::2] + mean[1::2], full[0::2] + full[1::2]
        if options.get("truncate_negative") and lowest >= 0:
            mean, full = np.maximum(mean, 0), np.maximum(full, 0)
        return TimesFmOutputForPrediction(mean_predictions=torch.from_numpy(mean), full_predictions=torch.from_numpy(full))

    def _forecasts(self, values: np.ndarray, padding: np.ndarray, freq: np.ndarray, runtime_ai100: bool) -> np.ndarray:
        if not runtime_ai100:
            with torch.no_grad():
                return self.model(torch.from_numpy(values), torch.from_numpy(padding), torch.from_numpy(freq)).numpy()
        session, params = self._forecast_session()
        return run_in_batches(session, {PAST_VALUES: values, PAST_VALUES_PADDING: padding, FREQ: freq}, params["batch_size"])[0]
