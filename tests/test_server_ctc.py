"""OpenAI's /v1/audio/transcriptions over a CTC model: ``serve --model_name`` on a tiny Wav2Vec2 CTC folder with its
processor, on loopback. The text equals transformers' greedy CTC decoding of the same samples (its logits' argmax
through the processor's batch_decode); audio past the compiled 30 s and the word times are those of transformers'
speech-recognition pipeline with ``chunk_length_s=30``; Whisper's options a CTC model cannot honour get a 400 that says
so, and so do times and long audio for a model whose frames' length is not known (Parakeet's CTC)."""

from __future__ import annotations

import io
import json
import wave

import httpx
import numpy as np
import pytest
import torch
from transformers import AutoProcessor

from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.utils.audio import decode_wav
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.test_ctc import _audio, _folder
from tests.test_ctranslate2_whisper import DATA, read_wav


def wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((samples * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def ctc_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wav2vec2-ctc")
    hf, processor = _folder(folder, "wav2vec2")
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, hf, processor
    runner.stop()


def transcribe(url: str, audio: bytes, route: str = "/v1/audio/transcriptions", **fields) -> httpx.Response:
    return loopback_http.post(f"{url}{route}", files={"file": ("speech.wav", audio, "audio/wav")}, data=fields, timeout=120)


def test_transcriptions_equal_transformers_greedy_ctc(ctc_server):
    url, hf, processor = ctc_server
    clip = np.round(_audio()[0] * 32767) / 32767  # what 16 bits hold
    with torch.no_grad():
        ids = hf(**processor(clip, sampling_rate=16000, return_tensors="pt")).logits.argmax(-1)
    expected = processor.batch_decode(ids)[0]
    assert expected.strip()  # the tiny head prefers letters: a text, not blanks
    answer = transcribe(url, wav(clip))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"text": expected}
    plain = transcribe(url, wav(clip), response_format="text", temperature="0", language="")
    assert plain.status_code == 200 and plain.text == expected


def test_what_a_ctc_model_cannot_do_is_refused(ctc_server):
    url, _, _ = ctc_server
    clip = wav(_audio()[0])
    cases = [
        (dict(language="fr"), "takes no language hint"),
        (dict(prompt="Hello"), "takes no text before the audio"),
        (dict(temperature="0.4"), "decoded greedily"),
        (dict(response_format="srt", **{"timestamp_granularities[]": "word"}), "needs response_format=verbose_json"),
        (dict(stream="true", response_format="srt"), "use response_format json or text"),
        (dict(stream="maybe"), "'stream' must be true or false"),
        (dict(stream="true", language="fr"), "takes no language hint"),
    ]
    for fields, message in cases:
        answer = transcribe(url, clip, **fields)
        assert answer.status_code == 400 and message in answer.json()["error"]["message"], (fields, answer.text)
    assert "does not translate" in transcribe(url, clip, "/v1/audio/translations").json()["error"]["message"]
    assert "sampled at 8000 Hz" in transcribe(url, wav(_audio()[0], rate=8000)).json()["error"]["message"]
    too_long = transcribe(url, wav(np.zeros(301 * 16000, np.float32)))
    assert too_long.status_code == 400 and "reads up to 300 s" in too_long.json()["error"]["message"]
    too_short = transcribe(url, wav(np.zeros(100, np.float32)))
    assert too_short.status_code == 400 and "at least 400" in too_short.json()["error"]["message"]
    repeated = loopback_http.post(
        f"{url}/v1/audio/transcriptions",
        files=[
            ("file", ("a.wav", clip, "audio/wav")),
            ("timestamp_granularities[]", (None, "word")),
            ("timestamp_granularities[]", (None, "")),
            ("response_format", (None, "verbose_json")),
        ],
        timeout=60,
    )
    assert repeated.status_code == 400 and "takes 'segment' and 'word', got ['', 'word']" in repeated.json()["error"]["message"]
    assert transcribe(url, clip, model="other").status_code == 404
    no_file = loopback_http.post(f"{url}/v1/audio/transcriptions", files={"model": (None, "x")}, timeout=60)
    assert no_file.status_code == 400 and "no 'file' field" in no_file.json()["error"]["message"]


def test_long_audio_and_word_times_are_the_pipelines(ctc_server):
    """70 s, past the compiled 30 s: read in windows of 30 s, its text and word times those of transformers' pipeline
    with chunk_length_s=30; segments of at most 30 s (the model writes no sentence ends)."""
    from transformers import pipeline

    url, hf, processor = ctc_server
    audio = wav(np.tile(read_wav(DATA / "speech16k.wav"), 9))
    speech = decode_wav(audio)  # what the server reads
    asr = pipeline("automatic-speech-recognition", model=hf, tokenizer=processor.tokenizer, feature_extractor=processor.feature_extractor)
    expected = asr(speech.copy(), chunk_length_s=30, return_timestamps="word")
    plain = transcribe(url, audio)
    assert plain.status_code == 200, plain.text
    assert plain.json() == {"text": expected["text"]}
    answer = transcribe(url, audio, response_format="verbose_json", **{"timestamp_granularities[]": ["word", "segment"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["text"] == expected["text"] and body["duration"] == len(speech) / 16000
    words = [{"word": c["text"], "start": c["timestamp"][0], "end": c["timestamp"][1]} for c in expected["chunks"]]
    assert body["words"] == words and words[-1]["end"] > 65
    segments = body["segments"]
    assert len(segments) >= 3 and all(s["end"] - s["start"] <= 30 for s in segments)
    assert " ".join(s["text"].strip() for s in segments) == expected["text"]
    srt = transcribe(url, audio, response_format="srt")
    assert srt.status_code == 200 and srt.text.count(" --> ") == len(segments)
    # a stream: each window's text as it is read (to its last space), then the rest, the usage and [DONE]
    with loopback_http.stream(
        "POST",
        f"{url}/v1/audio/transcriptions",
        files={"file": ("a.wav", audio, "audio/wav")},
        data=dict(stream="true", stream_include_usage="true"),
        timeout=120,
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"]]
    assert "".join(deltas) == expected["text"] and len([d for d in deltas if d]) >= 3  # the windows' text as it came
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and {c["object"] for c in chunks} == {"transcription.chunk"}
    usage = chunks[-1]["usage"]
    assert abs(usage["prompt_tokens"] - len(speech) / 320) < 2 and usage["total_tokens"] > usage["prompt_tokens"]  # 20 ms frames


def test_a_ctc_model_without_frame_times_reads_30_s_untimed(tmp_path):
    """Parakeet's CTC config names no samples per output frame: its server reads up to 30 s in one pass, as generate()
    does, and refuses times, saying why."""
    from starlette.testclient import TestClient

    from QEfficient import QEFFAutoModelForCTC

    _folder(tmp_path, "parakeet_ctc")
    app, runner = build_from_args(parse_args(["--model_name", str(tmp_path), "--num_cores", "1"]))
    client = TestClient(app)
    clip = _audio()[0]

    def post(audio: np.ndarray, **fields) -> httpx.Response:
        return client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav(audio), "audio/wav")}, data=fields)

    model = QEFFAutoModelForCTC.from_pretrained(tmp_path)
    model.compile(seq_len=480000, num_cores=1)
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert post(clip).json() == {"text": model.generate(processor, decode_wav(wav(clip)))[0]}
    timed = post(clip, response_format="verbose_json")
    assert timed.status_code == 400 and "names no audio samples per output frame" in timed.json()["error"]["message"]
    stream = post(clip, stream="true", stream_include_usage="true")  # one pass: the text at once
    events = [json.loads(line[len("data: ") :]) for line in stream.text.splitlines() if line.startswith("data: {")]
    assert "".join(e["choices"][0]["delta"]["content"] for e in events if e["choices"]) == post(clip).json()["text"]
    assert events[-1]["usage"]["prompt_tokens"] > 0
    words = post(clip, **{"timestamp_granularities[]": "word"})
    assert words.status_code == 400 and "without segment or word times: its config (parakeet_ctc)" in words.json()["error"]["message"]
    too_long = post(np.zeros(31 * 16000, np.float32))
    assert too_long.status_code == 400 and "reads up to 30 s" in too_long.json()["error"]["message"]
    with pytest.raises(ValueError, match="leave chunk_length_s out"):
        model.transcribe(processor, clip, chunk_length_s=30)
    runner.stop()
