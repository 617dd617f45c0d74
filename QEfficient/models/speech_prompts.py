"""The decoder prompt of the speech encoder-decoders that take one (Canary, Cohere ASR, SeamlessM4T): the languages each
takes, and a transcription or a translation into English made into its processor's inputs as its model card calls it
(Canary's ``apply_transcription_request``, Cohere ASR's processor with ``language``, SeamlessM4T's ``tgt_lang``). None of
them detects the language: a transcription names it."""

from __future__ import annotations

from typing import Any

import numpy as np

from QEfficient.transform.speech_seq2seq import SEAMLESS_TYPES

# models that need a decoder prompt of a language and task
PROMPTED_TYPES = frozenset({"canary", "cohere_asr", *SEAMLESS_TYPES})
# the target of a translation (OpenAI's translations answer in English), in each model's codes
ENGLISH = {"canary": "en", "seamless_m4t": "eng", "seamless_m4t_v2": "eng"}
TASKS = ("transcribe", "translate")
NAME_IT = "name the audio's language (language=..., --language, or the form's language field)"


def prompt_languages(model_type: str, seamless_codes: dict | None = None, processor=None) -> frozenset[str]:
    """The language codes a prompted model's decoder prompt takes: SeamlessM4T's, its generation config's
    ``text_decoder_lang_to_code_id`` (``seamless_codes``); Canary's and Cohere ASR's, transformers' table, only those whose
    ``<|xx|>`` token ``processor``'s tokenizer holds where it is given (a checkpoint may hold fewer)."""
    if model_type in SEAMLESS_TYPES:
        return frozenset(code.replace("__", "") for code in seamless_codes or {})
    if model_type == "canary":
        from transformers.models.canary.processing_canary import LANGUAGE_CODE_TO_NAME as codes
    else:
        from transformers.models.cohere_asr.processing_cohere_asr import LANGUAGES as codes
    vocabulary = getattr(getattr(processor, "tokenizer", None), "get_vocab", None)
    held = vocabulary() if vocabulary is not None else None
    return frozenset(code for code in codes if held is None or f"<|{code}|>" in held)


def canonical_language(model_type: str, language: str | None) -> str | None:
    """``language`` in the model's codes: Canary's processor also takes a name ("German") in any case, SeamlessM4T's
    generate the code in underscores ("__deu__")."""
    if language is None:
        return None
    if model_type in SEAMLESS_TYPES:
        return language.replace("__", "").lower()
    if model_type == "canary":
        from transformers.models.canary.processing_canary import LANGUAGE_CODE_TO_NAME

        found = [code for code, name in LANGUAGE_CODE_TO_NAME.items() if language.lower() in (code, name.lower())]
        return found[0] if found else language
    return language.lower()


def check_prompt_request(model_type: str, languages: frozenset[str], language: str | None, task: str | None) -> None:
    """A ValueError saying what to send where ``language`` (the audio's; for SeamlessM4T the transcript's, and unread by
    its translation into English) or ``task`` cannot make this model's prompt."""
    if task not in (None, *TASKS):
        raise ValueError(f"task must be 'transcribe' or 'translate', got {task!r}.")
    listed = ", ".join(sorted(languages))
    if task == "translate":
        if model_type not in ENGLISH:
            raise ValueError(f"A {model_type} model transcribes and does not translate: leave the task out.")
        if ENGLISH[model_type] not in languages:
            raise ValueError(f"This {model_type} model does not write English ({ENGLISH[model_type]!r}): it cannot translate into it.")
        if model_type in SEAMLESS_TYPES:
            return  # it reads any language and writes English: the audio's is not asked
    if language is None:
        raise ValueError(f"A {model_type} model does not detect the language: {NAME_IT} (one of {listed}).")
    if canonical_language(model_type, language) not in languages:
        raise ValueError(f"language={language!r} is not one of this {model_type} model's: {listed}.")


def prompted_inputs(model_type: str, processor, audio: np.ndarray, rate: int, language: str | None, task: str | None) -> Any:
    """The processor's inputs for one recording with its decoder prompt (a request check_prompt_request passed): Canary's
    from ``language`` into itself or into English, Cohere ASR's in ``language``; SeamlessM4T's processor makes no prompt
    (generate's ``tgt_lang``: ``target_language``)."""
    language = canonical_language(model_type, language)
    if model_type == "canary":
        target = ENGLISH["canary"] if task == "translate" else None  # None: the source's, a transcription
        return processor.apply_transcription_request(
            audio, source_language=language, target_language=target, processor_kwargs={"sampling_rate": rate}
        )
    if model_type == "cohere_asr":  # past its clip length (35 s), a row per chunk: joined_chunks() joins their texts
        return processor(audio=audio, language=language, sampling_rate=rate, return_tensors="pt")
    return processor(audio=audio, sampling_rate=rate, return_tensors="pt")


def joined_chunks(model_type: str, processor, inputs, generated_ids: list, language: str | None) -> str | None:
    """The text of one recording its processor split into chunks (Cohere ASR's, a row of ``generated_ids`` each, batch
    after batch), joined as its ``decode`` joins them (with ``audio_chunk_index``); None where it was not split."""
    chunks = inputs.get("audio_chunk_index") if model_type == "cohere_asr" and hasattr(inputs, "get") else None
    if not chunks or len(chunks) < 2:
        return None
    rows = [row.tolist() for batch in generated_ids for row in batch][: len(chunks)]
    language = canonical_language(model_type, language)
    return processor.decode(rows, audio_chunk_index=chunks, language=language, skip_special_tokens=True)[0]


def target_language(model_type: str, language: str | None, task: str | None) -> str | None:
    """SeamlessM4T's ``tgt_lang``: English for a translation, else the transcript's language; None for the others."""
    if model_type not in SEAMLESS_TYPES:
        return None
    return ENGLISH[model_type] if task == "translate" else canonical_language(model_type, language)
