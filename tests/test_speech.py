"""QEFFAutoModelForSpeechSeq2Seq (Whisper): greedy tokens equal transformers' Whisper generate.

Tiny random Whisper models (written as CTranslate2 folders and converted, so they carry Whisper's
full generation config: languages, tasks, suppressed and timestamp tokens) carry the parity tests;
the real Whisper base / tiny.en (scripts/fetch_whisper.sh) carry the end-to-end ones."""

from __future__ import annotations

import contextlib
import difflib
import wave

import httpx
import numpy as np
import onnx
import pytest
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from QEfficient import QEFFAutoModelForSpeechSeq2Seq
from QEfficient.compile.ort_cpu import ARTIFACT_GRAPH
from QEfficient.loading.ctranslate2_whisper import convert_ctranslate2_whisper
from tests.loopback import loopback_http
from tests.test_ctranslate2_whisper import DATA, _ct2_folder, _real_whisper, _tiny_whisper, read_wav


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """(folder, HF model, compiled QEFF model with batch_size=2) per kind."""
    made = {}

    def make(multilingual: bool):
        if multilingual not in made:
            tmp = tmp_path_factory.mktemp("whisper")
            folder = convert_ctranslate2_whisper(_ct2_folder(tmp, _tiny_whisper(multilingual), multilingual), tmp / "hf")
            hf = WhisperForConditionalGeneration.from_pretrained(folder).eval()
            model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
            model.compile(ctx_len=40, batch_size=2, num_cores=1)
            made[multilingual] = folder, hf, model
        return made[multilingual]

    return make


def _features(n: int, frames: int = 3000) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.stack([torch.randn(80, frames, generator=g) * (0.5 + i) for i in range(n)])


def _hf(hf, features, **kwargs) -> np.ndarray:
    with torch.no_grad():
        return hf.generate(features, **kwargs).numpy()


MULTILINGUAL_CASES = [
    dict(language="en"),
    dict(language="german", return_timestamps=True),
    dict(),  # language detected from the first step
    dict(return_timestamps=True),
    dict(language=["en", "fr", "<|de|>"], task="translate"),
]


@pytest.mark.parametrize("kwargs", MULTILINGUAL_CASES, ids=["en", "de-timestamps", "detect", "detect-timestamps", "per-row-translate"])
def test_multilingual_greedy_equals_transformers(tiny_whisper, kwargs):
    _, hf, model = tiny_whisper(True)
    features = _features(3)  # 3 audios on batch_size=2: a full batch and a padded one
    info = model.generate({"input_features": features}, generation_len=20, **kwargs)
    ours = np.concatenate(info.generated_ids)
    expected = _hf(hf, features, max_new_tokens=20, **kwargs)
    assert ours.shape == expected.shape and (ours == expected).all()
    assert len(info.texts) == 3


@pytest.mark.parametrize("timestamps", [False, True])
def test_english_only_greedy_equals_transformers(tiny_whisper, timestamps):
    _, hf, model = tiny_whisper(False)
    features = _features(2)
    ours = np.concatenate(model.generate({"input_features": features}, generation_len=16, return_timestamps=timestamps).generated_ids)
    expected = _hf(hf, features, max_new_tokens=16, return_timestamps=timestamps)
    assert ours.tolist() == expected.tolist()
    if not timestamps:
        with pytest.raises(ValueError, match="English-only and takes no task"):
            model.generate({"input_features": features}, generation_len=4, task="translate")


BEAM_CASES = [
    dict(num_beams=3, language="en"),
    dict(num_beams=2, return_timestamps=True),  # language detected, then beams
    dict(num_beams=3, language=["en", "fr", "<|de|>"], task="translate", length_penalty=0.5),
]


@pytest.mark.parametrize("kwargs", BEAM_CASES, ids=["en", "detect-timestamps", "per-row-translate"])
def test_beam_search_equals_transformers(tiny_whisper, kwargs):
    """transformers' Whisper generate(num_beams=...): the same best hypothesis per audio (3 audios on batch_size=2)."""
    _, hf, model = tiny_whisper(True)
    features = _features(3)
    ours = np.concatenate(model.generate({"input_features": features}, generation_len=20, **kwargs).generated_ids)
    expected = _hf(hf, features, max_new_tokens=20, **kwargs)
    assert ours.tolist() == expected.tolist()


