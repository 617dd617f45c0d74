"""QEFFAutoModelForSpeechSeq2Seq: Whisper, as two graphs.

* encoder graph: log-mel features -> every decoder layer's cross-attention keys/values, run once
  per batch of audio;
* decoder graph: one retained-state step (static self-attention cache, updated in place by the
  runtime), reading the cross keys/values, which stay bound for the whole generation.

Greedy decoding follows transformers' Whisper ``generate`` token for token: prompt (language, task,
no-timestamps), language detection, suppressed tokens and timestamp rules
(generation/speech_generation.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSpeechSeq2Seq, PreTrainedModel
from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

from QEfficient.compile.ort_cpu import read_artifact, warn_ignored_options, warn_once
from QEfficient.compile.weight_compression import compress_matmul_weights
from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_FEATURES
from QEfficient.export.onnx_export import export_speech_decoder_onnx, export_speech_encoder_onnx
from QEfficient.export.seq2seq_graph_specs import AUDIO_SEQ2SEQ_INPUTS, SpeechDecoderGraphSpec, SpeechEncoderGraphSpec
from QEfficient.generation.beam_search import beam_settings
from QEfficient.generation.exec_kv import print_perf
from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.generation.speech_generation import SpeechSeq2SeqGeneration, WhisperDecoding
from QEfficient.generation.whisper_alignment import word_timestamps as word_timestamps_of
from QEfficient.generation.whisper_longform import longform_settings
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.base import EncoderDecoderModel
from QEfficient.runtime.ort_session import open_artifact_session, open_kv_session
from QEfficient.transform.vision_adapters import AUDIO_ADAPTERS
from QEfficient.transform.whisper import QEffWhisperDecoder, QEffWhisperEncoder
from QEfficient.utils.checks import check_generation_len, check_positive


class QEFFAutoModelForSpeechSeq2Seq(EncoderDecoderModel):
    """>>> model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained("path/to/whisper-base")
    >>> model.compile(ctx_len=150)
    >>> inputs = processor(audio, sampling_rate=16000, return_tensors="pt")
    >>> model.generate(inputs=inputs, generation_len=100, language="en").texts
    """

    auto_class = AutoModelForSpeechSeq2Seq
    graph_kind = "speech"
    export_graphs = (export_speech_encoder_onnx, export_speech_decoder_onnx)

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        name = type(model).__name__
        if not name.endswith("ForConditionalGeneration") or getattr(model.config, "model_type", None) != "whisper":
            raise TypeError(
                f"{name} is not a Whisper model (WhisperForConditionalGeneration); QEFFAutoModelForSpeechSeq2Seq runs Whisper "
                f"(its from_pretrained loads {', '.join(AUDIO_SEQ2SEQ_INPUTS)} as QEFFAutoModelForSpeechEncoderDecoder)."
            )
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        self.encoder = QEffWhisperEncoder(self.hf)
        self.decoder = QEffWhisperDecoder(self.hf)
        self.hash_params["alignment_heads"] = self.decoder.alignment_heads  # the decoder graph outputs their attention
        self.qpc_paths: dict[str, Path] | None = None
        self._processor = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """Whisper; the other speech encoder-decoders (Moonshine, Speech2Text, SpeechEncoderDecoderModel) load as
        QEFFAutoModelForSpeechEncoderDecoder, and the audio-text models (Voxtral, Qwen2-Audio, AudioFlamingo 3,
        GLM-ASR) as QEFFAutoModelForImageTextToText."""
        folder, _ = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        config = AutoConfig.from_pretrained(folder)
        model_type = config.model_type
        if model_type in AUDIO_SEQ2SEQ_INPUTS:  # refused there, before its weights, where it is not speech-to-text
            from QEfficient.models.speech_encoder_decoder import QEFFAutoModelForSpeechEncoderDecoder

            return QEFFAutoModelForSpeechEncoderDecoder.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if model_type in AUDIO_ADAPTERS:  # an audio-text model (Voxtral): the image-text path, audio chunks for images
            from QEfficient.models.image_text import QEFFAutoModelForImageTextToText

            return QEFFAutoModelForImageTextToText.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if model_type != "whisper":  # before any weight is read
            raise NotImplementedError(
                f"Speech model type {model_type!r} is not supported by QEFFAutoModelForSpeechSeq2Seq (supported: whisper, "
                f"{', '.join([*AUDIO_SEQ2SEQ_INPUTS, *AUDIO_ADAPTERS])})."
            )
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        prefill_seq_len: int = 1,
        encoder_ctx_len: int | None = None,
        ctx_len: int = 150,
        full_batch_size: int | None = None,
        kv_cache_batch_size: int | None = None,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        mxint8_kv_cache: bool = False,
        num_speculative_tokens: int | None = None,
        **compiler_options,
    ) -> dict[str, Path]:
        """Build the encoder and decoder artifacts: {"encoder_qpc_path": ..., "decoder_qpc_path": ...}.

        ``ctx_len``: decoder cache slots (prompt + generated tokens), at most the model's
        ``max_target_positions``. ``prefill_seq_len`` is accepted for QEfficient's signature: the
        prompt is prefilled in one step whatever its length."""
        check_positive(ctx_len=ctx_len, batch_size=batch_size, num_cores=num_cores)
        if ctx_len > self.config.max_target_positions:
            raise ValueError(f"ctx_len ({ctx_len}) exceeds the model's max_target_positions ({self.config.max_target_positions}).")
        source = self.config.max_source_positions
        if encoder_ctx_len is not None and encoder_ctx_len != source:
            raise ValueError(f"encoder_ctx_len must be the model's max_source_positions ({source}): Whisper's encoder reads 30 s windows.")
        for key, value in {
            "full_batch_size": full_batch_size,
            "kv_cache_batch_size": kv_cache_batch_size,
            "num_speculative_tokens": num_speculative_tokens,
        }.items():
            if value is not None:
                warn_once(f"speech_{key}", f"{key} is not supported for Whisper on ONNX Runtime; it is ignored.")
        warn_ignored_options(
            "compile()",
            {**compiler_options, "num_devices": num_devices > 1, "mxint8_kv_cache": mxint8_kv_cache},
        )
        if onnx_path is not None:
            raise ValueError("QEFFAutoModelForSpeechSeq2Seq builds two graphs; call compile() without onnx_path (it exports them).")
        encoder_onnx, decoder_onnx = self.export()
        # QEfficient's MXFP6 switch: the decoder's MatMul weights in 8-bit blocks (MatMulNBits), as for
        # causal LMs. The encoder stays float32: it runs 1500 frames at once, bound by arithmetic, so
        # 8-bit weights saved ~8 % of its time, while their error (5-7 % on the cross keys/values of
        # Whisper base) changed a phrase of the test clip; the 8-bit decoder alone reads the float32 text.
        rewrite = compress_matmul_weights if mxfp6_matmul else None
        cfg = self.config
        feature_len = 2 * source
        encoder = self._build_artifact(
            encoder_onnx,
            compile_dir,
            {"kind": "speech-encoder", "num_layers": cfg.decoder_layers},
            {"backend": "onnxruntime-cpu", "batch_size": batch_size, "feature_len": feature_len},
            SpeechEncoderGraphSpec.specializations(batch_size, cfg.num_mel_bins, feature_len),
        )
        manifest = {
            "num_layers": cfg.decoder_layers,
            "kv_shape": list(self.decoder.kv_shape(batch_size, ctx_len)),
            "continuous_batching": False,
            "kv_dtype": "float32",
            "vocab_size": int(self.hf.proj_out.weight.shape[0]),
            "num_cores": num_cores,
            "model_name": self.model_name,
            "encoder_ctx_len": source,
            "alignment_heads": [list(pair) for pair in self.decoder.alignment_heads],
        }
        decoder = self._build_artifact(
            decoder_onnx,
            compile_dir,
            manifest,
            {
                "backend": "onnxruntime-cpu",
                "ctx_len": ctx_len,
                "batch_size": batch_size,
                "encoder_ctx_len": source,
                "mxfp6_matmul": mxfp6_matmul,
            },
            SpeechDecoderGraphSpec.specializations(1, ctx_len, batch_size),
            rewrite=rewrite,
        )
        return self._compiled(encoder, decoder, num_cores)

    def generate(
        self,
        inputs,
        generation_len: int | None = None,
        streamer=None,
        device_ids: list[int] | None = None,
        write_io: bool = False,
        *,
        language: str | list[str] | None = None,
        task: str | None = None,
        return_timestamps: bool = False,
        processor=None,
        stream: bool = False,
        num_beams: int | None = None,
        length_penalty: float | None = None,
        temperature: float | list[float] | tuple[float, ...] | None = None,
        compression_ratio_threshold: float | None = None,
        logprob_threshold: float | None = None,
        no_speech_threshold: float | None = None,
        condition_on_prev_tokens: bool | None = None,
        prompt_ids=None,
        prompt_condition_type: str | None = None,
        seed: int | None = None,
        return_segments: bool = False,
        return_token_timestamps: bool = False,
        on_segments=None,
    ) -> CloudAI100ExecInfo:
        """Transcription of ``inputs`` (a WhisperProcessor's output, or its ``input_features``
        [N, n_mels, 3000]). ``language`` (a code, name or ``<|xx|>``; one per audio or one for all),
        ``task`` ("transcribe"/"translate"), ``return_timestamps``, ``num_beams`` and ``length_penalty`` (None: the
        checkpoint's; greedy for one beam) as in transformers' Whisper ``generate``; so are its long-form options:
        ``temperature`` (a number > 0 samples; a sequence such as ``(0.0, 0.2, 0.4, 0.6, 0.8, 1.0)`` is the fallback
        order), ``compression_ratio_threshold``, ``logprob_threshold``, ``no_speech_threshold`` and
        ``condition_on_prev_tokens`` (None: the checkpoint's), ``prompt_ids`` (``processor.get_prompt_ids(text)``) and
        ``prompt_condition_type``. ``seed`` makes sampling reproducible (numpy's generator: not torch's draws).
        ``generated_ids[i]``: batch i's sequences, without the start tokens, padded with the pad token.
        ``return_segments``: ``info.segments[a]`` lists audio a's segments as transformers' ``return_segments=True``
        does (``start``, ``end`` in seconds, ``tokens``), with ``text``, ``seek`` (the window's first log-mel frame) and
        the window's ``temperature``, ``avg_logprob``, ``compression_ratio`` and ``no_speech_prob``.
        ``return_token_timestamps``: ``info.token_timestamps[a]`` gives each token of audio a its time in seconds, read
        from the checkpoint's alignment heads as transformers reads them (pass the processor's ``attention_mask`` for
        its precise frames), in audio time (transformers' ``token_timestamps`` restart at each 30 s window; its
        segments' do not); with ``return_segments`` each segment has its ``token_timestamps``. transformers' times of an
        audio that ends before others depend on its batch (it reads the padding fed after the end, up to the batch's
        longest row): they are equal here when the call's audios fit one compiled ``batch_size``; with beams, each
        hypothesis is read alone (transformers reads another beam past a shorter one). ``on_segments(audio, segments)``
        is called as each 30 s window's segments are decided (``segment.tokens``, ``start``, ``end``), for streaming."""
        if self.qpc_paths is None:
            raise TypeError("Please run compile() before generate().")
        if write_io or streamer is not None or (device_ids is not None and len(device_ids) > 1):
            warn_ignored_options("generate()", {"write_io": write_io, "streamer": streamer is not None, "device_ids": device_ids})
        generation_len = check_generation_len(generation_len)
        if on_segments is not None and not callable(on_segments):
            raise ValueError(f"on_segments must be a function of (audio, segments), got {on_segments!r:.40}.")
        if not isinstance(inputs, (np.ndarray, torch.Tensor)) and (not hasattr(inputs, "keys") or INPUT_FEATURES not in inputs):
            raise ValueError(
                f"Pass the processor's output for the audio (its input_features), not {type(inputs).__name__}: "
                "inputs=processor(audio, sampling_rate=16000, return_tensors='np'); or transcribe(audio, processor)."
            )
        features = inputs[INPUT_FEATURES] if not isinstance(inputs, (np.ndarray, torch.Tensor)) else inputs
        features = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
        if features.ndim == 2:
            features = features[None]
        if features.ndim == 3 and not len(features):
            raise ValueError("input_features hold no audio: pass the processor's output for at least one recording.")
        if features.dtype.kind == "f" and not np.isfinite(features).all():  # NaN would also reach the next call's cache
            raise ValueError("input_features hold NaN or infinity: pass the processor's features of real audio.")
        mels, window = self.config.num_mel_bins, 2 * self.config.max_source_positions
        if features.ndim != 3 or features.shape[1] != mels or features.shape[2] < window:
            raise ValueError(
                f"input_features must be [batch, {mels}, frames >= {window}] (a WhisperProcessor's output for 16 kHz audio; "
                f"longer audio: processor(audio, truncation=False, padding='longest', return_attention_mask=True)), "
                f"got {list(features.shape)}."
            )
        num_frames = alignment_frames = None
        mask = None if isinstance(inputs, (np.ndarray, torch.Tensor)) else inputs.get(ATTENTION_MASK)
        if mask is not None:
            mask = np.asarray(mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else mask)
            mask = mask[None] if mask.ndim == 1 else mask
            if mask.shape != (len(features), features.shape[2]):
                raise ValueError(
                    f"attention_mask must be [batch, frames] as input_features are ({[len(features), features.shape[2]]}), got "
                    f"{list(mask.shape)}: pass the processor's output for the same audio."
                )
            alignment_frames = mask.sum(-1)
        if features.shape[2] > window and mask is not None:  # long audio in a batch: each row's real frames
            num_frames = alignment_frames
        languages = language if isinstance(language, (list, tuple)) else [language] * len(features)
        if len(languages) != len(features):
            raise ValueError(f"Pass one language for all audio or one per audio: got {len(languages)} for {len(features)}.")
        decoding = WhisperDecoding.from_generation_config(self.hf.generation_config, self.config)
        longform = longform_settings(
            self.hf.generation_config,
            self.config.vocab_size,
            temperature,
            compression_ratio_threshold,
            logprob_threshold,
            no_speech_threshold,
            condition_on_prev_tokens,
            prompt_ids,
            prompt_condition_type,
            seed,
            window_stats=return_segments,
        )
        language_ids = [None if lang is None else self._language_id(decoding, lang) for lang in languages]
        encoder_path, decoder_path = self.qpc_paths["encoder_qpc_path"], self.qpc_paths["decoder_qpc_path"]
        encoder = self._session(
            "encoder", (str(encoder_path), self._num_cores), lambda: open_artifact_session(encoder_path, self._num_cores, spin=False)
        )
        beams = beam_settings(self.hf.generation_config, num_beams, length_penalty)
        rows = read_artifact(decoder_path)["kv_shape"][0] * (beams.num_beams if beams else 1)
        decoder = self._session(
            "decoder", (str(decoder_path), self._num_cores, rows), lambda: open_kv_session(decoder_path, self._num_cores, rows=rows)
        )
        cross_names = SpeechEncoderGraphSpec(read_artifact(encoder_path)["num_layers"]).output_names
        if return_token_timestamps and not read_artifact(decoder_path).get("alignment_heads"):
            raise ValueError(
                "Token timestamps need the checkpoint's alignment heads (generation_config.alignment_heads), and this "
                "model has none, or its artifact was compiled without them: set them in generation_config.json (the "
                "values for each Whisper size are in openai-whisper's _ALIGNMENT_HEADS) and compile again."
            )
        tokenizer = self._tokenizer(processor)
        decode = (lambda ids: tokenizer.decode(ids, skip_special_tokens=True)) if tokenizer is not None else None
        generator = SpeechSeq2SeqGeneration(encoder, decoder, decoding, cross_names, beams)
        info = generator.generate(
            features.astype(np.float32),
            generation_len,
            language_ids,
            task,
            return_timestamps,
            decode,
            num_frames,
            longform,
            return_token_timestamps,
            alignment_frames,
            on_segments,
        )
        info.segments = [[self._segment(s, decode) for s in audio] for audio in info.segments] if return_segments else None
        if stream:
            print_perf(info)
        return info

    @staticmethod
    def _segment(segment, decode) -> dict:
        out = dict(vars(segment))
        if out["token_timestamps"] is None:  # not asked for
            del out["token_timestamps"]
        out["text"] = decode(segment.tokens) if decode is not None else None
        return out

    def transcribe(
        self,
        audio: np.ndarray,
        processor,
        generation_len: int | None = None,
        word_timestamps: bool = False,
        sampling_rate: int = 16000,
        **options,
    ) -> CloudAI100ExecInfo:
        """One 16 kHz recording of any length (longer than 30 s: read window after window), through
        ``processor``; ``options`` as for generate() (language, task, return_timestamps, num_beams, temperature, the
        long-form thresholds, condition_on_prev_tokens, prompt_ids, ...). ``word_timestamps``: ``info.words[0]`` lists
        the words with their start and end in seconds, as transformers' pipeline gives them for
        ``return_timestamps="word"`` (decoded with segment timestamps, as it does). ``sampling_rate``: the audio's, which
        the feature extractor checks (it reads 16 kHz only: resample other audio first)."""
        if not hasattr(processor, "feature_extractor"):
            raise ValueError(
                f"transcribe(audio, processor) takes the model's processor (WhisperProcessor.from_pretrained), got {processor!r}."
            )
        audio = np.asarray(audio)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(
                f"audio must be one mono 16 kHz recording, a non-empty 1-D array; got shape {list(audio.shape)} "
                "(average the channels of a stereo file: audio.mean(axis=-1 or 0); for several recordings call generate() "
                "with the processor's output)."
            )
        long_form = len(audio) > self.config.max_source_positions * 2 * processor.feature_extractor.hop_length
        # the attention mask: each audio's frames (the token timestamps read the attention up to them)
        extra = dict(truncation=False, padding="longest", return_attention_mask=True) if long_form else {"return_attention_mask": True}
        inputs = processor(audio, sampling_rate=sampling_rate, return_tensors="np", **extra)
        if word_timestamps:
            options.update(return_timestamps=True, return_token_timestamps=True)
        info = self.generate(inputs=inputs, generation_len=generation_len, processor=processor, **options)
        if word_timestamps:
            times = info.token_timestamps[0]
            info.words = [word_timestamps_of(self._tokenizer(processor), info.generated_ids[0][0][: len(times)], times, info.languages[0])]
        return info

    @staticmethod
    def _language_id(decoding: WhisperDecoding, language: str) -> int:
        """transformers' rule: a ``<|xx|>`` token, a language name or a code."""
        if not isinstance(language, str):
            raise ValueError(f"language must be a language code, name or <|xx|> token (a string), got {language!r}.")
        lang = language.lower()
        token = lang if lang in decoding.lang_to_id else f"<|{TO_LANGUAGE_CODE.get(lang, lang)}|>"
        if token not in decoding.lang_to_id:
            if not decoding.lang_to_id:
                raise ValueError(f"language={language!r}: this Whisper model is English-only; leave language unset.")
            raise ValueError(f"Unsupported language {language!r}: use one of {sorted(t[2:-2] for t in decoding.lang_to_id)}.")
        return decoding.lang_to_id[token]

    def _tokenizer(self, processor):
        if processor is not None:
            return getattr(processor, "tokenizer", processor)
        if self._processor is None and self.local_model_dir is not None:
            from transformers import AutoTokenizer

            try:
                self._processor = AutoTokenizer.from_pretrained(self.local_model_dir)
            except (OSError, ValueError):
                return None
        return self._processor


__all__ = ["QEFFAutoModelForSpeechSeq2Seq"]
