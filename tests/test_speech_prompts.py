"""Canary, Cohere ASR and SeamlessM4T through transcribe() and the transcription server with a language, and Canary and
SeamlessM4T translating into English: their real processors (tiny tokenizers that hold their prompt tokens, a Canary chat
template made by hand) make the decoder prompt as their model cards call them, and the tokens are transformers'
generate's from the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    CanaryConfig,
    CanaryForConditionalGeneration,
    CohereAsrConfig,
    CohereAsrForConditionalGeneration,
    ParakeetFeatureExtractor,
    SeamlessM4TConfig,
    SeamlessM4TFeatureExtractor,
    SeamlessM4TForSpeechToText,
)
from transformers.models.canary.processing_canary import CanaryProcessor
from transformers.models.cohere_asr.feature_extraction_cohere_asr import CohereAsrFeatureExtractor
from transformers.models.cohere_asr.processing_cohere_asr import CohereAsrProcessor
from transformers.models.seamless_m4t.processing_seamless_m4t import SeamlessM4TProcessor

from QEfficient import QEFFAutoModelForSpeechSeq2Seq
from tests.test_ctranslate2_whisper import DATA, read_wav
from tests.test_speech_encoder_decoder import MODELS, PARAKEET, PROMPTED_DECODER, START
from tests.tiny_models import build_tokenizer

# the prompt tokens of Canary's and Cohere ASR's processors, for English and German ("▁": Cohere ASR's first)
PROMPT_TOKENS = ["▁", "<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>", "<|en|>", "<|de|>", "<|pnc|>"]
PROMPT_TOKENS += ["<|nopnc|>", "<|noitn|>", "<|notimestamp|>", "<|nodiarize|>"]
VOCAB = 336  # the local tokenizer's 320 and the prompt tokens
# Canary's prompt from its processor's request (the checkpoints' own template is not here: the same tokens, in order)
CANARY_TEMPLATE = (
    "{% for message in messages %}{% for item in message['content'] %}{% if item['type'] == 'text' %}"
    "<|startofcontext|><|startoftranscript|><|emo:undefined|><|{{ item['source_language'] }}|><|{{ item['target_language'] }}|>"
    "{{ '<|pnc|>' if item['punctuation'] else '<|nopnc|>' }}<|noitn|><|notimestamp|><|nodiarize|>{% endif %}{% endfor %}{% endfor %}"
)
SEAMLESS_LANGUAGES = {"eng": 17, "deu": 42}
NEW_TOKENS = 8
# (language, task) per model: each changes the prompt, so the tokens
CASES = {
    "canary": [("de", None), ("en", None), ("de", "translate")],
    "cohere_asr": [("de", None), ("en", None)],
    "seamless_m4t": [("deu", None), (None, "translate"), (None, None)],
}


def build(name: str, folder):
    """A tiny model of ``name`` (weights drawn wide, std 0.3, so that the prompt and the audio decide the tokens) and its
    real processor, saved in ``folder``."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": PROMPT_TOKENS})
    decoder = {**PROMPTED_DECODER, "vocab_size": VOCAB}
    if name == "canary":
        model = CanaryForConditionalGeneration(CanaryConfig(encoder_config=PARAKEET, decoder_config=decoder, vocab_size=VOCAB, **START))
        processor = CanaryProcessor(ParakeetFeatureExtractor(feature_size=16), tokenizer, chat_template=CANARY_TEMPLATE)
    elif name == "cohere_asr":
        model = CohereAsrForConditionalGeneration(CohereAsrConfig(encoder_config=PARAKEET, **{**decoder, **START}))
        processor = CohereAsrProcessor(CohereAsrFeatureExtractor(feature_size=16), tokenizer)
    else:  # tests/test_speech_encoder_decoder.py's SeamlessM4T, with the prompt tokens' vocabulary
        config = MODELS["seamless_m4t"]().config.to_dict() | {"vocab_size": VOCAB}
        model = SeamlessM4TForSpeechToText(SeamlessM4TConfig(**config))
        processor = SeamlessM4TProcessor(SeamlessM4TFeatureExtractor(feature_size=8, num_mel_bins=8, stride=2), tokenizer)
    with torch.no_grad():
        for key, weight in model.named_parameters():
            if "norm" not in key and weight.dim() > 1:
                weight.normal_(0, 0.3)
    model.generation_config.update(**START)
    if name == "seamless_m4t":
        model.generation_config.text_decoder_lang_to_code_id = SEAMLESS_LANGUAGES
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor


def reference_tokens(
    name: str, hf, processor, audio: np.ndarray, language: str | None, task: str | None, new_tokens=NEW_TOKENS
) -> list[int]:
    """transformers' greedy tokens with the prompt made as the model card makes it (``new_tokens`` None: the checkpoint's
    length)."""
    if name == "canary":
        target = "en" if task == "translate" else None
        inputs = processor.apply_transcription_request(
            audio, source_language=language, target_language=target, processor_kwargs={"sampling_rate": 16000}
        )
    elif name == "cohere_asr":
        inputs = processor(audio=audio, language=language, sampling_rate=16000)
    else:
        inputs = processor(audio=audio, sampling_rate=16000, return_tensors="pt")
    extra = {"tgt_lang": "eng" if task == "translate" else language} if name == "seamless_m4t" and (language or task) else {}
    with torch.no_grad():
        length = {} if new_tokens is None else {"max_new_tokens": new_tokens}
        return hf.generate(**inputs, do_sample=False, **length, **extra)[0].tolist()