def test_beam_search_reads_long_audio_window_after_window(tiny_whisper):
    _, hf, model = tiny_whisper(True)
    features = _features(1, frames=4800)
    kwargs = dict(language="en", return_timestamps=True, num_beams=2)
    ours = model.generate({"input_features": features}, generation_len=20, **kwargs).generated_ids[0]
    assert ours.tolist() == _hf(hf, features, max_new_tokens=20, **kwargs).tolist()


def test_audio_longer_than_30_s_is_read_window_after_window(tiny_whisper):
    _, hf, model = tiny_whisper(True)
    features = _features(1, frames=4800)  # 48 s
    ours = model.generate({"input_features": features}, generation_len=20, language="en", return_timestamps=True).generated_ids[0]
    expected = _hf(hf, features, max_new_tokens=20, language="en", return_timestamps=True)
    assert ours.tolist() == expected.tolist()


def test_long_audios_of_different_lengths_in_one_batch(tiny_whisper):
    folder, hf, model = tiny_whisper(True)
    speech = read_wav(DATA / "speech16k.wav")
    audios = [np.tile(speech, 5)[: 16000 * 35], np.tile(speech, 8)[: 16000 * 61]]
    processor = WhisperProcessor.from_pretrained(folder)
    inputs = processor(audios, sampling_rate=16000, return_tensors="pt", truncation=False, padding="longest", return_attention_mask=True)
    kwargs = dict(language="en", return_timestamps=True)
    ours = model.generate(inputs, generation_len=20, **kwargs).generated_ids[0]
    expected = _hf(hf, inputs.input_features, attention_mask=inputs.attention_mask, max_new_tokens=20, **kwargs)
    assert ours.tolist() == expected.tolist()


def test_bad_inputs_say_what_to_do(tiny_whisper):
    folder, hf, model = tiny_whisper(True)
    from QEfficient import QEFFCommonLoader

    assert QEFFCommonLoader.model_class(folder) is QEFFAutoModelForSpeechSeq2Seq
    with pytest.raises(ValueError, match=r"input_features must be \[batch, 80, frames >= 3000\]"):
        model.generate({"input_features": torch.zeros(1, 80, 100)}, generation_len=4)
    with pytest.raises(ValueError, match="Unsupported language 'klingon'"):
        model.generate({"input_features": _features(1)}, generation_len=4, language="klingon")
    with pytest.raises(ValueError, match="needs ctx_len >= 43"):
        model.generate({"input_features": _features(1)}, generation_len=40, language="en")
    with pytest.raises(ValueError, match="max_target_positions"):
        QEFFAutoModelForSpeechSeq2Seq(hf).compile(ctx_len=65)
    with pytest.raises(TypeError, match="compile"):
        QEFFAutoModelForSpeechSeq2Seq(hf).generate({"input_features": _features(1)})
    processor = WhisperProcessor.from_pretrained(folder)
    for audio in (np.zeros((16000, 2), np.float32), np.zeros(0, np.float32)):  # stereo, empty
        with pytest.raises(ValueError, match="one mono 16 kHz recording"):
            model.transcribe(audio, processor)
    with pytest.raises(ValueError, match="takes the model's processor"):
        model.transcribe(np.zeros(16000, np.float32), None)
    with pytest.raises(ValueError, match="16000"):  # the feature extractor's own check: 8 kHz audio is not read as 16 kHz
        model.transcribe(np.zeros(8000, np.float32), processor, sampling_rate=8000)
    for bad in (None, "hello", [np.zeros(16000)], {"input_values": _features(1)}):
        with pytest.raises(ValueError, match="Pass the processor's output for the audio"):
            model.generate(bad, generation_len=4)
    with pytest.raises(ValueError, match="language must be a language code"):
        model.generate({"input_features": _features(1)}, generation_len=4, language=5)
    with pytest.raises(ValueError, match="on_segments must be a function"):
        model.generate({"input_features": _features(1)}, generation_len=4, on_segments=5)
    with pytest.raises(ValueError, match=r"attention_mask must be \[batch, frames\] as input_features are \(\[2, 3000\]\)"):
        model.generate({"input_features": _features(2), "attention_mask": np.ones((1, 3000))}, generation_len=4, language="en")
    with pytest.raises(ValueError, match="length_penalty must be a number"):
        model.generate({"input_features": _features(1)}, generation_len=4, num_beams=2, length_penalty="x")
    # NaN features are refused: they would also reach the cache rows the next call reads past its own length
    clean = model.generate({"input_features": _features(1)}, generation_len=4, language="en").generated_ids
    with pytest.raises(ValueError, match="hold NaN or infinity"):
        model.generate({"input_features": torch.full((1, 80, 3000), float("nan"))}, generation_len=4, language="en")
    again = model.generate({"input_features": _features(1)}, generation_len=4, language="en").generated_ids
    assert np.array_equal(np.asarray(clean), np.asarray(again))


