"""QEFFAutoModelForTDT and QEFFAutoModelForRNNT: Parakeet TDT and RNN-T as tiny random models (weights widened, the joint
network's blank raised, so that the tokens and durations vary with the audio) saved with a processor; three clips of
the test recording of different lengths give transformers' generate's sequences and durations exactly, batched past the
compiled encoder batch (TDT runs to transformers' max_length, RNN-T until every clip has walked past its audio; each
also from PyTorch and with max_new_tokens), and the processor decodes them alike; ``generate(processor, audio)`` gives
the texts, as QEFFAutoModelForCTC's does, ``serve`` on a TDT folder answers /v1/audio/transcriptions with
transformers' text on loopback, and with its processor's times, and ``infer --audio_path`` on the RNN-T folder returns
it. The generation config's eos token (finished rows then padded) and length limit are read as transformers reads them,
inputs without a mask and
``generate(**inputs)`` too; options the greedy loop does not apply and other model types are refused saying why.
Nemotron ASR's transducers (streaming, 3.5 with its language prompts) give transformers' offline sequences too."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForRNNT,
    ParakeetFeatureExtractor,
    ParakeetForRNNT,
    ParakeetForTDT,
    ParakeetProcessor,
    ParakeetRNNTConfig,
    ParakeetTDTConfig,
    ParakeetTokenizer,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_RNNT_MAPPING_NAMES, MODEL_FOR_TDT_MAPPING_NAMES

from QEfficient import QEFFAutoModelForRNNT, QEFFAutoModelForTDT
from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.serving.transcriber_app import sentence_segments, timed_words
from QEfficient.transform.transducer import TRANSDUCERS, check_transducer_type
from tests.helpers import serve_on_loopback
from tests.test_ctranslate2_whisper import DATA, read_wav
from tests.test_server_ctc import transcribe, wav

VOCAB = ["<pad>", "<unk>", *"etaonisrhdlucmfw", "'", "<blank>"]  # 20 tokens, the blank last
ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, subsampling_conv_channels=16)
# (transformers class, config class, QEfficient class, seed): seeds whose tiny model emits several tokens
KINDS = {
    "tdt": (ParakeetForTDT, ParakeetTDTConfig, QEFFAutoModelForTDT, 0),
    "rnnt": (ParakeetForRNNT, ParakeetRNNTConfig, QEFFAutoModelForRNNT, 4),
}


def _build(folder, kind: str, letters: bool = False):
    hf_class, config_class, _, seed = KINDS[kind]
    config = config_class(
        vocab_size=len(VOCAB), blank_token_id=len(VOCAB) - 1, pad_token_id=0, encoder_config=ENCODER, decoder_hidden_size=24
    )
    hf = _widened(hf_class, config, seed, 2.0 if kind == "tdt" else 0.75)
    if letters:  # <pad> and <unk> (decoded as nothing) lowered, and TDT's duration 0: timed letters
        with torch.no_grad():
            hf.joint.head.bias[:2] -= 8.0
            if kind == "tdt":
                hf.joint.head.bias[len(VOCAB)] -= 4.0
    hf.save_pretrained(folder)
    ParakeetProcessor(ParakeetFeatureExtractor(), _tokenizer()).save_pretrained(folder)
    return ParakeetProcessor.from_pretrained(folder)


def _widened(hf_class, config, seed: int, blank_bias: float):
    """A tiny random transducer whose tokens vary with the audio: weights widened, the joint network's blank raised by
    ``blank_bias``; transformers' generate starts from the blank."""
    torch.manual_seed(seed)
    hf = hf_class(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() > 1:
                p.mul_(4.0)
        hf.joint.head.weight.mul_(4.0)
        hf.joint.head.bias.zero_()
        hf.joint.head.bias[config.blank_token_id] += blank_bias
    hf.generation_config.decoder_start_token_id = config.blank_token_id
    return hf


def _tokenizer() -> ParakeetTokenizer:
    vocab = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<unk>"))
    return ParakeetTokenizer(tokenizer_object=vocab, pad_token="<pad>", unk_token="<unk>")


@pytest.fixture(scope="module", params=list(KINDS))
def transducer(request, tmp_path_factory):
    kind = request.param
    folder = tmp_path_factory.mktemp(f"parakeet-{kind}")
    processor = _build(folder, kind)
    hf_class, _, qeff_class, _ = KINDS[kind]
    model = qeff_class.from_pretrained(folder)
    model.compile(batch_size=2, num_cores=1)  # three clips: a full batch, then a short one
    model.folder = folder
    return kind, hf_class.from_pretrained(folder).eval(), model, processor  # transformers' own, untouched


def _clips() -> list[np.ndarray]:
    speech = read_wav(DATA / "speech16k.wav")
    return [speech[:16000], speech[20000:44000], speech[50000:58000]]  # 1.0, 1.5 and 0.5 s


def test_sequences_and_durations_equal_transformers(transducer):
    kind, hf, model, processor = transducer
    inputs = processor(_clips(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        expected = hf.generate(**inputs)
    got = model.generate(inputs)
    np.testing.assert_array_equal(got.sequences.numpy(), expected.sequences.numpy())
    np.testing.assert_array_equal(got.durations.numpy(), expected.durations.numpy())
    tokens = expected.sequences[:, 1:]
    assert len(set(tokens.unique().tolist()) - {hf.config.blank_token_id}) >= 2  # the audio decides, not a constant
    max_length = hf.config.max_symbols_per_step * hf.encoder._get_subsampling_output_length(
        torch.tensor([inputs["input_features"].shape[1]])
    )
    assert (expected.sequences.shape[1] == int(max_length)) == (kind == "tdt")  # TDT stops at max_length, RNN-T before
    assert processor.batch_decode(got.sequences, skip_special_tokens=True) == processor.batch_decode(
        expected.sequences, skip_special_tokens=True
    )
    torch.testing.assert_close(model.generate(inputs, runtime_ai100=False).sequences, expected.sequences, rtol=0, atol=0)
    with torch.no_grad():
        capped = hf.generate(**inputs, max_new_tokens=7)
    np.testing.assert_array_equal(model.generate(inputs, max_new_tokens=7).sequences.numpy(), capped.sequences.numpy())


def test_generation_config_eos_and_length_as_transformers(transducer):
    _, hf, model, processor = transducer
    inputs = processor(_clips(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        plain = hf.generate(**inputs).sequences
    emitted = plain[:, 1:][plain[:, 1:] != hf.config.blank_token_id]
    common = int(torch.mode(emitted).values)  # as eos: rows finish at different steps
    settings = [{"eos_token_id": common}, {"max_new_tokens": 5}, {"max_length": 9}]
    for setting in settings:
        for config in (hf.generation_config, model.hf_model.generation_config):
            for name, value in setting.items():
                setattr(config, name, value)
        try:
            with torch.no_grad():
                expected = hf.generate(**inputs)
            got = model.generate(**inputs)  # transformers' calling convention
        finally:
            for config in (hf.generation_config, model.hf_model.generation_config):
                for name in setting:
                    setattr(config, name, None)
        np.testing.assert_array_equal(got.sequences.numpy(), expected.sequences.numpy(), err_msg=str(setting))
        np.testing.assert_array_equal(got.durations.numpy(), expected.durations.numpy(), err_msg=str(setting))
    unmasked = {"input_features": inputs["input_features"][:1]}  # one clip, no attention_mask: every frame holds audio
    with torch.no_grad():
        expected = hf.generate(**unmasked)
    np.testing.assert_array_equal(model.generate(unmasked).sequences.numpy(), expected.sequences.numpy())
    with torch.no_grad():
        sequences = hf.generate(**inputs).sequences
    assert model.generate(processor, _clips()) == processor.batch_decode(sequences, skip_special_tokens=True)


def test_other_transducers_and_bad_inputs_are_refused(transducer):
    _, _, model, _ = transducer
    assert set(MODEL_FOR_RNNT_MAPPING_NAMES) | set(MODEL_FOR_TDT_MAPPING_NAMES) == TRANSDUCERS
    with pytest.raises(NotImplementedError, match="'parakeet_ctc' is not supported: the transducers run here are nemotron3_5_asr"):
        check_transducer_type("parakeet_ctc")
    with pytest.raises(ValueError, match="processor's output"):
        model.generate({"input_values": torch.zeros(1, 16000)})
    with pytest.raises(ValueError, match=r"input_features must be \[clips, frames, 80\]"):
        model.generate({"input_features": torch.zeros(1, 40, 64)})
    with pytest.raises(ValueError, match="one per frame"):
        model.generate({"input_features": torch.zeros(1, 40, 80), "attention_mask": torch.ones(1, 30)})
    model.hf_model.generation_config.suppress_tokens = [3]
    try:
        with pytest.raises(NotImplementedError, match="sets suppress_tokens"):
            model.generate({"input_features": torch.zeros(1, 40, 80)})
    finally:
        model.hf_model.generation_config.suppress_tokens = None
    with pytest.raises(NotImplementedError, match="decoder_input_ids"):
        model.generate({"input_features": torch.zeros(1, 40, 80), "decoder_input_ids": torch.zeros(1, 1, dtype=torch.long)})


def test_texts_from_audio_and_over_http(transducer):
    kind, hf, model, processor = transducer
    clip = np.round(_clips()[1] * 32767) / 32767  # what 16 bits hold
    with torch.no_grad():
        expected = processor.batch_decode(
            hf.generate(**processor(clip, sampling_rate=16000, return_tensors="pt")).sequences, skip_special_tokens=True
        )
    assert model.generate(processor, clip) == expected and expected[0].strip()
    assert model.generate(processor, clip.tolist()) == expected  # one audio as numbers, as a CTC model takes it
    with pytest.raises(ValueError, match="No audio given"):
        model.generate(processor, [])
    if kind != "rnnt":  # the command line for RNN-T; a TDT model is served (next test)
        return
    from QEfficient.cloud import infer

    audio = read_wav(DATA / "speech16k.wav")
    with torch.no_grad():
        sequences = hf.generate(**processor(audio, sampling_rate=16000, return_tensors="pt")).sequences
    texts = infer.main(model_name=str(model.folder), audio_path=str(DATA / "speech16k.wav"), num_cores=1)
    assert texts == processor.batch_decode(sequences, skip_special_tokens=True)
    with pytest.raises(ValueError, match="is a transducer, which prints its transcript without --language: leave them out"):
        infer.main(model_name=str(model.folder), audio_path=str(DATA / "speech16k.wav"), num_cores=1, language="en")


def test_a_tdt_model_is_served_with_times(tmp_path):
    """``serve`` on a TDT folder answers /v1/audio/transcriptions with transformers' text, also for audio past a CTC
    model's 30 s, and with the times transformers' processor decodes from its durations (verbose_json's words and
    segments, srt, vtt); the model's letters are timed by the audio (its <pad>, <unk> and zero durations lowered). How
    pieces group into words and sentences: the next test."""
    processor = _build(tmp_path, "tdt", letters=True)
    hf = ParakeetForTDT.from_pretrained(tmp_path).eval()
    clip = np.round(_clips()[1] * 32767) / 32767  # what 16 bits hold
    long_clip = np.round(np.tile(read_wav(DATA / "speech16k.wav"), 4)[: 31 * 16000] * 32767) / 32767
    with torch.no_grad():
        timed = hf.generate(**processor(clip, sampling_rate=16000, return_tensors="pt"))
        long_text = processor.batch_decode(
            hf.generate(**processor(long_clip, sampling_rate=16000, return_tensors="pt")).sequences, skip_special_tokens=True
        )[0]
    text, pieces = processor.decode(timed.sequences, durations=timed.durations, skip_special_tokens=True)
    words = timed_words(pieces[0])
    assert len(words) >= 2 and len({w["start"] for w in words}) >= 2  # timed by the durations, not all at 0
    app, runner = build_from_args(parse_args(["--model_name", str(tmp_path), "--num_cores", "1"]))
    with serve_on_loopback(app, log_level="critical") as url:
        answer = transcribe(url, wav(clip))
        verbose = transcribe(url, wav(clip), response_format="verbose_json", **{"timestamp_granularities[]": ["word", "segment"]})
        only_words = transcribe(url, wav(clip), response_format="verbose_json", **{"timestamp_granularities[]": "word"})
        subtitles = transcribe(url, wav(clip), response_format="srt")
        cues = transcribe(url, wav(clip), response_format="vtt")
        segments_only = transcribe(url, wav(clip), response_format="verbose_json")
        long_answer = transcribe(url, wav(long_clip))
        too_long = transcribe(url, wav(np.zeros(301 * 16000, np.float32)))
        bad = transcribe(url, wav(clip), response_format="json", **{"timestamp_granularities[]": "word"})
        streamed = transcribe(url, wav(clip), stream="true", stream_include_usage="true")  # the text at once
    runner.stop()
    events = [json.loads(line[len("data: ") :]) for line in streamed.text.splitlines() if line.startswith("data: {")]
    assert [e["choices"][0]["delta"]["content"] for e in events if e["choices"]] == [text[0]]
    assert events[-1]["usage"]["completion_tokens"] == len(pieces[0]) and events[-1]["usage"]["prompt_tokens"] > 0
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"text": text[0]} == {"text": processor.batch_decode(timed.sequences, skip_special_tokens=True)[0]}
    assert verbose.status_code == 200, verbose.text
    segment = {"id": 0, "seek": 0, "start": words[0]["start"], "end": words[-1]["end"], "text": " " + " ".join(w["word"] for w in words)}
    assert verbose.json() == {
        "task": "transcribe",
        "duration": len(clip) / 16000,
        "text": text[0],
        "segments": [segment | {"temperature": 0.0}],
        "words": words,
    }
    assert only_words.json() == {"task": "transcribe", "duration": len(clip) / 16000, "text": text[0], "words": words}
    assert segments_only.json() == {k: v for k, v in verbose.json().items() if k != "words"}  # segments, the default
    timing = f"{words[0]['start']:06.3f} --> 00:00:{words[-1]['end']:06.3f}"
    assert subtitles.text == f"1\n00:00:{timing.replace('.', ',')}\n{segment['text'].strip()}\n"
    assert cues.text == f"WEBVTT\n\n00:00:{timing}\n{segment['text'].strip()}\n"
    assert long_answer.status_code == 200 and long_answer.json() == {"text": long_text}
    assert too_long.status_code == 400 and "up to 300 s" in too_long.json()["error"]["message"]
    assert bad.status_code == 400 and "verbose_json" in bad.json()["error"]["message"]


def test_words_and_sentences_from_timed_pieces():
    """A SentencePiece-style vocabulary (Metaspace: a word's first piece carries the boundary, a lone boundary piece
    stands between a word and digits) timed by transformers' ParakeetProcessor.decode: a piece after a space starts a
    word, word pieces and punctuation end it, punctuation before the first word opens it; a sentence's last word closes
    its segment."""
    vocab = ["<pad>", "<unk>", "▁hello", "▁", "2", ".", "▁bye", ",", "▁wor", "ld", "?", "<blank>"]
    metaspace = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="<unk>"))
    metaspace.pre_tokenizer, metaspace.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tokenizer = ParakeetTokenizer(tokenizer_object=metaspace, pad_token="<pad>", unk_token="<unk>")
    processor = ParakeetProcessor(ParakeetFeatureExtractor(), tokenizer)

    def timed(pieces: list[str], durations: list[int]) -> list[dict]:
        ids = torch.tensor([[vocab.index("<blank>")] + [vocab.index(p) for p in pieces]])
        return processor.decode(ids, durations=torch.tensor([[0, *durations]]), skip_special_tokens=True)[1][0]

    pieces = timed(["▁hello", "▁", "2", ".", "▁wor", "ld", ",", "▁bye", "?"], [2, 1, 1, 0, 3, 2, 0, 4, 1])
    assert any(p["token"] == " " for p in pieces)  # the lone boundary, as transformers decodes it
    words = timed_words(pieces)
    frame = 0.08  # 10 ms hops, 8x subsampled
    assert [w["word"] for w in words] == ["hello", "2.", "world,", "bye?"]
    assert [(round(w["start"] / frame), round(w["end"] / frame)) for w in words] == [(0, 2), (3, 4), (4, 9), (9, 13)]
    segments = sentence_segments(words)
    assert [(s["id"], s["text"], s["start"], s["end"]) for s in segments] == [
        (0, " hello 2.", words[0]["start"], words[1]["end"]),
        (1, " world, bye?", words[2]["start"], words[3]["end"]),
    ]
    assert [w["word"] for w in timed_words(timed([",", "▁hello"], [1, 2]))] == [",hello"]
    assert [w["word"] for w in timed_words(timed(["."], [1]))] == ["."]
    assert timed_words([]) == [] and sentence_segments([]) == []
    unpunctuated = [{"word": f"w{i}", "start": 4.0 * i, "end": 4.0 * i + 3} for i in range(20)]  # segments of at most 30 s
    assert [(s["start"], s["end"]) for s in sentence_segments(unpunctuated)] == [(0.0, 27.0), (28.0, 55.0), (56.0, 79.0)]


@pytest.mark.parametrize("model_type", ["nemotron_asr_streaming", "nemotron3_5_asr"])
def test_nemotron_whole_clips_equal_transformers(model_type, tmp_path):
    """Nemotron ASR's RNN-T transducers over whole clips (transformers' offline generate): the cache-aware encoder's
    chunked, limited-context attention (chunks of 3 frames, one chunk of left context) and causal convolutions, through
    their real processors; three clips of different lengths, batched past the compiled batch, give transformers'
    sequences, and ``generate(processor, audio)`` transformers' texts; Nemotron 3.5 with a language prompt per clip (the
    prompt decides, too); another lookahead than the graph's and bad prompts are refused, saying what to do."""
    from transformers import AutoProcessor, Nemotron3_5AsrProcessor, NemotronAsrStreamingFeatureExtractor, NemotronAsrStreamingProcessor

    prompted = model_type == "nemotron3_5_asr"
    encoder = dict(ENCODER, sliding_window=6, default_num_lookahead_tokens=2, conv_kernel_size=5)
    options = dict(num_prompts=4, default_prompt_id=3, prompt_intermediate_size=16) if prompted else {}
    config = AutoConfig.for_model(
        model_type, vocab_size=len(VOCAB), blank_token_id=len(VOCAB) - 1, pad_token_id=0, decoder_hidden_size=24,
        encoder_config=encoder, **options,
    )  # fmt: skip
    seed, blank_bias = (7, 0.3) if prompted else (4, 0.75)  # a tiny model that emits several tokens, not blanks only
    _widened(AutoModelForRNNT.from_config, config, seed, blank_bias).save_pretrained(tmp_path)
    tokenizer = _tokenizer()
    extractor, lookaheads = NemotronAsrStreamingFeatureExtractor(), [2, 0]
    if prompted:
        languages = {"en-US": 0, "de-DE": 1, "auto": 3}
        Nemotron3_5AsrProcessor(
            extractor, tokenizer, supported_num_lookahead_tokens=lookaheads, prompt_dictionary=languages, num_prompts=4
        ).save_pretrained(tmp_path)
    else:
        NemotronAsrStreamingProcessor(extractor, tokenizer, supported_num_lookahead_tokens=lookaheads).save_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    language = {"language": ["en-US", "de-DE", "auto"]} if prompted else {}
    inputs = processor(_clips(), sampling_rate=16000, **language)
    assert inputs["num_lookahead_tokens"] == 2
    reference = AutoModelForRNNT.from_pretrained(tmp_path).eval()  # transformers' own, untouched
    with torch.no_grad():
        expected = reference.generate(**inputs).sequences
    assert len(set(expected[:, 1:].unique().tolist()) - {config.blank_token_id}) >= 2  # the audio decides, not a constant
    model = QEFFAutoModelForRNNT.from_pretrained(tmp_path)
    model.compile(batch_size=2, num_cores=1)
    np.testing.assert_array_equal(model.generate(inputs).sequences.numpy(), expected.numpy())
    with torch.no_grad():  # the texts of generate(processor, audio), which serve and infer run (the default language)
        texts = processor.batch_decode(reference.generate(**processor(_clips(), sampling_rate=16000)).sequences, skip_special_tokens=True)
    assert model.generate(processor, _clips()) == texts
    if prompted:
        german = processor(_clips(), sampling_rate=16000, language="de-DE")
        with torch.no_grad():
            expected_german = reference.generate(**german).sequences
        assert not torch.equal(expected_german[:1], expected[:1])  # the language decides, too
        np.testing.assert_array_equal(model.generate(german).sequences.numpy(), expected_german.numpy())
        with pytest.raises(ValueError, match=r"prompt_ids must be one prompt index per clip \(3\), each below 4"):
            model.generate({**inputs, "prompt_ids": torch.tensor([0, 1, 4])})
        _served_in_a_language(tmp_path, processor, reference)
    processor.set_num_lookahead_tokens(0)
    no_lookahead = processor(_clips(), sampling_rate=16000, **language)
    with pytest.raises(NotImplementedError, match=r"num_lookahead_tokens=0: this model's encoder graph attends 2 frames ahead"):
        model.generate(no_lookahead)
    if not prompted:  # what the refusal says to do: the model loaded for that lookahead, its own graph
        overrides = {"encoder_config": {"default_num_lookahead_tokens": 0}}
        model = QEFFAutoModelForRNNT.from_pretrained(tmp_path, hf_overrides=overrides)
        model.compile(batch_size=2, num_cores=1)
        with torch.no_grad():
            blind = reference.generate(**no_lookahead).sequences
        assert not torch.equal(blind, expected)  # the lookahead changes the tokens: a stale graph would show
        np.testing.assert_array_equal(model.generate(no_lookahead).sequences.numpy(), blind.numpy())


def _served_in_a_language(folder, processor, reference) -> None:
    """``serve`` on a Nemotron 3.5 ASR folder takes the transcription form's ``language`` (its processor's prompt):
    its texts, plain and timed, equal transformers' in that language; a language it has no prompt for is refused, and
    so, at start, is a graph whose lookahead is not the processor's."""
    clip = np.round(_clips()[1] * 32767) / 32767  # what 16 bits hold
    with torch.no_grad():
        german, auto = (
            processor.batch_decode(
                reference.generate(**processor(clip, sampling_rate=16000, language=lang)).sequences, skip_special_tokens=True
            )[0]
            for lang in ("de-DE", "auto")
        )
    assert german != auto  # the form's language reaches the model
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            answer = transcribe(url, wav(clip), language="de-DE")
            assert answer.status_code == 200 and answer.json() == {"text": german}, answer.text
            timed = transcribe(url, wav(clip), language="de-DE", response_format="verbose_json")
            assert timed.status_code == 200 and timed.json()["text"] == german, timed.text
            refused = transcribe(url, wav(clip), language="xx")
            assert refused.status_code == 400 and "language must be one of this model's: auto, de-DE, en-US" in refused.text
    finally:
        runner.stop()
    from QEfficient.cloud import infer

    path = folder / "clip.wav"  # infer --audio_path --language: the same prompt
    path.write_bytes(wav(clip))
    assert infer.main(model_name=str(folder), audio_path=str(path), language="de-DE", num_cores=1) == [german]
    with pytest.raises(ValueError, match="--language must be one of this model's: auto, de-DE, en-US; got 'xx'"):
        infer.main(model_name=str(folder), audio_path=str(path), language="xx", num_cores=1)
    with pytest.raises(ValueError, match="is a transducer, which prints its transcript without --task"):
        infer.main(model_name=str(folder), audio_path=str(path), language="de-DE", task="translate", num_cores=1)
    overrides = '{"encoder_config": {"default_num_lookahead_tokens": 0}}'  # the processor's lookahead is 2: refused at start
    with pytest.raises(NotImplementedError, match=r"num_lookahead_tokens=2: this model's encoder graph attends 0 frames ahead"):
        build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1", "--hf_overrides", overrides]))
