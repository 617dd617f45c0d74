"""TimesFM 2.5 (transformers' ``TimesFm2_5ModelForPrediction``, what ``AutoModelForTimeSeriesPrediction`` loads for it)
as one graph: its decoder and output heads over the normalized context window (transform/timesfm2_5.py), at any context
length that is a multiple of its patch. What transformers' forward does around that pass runs on the host with numpy,
in its order: each series cut to its last ``forecast_context_len`` values or padded in front, the optional
trend/residual decomposition (``window_size``), the normalization by the window's mean and deviation, the flipped
series' forecast for flip invariance (both in one run), the continuous quantile head, and ``truncate_negative``.

``generate({"past_values": [series, ...]})`` returns transformers' TimesFm2_5OutputForPrediction with
``mean_predictions`` [series, horizon] and ``full_predictions`` [series, horizon, 1 + quantiles].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import TimesFm2_5ModelForPrediction
from transformers.models.timesfm2_5.modeling_timesfm2_5 import TimesFm2_5OutputForPrediction

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.export.task_graph_specs import PAST_VALUES, PAST_VALUES_PADDING, TIME_SERIES_KIND, TimesFm2_5GraphSpec
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.models.timesfm import TimesFmForecaster, moving_average, series_inputs, window_option
from QEfficient.transform.timesfm2_5 import QEffTimesFm2_5

KIND = f"{TIME_SERIES_KIND}-timesfm2_5"
OPTIONS = (PAST_VALUES, "window_size", "forecast_context_len", "truncate_negative", "force_flip_invariance")


def flip_quantiles(x: np.ndarray) -> np.ndarray:
    """The mean, then the quantiles in reverse order: the forecast of a flipped series read as the series'."""
    return np.concatenate([x[..., :1], x[..., :0:-1]], axis=-1)


class QEFFTimesFm2_5ModelForPrediction(TimesFmForecaster):
    """TimesFM 2.5 (module docstring).

    >>> model = QEFFAutoModelForTimeSeriesPrediction.from_pretrained("path/to/timesfm-2.5-200m-transformers")  # this class
    >>> model.compile(num_cores=16)
    >>> model.generate({"past_values": [series_a, series_b], "forecast_context_len": 1024}).mean_predictions
    """

    hf_class = TimesFm2_5ModelForPrediction
    module_class = QEffTimesFm2_5

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> Path:
        """Export to ONNX (cached under QEFF_HOME); returns the path."""
        spec = TimesFm2_5GraphSpec()
        return self._export_one_graph(spec, spec.dummy_inputs(self.config.patch_length), KIND, export_dir, kwargs)

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
        """Build the artifact for ``batch_size`` series at a time (a flip-invariant forecast runs each series twice), at
        any context length; ``mxfp6_matmul``: the MatMuls as int8 GEMMs."""
        return self._compile_graph(
            onnx_path,
            compile_dir,
            {"output_name": TimesFm2_5GraphSpec.output_names[0], "kind": KIND},
            {},
            TimesFm2_5GraphSpec.specializations(batch_size),
            batch_size=batch_size,
            num_devices=num_devices,
            num_cores=num_cores,
            mxfp6_matmul=mxfp6_matmul,
            compiler_options=compiler_options,
        )

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> TimesFm2_5OutputForPrediction:
        """Forecasts for {"past_values": a list of 1-D series of any lengths, "window_size", "forecast_context_len",
        "truncate_negative", "force_flip_invariance"}, as transformers' forward takes them (or the list of series
        alone)."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        options = dict(inputs) if hasattr(inputs, "keys") else {PAST_VALUES: inputs}
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"Unknown inputs {sorted(unknown)}: TimesFM 2.5 takes {', '.join(OPTIONS)}.")
        config = self.config
        context = options.get("forecast_context_len") or config.context_length
        if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1 or context % config.patch_length:
            raise ValueError(
                f"forecast_context_len must be a positive multiple of the patch length ({config.patch_length}), got {context}."
            )
        series = series_inputs(options.get(PAST_VALUES), int(context))
        context = int(context)
        lowest = float(np.min([ts.min() for ts in series]))  # NaN if any is, as torch.min
        window = window_option(options)
        if window is not None:  # each series as its trend and its residual, forecast apart and summed
            series = [part for ts in series for part in moving_average(ts, window)]
        truncate = options.get("truncate_negative")
        truncate = config.infer_is_positive if truncate is None else truncate
        flip = options.get("force_flip_invariance")
        flip = config.force_flip_invariance if flip is None else flip

        values = np.zeros((len(series), context), np.float32)
        padding = np.ones((len(series), context), np.float32)
        for row, ts in enumerate(series):  # padded in front, as transformers' _preprocess
            values[row, context - len(ts) :], padding[row, context - len(ts) :] = ts, 0
        mu, sigma = values.mean(1, keepdims=True), values.std(1, ddof=1, keepdims=True)  # torch.std: unbiased
        normed = (values - mu) / np.where(sigma < self.hf_model.model.tolerance, np.float32(1), sigma)
        rows, row_padding = (np.concatenate([normed, -normed]), np.concatenate([padding, padding])) if flip else (normed, padding)
        point, spreads = self._forecasts(np.ascontiguousarray(rows), np.ascontiguousarray(row_padding), runtime_ai100)
        if flip:
            half = len(series)
            point = (point[:half] - flip_quantiles(point[half:])) / 2
            spreads = (spreads[:half] - flip_quantiles(spreads[half:])) / 2

        full = point.copy()
        median = min(config.decode_index, full.shape[-1] - 1)
        if config.use_continuous_quantile_head:
            steps = min(full.shape[1], spreads.shape[1])
            for q in range(1, min(len(config.quantiles) + 1, full.shape[-1])):
                if q != median:
                    full[:, :steps, q] = spreads[:, :steps, q] - spreads[:, :steps, median] + full[:, :steps, median]
        full = full * sigma[:, :, None] + mu[:, :, None]
        mean = full[:, :, median]
        if window is not None:
            mean, full = mean[0::2] + mean[1::2], full[0::2] + full[1::2]
        if truncate and lowest >= 0:
            mean, full = np.maximum(mean, 0), np.maximum(full, 0)
        return TimesFm2_5OutputForPrediction(mean_predictions=torch.from_numpy(mean), full_predictions=torch.from_numpy(full))

    def _forecasts(self, values: np.ndarray, padding: np.ndarray, runtime_ai100: bool) -> tuple[np.ndarray, np.ndarray]:
        if not runtime_ai100:
            with torch.no_grad():
                return tuple(t.numpy() for t in self.model(torch.from_numpy(values), torch.from_numpy(padding)))
        session, params = self._forecast_session()
        return tuple(run_in_batches(session, {PAST_VALUES: values, PAST_VALUES_PADDING: padding}, params["batch_size"]))