@pytest.mark.parametrize("name", ["whisper-base", "whisper-tiny.en"])
def test_real_whisper_text_equals_transformers(name):
    folder = _real_whisper(name)
    processor = WhisperProcessor.from_pretrained(folder)
    inputs = processor(read_wav(DATA / "speech16k.wav"), sampling_rate=16000, return_tensors="pt")
    hf = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    model = QEFFAutoModelForSpeechSeq2Seq.from_pretrained(folder)
    model.compile(ctx_len=100)
    kwargs = dict(language="en") if name == "whisper-base" else {}
    with torch.no_grad():  # transformers' encoder once for its three generate() calls on this audio, as each would run it
        encoded = hf.get_encoder()(inputs.input_features)
    texts, ids = {}, {}
    # tiny.en with segment timestamps: tests/test_whisper_timestamps.py (the same greedy tokens, and their times); beams: base's
    for timestamps in (False, True) if name == "whisper-base" else (False,):
        info = model.generate(inputs=inputs, generation_len=60, processor=processor, return_timestamps=timestamps, **kwargs)
        expected = _hf(hf, None, encoder_outputs=encoded, max_new_tokens=60, return_timestamps=timestamps, **kwargs)
        assert info.generated_ids[0].tolist() == expected.tolist()
        assert info.texts == processor.batch_decode(expected, skip_special_tokens=True)
        texts[timestamps], ids[timestamps] = info.texts[0], info.generated_ids[0][0].tolist()
    if name == "whisper-base":  # what the data README says transformers' Whisper base reads
        beams = model.generate(inputs=inputs, generation_len=60, processor=processor, num_beams=5, **kwargs)  # faster-whisper's default
        assert beams.generated_ids[0].tolist() == _hf(hf, None, encoder_outputs=encoded, max_new_tokens=60, num_beams=5, **kwargs).tolist()
        assert texts[False] == " The Low World. The quick brown fox jump over the lazy dog. This is a test on speech recognition."
        # mxfp6_matmul: 8-bit decoder MatMuls, float32 encoder (8-bit encoder weights changed a phrase)
        paths = model.compile(ctx_len=100, mxfp6_matmul=True)
        ops = {role: {n.op_type for n in onnx.load(p / ARTIFACT_GRAPH, load_external_data=False).graph.node} for role, p in paths.items()}
        assert "MatMulNBits" in ops["decoder_qpc_path"] and "MatMulNBits" not in ops["encoder_qpc_path"]
        eight_bit = model.generate(inputs=inputs, generation_len=60, processor=processor, **kwargs)
        _assert_differs_only_at_a_near_tie(hf, processor, inputs.input_features, ids[False], eight_bit.generated_ids[0][0].tolist())
        assert difflib.SequenceMatcher(None, eight_bit.texts[0], texts[False]).ratio() > 0.85, eight_bit.texts


