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
    SeamlessM4TFeatureExtractor,
)
from transformers.models.canary.processing_canary import CanaryProcessor
from transformers.models.cohere_asr.feature_extraction_cohere_asr import CohereAsrFeatureExtractor
from transformers.models.cohere_asr.processing_cohere_asr import CohereAsrProcessor
from transformers.models.seamless_m4t.processing_seamless_m4t import SeamlessM4TProcessor

from QEfficient import QEFFAutoModelForSpeechSeq2Seq
from tests.test_ctranslate2_whisper import DATA, read_wav
from tests.test_speech_encoder_decoder import MODELS, PARAKEET, PROMPTED_DECODER, START
from tests.tiny_models import build_tokenizer

# the prompt tokens of Canary's and Cohere ASR's processors for English and German ("▁": Cohere ASR's first), and
# SeamlessM4T's language tokens (special, as its tokenizer's)
PROMPT_TOKENS = ["▁", "<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>", "<|en|>", "<|de|>", "<|pnc|>"]
PROMPT_TOKENS += ["<|nopnc|>", "<|noitn|>", "<|notimestamp|>", "<|nodiarize|>", "__eng__", "__deu__"]
VOCAB = 336  # the local tokenizer's 320 and the prompt tokens
# Canary's prompt from its processor's request (the checkpoints' own template is not here: the same tokens, in order)
CANARY_TEMPLATE = (
    "{% for message in messages %}{% for item in message['content'] %}{% if item['type'] == 'text' %}"
    "<|startofcontext|><|startoftranscript|><|emo:undefined|><|{{ item['source_language'] }}|><|{{ item['target_language'] }}|>"
    "{{ '<|pnc|>' if item['punctuation'] else '<|nopnc|>' }}<|noitn|><|notimestamp|><|nodiarize|>{% endif %}{% endfor %}{% endfor %}"
)
SEAMLESS_LANGUAGES = {"eng": 331, "deu": 332}  # the ids of __eng__ and __deu__
NEW_TOKENS = 8
# seeds whose tiny models' greedy texts differ between the prompts the server test sends and the ones it checks against
SEEDS = {"canary": 2, "seamless_m4t_v2": 3}
# (language, task) per model: each makes another prompt (SeamlessM4T's translation is its English transcription)
CASES = {
    "canary": [("de", None), ("en", None), ("de", "translate")],
    "cohere_asr": [("de", None), ("en", None)],
    "seamless_m4t": [("__deu__", None), (None, "translate")],
    "seamless_m4t_v2": [("deu", None), ("eng", None)],
}


def build(name: str, folder):
    """A tiny model of ``name`` (weights drawn wide, std 0.3, so that the prompt and the audio decide the tokens) and its
    real processor, saved in ``folder``."""
    torch.manual_seed(SEEDS.get(name, 0))
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": PROMPT_TOKENS})
    assert tokenizer.convert_tokens_to_ids(["__eng__", "__deu__"]) == list(SEAMLESS_LANGUAGES.values())
    decoder = {**PROMPTED_DECODER, "vocab_size": VOCAB}
    if name == "canary":
        model = CanaryForConditionalGeneration(CanaryConfig(encoder_config=PARAKEET, decoder_config=decoder, vocab_size=VOCAB, **START))
        processor = CanaryProcessor(ParakeetFeatureExtractor(feature_size=16), tokenizer, chat_template=CANARY_TEMPLATE)
    elif name == "cohere_asr":
        model = CohereAsrForConditionalGeneration(CohereAsrConfig(encoder_config=PARAKEET, **{**decoder, **START}))
        processor = CohereAsrProcessor(CohereAsrFeatureExtractor(feature_size=16), tokenizer)
    else:  # tests/test_speech_encoder_decoder.py's SeamlessM4T (v2), with the prompt tokens' vocabulary
        hf = MODELS[name]()
        model = type(hf)(type(hf.config)(**hf.config.to_dict() | {"vocab_size": VOCAB}))
        processor = SeamlessM4TProcessor(SeamlessM4TFeatureExtractor(feature_size=8, num_mel_bins=8, stride=2), tokenizer)
    with torch.no_grad():
        for key, weight in model.named_parameters():
            if "norm" not in key and weight.dim() > 1:
                weight.normal_(0, 0.3)
    model.generation_config.update(**START)
    if name.startswith("seamless_m4t"):
        model.generation_config.text_decoder_lang_to_code_id = SEAMLESS_LANGUAGES
        model.generation_config.max_new_tokens = 16  # within its 64 positions (the tiny config's default is 256)
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor


