"""The decoder prompt of the speech encoder-decoders that take one (Canary, Cohere ASR, SeamlessM4T): the languages each
takes, and a transcription or a translation into English made into its processor's inputs as its model card calls it
(Canary's ``apply_transcription_request``, Cohere ASR's processor with ``language``, SeamlessM4T's ``tgt_lang``)."""

from __future__ import annotations

from typing import Any

import numpy as np

# models that need a decoder prompt of a language and task
PROMPTED_TYPES = frozenset({"canary", "cohere_asr", "seamless_m4t", "seamless_m4t_v2"})
SEAMLESS_TYPES = frozenset({"seamless_m4t", "seamless_m4t_v2"})
# the target of a translation (OpenAI's translations answer in English), in each model's codes
ENGLISH = {"canary": "en", "seamless_m4t": "eng", "seamless_m4t_v2": "eng"}
TASKS = ("transcribe", "translate")


def prompt_languages(model_type: str, seamless_codes: dict | None = None) -> frozenset[str]:
    """The language codes a prompted model's decoder prompt takes (SeamlessM4T's: its generation config's
    ``text_decoder_lang_to_code_id``, given as ``seamless_codes``)."""
    if model_type == "canary":
        from transformers.models.canary.processing_canary import LANGUAGE_CODE_TO_NAME

        return frozenset(LANGUAGE_CODE_TO_NAME)
    if model_type == "cohere_asr":
        from transformers.models.cohere_asr.processing_cohere_asr import LANGUAGES

        return frozenset(LANGUAGES)
    return frozenset(code.strip("_") for code in seamless_codes or {})


def check_prompt_request(model_type: str, languages: frozenset[str], language: str | None, task: str | None) -> None:
    """A ValueError saying what to pass where ``language`` (the audio's; for SeamlessM4T the transcript's) or ``task``
    cannot make this model's prompt."""
    if task not in (None, *TASKS):
        raise ValueError(f"task must be 'transcribe' or 'translate', got {task!r}.")
    if language is not None and language.strip("_") not in languages:
        raise ValueError(f"language={language!r} is not one of this {model_type} model's: {', '.join(sorted(languages))}.")
    if task == "translate":
        if model_type not in ENGLISH:
            raise ValueError(f"A {model_type} model transcribes and does not translate: leave task out.")
        if ENGLISH[model_type] not in languages:
            raise ValueError(f"This {model_type} model does not write English ({ENGLISH[model_type]!r}): it cannot translate into it.")
        if model_type == "canary" and language is None:
            raise ValueError("Canary translates from the language you name: pass the audio's language (language='de', ...).")
    if model_type == "cohere_asr" and language is None:
        raise ValueError(f"Cohere ASR transcribes in the language you name: pass language= (one of {', '.join(sorted(languages))}).")


def prompted_inputs(model_type: str, processor, audio: np.ndarray, rate: int, language: str | None, task: str | None) -> Any:
    """The processor's inputs for one recording with its decoder prompt: Canary's from ``language`` (English where none is
    named, as transformers' default) into itself or into English, Cohere ASR's in ``language``; SeamlessM4T's processor
    makes no prompt (generate's ``tgt_lang``: ``target_language``)."""
    if model_type == "canary":
        target = ENGLISH["canary"] if task == "translate" else None  # None: the source's, a transcription
        return processor.apply_transcription_request(
            audio, source_language=language or "en", target_language=target, processor_kwargs={"sampling_rate": rate}
        )
    if model_type == "cohere_asr":
        inputs = processor(audio=audio, language=language, sampling_rate=rate, return_tensors="pt")
        chunks = len(inputs.get("audio_chunk_index") or ())
        if chunks > 1:  # rows of one recording, which transcribe() would answer apart
            longest = getattr(processor.feature_extractor, "max_audio_clip_s", None)
            raise ValueError(
                f"Cohere ASR reads up to {longest} s in one pass; its processor splits this {len(audio) / rate:.1f} s audio into "
                f"{chunks} chunks: cut it, or run generate(inputs=processor(...)) and join the rows with "
                "processor.decode(..., audio_chunk_index=..., language=...)."
            )
        return inputs
    return processor(audio=audio, sampling_rate=rate, return_tensors="pt")


def target_language(model_type: str, language: str | None, task: str | None) -> str | None:
    """SeamlessM4T's ``tgt_lang``: English for a translation, else the transcript's language (None: its generate's
    default prompt); None for the others."""
    if model_type not in SEAMLESS_TYPES:
        return None
    return ENGLISH[model_type] if task == "translate" else language