def _assert_differs_only_at_a_near_tie(hf, processor, features, reference: list[int], tokens: list[int]) -> None:
    """8-bit weights change the numbers, so eventually a token, as any quantization does; where they do
    first, float32 transformers must itself have been torn between the two tokens (log-probabilities
    within 0.25). The speech sample has such a step: after "fox jump", " over" -1.24 against "," -1.32,
    and which one an 8-bit run takes depends on the CPU's int8 kernel (VNNI or AVX2)."""
    first = next((i for i, (a, b) in enumerate(zip(reference, tokens)) if a != b), None)
    if first is None:
        assert tokens == reference
        return
    assert first >= 5, (first, tokens)
    prompt = processor.tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"])
    with torch.no_grad():
        logits = hf(input_features=features, decoder_input_ids=torch.tensor([prompt + reference[:first]])).logits[0, -1]
    log_probs = torch.log_softmax(logits, -1)
    assert log_probs[reference[first]] - log_probs[tokens[first]] < 0.25, processor.decode(reference[: first + 1])


def test_infer_audio_path_transcribes_like_transformers(tiny_whisper, tmp_path, capsys):
    from QEfficient.cloud import infer

    folder, hf, _ = tiny_whisper(True)
    with pytest.warns(UserWarning, match="is a speech model: the image arguments are skipped"):
        info = infer.main(
            model_name=str(folder), audio_path=str(DATA / "speech16k.wav"), image_path="x.png", ctx_len=40, generation_len=10, language="en"
        )
    features = WhisperProcessor.from_pretrained(folder)(read_wav(DATA / "speech16k.wav"), sampling_rate=16000, return_tensors="pt")
    assert info.generated_ids[0].tolist() == _hf(hf, features.input_features, max_new_tokens=10, language="en").tolist()
    assert f"Transcription : {info.texts[0]}" in capsys.readouterr().out

    slow = tmp_path / "8k.wav"
    with wave.open(str(slow), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(np.zeros(800, "<i2").tobytes())
    with pytest.raises(ValueError, match="sampled at 8000 Hz; the model needs 16000 Hz"):
        infer.main(model_name=str(folder), audio_path=str(slow), ctx_len=40)
    with pytest.raises(ValueError, match="is a speech model: pass a 16 kHz WAV file with --audio_path"):
        infer.main(model_name=str(folder), ctx_len=40)


@contextlib.contextmanager
def _served(folder):
    """The speech server over ``folder`` on loopback (ctx_len 40): its URL, the processor and the clip's features."""
    from QEfficient.cloud.serve import build_server
    from tests.helpers import serve_on_loopback

    app, runner = build_server(str(folder), None, prefill_seq_len=1, ctx_len=40, full_batch_size=1, num_cores=1)
    try:
        with serve_on_loopback(app) as url:
            processor = WhisperProcessor.from_pretrained(folder)
            features = processor(read_wav(DATA / "speech16k.wav"), sampling_rate=16000, return_tensors="pt").input_features
            yield url, processor, features
    finally:
        runner.stop()


def test_server_transcribes_with_an_english_only_model(tiny_whisper):
    """An English-only Whisper (no tasks, no languages): transcriptions as transformers', translations refused."""

    folder, hf, _ = tiny_whisper(False)
    with _served(folder) as (url, processor, features):
        expected = processor.batch_decode(_hf(hf, features, max_new_tokens=39), skip_special_tokens=True)[0]  # 40 - 2 + 1
        upload = {"file": ("a.wav", (DATA / "speech16k.wav").read_bytes(), "audio/wav")}
        r = loopback_http.post(f"{url}/v1/audio/transcriptions", files=upload, timeout=120)
        assert r.status_code == 200 and r.json() == {"text": expected}, r.text
        for english in ("en", "English"):  # the model's own language: accepted, as openai-whisper and faster-whisper do
            r = loopback_http.post(f"{url}/v1/audio/transcriptions", files=upload, data={"language": english}, timeout=120)
            assert r.status_code == 200 and r.json() == {"text": expected}, r.text
        r = loopback_http.post(f"{url}/v1/audio/transcriptions", files=upload, data={"language": "fr"}, timeout=120)
        assert r.status_code == 400 and "English-only" in r.json()["error"]["message"]
        r = loopback_http.post(f"{url}/v1/audio/translations", files=upload, timeout=120)
        assert r.status_code == 400 and "English-only" in r.json()["error"]["message"]
    from QEfficient.cloud.serve import build_from_args
    from QEfficient.cloud.serve_args import parse_args

    for option, value in (("--full_batch_size", "8"), ("--lora", f"a={folder}"), ("--reasoning_parser", "deepseek_r1")):
        with pytest.raises(ValueError, match=rf"is a Whisper speech model \(/v1/audio/transcriptions, .*\): {option} do not apply"):
            build_from_args(parse_args(["--model_name", str(folder), option, value]))  # (options it would not act on)


def test_server_transcribes_uploads_like_transformers(tiny_whisper):
    from QEfficient.cloud.serve import build_server

    folder, hf, _ = tiny_whisper(True)
    with _served(folder) as (url, processor, features):
        wav = (DATA / "speech16k.wav").read_bytes()
        expected = processor.batch_decode(_hf(hf, features, max_new_tokens=37, language="en"), skip_special_tokens=True)[0]

        def post(files=None, **data) -> httpx.Response:
            return loopback_http.post(
                f"{url}/v1/audio/transcriptions", files=files or {"file": ("a.wav", wav, "audio/wav")}, data=data, timeout=120
            )

        r = post(language="en")
        assert r.status_code == 200, r.text
        assert r.json() == {"text": expected}
        r = post(language="en", response_format="text", model=str(folder))
        assert r.status_code == 200 and r.text == expected
        assert post(response_format="xml").status_code == 400
        prompt_ids = processor.get_prompt_ids("fox", return_tensors="pt")
        # the tokens ctx_len=40 leaves after the prompt and the four start tokens
        prompted = _hf(hf, features, max_new_tokens=40 - len(prompt_ids) - 4 + 1, language="en", prompt_ids=prompt_ids)
        r = post(language="en", prompt="fox")
        assert r.status_code == 200 and r.json() == {"text": processor.batch_decode(prompted, skip_special_tokens=True)[0]}
        r = post(language="en", prompt="<|en|> fox")  # a special token's text: transformers' get_prompt_ids refuses it
        assert r.status_code == 400 and "special token" in r.json()["error"]["message"] and r.json()["error"]["param"] == "prompt"
        r = post(language="en", prompt="hello world " * 30)
        message = r.json()["error"]["message"]
        assert r.status_code == 400 and "more than the 40 tokens this server's decoder holds" in message, message
        assert "Shorten it to at most 36 tokens or serve" in message and "generation_len" not in message
        r = post(language="en", temperature="0.7")
        assert r.status_code == 200 and isinstance(r.json()["text"], str)
        for bad in ("1.5", "warm"):
            r = post(temperature=bad)
            assert r.status_code == 400 and "temperature must be a number from 0 to 1" in r.json()["error"]["message"]
        # segment times: transformers' segments with timestamps (the tokens ctx_len=40 leaves after 3 start tokens)
        out = hf.generate(features, max_new_tokens=38, language="en", return_timestamps=True, return_segments=True)
        segments = [s for s in out["segments"][0]]
        r = post(language="en", response_format="verbose_json")
        body = r.json()
        assert r.status_code == 200 and body["language"] == "english" and abs(body["duration"] - 7.8) < 0.1
        assert [(s["start"], s["end"], s["tokens"]) for s in body["segments"]] == [
            (float(s["start"]), float(s["end"]), s["tokens"].tolist()) for s in segments
        ]
        assert body["text"] == processor.batch_decode(out["sequences"], skip_special_tokens=True)[0]
        fields = {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio"}
        assert set(body["segments"][0]) == fields | {"no_speech_prob"}
        srt, vtt = post(language="en", response_format="srt").text, post(language="en", response_format="vtt").text
        cues = [s for s in body["segments"] if s["text"].strip()]
        assert srt.startswith("1\n00:00:") and srt.count(" --> ") == len(cues) and vtt.startswith("WEBVTT\n\n00:00:")
        # word times: transformers' token timestamps, grouped into words as its pipeline groups them
        out = hf.generate(
            features, max_new_tokens=38, language="en", return_timestamps=True, return_segments=True, return_token_timestamps=True
        )
        times = np.concatenate([s["token_timestamps"].numpy() for s in out["segments"][0]])
        chunks = processor.tokenizer._decode_asr(
            [{"tokens": out["sequences"].numpy(), "token_timestamps": times[None]}],
            return_timestamps="word",
            return_language=False,
            time_precision=0.02,
        )[1]["chunks"]
        words = [{"word": c["text"].strip(), "start": c["timestamp"][0], "end": c["timestamp"][1]} for c in chunks]
        assert post(language="en", **{"timestamp_granularities[]": "segment"}).json() == {"text": expected}  # json: no times
        r = post(language="en", response_format="verbose_json", **{"timestamp_granularities[]": "word"})
        assert r.status_code == 200 and r.json()["words"] == words and "segments" not in r.json(), r.text
        both = loopback_http.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": ("a.wav", wav, "audio/wav")},
            data={"language": "en", "response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]},
            timeout=120,
        ).json()
        assert both["words"] == words and both["segments"] == body["segments"]
        for bad, message in (
            ({"response_format": "json"}, "word needs response_format=verbose_json"),
            ({"response_format": "verbose_json", "timestamp_granularities[]": "letter"}, "takes 'segment' and 'word'"),
        ):
            r = post(**{"timestamp_granularities[]": "word", **bad})
            assert r.status_code == 400 and message in r.json()["error"]["message"], r.text
        # translations: the same form, into English (OpenAI's /v1/audio/translations)
        translated = processor.batch_decode(_hf(hf, features, max_new_tokens=37, language="de", task="translate"), skip_special_tokens=True)
        r = loopback_http.post(
            f"{url}/v1/audio/translations", files={"file": ("a.wav", wav, "audio/wav")}, data={"language": "de"}, timeout=120
        )
        assert r.status_code == 200 and r.json() == {"text": translated[0]}
        r = post(files={"file": ("a.mp3", b"ID3 not a wav", "audio/mpeg")})
        assert r.status_code == 400 and "not a PCM WAV file" in r.json()["error"]["message"]
        r = loopback_http.post(f"{url}/v1/audio/transcriptions", json={"file": "x"}, timeout=10)
        assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]["message"]
        assert post(model="other").status_code == 404
        assert loopback_http.get(f"{url}/health", timeout=5).json()["status"] == "ok"
    with pytest.raises(ValueError, match=r"do not fit the config as hf_overrides changed it \(max_target_positions\)"):
        build_server(str(folder), None, 1, 40, 1, 1, hf_overrides={"max_target_positions": 24})  # the position table's rows


def _wav_bytes(samples: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def test_server_streams_transcriptions(tiny_whisper):
    """``stream=true`` (vLLM's transcription chunks): each 30 s window's text as it is decided, then the finish reason
    and the usage; the pieces make the text the same request gives without streaming."""
    import json

    folder, _, _ = tiny_whisper(True)
    speech = read_wav(DATA / "speech16k.wav")
    wav = _wav_bytes(np.tile(speech, 9)[: 16000 * 65])  # three windows
    with _served(folder) as (url, _, _):

        def post(path="transcriptions", **data) -> httpx.Response:
            return loopback_http.post(f"{url}/v1/audio/{path}", files={"file": ("a.wav", wav, "audio/wav")}, data=data, timeout=300)

        whole = post(language="en").json()["text"]
        r = post(language="en", stream="true", stream_include_usage="true")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
        datas = [line[len("data: ") :] for line in r.text.split("\n\n") if line.startswith("data: ")]
        assert datas[-1] == "[DONE]"
        events = [json.loads(d) for d in datas[:-1]]
        pieces = [e["choices"][0] for e in events if e["choices"]]
        assert "".join(p["delta"]["content"] for p in pieces) == whole
        assert [p.get("finish_reason") for p in pieces] == [None] * (len(pieces) - 1) + ["stop"]
        assert len([p for p in pieces if p["delta"]["content"]]) >= 3  # a piece per window
        assert {e["object"] for e in events} == {"transcription.chunk"} and len({e["id"] for e in events}) == 1
        usage = events[-1]["usage"]
        assert (
            usage["prompt_tokens"] == 3 * 1500
            and 0 < usage["completion_tokens"]
            and usage["total_tokens"] == sum(usage[k] for k in ("prompt_tokens", "completion_tokens"))
        )
        translated = post("translations", language="de", stream="true")
        assert translated.status_code == 200 and '"object": "translation.chunk"' in translated.text
        for bad, message in (({"response_format": "srt"}, "use response_format json or text"), ({}, "must be true or false")):
            r = post(**({"stream": "yes"} if not bad else {"stream": "true", **bad}))
            assert r.status_code == 400 and message in r.json()["error"]["message"], r.text
        # refused before its first window: a 400 answer, as without streaming (vLLM checks a request before it streams)
        for bad, message, param in (
            ({"language": "klingon"}, "Unsupported language", None),
            ({"prompt": "hello " * 60}, "Shorten it", "prompt"),
        ):
            r = post(stream="true", **bad)
            assert r.status_code == 400 and message in r.json()["error"]["message"] and r.json()["error"]["param"] == param, r.text
        assert post(language="en").json()["text"] == whole  # the lock was let go


def test_a_wav_file_cut_short_mid_frame_reads_its_whole_frames():
    """As soundfile reads one: the samples of the whole frames, not numpy's "buffer size" error."""
    import io

    from QEfficient.utils.audio import decode_wav

    samples = (np.sin(np.arange(1000) / 7) * 20000).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.stack([samples, samples], 1).tobytes())
    whole = decode_wav(buffer.getvalue())
    assert len(whole) == 1000
    for cut in (1, 3):  # into a sample, into a frame's second channel
        assert np.array_equal(decode_wav(buffer.getvalue()[:-cut]), whole[:-1])


def test_wav_layouts_ffmpeg_writes_read_as_the_same_samples():
    """WAVE_FORMAT_EXTENSIBLE (ffmpeg's layout for 24 and 32 bits and for more than two channels), 24-bit PCM and
    IEEE float read as the plain 16-bit file's samples; other sample kinds say what to send."""
    import struct

    from QEfficient.utils.audio import decode_wav

    pcm16 = (np.sin(np.arange(4000) / 5) * 20000).astype("<i2")
    expected = pcm16.astype(np.float32) / 32768

    def wav(tag: int, width: int, frames: bytes, sub_format: int | None = None, channels: int = 1) -> bytes:
        fmt = struct.pack("<HHIIHH", tag, channels, 16000, 16000 * width * channels, width * channels, 8 * width)
        if sub_format is not None:  # cbSize, valid bits, channel mask, then the sub-format GUID
            fmt += struct.pack("<HHIH", 22, 8 * width, 4, sub_format) + bytes.fromhex("000000001000800000aa00389b71")
        body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(frames)) + frames
        return b"RIFF" + struct.pack("<I", len(body)) + body

    pcm24 = np.frombuffer((pcm16.astype("<i4") << 16).tobytes(), np.uint8).reshape(-1, 4)[:, 1:].tobytes()
    for data in (
        wav(0xFFFE, 2, pcm16.tobytes(), sub_format=1),
        wav(0xFFFE, 3, pcm24, sub_format=1),
        wav(1, 3, pcm24),
        wav(3, 4, expected.astype("<f4").tobytes()),
        wav(0xFFFE, 4, expected.astype("<f4").tobytes(), sub_format=3),
        wav(3, 8, expected.astype("<f8").tobytes()),
    ):
        np.testing.assert_array_equal(decode_wav(data), expected)
    with pytest.raises(ValueError, match="not finite numbers"):
        decode_wav(wav(3, 4, np.array([0.5, np.nan], "<f4").tobytes()))
    stereo = np.stack([pcm16, pcm16 // 2], 1)
    stereo24 = np.frombuffer((stereo.astype("<i4") << 16).tobytes(), np.uint8).reshape(-1, 4)[:, 1:].tobytes()
    two = wav(0xFFFE, 3, stereo24, sub_format=1, channels=2)
    np.testing.assert_array_equal(decode_wav(two), stereo.astype(np.float32).mean(axis=1) / 32768)
    with pytest.raises(ValueError, match="16-bit floating-point samples; use 8, 16, 24 or 32-bit PCM or 32-bit float"):
        decode_wav(wav(3, 2, pcm16.tobytes()))
    with pytest.raises(ValueError, match=r"not a PCM WAV file \(unknown format: 6\)"):
        decode_wav(wav(6, 1, bytes(100)))  # A-law