def reference_tokens(
    name: str, hf, processor, audio: np.ndarray, language: str | None, task: str | None, new_tokens=NEW_TOKENS
) -> tuple[list[int], np.ndarray]:
    """transformers' greedy tokens with the prompt made as the model card makes it (``new_tokens`` None: the checkpoint's
    length), and the log-probabilities of its first new token."""
    if name == "canary":
        target = "en" if task == "translate" else None
        inputs = processor.apply_transcription_request(
            audio, source_language=language, target_language=target, processor_kwargs={"sampling_rate": 16000}
        )
    elif name == "cohere_asr":
        inputs = processor(audio=audio, language=language, sampling_rate=16000)
    else:
        inputs = processor(audio=audio, sampling_rate=16000, return_tensors="pt")
    extra = {"tgt_lang": "eng" if task == "translate" else language} if name.startswith("seamless_m4t") else {}
    with torch.no_grad():
        length = {} if new_tokens is None else {"max_new_tokens": new_tokens}
        out = hf.generate(**inputs, do_sample=False, output_logits=True, return_dict_in_generate=True, **length, **extra)
    return out.sequences[0].tolist(), torch.log_softmax(out.logits[0][0].double(), -1).numpy()


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
    """transcribe(audio, processor, language=..., task=...) gives transformers' tokens for each language and task, and
    the processor's texts; the first new token's log-probabilities are transformers' too, and each prompt changes them
    (the tiny models' greedy tokens barely follow a prompt token)."""
    folder, hf, processor = prompted(name)
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=1, num_cores=1)
    audio = clip().astype(np.float32)
    firsts = []
    for language, task in CASES[name]:
        expected, first = reference_tokens(name, hf, processor, audio, language, task)
        info = model.transcribe(audio, processor, NEW_TOKENS, language=language, task=task, top_logprobs=5)
        ours = [int(t) for t in info.generated_ids[0][0]][: len(expected)]
        assert ours == expected, (language, task)
        assert info.texts[0] == processor.tokenizer.decode(expected, skip_special_tokens=True)
        _, top_ids, top_logprobs = info.logprobs[0][0]
        assert top_ids == np.argsort(-first)[:5].tolist() and np.allclose(top_logprobs, first[top_ids], atol=1e-4)
        firsts.append(first)
    for i, first in enumerate(firsts):  # each prompt reaches the decoder
        assert all(np.abs(first - other).max() > 0.1 for other in firsts[i + 1 :])


def test_a_request_the_prompt_cannot_make_says_what_to_pass(prompted):
    folder, _, processor = prompted("cohere_asr")
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    audio = clip().astype(np.float32)
    # its tokenizer holds the prompt tokens of German and English only: the languages it takes
    assert model.transcription_languages(processor) == {"de", "en"} and "fr" in model.transcription_languages()
    with pytest.raises(
        ValueError, match=r"A cohere_asr model does not detect the language: name the audio's language .* \(one of de, en\)"
    ):
        model.transcribe(audio, processor)
    with pytest.raises(ValueError, match="language='fr' is not one of this cohere_asr model's: de, en"):
        model.transcribe(audio, processor, language="fr")
    with pytest.raises(ValueError, match="A cohere_asr model transcribes and does not translate: leave the task out"):
        model.check_transcribable(language="en", task="translate")
    with pytest.raises(ValueError, match="tokens carry no times"):
        model.check_transcribable(language="en", return_timestamps=True)
    assert not model.translates(processor)
    folder, hf, processor = prompted("canary")
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    with pytest.raises(ValueError, match="A canary model does not detect the language"):
        model.check_transcribable(task="translate", processor=processor)
    with pytest.raises(ValueError, match="task must be 'transcribe' or 'translate', got 'summarize'"):
        model.check_transcribable(language="en", task="summarize")
    with pytest.raises(ValueError, match="makes the target language from language and task: leave tgt_lang out"):
        model.transcribe(audio, processor, language="en", tgt_lang="eng")
    assert model.translates(processor)
    # a name, as Canary's processor takes it (any case): the code's prompt
    prompt = {lang: model.transcription_inputs(audio, processor, lang)["decoder_input_ids"].tolist() for lang in ("GERMAN", "de", "en")}
    assert prompt["GERMAN"] == prompt["de"] != prompt["en"]
    folder, _, processor = prompted("seamless_m4t")
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    with pytest.raises(ValueError, match=r"A seamless_m4t model does not detect the language: .* \(one of deu, eng\)"):
        model.check_transcribable(processor=processor)
    model.check_transcribable(language="fra", task="translate", processor=processor)  # it reads any language: not asked


def test_audio_its_processor_splits_is_one_text(prompted, tmp_path):
    """Cohere ASR's processor splits audio past its clip length into chunks (here 3 s, overlapping by 1 s: the 7.8 s
    test file in 4); transcribe() answers one text, joined as its processor's decode joins transformers' rows, with the
    chunks batched past the compiled batch."""
    import shutil

    from transformers import AutoProcessor

    source, hf, _ = prompted("cohere_asr")
    folder = shutil.copytree(source, tmp_path / "cohere-short-clips")
    processor = AutoProcessor.from_pretrained(folder)
    processor.feature_extractor.max_audio_clip_s, processor.feature_extractor.overlap_chunk_second = 3.0, 1.0
    processor.save_pretrained(folder)
    audio = read_wav(DATA / "speech16k.wav")
    inputs = processor(audio=audio, language="de", sampling_rate=16000)
    assert len(inputs["audio_chunk_index"]) == 4
    with torch.no_grad():
        rows = hf.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    (expected,) = processor.decode(rows, audio_chunk_index=inputs["audio_chunk_index"], language="de", skip_special_tokens=True)
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    model.compile(ctx_len=32, batch_size=3, num_cores=1)
    info = model.transcribe(audio, processor, NEW_TOKENS, language="de")
    assert info.texts == [expected]
    unpadded = lambda row: [t for t in row if t != hf.config.pad_token_id]  # noqa: E731
    ours = [unpadded(row.tolist()) for batch in info.generated_ids for row in batch][:4]
    assert ours == [unpadded(row) for row in rows.tolist()]  # a row per chunk: transformers' tokens


