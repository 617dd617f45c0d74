"""QEFFAutoModelForSpeechEncoderDecoder: the speech encoder-decoders other than Whisper (Moonshine, Moonshine Streaming,
Speech2Text, SpeechT5's speech-to-text model, Canary, Cohere ASR, transformers' SpeechEncoderDecoderModel) as two graphs,
as the text encoder-decoders run: the audio encoder's cross keys/values and frame mask bound to a retained-state decoder
step (transform/speech_seq2seq.py); greedy, sampled or beam-search tokens equal to transformers' ``generate``
(generation/seq2seq_generation.py).

QEfficient has no such class; ``QEFFAutoModelForSpeechSeq2Seq.from_pretrained`` returns this one for such a checkpoint.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSpeechSeq2Seq, PretrainedConfig, PreTrainedModel

from QEfficient.compile.ort_cpu import read_artifact
from QEfficient.export.graph_names import ATTENTION_MASK, INPUT_FEATURES, INPUT_VALUES
from QEfficient.export.onnx_export import export_seq2seq_decoder_onnx, export_seq2seq_encoder_onnx
from QEfficient.export.seq2seq_graph_specs import AUDIO_SEQ2SEQ_INPUTS, AudioSeq2SeqEncoderGraphSpec, audio_feature_width
from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.generation.seq2seq_generation import Seq2SeqRules
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.base import EncoderDecoderModel, usable_positions
from QEfficient.models.seq2seq_lm import ALLOW_ANY, QEFFAutoModelForSeq2SeqLM
from QEfficient.models.speech_prompts import (
    ENGLISH,
    PROMPTED_TYPES,
    SEAMLESS_TYPES,
    check_prompt_request,
    joined_chunks,
    prompt_languages,
    prompted_inputs,
    target_language,
)
from QEfficient.transform.rewrites import apply_rewrites
from QEfficient.transform.speech_seq2seq import SPEECH_ENCODER_DECODER, QEffSpeechSeq2SeqDecoder, QEffSpeechSeq2SeqEncoder, unproven_halves
from QEfficient.transform.vision_seq2seq import QEffVisionSeq2SeqDecoder

SAMPLING_RATE = 16000
# types that also name other models: the checkpoints (config architectures) that hold the speech-to-text model's weights
SPEECH_TO_TEXT_CHECKPOINTS = {
    "speecht5": ("SpeechT5ForSpeechToText",),
    "seamless_m4t": ("SeamlessM4TForSpeechToText", "SeamlessM4TModel", "SeamlessM4TForSpeechToSpeech"),
    "seamless_m4t_v2": ("SeamlessM4Tv2ForSpeechToText", "SeamlessM4Tv2Model", "SeamlessM4Tv2ForSpeechToSpeech"),
}
MOONSHINE_TOKENS_PER_SECOND = 6.5  # its model card's bound on a transcript's length, against repetition loops
# the fewest samples Moonshine's three convolutions (kernels 127, 7, 3; strides 64, 3, 2) leave a frame of
MOONSHINE_SHORTEST = 127 + 64 * (7 - 1 + 3 * (3 - 1))


class QEFFAutoModelForSpeechEncoderDecoder(QEFFAutoModelForSeq2SeqLM):
    """>>> model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained("path/to/moonshine-tiny")  # this class
    >>> model.compile(ctx_len=64)
    >>> model.generate(inputs=processor(audio, sampling_rate=16000, return_tensors="pt"), generation_len=40).texts

    ``generate(inputs, generation_len)`` as QEFFAutoModelForSpeechSeq2Seq takes it (``inputs``: the processor's output,
    or the audio array: Moonshine's and Wav2Vec2's ``input_values``, Speech2Text's ``input_features``, with their
    ``attention_mask`` where the processor gives one); transformers' spelling ``generate(input_values, max_new_tokens=40)``
    works too. The rest as QEFFAutoModelForSeq2SeqLM.generate (beams, sampling, streamer, forced_bos_token_id for a
    multilingual Speech2Text's target language). Texts are decoded with the checkpoint's tokenizer."""

    auto_class = AutoModelForSpeechSeq2Seq
    graph_kind = "speech-seq2seq"
    export_graphs = (export_seq2seq_encoder_onnx, export_seq2seq_decoder_onnx)

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        kind = getattr(getattr(model, "config", None), "model_type", None)
        if kind in SPEECH_TO_TEXT_CHECKPOINTS and not type(model).__name__.endswith("ForSpeechToText"):
            raise TypeError(f"{type(model).__name__} is not {kind}'s speech-to-text model (load it with AutoModelForSpeechSeq2Seq).")
        if kind not in AUDIO_SEQ2SEQ_INPUTS:
            hint = "load Whisper with QEFFAutoModelForSpeechSeq2Seq" if kind == "whisper" else f"it runs {', '.join(AUDIO_SEQ2SEQ_INPUTS)}"
            raise TypeError(f"{type(model).__name__} is not a speech encoder-decoder this class runs: {hint}.")
        unproven = unproven_halves(model.config) if kind == SPEECH_ENCODER_DECODER else None
        if unproven and os.environ.get(ALLOW_ANY) != "1":
            raise NotImplementedError(f"A SpeechEncoderDecoderModel with {unproven} is not proven here; {ALLOW_ANY}=1 tries it anyway.")
        EncoderDecoderModel.__init__(self, model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        apply_rewrites(self.hf)  # methods that do not export as transformers writes them (transform/rewrites.py)
        self.encoder = QEffSpeechSeq2SeqEncoder(self.hf, AudioSeq2SeqEncoderGraphSpec)
        kv = self.encoder.kv_shape()
        if kind == SPEECH_ENCODER_DECODER:  # a causal-LM decoder: the image encoder-decoders' step
            self.decoder = QEffVisionSeq2SeqDecoder(self.hf, self.encoder.num_layers, kv)
        else:
            self.decoder = QEffSpeechSeq2SeqDecoder(self.hf, self.encoder.num_layers, kv)
        self.qpc_paths = None
        self._processor = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A folder (or cached hub id) of a model this class runs; another is refused before its weights are read."""
        folder, _ = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        config = AutoConfig.from_pretrained(folder)
        if not transcribes(config):
            heads = ", ".join(config.architectures or ["none named"])
            raise NotImplementedError(
                f"'{pretrained_model_name_or_path}' ({config.model_type}: {heads}) is not a speech-to-text encoder-decoder this "
                f"class runs ({', '.join(AUDIO_SEQ2SEQ_INPUTS)}; for {', '.join(SPEECH_TO_TEXT_CHECKPOINTS)} a checkpoint of their "
                "speech-to-text model)."
            )
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @property
    def audio_input(self) -> str:
        """The encoder graph's audio input: ``input_values`` (raw samples) or ``input_features`` (filter banks)."""
        return AUDIO_SEQ2SEQ_INPUTS[self.config.model_type]

    def _check_max_positions(self, name: str, length: int, config=None) -> None:
        """``ctx_len`` within the decoder's position table (Speech2Text's ``max_target_positions``, SpeechT5's
        ``max_text_positions``, else the decoder config's ``max_position_embeddings``)."""
        config = config or self._decoder_config()
        field = next((f for f in ("max_target_positions", "max_text_positions") if getattr(config, f, None) is not None), None)
        if field is None:
            super()._check_max_positions(name, length, config)
        elif length > getattr(config, field):
            raise ValueError(f"{name} ({length}) exceeds the model's {field} ({getattr(config, field)}).")

    def _decoder_config(self):
        if self.config.model_type == SPEECH_ENCODER_DECODER:
            return self.hf.decoder.config
        nested = getattr(self.config, "decoder_config", None)  # Canary's (Cohere ASR's settings are its own)
        return nested if isinstance(nested, PretrainedConfig) else self.config

    def decoder_positions(self) -> int:
        """The most decoder slots (``ctx_len``) its position table serves (SpeechT5's text table: max_text_positions)."""
        config = self._decoder_config()
        return getattr(config, "max_target_positions", None) or getattr(config, "max_text_positions", None) or usable_positions(config)

    def encoder_positions(self, inputs) -> list[int]:
        """Each recording's encoder frames (the positions its cross-attention reads), from its mask's length by the
        model's own rule (``_encoder_frames``; for a padded Moonshine row, its mask's strided slice may keep one frame
        more)."""
        mask = self._inputs(None, None, inputs)[ATTENTION_MASK]
        return [int(n) for n in self._encoder_frames(torch.from_numpy(mask.sum(-1)), mask.shape[1])]

    def _encoder_frames(self, lengths: torch.Tensor, padded: int | None = None) -> torch.Tensor:
        """The encoder's frames for audio of ``lengths`` (samples or feature frames; ``padded``: the batch's width, else
        the longest), by the model's own rule."""
        kind, hf = self.config.model_type, self.hf
        if kind == SPEECH_ENCODER_DECODER:
            return hf.encoder._get_feat_extract_output_lengths(lengths)
        if kind == "speecht5":
            return hf.get_encoder().prenet._get_feat_extract_output_lengths(lengths)
        if kind == "moonshine_streaming":
            return hf._get_feat_extract_output_lengths(lengths)
        if kind in ("canary", "cohere_asr"):  # Parakeet's encoder
            return hf.get_encoder()._get_subsampling_output_length(lengths)
        if kind in SEAMLESS_TYPES:
            # its adaptor's rule reads a mask; the cross-attention's mask is cut to the frames the adaptor's convolutions
            # leave of the batch's width (fewer where the kernel's half is not the stride's: padding stride // 2)
            width = int(lengths.max()) if padded is None else padded
            mask = (torch.arange(width) < lengths.reshape(-1, 1)).to(torch.int64)
            by_mask = hf._compute_sub_sample_lengths_from_attention_mask(mask).to(torch.int64).reshape(lengths.shape)
            config, frames = self.config, width
            for _ in range(config.num_adapter_layers if config.add_adapter else 0):
                frames = (frames + 2 * (config.adaptor_stride // 2) - config.adaptor_kernel_size) // config.adaptor_stride + 1
            return torch.clamp(by_mask, max=frames)
        return hf.get_encoder()._get_feat_extract_output_lengths(lengths)

    def _encoder_specializations(self, batch_size: int) -> dict:
        return AudioSeq2SeqEncoderGraphSpec.specializations(batch_size)

    def processor(self) -> Any:
        """The checkpoint's processor (transformers' AutoProcessor), loaded once."""
        if self._processor is None:
            if self.local_model_dir is None:
                raise ValueError("This model was not loaded from a folder: pass generate() its processor or tokenizer.")
            from transformers import AutoProcessor

            self._processor = AutoProcessor.from_pretrained(self.local_model_dir)
        return self._processor

    def generate(self, *args, **kwargs) -> CloudAI100ExecInfo:
        """See the class docstring. The audio: ``generate(inputs)``, ``generate(inputs=...)``, ``generate(processor,
        audio)`` (a CTC model's spelling), ``generate(input_values, attention_mask=...)`` or ``generate(**inputs)``; then
        ``generation_len`` (or ``max_new_tokens``); the processor or tokenizer that decodes the texts as ``processor=``
        (else the checkpoint's)."""
        args = list(args)
        if "processor" in kwargs and "tokenizer" in kwargs:
            raise ValueError("Pass processor= or tokenizer= (what decodes the texts), not both.")
        tokenizer = kwargs.pop("processor", None) or kwargs.pop("tokenizer", None)
        if args and _decodes(args[0]):  # generate(processor, audio), generate(processor, inputs=...)
            if tokenizer is not None:
                raise ValueError("Pass the processor once: first, or as processor=.")
            tokenizer = args.pop(0)
            if args and (isinstance(args[0], str) or (isinstance(args[0], (list, tuple)) and args[0] and isinstance(args[0][0], str))):
                raise ValueError("A speech encoder-decoder reads audio, not prompts: pass inputs=processor(audio, sampling_rate=16000).")
        given = [kwargs.pop(name) for name in ("inputs", INPUT_VALUES, INPUT_FEATURES) if name in kwargs]
        if args:
            given.insert(0, args.pop(0))
        if len(given) > 1:
            raise ValueError("Pass the audio once: generate(inputs), generate(inputs=...) or generate(input_values=...).")
        inputs = given[0] if given else None
        if args:
            if "generation_len" in kwargs:
                raise TypeError("generate() got generation_len twice.")
            kwargs["generation_len"] = args.pop(0)
        if args:
            raise TypeError("generate() takes the audio and generation_len positionally; pass the other options by name.")
        tgt_lang = kwargs.pop("tgt_lang", None)
        if tgt_lang is not None:  # SeamlessM4T's target language: its decoder prompt
            if kwargs.get("decoder_input_ids") is not None:
                raise ValueError("Pass tgt_lang or decoder_input_ids, not both: tgt_lang makes the decoder prompt.")
            kwargs["decoder_input_ids"] = self._target_language_prompt(tgt_lang)
        mask = kwargs.pop(ATTENTION_MASK, None)
        if mask is not None:  # transformers' spelling: the audio and its mask as arguments of their own
            if inputs is None:
                raise ValueError("attention_mask was given without the audio: pass both (or inputs=, the processor's output).")
            if not hasattr(inputs, "get"):
                inputs = {self.audio_input: inputs}
            if inputs.get(ATTENTION_MASK) is not None:
                raise ValueError("Pass the attention_mask once: in inputs or as attention_mask=.")
            inputs = {**inputs, ATTENTION_MASK: mask}
        if tokenizer is None:
            tokenizer = self._checkpoint_tokenizer()
        return super().generate(tokenizer, inputs=inputs, **kwargs)

    def _target_language_prompt(self, tgt_lang: str) -> np.ndarray:
        """SeamlessM4T's decoder prompt for ``tgt_lang`` ("eng", or "__eng__"): its language token, by the generation
        config's ``text_decoder_lang_to_code_id`` as its generate reads it (one prompt, for every recording)."""
        codes = getattr(self.generation_config, "text_decoder_lang_to_code_id", None) or self._saved_generation_setting(
            "text_decoder_lang_to_code_id"
        )
        if self.config.model_type not in SEAMLESS_TYPES or not codes:
            kind = self.config.model_type
            raise ValueError(f"tgt_lang is SeamlessM4T's (its generation config's text_decoder_lang_to_code_id); {kind} takes none.")
        lang = tgt_lang.replace("__", "")
        if lang not in codes:
            raise ValueError(f"tgt_lang={tgt_lang!r} is not supported by this model: use one of {sorted(codes)}.")
        return np.array([[codes[lang]]], np.int64)

    def _saved_generation_setting(self, name: str) -> Any:
        """A setting of the checkpoint's generation_config.json that transformers' GenerationConfig does not keep when it
        loads it (SeamlessM4T's language map), or None."""
        path = self.local_model_dir / "generation_config.json" if self.local_model_dir is not None else None
        if path is None or not path.is_file():
            return None
        return json.loads(path.read_text()).get(name)

    def _checkpoint_tokenizer(self) -> Any:
        """The checkpoint's tokenizer for the texts (its processor's, else its own), or None where its folder has none
        (looked up once)."""
        if getattr(self, "_texts_tokenizer", False) is not False:
            return self._texts_tokenizer
        found = None
        if self.local_model_dir is not None:
            from transformers import AutoTokenizer

            for load in (lambda: self.processor(), lambda: AutoTokenizer.from_pretrained(self.local_model_dir)):
                try:
                    candidate = load()
                except (OSError, ValueError, TypeError):
                    continue
                candidate = getattr(candidate, "tokenizer", candidate)
                if hasattr(candidate, "decode"):  # not a feature extractor alone
                    found = candidate
                    break
        self._texts_tokenizer = found
        return found

    def text_of(self, tokenizer, ids) -> str:
        return getattr(tokenizer, "tokenizer", tokenizer).decode(ids, skip_special_tokens=True)

    def _inputs(self, tokenizer, prompts, inputs) -> dict[str, np.ndarray]:
        """{the audio input [N, samples] or [N, frames, bins] float32, attention_mask [N, samples or frames] int64}."""
        if prompts is not None:
            raise ValueError("A speech encoder-decoder reads audio, not prompts: pass inputs=processor(audio, sampling_rate=16000).")
        if inputs is None:
            raise ValueError("generate() needs the audio: inputs=processor(audio, sampling_rate=16000, return_tensors='pt').")
        name = self.audio_input
        if isinstance(inputs, (np.ndarray, torch.Tensor, list)):
            inputs = {name: inputs}
        audio = inputs.get(name) if hasattr(inputs, "get") else None
        if audio is None:
            given = sorted(inputs) if hasattr(inputs, "keys") else type(inputs).__name__
            raise ValueError(f"inputs has no {name} (it has {given}): pass this model's processor's output.")
        try:
            audio = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio)
        except ValueError:  # recordings of different lengths
            raise ValueError(f"{name}: recordings of different lengths; pad them with the processor (it gives their mask).") from None
        if not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(f"{name} must be floats (the processor's output), got {audio.dtype}: 16-bit PCM is read as samples / 32768.")
        audio = audio.astype(np.float32)
        features = name == INPUT_FEATURES
        mask = inputs.get(ATTENTION_MASK)
        mask = None if mask is None else np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
        if audio.ndim == (2 if features else 1):  # one recording
            audio = audio[None]
            mask = mask if mask is None or mask.ndim != 1 else mask[None]
        bins = audio_feature_width(self.config) if features else None
        if audio.ndim != (3 if features else 2) or audio.shape[1] == 0 or (features and audio.shape[2] != bins):
            want = f"[batch, frames, {bins}] (filter banks)" if features else "[batch, samples] (16 kHz audio)"
            raise ValueError(f"{name} must be {want}, got {list(audio.shape)}.")
        mask = np.ones(audio.shape[:2], np.int64) if mask is None else mask
        if mask.shape != audio.shape[:2]:
            axis = "frames" if features else "samples"
            raise ValueError(f"attention_mask must be [batch, {axis}] {list(audio.shape[:2])}, got {list(mask.shape)}.")
        self._check_audio_length(audio.shape[1])
        return {name: audio, ATTENTION_MASK: mask.astype(np.int64)}

    def transcribe(
        self,
        audio: np.ndarray,
        processor,
        generation_len: int | None = None,
        language: str | None = None,
        task: str | None = None,
        return_timestamps: bool = False,
        **options,
    ) -> CloudAI100ExecInfo:
        """One recording at the processor's rate (16 kHz), through ``processor``, as QEFFAutoModelForSpeechSeq2Seq's
        ``transcribe`` takes it (``infer --audio_path``, the server); ``options`` as for generate() (``num_beams``,
        ``streamer``, ...). A model that takes a decoder prompt (Canary, Cohere ASR, SeamlessM4T) needs ``language`` (the
        audio's; none detects it: a code, or for Canary a name; SeamlessM4T's three-letter code) and takes ``task``
        "translate" (into English: Canary from ``language``, SeamlessM4T from any); the others transcribe without them,
        and timestamps are refused. Audio Cohere ASR's processor splits (past its 35 s) is one text, joined as its
        ``decode`` joins the chunks (``generated_ids``: a row per chunk). ``generation_len`` None: the checkpoint's
        length, or, for a Moonshine checkpoint that names none, 6.5 tokens per second of audio, as its model card bounds
        it (within the compiled ctx_len)."""
        self.check_transcribable(language=language, task=task, return_timestamps=return_timestamps, processor=processor)
        if "tgt_lang" in options and self.config.model_type in PROMPTED_TYPES:
            raise ValueError("transcribe() makes the target language from language and task: leave tgt_lang out.")
        inputs = self.transcription_inputs(audio, processor, language, task)
        if generation_len is None:
            rate = getattr(getattr(processor, "feature_extractor", processor), "sampling_rate", SAMPLING_RATE)
            generation_len = self._spoken_length(len(audio) / rate)
        tgt_lang = target_language(self.config.model_type, language, task)
        info = self.generate(inputs, generation_len, processor=processor, **({"tgt_lang": tgt_lang} if tgt_lang else {}), **options)
        joined = joined_chunks(self.config.model_type, processor, inputs, info.generated_ids, language)
        if joined is not None:  # one text for the recording; generated_ids keep a row per chunk
            info.generated_texts = [[joined]]
        return info

    def end_token_ids(self) -> tuple[int, ...]:
        """The tokens that end a transcript (the generation config's eos tokens)."""
        return Seq2SeqRules.from_generation_config(self.generation_config, self.config).eos_token_ids

    def check_transcribable(
        self, language: str | None = None, task: str | None = None, return_timestamps: bool = False, processor=None
    ) -> None:
        """That transcribe() runs this model with these options (before anything is compiled): a language and task its
        decoder prompt takes (a model that takes one: transcription_languages(processor)); no options for the others."""
        kind = self.config.model_type
        if kind in PROMPTED_TYPES:
            if return_timestamps:
                raise ValueError(f"A {kind} model's tokens carry no times: ask for no timestamps.")
            check_prompt_request(kind, self.transcription_languages(processor), language, task)
            return
        given = [name for name, value in {"language": language, "task": task, "return_timestamps": return_timestamps}.items() if value]
        if given:
            raise ValueError(f"{given}: Whisper's options; a {kind} model transcribes without them (leave them out).")

    def transcription_languages(self, processor=None) -> frozenset[str] | None:
        """The languages this model's decoder prompt takes (Canary, Cohere ASR, SeamlessM4T; of Canary's and Cohere
        ASR's, those ``processor``'s tokenizer has a token for where it is given), or None: it takes none."""
        kind = self.config.model_type
        if kind not in PROMPTED_TYPES:
            return None
        cached = getattr(self, "_languages_of", None)  # the server asks per request: the tokenizer's vocabulary is read once
        if cached is not None and cached[0] is processor:
            return cached[1]
        codes = getattr(self.generation_config, "text_decoder_lang_to_code_id", None) or self._saved_generation_setting(
            "text_decoder_lang_to_code_id"
        )
        self._languages_of = processor, prompt_languages(kind, codes, processor)
        return self._languages_of[1]

    def translates(self, processor=None) -> bool:
        """Whether this model translates speech into English (Canary, SeamlessM4T: transcribe(task="translate"))."""
        languages = self.transcription_languages(processor)
        return self.config.model_type in ENGLISH and languages is not None and ENGLISH[self.config.model_type] in languages

    def transcription_inputs(self, audio: np.ndarray, processor, language: str | None = None, task: str | None = None) -> Any:
        """One recording (1-D, at the processor's rate) through ``processor`` as its examples call it (``audio=``,
        torch tensors: some processors make no others), with the decoder prompt of ``language`` and ``task`` where the
        model takes one."""
        audio = np.asarray(audio)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"audio must be one mono recording, a non-empty 1-D array; got shape {list(audio.shape)}.")
        rate = getattr(getattr(processor, "feature_extractor", processor), "sampling_rate", SAMPLING_RATE)
        if self.config.model_type in PROMPTED_TYPES:
            return prompted_inputs(self.config.model_type, processor, audio.astype(np.float32), rate, language, task)
        return processor(audio=audio.astype(np.float32), sampling_rate=rate, return_tensors="pt")

    def _spoken_length(self, seconds: float) -> int | None:
        """Moonshine's bound on the tokens of ``seconds`` of speech where its checkpoint names no length (transformers'
        default would stop at 20): its model card's ``max_length`` of 6.5 tokens per second, within the compiled ctx_len;
        None for the others (the checkpoint's length)."""
        g = self.generation_config
        if self.config.model_type != "moonshine" or g.max_length is not None or g.max_new_tokens is not None:
            return None
        slots = read_artifact(self.qpc_paths["decoder_qpc_path"])["kv_shape"][2] if self.qpc_paths else None
        tokens = max(1, int(seconds * MOONSHINE_TOKENS_PER_SECOND) - 1)  # max_length counts the start token
        return min(tokens, slots) if slots else tokens

    def _check_audio_length(self, length: int) -> None:
        """Audio the encoder's convolutions leave frames of, within its position table where it has one."""
        if self.config.model_type == "moonshine" and length < MOONSHINE_SHORTEST:
            raise ValueError(f"The audio is too short: {length} samples; Moonshine's encoder reads {MOONSHINE_SHORTEST} at least.")
        kind = self.config.model_type
        if kind == "moonshine_streaming":
            frame = int(round(self.config.encoder_config.sample_rate * self.config.encoder_config.frame_ms / 1000))
            if length % frame:
                raise ValueError(f"Moonshine Streaming reads whole {frame}-sample frames: pad the audio to a multiple of {frame}.")
            table = self.config.max_position_embeddings  # the decoder's table of the encoder's frames
            if int(self._encoder_frames(torch.tensor(length))) > table:
                raise ValueError(f"The audio is too long: {length} samples, more encoder frames than its position table's {table}.")
        if kind == "speecht5":  # its speech table, as exported (positions after the pad id)
            frames = int(self._encoder_frames(torch.tensor(length)))
            offset = self.hf.get_encoder().prenet.pos_sinusoidal_embed.offset
            rows = self.config.max_speech_positions + self.config.pad_token_id + 1 + offset  # the table as exported
            if self.config.pad_token_id + frames >= rows:
                raise ValueError(f"The audio is too long: {length} samples give {frames} frames, more than its position table's.")
        if kind == "speech_to_text":  # its sinusoidal table, as exported (positions after the pad id)
            frames = length
            for _ in range(self.config.num_conv_layers):
                frames = (frames - 1) // 2 + 1
            rows = self.config.max_source_positions + self.hf.get_encoder().embed_positions.offset  # the table as exported
            if self.config.pad_token_id + frames >= rows:
                longest = (rows - 1 - self.config.pad_token_id) * 2**self.config.num_conv_layers
                raise ValueError(
                    f"The audio is too long: {length} frames; the encoder's position table reads {longest} at most (split the audio)."
                )


def transcribes(config) -> bool:
    """Whether ``config`` is a speech encoder-decoder this class runs: its type's, and where the type also names other
    models (SpeechT5's text-to-speech, SeamlessM4T's text-to-text) a checkpoint that holds the speech encoder and the text
    decoder."""
    if config.model_type in SPEECH_TO_TEXT_CHECKPOINTS:
        return bool(set(config.architectures or []) & set(SPEECH_TO_TEXT_CHECKPOINTS[config.model_type]))
    return config.model_type in AUDIO_SEQ2SEQ_INPUTS


def _decodes(value) -> bool:
    """Whether a positional argument is a processor or tokenizer (callable, not audio)."""
    return callable(value) and not isinstance(value, (np.ndarray, torch.Tensor)) and not hasattr(value, "keys")


__all__ = ["QEFFAutoModelForSpeechEncoderDecoder", "SAMPLING_RATE", "transcribes"]
