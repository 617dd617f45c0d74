"""A served chat with audio for the audio-text models whose features are masked per audio (AudioFlamingo 3, GLM-ASR:
tests/test_audio_text.py builds them), beside Qwen2-Audio's (tested there): ``serve`` on a tiny random folder saved
with its real processor and a chat template, OpenAI's ``input_audio`` part (base64 WAV) in a user message, answers
transformers' greedy text for the processor's chat template over that audio."""

from __future__ import annotations

import base64

import pytest

from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.utils.audio import decode_wav
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.test_audio_text import DATA, MASKED_AUDIO, hf_chat_answer, masked_audio_folder, read_wav
from tests.test_server_ctc import wav

# a ChatML template that writes the model's audio token where an audio part is (the checkpoints' templates do)
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'audio' %}AUDIO{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.mark.parametrize("model_type", list(MASKED_AUDIO))
def test_a_served_chat_with_audio_is_transformers(model_type, tmp_path, tokenizer_dir):
    hf, processor, _ = masked_audio_folder(model_type, tmp_path, tokenizer_dir, TEMPLATE)

    sent = wav(read_wav(DATA / "speech16k.wav")[:32000])  # 2 s as a 16-bit WAV file
    expected, prompt_tokens = hf_chat_answer(hf, processor, decode_wav(sent))

    app, runner = build_from_args(parse_args(["--model_name", str(tmp_path), "--num_cores", "1", "--ctx_len", "256"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            part = {"type": "input_audio", "input_audio": {"data": base64.b64encode(sent).decode(), "format": "wav"}}
            body = {"messages": [{"role": "user", "content": [part, {"type": "text", "text": "What is said?"}]}], "max_tokens": 8}
            answer = loopback_http.post(f"{url}/v1/chat/completions", json={**body, "temperature": 0}, timeout=120)
    finally:
        runner.stop()
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == expected
    assert answer.json()["usage"]["prompt_tokens"] == prompt_tokens
