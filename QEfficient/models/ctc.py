"""QEFFAutoModelForCTC: speech encoders with a CTC head (Wav2Vec2, HuBERT, WavLM, ..., Parakeet), as one graph.

Raw 16 kHz samples in (or a spectrogram model's input features and their mask), per-frame logits out; greedy CTC
decoding (argmax, then the processor's ``batch_decode``, which merges repeats and drops blanks) gives the text, as
transformers' examples do. The graph's time axis is dynamic, so audio runs at its own length. The same graph serves
QEFFAutoModelForAudioClassification (the model pools its frames into one row of logits; also over a spectrogram of one
size) and QEFFAutoModelForAudioFeatureExtraction (the encoder's last hidden state).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

import numpy as np
import torch
from transformers import AutoModel, AutoModelForAudioClassification, AutoModelForCTC, PreTrainedModel

from QEfficient.compile.ort_cpu import read_artifact, warn_ignored_options
from QEfficient.compile.weight_compression import quantize_dynamic_int8
from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_FEATURES, INPUT_VALUES, LOGITS, OUTPUT
from QEfficient.export.media_graph_specs import (
    AudioClassificationGraphSpec,
    AudioFeatureGraphSpec,
    AudioXVectorGraphSpec,
    CTCGraphSpec,
    FeatureAudioClassificationGraphSpec,
    FeatureAudioStatesGraphSpec,
    FeatureCTCGraphSpec,
    SpectrogramClassificationGraphSpec,
    check_example_padding,
)
from QEfficient.export.onnx_export import export_ctc_onnx
from QEfficient.generation.audio_inputs import (
    FEATURES,
    SAMPLES,
    SPECTROGRAM,
    as_array,
    audio_graph_inputs,
    first_frame_samples,
    processed_audio,
)
from QEfficient.generation.ctc_windows import WINDOW_SECONDS, kept_frames, window_sizes, windows
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.loading.hf_loader import load_config
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.base import QEFFBaseModel
from QEfficient.models.processor_files import processor_files_key, save_processor_files
from QEfficient.runtime.ort_session import open_artifact_session
from QEfficient.transform.ctc import CHANNEL_AXIS_TYPES, SPECTROGRAM_ENCODERS, QEffCTC
from QEfficient.utils.audio import SAMPLING_RATE
from QEfficient.utils.checks import check_positive

# families whose transformers examples decode with skip_special_tokens=True (Parakeet's model card)
SKIP_SPECIAL_TOKENS_TYPES = frozenset({"parakeet_ctc", "lasr_ctc", "granite_speech5_ctc"})
# types whose inputs_to_logits_ratio counts spectrogram frames, not samples (transformers' pipeline multiplies by the hop)
RATIO_IN_SPECTROGRAM_FRAMES = frozenset({"lasr_ctc"})
# CTC types refused, and why
UNSUPPORTED_CTC: dict[str, str] = {}


class QEFFAutoModelForCTC(QEFFBaseModel):
    """>>> model = QEFFAutoModelForCTC.from_pretrained("path/to/wav2vec2-base-960h")
    >>> model.compile(seq_len=480000)
    >>> model.generate(processor, audio)  # ["A MAN SAID TO THE UNIVERSE ..."]
    """

    _hf_auto = AutoModelForCTC
    _head = "ForCTC"  # the transformers classes taken (Wav2Vec2ForCTC, ...)
    _specs = {INPUT_VALUES: CTCGraphSpec, INPUT_FEATURES: FeatureCTCGraphSpec}  # the graph, by what the model reads
    _one_row_per_audio = False  # a classifier's output (its frames pooled)

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        name = type(model).__name__
        if not name.endswith(self._head):
            heads = " or ".join(f"*{h}" for h in ((self._head,) if isinstance(self._head, str) else self._head))
            raise TypeError(f"{name} is not a {heads} model, which {type(self).__name__} runs.")
        if model.config.model_type in UNSUPPORTED_CTC:
            raise NotImplementedError(f"{name} is not supported: {UNSUPPORTED_CTC[model.config.model_type]}.")
        spec = self._spec_for(model)
        if spec is None:
            raise NotImplementedError(
                f"{name} reads {model.main_input_name}: {type(self).__name__} runs models that read {' or '.join(self._specs)}."
            )
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        self.model = QEffCTC(self.hf, spec)
        self.qpc_session = None
        check_example_padding(model.config)

    @classmethod
    def _refused_types(cls) -> dict[str, str]:
        """Model types this class refuses, with why."""
        return UNSUPPORTED_CTC

    def _spec_for(self, model: PreTrainedModel):
        """The graph's spec for ``model`` (by what it reads), or None."""
        return self._specs.get(model.main_input_name)

    @property
    def _reads_samples(self) -> bool:
        """Whether the graph reads raw 16 kHz samples [batch, samples] (else a spectrogram)."""
        return self.model.spec in (CTCGraphSpec, AudioClassificationGraphSpec, AudioFeatureGraphSpec, AudioXVectorGraphSpec)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, pooling=None, *args, **kwargs) -> QEFFAutoModelForCTC:
        """A local folder or a hub id in the local HF cache; ``pooling`` is accepted for QEfficient's
        signature (the model pools, or has nothing to pool); other keyword arguments go to transformers. A checkpoint
        saved with another head (a classifier's for CTC, or the reverse) is refused: that head would be untrained."""
        if pooling is not None:
            warn_ignored_options("from_pretrained()", {"pooling": pooling})
        # the saved head, from the config: before the weights, whose head's shapes may not fit this class's
        folder, _ = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        config = load_config(folder)
        saved = config.architectures or []
        reason = cls._refused_types().get(config.model_type)
        if reason is not None:  # before the weights load
            raise NotImplementedError(f"{saved[0] if saved else config.model_type} is not supported: {reason}.")
        if cls._head != "Model" and saved and not any(a.endswith(cls._head) for a in saved):  # a base model takes any
            classifier = "QEFFAutoModelForAudioClassification"
            by_head = {"ForCTC": "QEFFAutoModelForCTC", "ForSequenceClassification": classifier, "ForAudioClassification": classifier}
            by_head["ForAudioFrameClassification"] = "QEFFAutoModelForAudioFrameClassification"
            by_head["ForXVector"] = "QEFFAutoModelForAudioXVector"
            other = next((name for head, name in by_head.items() if saved[0].endswith(head)), "its own class")
            raise ValueError(
                f"'{pretrained_model_name_or_path}' holds a {saved[0]}: for {cls.__name__} its head would be "
                f"untrained. Load it with {other}."
            )
        return cls._from_hf(cls._hf_auto, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.hf

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs):
        """Export to ONNX (cached under QEFF_HOME); returns the .onnx path."""
        warn_ignored_options("export()", kwargs)
        name = self.model_name.replace("/", "_")
        self.onnx_path = self._export_graph(self.model, name, export_dir, export_fn=lambda tmp: export_ctc_onnx(self.model, tmp, name))
        return self.onnx_path

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        seq_len: int | list[int] = 480000,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        **compiler_options,
    ):
        """Export if needed, then build the artifact. ``seq_len`` (samples; a list is QEfficient's form):
        the longest audio accepted, 480000 = 30 s. Audio runs at its own length (a classifier over a spectrogram of one
        size takes audio of any length, as its feature extractor pads or cuts it). A classifier's artifact keeps its
        config and feature extractor's files, for a server on it alone (models/processor_files.py)."""
        lengths = sorted({seq_len} if isinstance(seq_len, int) else set(seq_len))
        if not lengths or any(not isinstance(n, int) or isinstance(n, bool) or n < 400 for n in lengths):
            raise ValueError(f"seq_len must be a number of samples (>= 400, 25 ms at 16 kHz) or a list of them, got {seq_len!r}.")
        check_positive(batch_size=batch_size, num_cores=num_cores)
        self._check_position_table(lengths[-1])
        warn_ignored_options("compile()", {**compiler_options, "num_devices": num_devices > 1})
        onnx_path = onnx_path or self.export()
        manifest = {"model_name": self.model_name, "num_cores": num_cores, "audio_reads": self.audio_reads}
        params = {"backend": "onnxruntime-cpu", "seq_len": lengths, "batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul}
        classifier = self._hf_auto is AutoModelForAudioClassification  # served alone: /classify (models/processor_files.py)
        if classifier:
            params |= processor_files_key(self.local_model_dir, self.config)
            manifest |= {"audio_classifier": True, "output_name": LOGITS}
        self.qpc_path = self._build_artifact(
            onnx_path,
            compile_dir,
            manifest,
            params,
            self.model.spec.specializations(lengths, batch_size),
            # an encoder over hundreds of frames: int8 GEMMs, as the text encoders' (weights and activations in int8)
            rewrite=quantize_dynamic_int8 if mxfp6_matmul else None,
            extra_files=(lambda tmp: save_processor_files(self.local_model_dir, tmp, self.config)) if classifier else None,
        )
        self._num_cores = num_cores
        return self.qpc_path

    def _check_position_table(self, samples: int) -> None:
        """A relative-position table (Wav2Vec2-Conformer's, ``max_source_positions`` frames) must cover the longest
        audio: the graph holds the table as it is (transformers grows it on the fly)."""
        table = getattr(self.config, "max_source_positions", None)
        if not self._reads_samples or getattr(self.config, "position_embeddings_type", None) != "relative" or not table:
            return
        frames = int(self.hf._get_feat_extract_output_lengths(torch.tensor(samples)))
        if frames > table:
            raise ValueError(
                f"seq_len={samples} samples make {frames} frames, past this model's relative position table "
                f"(max_source_positions={table} frames): compile with a shorter seq_len, or cut the audio."
            )

    @property
    def audio_reads(self) -> dict:
        """What the graph reads (generation/audio_inputs.py), recorded in the artifact for a server on it alone."""
        spec = self.model.spec
        if isinstance(spec, SpectrogramClassificationGraphSpec):
            return {"kind": SPECTROGRAM, "input_name": spec.input_name, "shape": list(spec.shape)}
        if isinstance(spec, type) and issubclass(spec, FeatureCTCGraphSpec):
            return {"kind": FEATURES}
        return {"kind": SAMPLES} | ({"min_samples": shortest} if (shortest := first_frame_samples(self.config)) else {})

    def _graph_inputs(self, inputs) -> dict[str, np.ndarray]:
        """The graph's inputs by name from a processor's output (raw audio: also input_values or an array)."""
        return audio_graph_inputs(self.audio_reads, inputs)

    def _padded_rows(self, inputs) -> list[np.ndarray] | None:
        """A raw-sample processor's padded batch with its attention mask: each row's real samples (transformers gives a
        clip the same answer alone as in a masked batch; this graph reads no mask, so it runs them one by one); None
        for anything else."""
        mask = inputs.get(ATTENTION_MASK) if hasattr(inputs, "get") else None
        if mask is None or not self._reads_samples:
            return None
        values = self._graph_inputs(inputs)[INPUT_VALUES]
        mask = as_array(mask, np.int64).reshape(values.shape).astype(bool)
        return None if mask.all() else [row[keep] for row, keep in zip(values, mask)]

    def logits(self, inputs, runtime_ai100: bool = True) -> np.ndarray:
        """The logits of ``inputs`` (a processor's output or input_values [N, samples]): per frame [N, frames, vocab]
        for a CTC model, [N, labels] for a classifier."""
        rows = self._padded_rows(inputs)
        if rows is None:
            return self._outputs(inputs, runtime_ai100)[0]
        if not self._one_row_per_audio:
            raise ValueError(
                "A padded batch with an attention mask: this graph reads no mask, and its rows' frames differ in number. "
                "Call logits() per audio, or pass the audios as a list to generate()."
            )
        return np.concatenate([self._outputs({INPUT_VALUES: row[None]}, runtime_ai100)[0] for row in rows])

    def _outputs(self, inputs, runtime_ai100: bool) -> list[np.ndarray]:
        """The graph's outputs: the logits (and a spectrogram model's output frames that hold audio)."""
        columns = self._graph_inputs(inputs)
        if not runtime_ai100:
            with torch.no_grad():
                out = self.model(*(torch.from_numpy(v) for v in columns.values()))
            return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
        if self.qpc_path is None:
            raise TypeError("Please run compile() before generate(), or pass runtime_ai100=False to run PyTorch.")
        params = read_artifact(self.qpc_path)["compile_params"]
        longest, batch = max(params["seq_len"]), params["batch_size"]
        if self._reads_samples:  # a spectrogram's frames: any number
            self._check_length(columns[INPUT_VALUES].shape[1], longest)
        self.qpc_session = None  # released first if the artifact changed
        self.qpc_session = self._session(
            "ctc", (str(self.qpc_path), self._num_cores), lambda: open_artifact_session(self.qpc_path, self._num_cores)
        )
        return run_in_batches(self.qpc_session, columns, batch)

    def _processed(self, processor, inputs) -> list:
        """``inputs`` as the processor's outputs to run: raw 16 kHz audio (an array, or a list of them) through the
        processor, audios of different lengths one by one (the graph reads no padding mask); a processor's output as
        it is."""
        if not (isinstance(inputs, list) or (isinstance(inputs, (np.ndarray, torch.Tensor)) and np.ndim(inputs) == 1)):
            rows = self._padded_rows(inputs)
            return [inputs] if rows is None else [{INPUT_VALUES: row[None]} for row in rows]
        if isinstance(inputs, list) and inputs and all(np.ndim(a) == 0 for a in inputs):  # one audio's samples as numbers
            inputs = [inputs]
        if isinstance(inputs, list) and not inputs:
            raise ValueError("No audio given: pass 16 kHz samples (an array, or a list of arrays: one per audio).")
        audio = [np.asarray(a, dtype=np.float32) for a in (inputs if isinstance(inputs, list) else [inputs])]
        # Omnilingual ASR's feature extractor writes torch tensors only
        return processed_audio(processor, audio, self.audio_reads, "pt" if self.config.model_type in CHANNEL_AXIS_TYPES else "np")

    def generate(
        self, processor, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True, write_io: bool = False
    ) -> list[str]:
        """Greedy CTC transcriptions of ``inputs``: raw 16 kHz audio (an array, or a list of them) or a
        processor's output."""
        if write_io or (device_ids is not None and len(device_ids) > 1):
            warn_ignored_options("generate()", {"write_io": write_io, "device_ids": device_ids})
        batches = self._processed(processor, inputs)
        return [text for batch in batches for text in self.frames_text(processor, self._frame_ids(batch, runtime_ai100))]

    def _frame_ids(self, batch, runtime_ai100: bool = True) -> np.ndarray:
        """The greedy id of each output frame of a processor's output, [N, frames]."""
        logits, *holds_audio = self._outputs(batch, runtime_ai100)
        ids = logits.argmax(-1)
        if holds_audio:  # frames past the audio read as blanks, as transformers' Parakeet generate() sets them
            ids = np.where(holds_audio[0].astype(bool), ids, self.config.pad_token_id)
        return ids

    def frames_text(self, processor, ids: np.ndarray) -> list[str]:
        """Greedy CTC texts of frame ids [N, frames] (repeats merged, blanks dropped), as transformers' examples decode
        each family's (Parakeet's, LASR's and Granite Speech 5's drop their special tokens)."""
        return processor.batch_decode(ids, skip_special_tokens=self.config.model_type in SKIP_SPECIAL_TOKENS_TYPES)

    def samples_per_frame(self, processor) -> int | None:
        """Audio samples per output frame as transformers' speech-recognition pipeline counts them (the config's
        ``inputs_to_logits_ratio``; LASR's counts spectrogram frames of the feature extractor's ``hop_length``), which
        long audio's windows and the times of words are counted in; None where the config names none (Parakeet's CTC)."""
        ratio = getattr(self.config, "inputs_to_logits_ratio", None)
        if ratio is not None and self.config.model_type in RATIO_IN_SPECTROGRAM_FRAMES:
            ratio *= getattr(processor, "feature_extractor", processor).hop_length
        return ratio

    def window_samples(self, processor) -> int | None:
        """The samples of a WINDOW_SECONDS window as transcribe() cuts it (whole frames): what ``infer`` and the server
        compile a model read in windows for; None for a model read in one pass (its config names no frame length)."""
        ratio = self.samples_per_frame(processor)
        return None if ratio is None else window_sizes(WINDOW_SECONDS, None, SAMPLING_RATE, ratio)[0]

    def timestamps_refusal(self, processor, kind: str = "word") -> str | None:
        """Why transcribe() cannot give this model's ``kind`` ("word" or "char") times, or None where it can."""
        if self.samples_per_frame(processor) is None:
            return f"its config ({self.config.model_type}) names no audio samples per output frame (inputs_to_logits_ratio)"
        tokenizer = getattr(processor, "tokenizer", processor)
        if f"output_{kind}_offsets" not in inspect.signature(tokenizer.decode).parameters:
            return f"its tokenizer ({type(tokenizer).__name__}) gives no {kind} offsets, as Wav2Vec2CTCTokenizer does"
        return None

    def transcribe(
        self,
        processor,
        audio,
        *,
        chunk_length_s: float | None = None,
        stride_length_s: float | tuple[float, float] | None = None,
        return_timestamps: str | None = None,
        on_window: Callable[[np.ndarray], None] | None = None,
    ) -> dict:
        """One audio's greedy transcript as transformers' ``pipeline("automatic-speech-recognition")`` gives it with the
        same arguments: ``{"text": ...}``, and with ``return_timestamps`` ("word" or "char") its ``"chunks"``, each
        ``{"text", "timestamp": (start, end)}`` in seconds. ``chunk_length_s`` reads the audio in windows of that length
        (at most the compiled one), overlapping by ``stride_length_s`` each side (default: a sixth of the window), whose
        edges only give context: audio of any length. The text is decoded as generate() decodes it (the pipeline keeps
        the special tokens that Parakeet's, LASR's and Granite Speech 5's examples drop). ``on_window(ids)`` is called
        with each window's kept frame ids as it is read (frames_text of all of them so far: the text so far, for a
        stream).

        >>> model.transcribe(processor, audio, chunk_length_s=30, return_timestamps="word")
        """
        if self._head != "ForCTC":
            raise TypeError(f"{type(self).__name__} does not transcribe: QEFFAutoModelForCTC does.")
        if return_timestamps not in (None, "word", "char"):
            raise ValueError(f"return_timestamps must be None, 'word' or 'char', got {return_timestamps!r}.")
        if self.qpc_path is None:
            raise TypeError("Please run compile() before transcribe().")
        audio, ratio = _mono(audio), self.samples_per_frame(processor)
        chunk_length_s = chunk_length_s or None  # 0 reads the audio in one pass, as the pipeline reads it
        if chunk_length_s is not None and ratio is None:
            raise ValueError(
                f"{self.config.model_type} names no audio samples per output frame (inputs_to_logits_ratio), which windows "
                "are cut by: leave chunk_length_s out (the audio is read in one pass)."
            )
        refusal = self.timestamps_refusal(processor, return_timestamps) if return_timestamps else None
        if refusal:
            raise ValueError(f"This model's {return_timestamps}s cannot be timed: {refusal}. Leave return_timestamps out.")
        if chunk_length_s is None:
            self._check_length(len(audio), self._longest(), windowable=ratio is not None)
            ids = self._frame_ids(self._processed(processor, audio)[0])[0]
            if on_window is not None:
                on_window(ids)
        else:
            window, left, right = window_sizes(chunk_length_s, stride_length_s, SAMPLING_RATE, ratio)
            self._check_length(window, self._longest(), chunk_length_s)
            kept = []
            for w in windows(len(audio), window, left, right):
                kept.append(self._frame_ids(self._processed(processor, audio[w.start : w.end])[0])[0][kept_frames(w, ratio)])
                if on_window is not None:
                    on_window(kept[-1])
            ids = np.concatenate(kept)
        result = {"text": self.frames_text(processor, ids[None])[0]}
        if return_timestamps:
            tokenizer = getattr(processor, "tokenizer", processor)
            kind = f"output_{return_timestamps}_offsets"
            offsets = tokenizer.decode(ids, **{kind: True})[kind[len("output_") :]]
            result["chunks"] = [
                {
                    "text": o[return_timestamps],
                    "timestamp": (float(o["start_offset"] * ratio / SAMPLING_RATE), float(o["end_offset"] * ratio / SAMPLING_RATE)),
                }
                for o in offsets
            ]
        return result

    def _longest(self) -> int:
        """The most samples the artifact was compiled for."""
        return max(read_artifact(self.qpc_path)["compile_params"]["seq_len"])

    def _check_length(self, samples: int, longest: int, chunk_length_s: float | None = None, windowable: bool = False) -> None:
        """Raw audio (or a window of ``chunk_length_s``) must fit the compiled length (a spectrogram graph takes any);
        ``windowable``: the error says transcribe() can read it in windows."""
        if not self._reads_samples or samples <= longest:
            return
        if chunk_length_s is not None:
            raise ValueError(
                f"chunk_length_s={chunk_length_s} makes windows of {samples} samples, but the model was compiled for at most "
                f"{longest}: pass a shorter chunk_length_s or compile with seq_len >= {samples}."
            )
        hint = f"pass chunk_length_s (at most {longest / SAMPLING_RATE:g}) to read it in windows, or " if windowable else ""
        raise ValueError(
            f"The audio has {samples} samples but the model was compiled for at most {longest}: {hint}compile with "
            f"seq_len >= {samples}{'' if windowable else ' or cut the audio'}."
        )


# audio classification types refused, and why (the others run: tests/test_ctc.py)
UNSUPPORTED_AUDIO_CLASSIFICATION: dict[str, str] = {}
# classifiers over a spectrogram of one size: (the input's name, one audio's feature shape from the config)
FIXED_SPECTROGRAM_CLASSIFIERS = {
    "audio-spectrogram-transformer": lambda config: (INPUT_VALUES, (config.max_length, config.num_mel_bins)),
    "whisper": lambda config: (INPUT_FEATURES, (config.num_mel_bins, 2 * config.max_source_positions)),
}


class QEFFAutoModelForAudioClassification(QEFFAutoModelForCTC):
    """Audio classifiers (keyword spotting, emotion, language ID, sound events) over raw 16 kHz samples (Wav2Vec2,
    HuBERT, WavLM, Data2VecAudio, UniSpeech, SEW ``ForSequenceClassification``), each audio read at its own length as
    transformers reads it alone, over a spectrogram of any length with its frames' mask (Wav2Vec2-BERT: a padded batch
    too), or over a spectrogram of one size (the Audio Spectrogram Transformer, Whisper's encoder classifier);
    generate(processor, audio) returns {"logits": torch.Tensor [audios, labels]}.

    >>> model = QEFFAutoModelForAudioClassification.from_pretrained("path/to/wav2vec2-base-superb-ks")
    >>> model.compile(seq_len=16000)
    >>> model.generate(processor, audio)["logits"].argmax(-1)
    """

    _hf_auto = AutoModelForAudioClassification
    _head = ("ForSequenceClassification", "ForAudioClassification")  # Wav2Vec2's ..., AST's and Whisper's
    _one_row_per_audio = True
    _specs = {INPUT_VALUES: AudioClassificationGraphSpec, INPUT_FEATURES: FeatureAudioClassificationGraphSpec}

    @classmethod
    def _refused_types(cls) -> dict[str, str]:
        return UNSUPPORTED_AUDIO_CLASSIFICATION

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        reason = UNSUPPORTED_AUDIO_CLASSIFICATION.get(model.config.model_type)
        if reason is not None:
            raise NotImplementedError(f"{type(model).__name__} is not supported: {reason}.")
        super().__init__(model, **kwargs)

    def _spec_for(self, model: PreTrainedModel):
        fixed = FIXED_SPECTROGRAM_CLASSIFIERS.get(model.config.model_type)
        return SpectrogramClassificationGraphSpec(*fixed(model.config)) if fixed else super()._spec_for(model)

    def generate(
        self, processor, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True, write_io: bool = False
    ) -> dict[str, torch.Tensor]:
        """The logits of ``inputs``: raw 16 kHz audio (an array, or a list of them) or a processor's output."""
        if write_io or (device_ids is not None and len(device_ids) > 1):
            warn_ignored_options("generate()", {"write_io": write_io, "device_ids": device_ids})
        logits = [self._outputs(batch, runtime_ai100)[0] for batch in self._processed(processor, inputs)]
        return {LOGITS: torch.from_numpy(np.concatenate(logits))}


def is_speech_encoder(model: PreTrainedModel) -> bool:
    """Whether ``model`` is the encoder of a CTC model type that reads raw 16 kHz samples, or one of
    SPECTROGRAM_ENCODERS (what QEFFAutoModelForAudioFeatureExtraction runs; QEFFAutoModel picks it for these)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CTC_MAPPING_NAMES

    model_type, reads = model.config.model_type, getattr(model, "main_input_name", None)
    if reads == INPUT_FEATURES:
        return model_type in SPECTROGRAM_ENCODERS
    return reads == INPUT_VALUES and model_type in MODEL_FOR_CTC_MAPPING_NAMES and model_type not in UNSUPPORTED_CTC


class QEFFAutoModelForAudioFeatureExtraction(QEFFAutoModelForCTC):
    """An audio encoder's hidden states (Wav2Vec2Model, HubertModel, WavLMModel, ...: transformers' ``AutoModel`` of a
    model that reads raw samples, or Wav2Vec2BertModel's over its spectrogram and mask; what
    ``QEFFAutoModel.from_pretrained`` gives for one): generate(processor, audio)
    returns {"output": np.ndarray [audios, frames, hidden]}, each audio read at its own length as transformers reads it
    alone, a shorter one's frames past its own zeros (a processor's padded batch: transformers' values there)."""

    _hf_auto = AutoModel
    _head = "Model"
    _specs = {INPUT_VALUES: AudioFeatureGraphSpec, INPUT_FEATURES: FeatureAudioStatesGraphSpec}

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        if not is_speech_encoder(model):
            raise NotImplementedError(
                f"{type(model).__name__} is not run here as an audio encoder: the encoders of the CTC models that read raw "
                "16 kHz samples are (Wav2Vec2, HuBERT, WavLM, Data2VecAudio, UniSpeech, SEW, ...), and Wav2Vec2-BERT's; "
                "codecs, other spectrogram models and speech-to-text models are not."
            )
        super().__init__(model, **kwargs)

    def generate(
        self, processor, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True, write_io: bool = False
    ) -> dict[str, np.ndarray]:
        """The last hidden state of ``inputs``: raw 16 kHz audio (an array, or a list of them) or a processor's output."""
        if write_io or (device_ids is not None and len(device_ids) > 1):
            warn_ignored_options("generate()", {"write_io": write_io, "device_ids": device_ids})
        rows = [row for batch in self._processed(processor, inputs) for row in self._outputs(batch, runtime_ai100)[0]]
        if not rows:
            raise ValueError("No audio given: pass an array of 16 kHz samples, a list of them, or a processor's output.")
        frames = max(len(row) for row in rows)
        return {OUTPUT: np.stack([np.pad(row, [(0, frames - len(row)), (0, 0)]) for row in rows])}


def _mono(audio) -> np.ndarray:
    """One audio's 16 kHz samples, 1-D: [channels, samples] of one or two channels averaged, as transformers' pipeline
    reads them."""
    samples = as_array(audio, np.float32)
    if samples.ndim == 2 and samples.shape[0] in (1, 2):
        samples = samples.mean(axis=0)
    if samples.ndim != 1:
        raise ValueError(
            f"transcribe() reads one audio: 16 kHz samples [samples], or [channels, samples] of 1 or 2 channels; got shape "
            f"{list(samples.shape)}."
        )
    if not len(samples):
        raise ValueError("The audio is empty: pass its 16 kHz samples.")
    return samples


__all__ = [
    "FIXED_SPECTROGRAM_CLASSIFIERS",
    "QEFFAutoModelForAudioClassification",
    "QEFFAutoModelForAudioFeatureExtraction",
    "QEFFAutoModelForCTC",
    "UNSUPPORTED_AUDIO_CLASSIFICATION",
]