def test_infer_transcribes_a_file_in_its_language(prompted, capsys):
    """``infer --audio_path --language`` (the whole test file, 7.8 s) gives transformers' text."""
    from QEfficient.cloud import infer

    folder, hf, processor = prompted("cohere_asr")
    tokens, _ = reference_tokens("cohere_asr", hf, processor, read_wav(DATA / "speech16k.wav"), "de", None)
    expected = processor.tokenizer.decode(tokens, skip_special_tokens=True)
    info = infer.main(
        model_name=str(folder), audio_path=str(DATA / "speech16k.wav"), language="de", generation_len=NEW_TOKENS, ctx_len=32, num_cores=1
    )
    assert info.texts == [expected] and f"Transcription : {expected}" in capsys.readouterr().out


def seamless_frames_read(hf, processor, audio: np.ndarray) -> int:
    """The encoder frames SeamlessM4T's decoder attends to, as its forward masks them: its adaptor's rule on the audio's
    mask, cut to the frames its convolutions leave (the tiny adaptor's kernel 4 and stride 2 leave one fewer)."""
    from transformers.models.seamless_m4t.modeling_seamless_m4t import _compute_new_attention_mask

    inputs = processor(audio=audio.astype(np.float32), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        hidden = hf.speech_encoder(input_features=inputs["input_features"], attention_mask=inputs["attention_mask"]).last_hidden_state
    lengths = hf._compute_sub_sample_lengths_from_attention_mask(inputs["attention_mask"])
    assert int(lengths[0]) == hidden.shape[1] + 1  # where the rule alone would count one frame too many
    return int(_compute_new_attention_mask(hidden, lengths).sum())


def test_served_with_a_language_and_translating(prompted):
    """serve: Cohere ASR's transcription in the form's language (none, or one it lacks: a 400 naming the field), streamed
    alike; Canary's translation into English from the form's language, and SeamlessM4T's from any (it reads none), at
    /v1/audio/translations; Cohere ASR does not translate."""
    import json

    from QEfficient.serving.transcriber_app import open_transcriber_app
    from tests.helpers import serve_on_loopback
    from tests.test_server_ctc import transcribe, wav

    audio = clip()
    for name, route, language, task, other in (  # other: a prompt whose text differs (the request's must reach the model)
        ("cohere_asr", "/v1/audio/transcriptions", "de", None, ("en", None)),
        ("canary", "/v1/audio/translations", "de", "translate", ("de", None)),
        ("seamless_m4t", "/v1/audio/translations", "de", "translate", ("deu", None)),
    ):
        folder, hf, processor = prompted(name)
        expected, otherwise = (
            processor.tokenizer.decode(
                reference_tokens(name, hf, processor, audio.astype(np.float32), *prompt, None)[0],  # the checkpoint's length
                skip_special_tokens=True,
            )
            for prompt in ((language, task), other)
        )
        assert expected != otherwise
        app, runner = open_transcriber_app(str(folder), 1, False, None, None)
        try:
            with serve_on_loopback(app, log_level="critical") as url:
                answer = transcribe(url, wav(audio), route, language=language)
                assert answer.status_code == 200, answer.text
                text = answer.json()["text"]
                assert text == expected and text.strip()
                streamed = transcribe(url, wav(audio), route, language=language, stream="true", stream_include_usage="true")
                events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
                assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]) == text
                assert {e["object"] for e in events} == {"translation.chunk" if task else "transcription.chunk"}  # vLLM's
                if name == "seamless_m4t":  # the prompt tokens: the encoder frames transformers' cross-attention reads
                    assert events[-1]["usage"]["prompt_tokens"] == seamless_frames_read(hf, processor, audio)
                missing, wrong = (transcribe(url, wav(audio), route, **form) for form in ({}, {"language": "xx"}))
                if name == "seamless_m4t":  # the audio's language is not asked
                    assert missing.json() == wrong.json() == answer.json()
                else:
                    assert missing.status_code == 400 and missing.json()["error"]["param"] == "language", missing.text
                    assert "does not detect the language" in missing.json()["error"]["message"]
                    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "language", wrong.text
                    assert "'xx' is not one of this" in wrong.json()["error"]["message"]
                if name == "cohere_asr":
                    refused = transcribe(url, wav(audio), "/v1/audio/translations", language="de")
                    assert refused.status_code == 400 and "does not translate" in refused.json()["error"]["message"], refused.text
        finally:
            runner.stop()
