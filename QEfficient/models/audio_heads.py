"""Speech encoders' other heads over raw 16 kHz samples or a spectrogram of any length with its frames' mask
(Wav2Vec2-BERT), on the CTC models' graph (models/ctc.py): per-frame classes (speaker diarization: transformers'
``AutoModelForAudioFrameClassification``) and speaker verification (x-vectors: ``AutoModelForAudioXVector``). Each
audio is read at its own length, as transformers reads it alone."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForAudioFrameClassification, AutoModelForAudioXVector, PreTrainedModel

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.export.graph_names import EMBEDDINGS, INPUT_FEATURES, INPUT_VALUES, LOGITS
from QEfficient.export.media_graph_specs import (
    AudioXVectorGraphSpec,
    CTCGraphSpec,
    FeatureAudioFrameGraphSpec,
    FeatureAudioXVectorGraphSpec,
)
from QEfficient.models.ctc import QEFFAutoModelForCTC

# frame classification and x-vector types not run here, with why
UNSUPPORTED_AUDIO_HEADS = {
    "nemotron3_diarization": "it streams its spectrogram in chunks with a speaker cache, which this one-pass graph does not keep",
}


class _AudioHead(QEFFAutoModelForCTC):
    @classmethod
    def _refused_types(cls) -> dict[str, str]:
        return UNSUPPORTED_AUDIO_HEADS

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        reason = UNSUPPORTED_AUDIO_HEADS.get(model.config.model_type)
        if reason is not None:
            raise NotImplementedError(f"{type(model).__name__} is not supported: {reason}.")
        super().__init__(model, **kwargs)

    def _check_call(self, device_ids, write_io) -> None:
        if write_io or (device_ids is not None and len(device_ids) > 1):
            warn_ignored_options("generate()", {"write_io": write_io, "device_ids": device_ids})


class QEFFAutoModelForAudioFrameClassification(_AudioHead):
    """Per-frame classes (speaker diarization: Wav2Vec2, WavLM, UniSpeech-SAT, Data2VecAudio, Wav2Vec2-Conformer,
    Wav2Vec2-BERT ``ForAudioFrameClassification``): generate(processor, audio) returns {"logits": torch.Tensor [audios, frames,
    labels]} (a sigmoid per label gives who speaks in each 20 ms frame), a shorter audio's frames past its own zeros (a
    processor's padded batch: transformers' values there).

    >>> model = QEFFAutoModelForAudioFrameClassification.from_pretrained("path/to/wav2vec2-base-superb-sd")
    >>> model.compile(seq_len=160000)
    >>> model.generate(processor, audio)["logits"].sigmoid() > 0.5
    """

    _hf_auto = AutoModelForAudioFrameClassification
    _head = "ForAudioFrameClassification"
    _specs = {INPUT_VALUES: CTCGraphSpec, INPUT_FEATURES: FeatureAudioFrameGraphSpec}

    def generate(
        self, processor, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True, write_io: bool = False
    ) -> dict[str, torch.Tensor]:
        """The per-frame logits of ``inputs``: raw 16 kHz audio (an array, or a list of them) or a processor's output."""
        self._check_call(device_ids, write_io)
        rows = [row for batch in self._processed(processor, inputs) for row in self._outputs(batch, runtime_ai100)[0]]
        if not rows:
            raise ValueError("No audio given: pass an array of 16 kHz samples, a list of them, or a processor's output.")
        frames = max(len(row) for row in rows)
        return {LOGITS: torch.from_numpy(np.stack([np.pad(row, [(0, frames - len(row)), (0, 0)]) for row in rows]))}


class QEFFAutoModelForAudioXVector(_AudioHead):
    """Speaker verification (Wav2Vec2, WavLM, UniSpeech-SAT, Data2VecAudio, Wav2Vec2-Conformer, Wav2Vec2-BERT
    ``ForXVector``):
    generate(processor, audio) returns {"logits": [audios, speakers], "embeddings": [audios, D]}, the x-vectors whose
    cosine similarity says whether two audios are one speaker, as transformers' forward gives them for each audio alone
    (a raw-sample model's padded batch pools some padding frames there; Wav2Vec2-BERT pools by its mask).

    >>> model = QEFFAutoModelForAudioXVector.from_pretrained("path/to/wavlm-base-plus-sv")
    >>> model.compile(seq_len=160000)
    >>> e = torch.nn.functional.normalize(model.generate(processor, [audio_a, audio_b])["embeddings"], dim=-1)
    >>> float(e[0] @ e[1])  # the same speaker above a threshold (0.86 on the model card)
    """

    _hf_auto = AutoModelForAudioXVector
    _head = "ForXVector"
    _one_row_per_audio = True
    _specs = {INPUT_VALUES: AudioXVectorGraphSpec, INPUT_FEATURES: FeatureAudioXVectorGraphSpec}

    def generate(
        self, processor, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True, write_io: bool = False
    ) -> dict[str, torch.Tensor]:
        """The speaker logits and x-vectors of ``inputs``: raw 16 kHz audio (an array, or a list of them) or a
        processor's output."""
        self._check_call(device_ids, write_io)
        parts = [self._outputs(batch, runtime_ai100) for batch in self._processed(processor, inputs)]
        if not parts:
            raise ValueError("No audio given: pass an array of 16 kHz samples, a list of them, or a processor's output.")
        logits, embeddings = (np.concatenate(column) for column in zip(*parts))
        return {LOGITS: torch.from_numpy(logits), EMBEDDINGS: torch.from_numpy(embeddings)}
