"""QEFFAutoModelForTextToWaveform: non-autoregressive text-to-speech (VITS, and the MMS-TTS checkpoints built on it;
transformers' ``AutoModelForTextToWaveform``) as one graph: a tokenizer's output in, the waveform and each row's length
out, as transformers' forward returns them.

The noise scales and speaking rate default to the model's (its config's) and may be given per call. Like transformers,
each call with noise draws new noise; the graph draws it with ONNX Runtime's generator, so torch's seed does not
reproduce transformers' waveform. With both noise scales 0 the waveform is transformers' own.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForTextToWaveform, PreTrainedModel

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_IDS
from QEfficient.export.task_graph_specs import (
    NOISE_SCALE,
    NOISE_SCALE_DURATION,
    SEQUENCE_LENGTHS,
    SPEAKER_ID,
    SPEAKING_RATE,
    TEXT_TO_WAVEFORM_KIND,
    WAVEFORM,
    TextToWaveformGraphSpec,
)
from QEfficient.generation.encoder_run import encoder_inputs
from QEfficient.models.base import QEFFBaseModel
from QEfficient.models.processor_files import save_whole_processor, whole_processor_key
from QEfficient.transform.text_to_speech import QEffVits
from QEfficient.utils.arrays import as_numpy


class QEFFAutoModelForTextToWaveform(QEFFBaseModel):
    """Text-to-speech with VITS (module docstring).

    >>> model = QEFFAutoModelForTextToWaveform.from_pretrained("path/to/mms-tts-eng")
    >>> model.compile(num_cores=16)
    >>> out = model.generate(tokenizer("Hello, my dog is cute", return_tensors="pt"))
    >>> out["waveform"][0, : out["sequence_lengths"][0]]  # at model.sampling_rate
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.model = QEffVits(model.eval())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        return cls._from_auto(AutoModelForTextToWaveform, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    @property
    def sampling_rate(self) -> int:
        """The waveform's samples per second."""
        return self.config.sampling_rate

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> Path:
        """Export to ONNX (cached under QEFF_HOME); returns the path."""
        if getattr(self, "_without_weights", False):
            raise TypeError(
                "This model was loaded from its artifact, without weights: load it with from_pretrained() to export or compile it."
            )
        spec = TextToWaveformGraphSpec(self.model.speakers)
        return self._export_one_graph(spec, spec.dummy_inputs(self.config.vocab_size), TEXT_TO_WAVEFORM_KIND, export_dir, kwargs)

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
        """Build the artifact. The texts of one call run together, padded as the tokenizer pads them (as transformers
        runs a batch); ``mxfp6_matmul``: the MatMuls as int8 GEMMs."""
        return self._compile_graph(
            onnx_path,
            compile_dir,
            {"output_name": WAVEFORM, "kind": TEXT_TO_WAVEFORM_KIND, "keeps_processor": True},
            whole_processor_key(self.local_model_dir),  # the tokenizer and config kept: a server runs the artifact alone
            TextToWaveformGraphSpec.specializations(batch_size),
            batch_size=batch_size,
            num_devices=num_devices,
            num_cores=num_cores,
            mxfp6_matmul=mxfp6_matmul,
            compiler_options=compiler_options,
            extra_files=lambda artifact_dir: save_whole_processor(self.local_model_dir, artifact_dir, self.config),
        )

    @classmethod
    def from_artifact(cls, qpc_path: str | os.PathLike, num_cores: int | None = None) -> QEFFAutoModelForTextToWaveform:
        """The compiled model from its artifact (compile()'s path), which keeps the config and tokenizer: generate() runs
        its graph. No weights are read (the modules are built on the meta device), so export and compile are refused."""
        return cls._from_kept_files(
            qpc_path, num_cores, None, TEXT_TO_WAVEFORM_KIND, None, "a VITS model", AutoModelForTextToWaveform.from_config
        )

    def generate(
        self,
        inputs,
        device_ids: list[int] | None = None,
        runtime_ai100: bool = True,
        *,
        noise_scale: float | None = None,
        noise_scale_duration: float | None = None,
        speaking_rate: float | None = None,
        speaker_id: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """{"waveform": [texts, samples], "sequence_lengths": [texts]} for a tokenizer's output; each row's audio is its
        first sequence_lengths samples, at ``sampling_rate``. The noise scales and speaking rate default to the model's."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        if not hasattr(inputs, "keys") or INPUT_IDS not in inputs:
            raise ValueError("Pass a tokenizer's output (input_ids and attention_mask).")
        self._check_pytorch_run(runtime_ai100)
        ids, mask, _ = encoder_inputs({k: as_numpy(v) for k, v in inputs.items() if k in (INPUT_IDS, ATTENTION_MASK) and v is not None})
        if ids.ndim != 2 or mask.shape != ids.shape or not ids.shape[0] or not ids.shape[1]:
            raise ValueError(f"input_ids and attention_mask must be [texts, tokens] alike, got {list(ids.shape)} and {list(mask.shape)}.")
        feed = self._controls(noise_scale, noise_scale_duration, speaking_rate, speaker_id)
        if not runtime_ai100:
            with torch.no_grad():
                waveform, lengths = self.model(torch.from_numpy(ids), torch.from_numpy(mask), *map(torch.from_numpy, feed.values()))
            return {WAVEFORM: waveform, SEQUENCE_LENGTHS: lengths}
        session = self._graph_session("vits", self.qpc_path)[0]
        graph_inputs = {i.name for i in session.get_inputs()}  # a deterministic duration predictor reads no duration noise
        feed = {name: value for name, value in {INPUT_IDS: ids, ATTENTION_MASK: mask, **feed}.items() if name in graph_inputs}
        waveform, lengths = session.run([WAVEFORM, SEQUENCE_LENGTHS], feed)
        return {WAVEFORM: torch.from_numpy(waveform), SEQUENCE_LENGTHS: torch.from_numpy(lengths)}

    def _controls(self, noise_scale, noise_scale_duration, speaking_rate, speaker_id) -> dict[str, np.ndarray]:
        """The graph's scalar inputs: the given values, else the model's own (transformers' defaults from the config)."""
        hf = self.hf_model
        values = {
            NOISE_SCALE: hf.noise_scale if noise_scale is None else noise_scale,
            NOISE_SCALE_DURATION: hf.noise_scale_duration if noise_scale_duration is None else noise_scale_duration,
            SPEAKING_RATE: hf.speaking_rate if speaking_rate is None else speaking_rate,
        }
        for name, value in values.items():
            value = _scalar(value)
            bad = not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0
            if bad or (name == SPEAKING_RATE and value <= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (speaking_rate > 0), got {value!r}.")
            values[name] = value
        feed = {name: np.array(value, np.float32) for name, value in values.items()}
        speakers = self.config.num_speakers
        if speakers > 1:  # transformers runs such a model without a speaker's embedding when given none; the graph takes one
            speaker_id = _scalar(speaker_id)
            if not isinstance(speaker_id, int) or isinstance(speaker_id, bool) or not 0 <= speaker_id < speakers:
                raise ValueError(f"{type(hf).__name__} has {speakers} speakers: pass speaker_id, an integer from 0 to {speakers - 1}.")
            feed[SPEAKER_ID] = np.array([speaker_id], np.int64)
        elif speaker_id is not None:
            raise ValueError(f"{type(hf).__name__} has one speaker: leave speaker_id out.")
        return feed


def _scalar(value):
    """A one-element numpy or torch value as a Python number (others as they are)."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value
    if isinstance(value, (np.generic, np.ndarray)):
        return value.item() if value.size == 1 else value
    return value
