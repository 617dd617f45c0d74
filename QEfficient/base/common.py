"""``QEFFCommonLoader``: QEfficient's loader that picks the auto class from the model's config."""

from __future__ import annotations

import os
from typing import Any

from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.causal_lm import QEFFAutoModelForCausalLM
from QEfficient.models.ctc import QEFFAutoModelForCTC
from QEfficient.models.image_seq2seq import IMAGE_SEQ2SEQ_CLASSES
from QEfficient.models.image_text import QEFFAutoModelForImageTextToText
from QEfficient.models.seq2seq_lm import SUPPORTED_TYPES as SEQ2SEQ_TYPES
from QEfficient.models.seq2seq_lm import QEFFAutoModelForSeq2SeqLM
from QEfficient.models.speech_seq2seq import QEFFAutoModelForSpeechSeq2Seq
from QEfficient.transform.vision_adapters import AUDIO_ADAPTERS


class QEFFCommonLoader:
    """``QEFFCommonLoader.from_pretrained(name)``: a ``QEFFAutoModelForImageTextToText`` for the
    image-text-to-text architectures of transformers, a ``QEFFAutoModelForCausalLM`` for causal LMs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(f"{type(self).__name__} is made with `{type(self).__name__}.from_pretrained(pretrained_model_name_or_path)`.")

    @classmethod
    def model_class(cls, pretrained_model_name_or_path: str | os.PathLike, cache_dir: str | None = None) -> type:
        """The auto class for a model folder, .gguf file or cached hub id (its config decides)."""
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
            MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
            MODEL_FOR_CTC_MAPPING_NAMES,
            MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
            MODEL_FOR_RNNT_MAPPING_NAMES,
            MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES,
            MODEL_FOR_TDT_MAPPING_NAMES,
        )

        from QEfficient.loading.hf_loader import unmapped_causal_lm_class

        folder, gguf_file = resolve_model_path(pretrained_model_name_or_path, cache_dir)
        if gguf_file:
            return QEFFAutoModelForCausalLM
        config = AutoConfig.from_pretrained(folder)
        model_type = config.model_type
        heads = config.architectures or []
        if model_type in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES and any(
            a.endswith(("ForSequenceClassification", "ForAudioClassification")) for a in heads
        ):  # an audio classifier (Wav2Vec2's, AST's, Whisper's encoder's), not its CTC or speech-to-text model
            from QEfficient.models.ctc import QEFFAutoModelForAudioClassification

            return QEFFAutoModelForAudioClassification
        audio_head = next((a for a in heads if a.endswith(("ForAudioFrameClassification", "ForXVector"))), None)
        if audio_head is not None:  # diarization, speaker verification
            from QEfficient.models.audio_heads import QEFFAutoModelForAudioFrameClassification, QEFFAutoModelForAudioXVector

            return QEFFAutoModelForAudioXVector if audio_head.endswith("ForXVector") else QEFFAutoModelForAudioFrameClassification
        if model_type in IMAGE_SEQ2SEQ_CLASSES:  # an image encoder with a cross-attending decoder (TrOCR, Donut, Florence-2)
            return IMAGE_SEQ2SEQ_CLASSES[model_type]
        if unmapped_causal_lm_class(config) is not None:  # mistral4: its image-text entry is the text-only causal LM
            return QEFFAutoModelForCausalLM
        if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES or model_type in AUDIO_ADAPTERS:  # first, as in QEfficient
            return QEFFAutoModelForImageTextToText  # audio-text models (Voxtral) too: audio chunks in the place of images
        if model_type == "whisper" and model_type in MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES:  # before: it has a causal-LM class too
            return QEFFAutoModelForSpeechSeq2Seq
        from QEfficient.models.speech_encoder_decoder import QEFFAutoModelForSpeechEncoderDecoder, transcribes

        if transcribes(config):  # Moonshine, Speech2Text, SpeechT5's speech-to-text, SpeechEncoderDecoderModel
            return QEFFAutoModelForSpeechEncoderDecoder
        if model_type == "encoder-decoder":  # transformers' EncoderDecoderModel: a text encoder and a causal-LM decoder
            return QEFFAutoModelForSeq2SeqLM
        if model_type in SEQ2SEQ_TYPES and _whole_model(config):
            return QEFFAutoModelForSeq2SeqLM  # before: BART-like types have a causal-LM class (their decoder alone)
        if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            return QEFFAutoModelForCausalLM
        if model_type in MODEL_FOR_CTC_MAPPING_NAMES:
            return QEFFAutoModelForCTC
        # Parakeet's and Nemotron ASR's transducers
        if model_type in MODEL_FOR_TDT_MAPPING_NAMES or model_type in MODEL_FOR_RNNT_MAPPING_NAMES:
            from QEfficient.models.transducer import QEFFAutoModelForRNNT, QEFFAutoModelForTDT

            return QEFFAutoModelForTDT if model_type in MODEL_FOR_TDT_MAPPING_NAMES else QEFFAutoModelForRNNT
        raise NotImplementedError(
            f"Unknown architecture '{model_type}' for QEFFCommonLoader (causal LMs, image-text-to-text, text encoder-decoders, "
            "Whisper, CTC and transducer speech models); "
            "load it with its auto class, e.g. QEFFAutoModel for encoders."
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """As QEfficient: ``local_model_dir`` (when given) is where the files are, ``full_batch_size``
        turns on continuous batching, ``hf_token`` is accepted (nothing is downloaded)."""
        if args:
            raise TypeError("QEFFCommonLoader.from_pretrained takes the model name, then keyword arguments only.")
        local_model_dir = kwargs.pop("local_model_dir", None)
        kwargs.pop("hf_token", None)
        continuous_batching = bool(kwargs.pop("full_batch_size", None)) or bool(kwargs.pop("continuous_batching", False))
        source = local_model_dir or pretrained_model_name_or_path
        model_class = cls.model_class(source, kwargs.get("cache_dir"))
        if kwargs.get("cache_dir") is None:
            kwargs.pop("cache_dir", None)
        return model_class.from_pretrained(source, continuous_batching=continuous_batching, **kwargs)


def _whole_model(config) -> bool:
    """Whether a checkpoint holds an encoder-decoder's both halves (not a T5EncoderModel or a *ForCausalLM)."""
    if not getattr(config, "is_encoder_decoder", False):
        return False
    return not config.architectures or any("Encoder" not in a and "CausalLM" not in a for a in config.architectures)
