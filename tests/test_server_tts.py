"""OpenAI's /v1/audio/speech over a VITS model: ``serve --model_name`` on a tiny VITS folder (its noise scales set to 0,
so that the audio is deterministic) with a character tokenizer, on loopback. The WAV's samples equal transformers'
waveform as 16 bits hold it, at the model's sampling rate; pcm and speed work; what the server cannot do gets a 400
that says so; its artifact is served alone as the folder is."""

from __future__ import annotations

import io
import shutil
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.serving.tts_app import resample, text_pieces
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.test_text_to_speech import tiny, transformers_waveform


def tiny_vits(folder: Path) -> tuple:
    """(the HF model, its tokenizer) of a tiny deterministic VITS saved to ``folder`` with a character tokenizer."""
    hf = tiny(noise_scale=0.0, noise_scale_duration=0.0)
    hf.save_pretrained(folder)
    vocab = {"<pad>": 0, " ": 1, **{c: i + 2 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}}
    characters = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    characters.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=characters, pad_token="<pad>")
    tokenizer.save_pretrained(folder)
    return hf, tokenizer


@pytest.fixture(scope="module")
def tts_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vits")
    hf, tokenizer = tiny_vits(folder)
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, hf, tokenizer, folder
    runner.stop()


def speak(url: str, **body) -> httpx.Response:
    return loopback_http.post(f"{url}/v1/audio/speech", json=body, timeout=120)


def test_speech_equals_transformers(tts_server):
    url, hf, tokenizer, _ = tts_server
    for speed in (1.0, 1.5):
        expected = transformers_waveform(hf, tokenizer("hello there", return_tensors="pt"), speaking_rate=speed)
        samples = expected.waveform[0, : int(expected.sequence_lengths[0])].numpy()
        answer = speak(url, input="hello there", voice="alloy", speed=speed)  # one speaker: OpenAI's voice names ignored
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "audio/wav"
        with wave.open(io.BytesIO(answer.content)) as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (hf.config.sampling_rate, 1, 2)
            got = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
        assert len(got) == len(samples)
        np.testing.assert_allclose(got / 32767, np.clip(samples, -1, 1), atol=2 / 32767)
    pcm = speak(url, input="hello there", response_format="pcm")  # OpenAI's: 24 kHz
    assert pcm.status_code == 200 and pcm.headers["x-sampling-rate"] == "24000"
    samples = int(transformers_waveform(hf, tokenizer("hello there", return_tensors="pt")).sequence_lengths[0])
    assert len(pcm.content) == 2 * round(samples * 24000 / hf.config.sampling_rate)
    sentences = [" ".join(["hello there"] * 25) + ".", " ".join(["good day"] * 30)]  # 299 and 269 characters
    two = speak(url, input=" ".join(sentences))  # longer than one piece: spoken sentence after sentence
    first, second = (transformers_waveform(hf, tokenizer(t, return_tensors="pt")) for t in sentences)
    with wave.open(io.BytesIO(two.content)) as wav:
        assert wav.getnframes() == int(first.sequence_lengths[0]) + int(second.sequence_lengths[0])
    unbroken = "hello" * 100  # 500 characters without a space: 400 and 100 spoken, none dropped
    waves = [transformers_waveform(hf, tokenizer(t, return_tensors="pt")) for t in (unbroken[:400], unbroken[400:])]
    frames = [int(w.sequence_lengths[0]) for w in waves]
    with wave.open(io.BytesIO(speak(url, input=unbroken).content)) as wav:
        assert wav.getnframes() == sum(frames)


def test_text_pieces_and_resampling():
    assert text_pieces("One. Two!  Three?") == ["One. Two! Three?"]
    assert text_pieces("a" * 5 + " " + "b" * 5, limit=6) == ["aaaaa", "bbbbb"]
    assert text_pieces("First one. Second one.", limit=12) == ["First one.", "Second one."]
    # a run without spaces longer than a piece is spoken in pieces, not cut (scripts written without spaces)
    assert text_pieces("ab" * 7, limit=6) == ["ababab", "ababab", "ab"]
    assert [len(piece) for piece in text_pieces("x" * 1000 + " y")] == [400, 400, 202]
    assert text_pieces("一二三。四五六！七八", limit=7) == ["一二三。", "四五六！七八"]  # full-width stops end sentences
    assert text_pieces("一二三。四五六！七八") == ["一二三。四五六！七八"]
    tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    resampled = resample(tone, 16000, 24000)
    assert len(resampled) == 24000
    np.testing.assert_allclose(resampled, np.sin(2 * np.pi * 440 * np.arange(24000) / 24000), atol=1e-6)


def test_what_the_server_cannot_do_is_refused(tts_server):
    url, _, _, _ = tts_server
    cases = [
        (dict(input="hello", response_format="mp3"), "wav or pcm"),
        (dict(input=""), "non-empty string"),
        (dict(input="a" * 4097), "at most 4096"),
        (dict(input="hello", speed=9), "0.25 to 4.0"),
        (dict(input="hello", stream_format="sse"), "returned whole"),
        (dict(input="hello", model="other"), "does not exist"),
        (dict(input="hello", instructions="whisper it"), "reads no instructions"),
    ]
    for body, message in cases:
        answer = speak(url, **body)
        assert answer.status_code in (400, 404) and message in answer.json()["error"]["message"], (body, answer.text)


def test_the_artifact_served_alone_speaks_as_the_folder(tmp_path):
    """``serve --qpc_path`` on the artifact (which keeps the tokenizer and config) gives the folder's server's audio,
    after the folder is gone."""
    from starlette.testclient import TestClient

    folder = tmp_path / "vits"
    tiny_vits(folder)
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    bodies = [{"input": "hello there"}, {"input": "good day", "response_format": "pcm", "speed": 1.5}]
    expected = [TestClient(app).post("/v1/audio/speech", json=body).content for body in bodies]
    qpc = str(app.state.qpc_path)
    runner.stop()
    shutil.rmtree(folder)
    app, runner = build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--model_name", "voice"]))
    client = TestClient(app)
    assert [client.post("/v1/audio/speech", json={**body, "model": "voice"}).content for body in bodies] == expected
    runner.stop()
    with pytest.raises(ValueError, match="--task embed does not apply"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--task", "embed"]))
    with pytest.raises(ValueError, match="reads text to speak as compiled: --ctx_len does not apply"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--ctx_len", "64"]))


def test_serve_options_that_do_not_apply_are_refused(tts_server):
    _, _, _, folder = tts_server
    with pytest.raises(ValueError, match="text-to-speech model"):
        build_from_args(parse_args(["--model_name", str(folder), "--chat_template", "{{ messages }}"]))
    with pytest.raises(ValueError, match="--task do not apply"):
        build_from_args(parse_args(["--model_name", str(folder), "--task", "embed"]))
    with pytest.raises(ValueError, match="--ctx_len do not apply"):  # (as its artifact refuses it, on Ray's replicas too)
        build_from_args(parse_args(["--model_name", str(folder), "--ctx_len", "64"]))
    for option in ("--full_batch_size", "--prefill_seq_len"):  # a decoder's batching, given (its defaults pass)
        with pytest.raises(ValueError, match=rf"is a text-to-speech model \(/v1/audio/speech\): {option} do not apply"):
            build_from_args(parse_args(["--model_name", str(folder), option, "8"]))