@pytest.fixture(scope="module")
def prompted(tmp_path_factory):
    made = {}

    def make(name: str):
        if name not in made:
            folder = tmp_path_factory.mktemp(name)
            hf, processor = build(name, folder)
            made[name] = folder, hf, processor
        return made[name]

    return make


def clip() -> np.ndarray:
    return np.round(read_wav(DATA / "speech16k.wav")[:16000] * 32767) / 32767  # 1 s, as 16 bits hold it


@pytest.mark.parametrize("name", list(CASES))
def test_transcribe_with_a_language_is_transformers(prompted, name):
    """transcribe(audio, processor, language=..., task=...) gives transformers' tokens for each language and task (each
    changes them), and the processor's texts."""
    folder, hf, processor = prompted(name)
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=1, num_cores=1)
    audio = clip().astype(np.float32)
    seen = set()
    for language, task in CASES[name]:
        expected = reference_tokens(name, hf, processor, audio, language, task)
        info = model.transcribe(audio, processor, NEW_TOKENS, language=language, task=task)
        ours = [int(t) for t in info.generated_ids[0][0]][: len(expected)]
        assert ours == expected, (language, task)
        assert info.texts[0] == processor.tokenizer.decode(expected, skip_special_tokens=True)
        seen.add(tuple(expected))
    assert len(seen) == len(CASES[name])  # the language and the task decide the tokens


def test_a_request_the_prompt_cannot_make_says_what_to_pass(prompted):
    folder, _, processor = prompted("cohere_asr")
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    audio = clip().astype(np.float32)
    with pytest.raises(ValueError, match=r"Cohere ASR transcribes in the language you name: pass language= \(one of ar, de, el, en"):
        model.transcribe(audio, processor)
    with pytest.raises(ValueError, match="language='xx' is not one of this cohere_asr model's: ar, de"):
        model.check_transcribable(language="xx")
    with pytest.raises(ValueError, match="A cohere_asr model transcribes and does not translate: leave task out"):
        model.check_transcribable(language="en", task="translate")
    with pytest.raises(
        ValueError, match=r"Cohere ASR reads up to 35.0 s in one pass; its processor splits this 36.0 s audio into 2 chunks"
    ):
        model.transcribe(np.zeros(36 * 16000, np.float32), processor, language="en")
    with pytest.raises(ValueError, match="tokens carry no times"):
        model.check_transcribable(language="en", return_timestamps=True)
    assert not model.translates()
    folder, _, processor = prompted("canary")
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    with pytest.raises(ValueError, match="Canary translates from the language you name"):
        model.check_transcribable(task="translate")
    with pytest.raises(ValueError, match="task must be 'transcribe' or 'translate', got 'summarize'"):
        model.check_transcribable(language="en", task="summarize")
    assert model.translates() and "de" in model.transcription_languages()


def test_infer_transcribes_a_file_in_its_language(prompted, capsys):
    """``infer --audio_path --language`` (the whole test file, 7.8 s) gives transformers' text."""
    from QEfficient.cloud import infer

    folder, hf, processor = prompted("cohere_asr")
    tokens = reference_tokens("cohere_asr", hf, processor, read_wav(DATA / "speech16k.wav"), "de", None)
    expected = processor.tokenizer.decode(tokens, skip_special_tokens=True)
    info = infer.main(
        model_name=str(folder), audio_path=str(DATA / "speech16k.wav"), language="de", generation_len=NEW_TOKENS, ctx_len=32, num_cores=1
    )
    assert info.texts == [expected] and f"Transcription : {expected}" in capsys.readouterr().out


def test_served_with_a_language_and_translating(prompted):
    """serve: Cohere ASR's transcription in the form's language (none, or one it lacks: a 400 naming the field), streamed
    alike; Canary's translation into English from the form's language, at /v1/audio/translations; Cohere ASR does not
    translate."""
    import json

    from QEfficient.serving.transcriber_app import open_transcriber_app
    from tests.helpers import serve_on_loopback
    from tests.test_server_ctc import transcribe, wav

    audio = clip()
    for name, route, language, task in (
        ("cohere_asr", "/v1/audio/transcriptions", "de", None),
        ("canary", "/v1/audio/translations", "de", "translate"),
    ):
        folder, hf, processor = prompted(name)
        tokens = reference_tokens(name, hf, processor, audio.astype(np.float32), language, task, None)  # the checkpoint's length
        expected = processor.tokenizer.decode(tokens, skip_special_tokens=True)
        app, runner = open_transcriber_app(str(folder), 1, False, None, None)
        with serve_on_loopback(app, log_level="critical") as url:
            answer = transcribe(url, wav(audio), route, language=language)
            assert answer.status_code == 200, answer.text
            text = answer.json()["text"]
            assert text == expected and text.strip()
            streamed = transcribe(url, wav(audio), route, language=language, stream="true")
            events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
            assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]) == text
            missing = transcribe(url, wav(audio), route)
            assert missing.status_code == 400 and missing.json()["error"]["param"] == "language", missing.text
            assert "language" in missing.json()["error"]["message"]
            wrong = transcribe(url, wav(audio), route, language="xx")
            assert wrong.status_code == 400 and "'xx' is not one of this" in wrong.json()["error"]["message"], wrong.text
            if name == "cohere_asr":
                refused = transcribe(url, wav(audio), "/v1/audio/translations", language="de")
                assert refused.status_code == 400 and "does not translate" in refused.json()["error"]["message"], refused.text
        runner.stop()
