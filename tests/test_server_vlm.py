"""The OpenAI server on a vision-language model (a tiny random Llava): chat messages with image parts, sent as
base64 data: URLs or fetched over http, give HF's greedy tokens for the same messages through the processor's
chat template; prompts without an image run as text; bad images get a 400 that says what to send."""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from tests.helpers import free_port, serve_on_loopback
from tests.loopback import loopback_http
from tests.vlm_fixtures import build_llava

# Llava 1.5's template, in HF's content-parts form
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'text' %}{{ item['text'] }}{% elif item['type'] == 'image' %}<image>\n{% endif %}"
    "{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
TOKENS = 10


def image(seed: int, size=(40, 50)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8))


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(img: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png(img)).decode()


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    folder = build_llava(tmp_path_factory.mktemp("llava-chat"))
    processor = AutoProcessor.from_pretrained(folder)
    processor.chat_template = CHAT_TEMPLATE
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def served(llava):
    args = parse_args(
        ["--model_name", str(llava), "--prefill_seq_len", "8", "--ctx_len", "96", "--full_batch_size", "2", "--num_cores", "1"]
    )
    app, runner = build_from_args(args)
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, app
    runner.stop()


@pytest.fixture(scope="module")
def server(served):
    return served[0]


@pytest.fixture(scope="module")
def image_host():
    """A loopback http server: a PNG at /cat.png, the same sent slowly at /slow.png, 21 MiB at /huge.png,
    /redirect?to=URL, 404 elsewhere."""
    body = png(image(7, (30, 60)))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path.startswith("/redirect"):  # /redirect?to=URL
                self.send_response(302)
                self.send_header("Location", self.path.partition("?to=")[2])
                self.end_headers()
                return
            if self.path == "/huge.png":  # 21 MiB, its length not announced: the reader counts
                self.send_response(200)
                self.end_headers()
                for _ in range(21):
                    self.wfile.write(bytes(1024 * 1024))
                return
            if self.path == "/slow.png":  # a byte every 0.2 s: each read is quick, the whole is not
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for byte in body[:40]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.2)
                return
            if self.path != "/cat.png":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def hf_chat_text(folder, messages: list[dict]) -> str:
    """HF's greedy continuation of ``messages`` (images as PIL objects in the parts), through the processor's template."""
    processor = AutoProcessor.from_pretrained(folder)
    hf = LlavaForConditionalGeneration.from_pretrained(folder).eval()
    inputs = processor.apply_chat_template(messages, tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=TOKENS, pad_token_id=0)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def chat(url: str, content, stream: bool = False) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": TOKENS, "temperature": 0, "stream": stream}
    return loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=120)


def test_an_image_as_a_data_url_gives_hfs_tokens(server, llava):
    img = image(1)
    r = chat(server, [{"type": "image_url", "image_url": {"url": data_url(img)}}, {"type": "text", "text": "What is this?"}])
    assert r.status_code == 200, r.text
    expected = hf_chat_text(
        llava, [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "What is this?"}]}]
    )
    assert r.json()["choices"][0]["message"]["content"] == expected
    assert r.json()["usage"]["prompt_tokens"] > 16  # the image's 16 tokens are counted


def test_anthropic_count_tokens_counts_an_image_s_tokens(server, llava):
    """Anthropic's /v1/messages/count_tokens on a vision-language server: the prompt's tokens as a chat request makes
    them, the image's included (the usage of the same chat's answer)."""
    img = image(2)
    source = {"type": "base64", "media_type": "image/png", "data": data_url(img).split(",", 1)[1]}
    blocks = [{"type": "image", "source": source}, {"type": "text", "text": "What is this?"}]
    counted = loopback_http.post(
        f"{server}/v1/messages/count_tokens", json={"messages": [{"role": "user", "content": blocks}]}, timeout=120
    )
    assert counted.status_code == 200, counted.text
    parts = [{"type": "image_url", "image_url": {"url": data_url(img)}}, {"type": "text", "text": "What is this?"}]
    assert counted.json()["input_tokens"] == chat(server, parts).json()["usage"]["prompt_tokens"] > 16
    # vLLM's /tokenize on the same chat: the tokens of the prompt a chat request makes, each image's in it (and a chat
    # without an image too; both were refused)
    processor = AutoProcessor.from_pretrained(llava)
    for content, with_image in ((parts, True), ("My name is", False)):
        messages = [{"role": "user", "content": content}]
        r = loopback_http.post(f"{server}/tokenize", json={"messages": messages}, timeout=120)
        assert r.status_code == 200, r.text
        hf_parts = [{"type": "text", "text": content}]
        if with_image:
            hf_parts = [{"type": "image", "image": img}, {"type": "text", "text": "What is this?"}]
        hf_chat = [{"role": "user", "content": hf_parts}]
        expected = processor.apply_chat_template(hf_chat, tokenize=True, return_dict=True, add_generation_prompt=True)["input_ids"]
        assert r.json()["tokens"] == np.asarray(expected).reshape(-1).tolist() and r.json()["count"] == len(r.json()["tokens"])


def test_a_fetched_image_and_a_text_only_chat_share_the_batch(server, llava, image_host):
    with_image = [{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {"url": f"{image_host}/cat.png"}}]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda content: chat(server, content), [with_image, "My name is"]))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    fetched = Image.open(io.BytesIO(loopback_http.get(f"{image_host}/cat.png").content)).convert("RGB")
    expected = [
        hf_chat_text(llava, [{"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "image", "image": fetched}]}]),
        hf_chat_text(llava, [{"role": "user", "content": [{"type": "text", "text": "My name is"}]}]),
    ]
    assert [a.json()["choices"][0]["message"]["content"] for a in answers] == expected


def test_streaming_with_an_image_and_a_text_completion(server, llava):
    img = image(2, (64, 20))
    r = chat(server, [{"type": "image_url", "image_url": {"url": data_url(img)}}], stream=True)
    assert r.status_code == 200
    import json

    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert streamed == hf_chat_text(llava, [{"role": "user", "content": [{"type": "image", "image": img}]}])
    # /v1/completions: text through the processor, no image, as HF runs it
    r = loopback_http.post(f"{server}/v1/completions", json={"prompt": "Hello there", "max_tokens": TOKENS, "temperature": 0}, timeout=120)
    assert r.status_code == 200, r.text
    processor = AutoProcessor.from_pretrained(llava)
    hf = LlavaForConditionalGeneration.from_pretrained(llava).eval()
    inputs = processor(text="Hello there", return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**inputs, do_sample=False, max_new_tokens=TOKENS, pad_token_id=0)
    assert r.json()["choices"][0]["text"] == processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize(
    "part, message",
    [
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}, "invalid base64"),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}},
            "not in an image format",
        ),
        ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, "data: URL .* or an http"),
        ({"type": "image_url", "image_url": {}}, 'needs "image_url"'),
        ({"type": "input_audio", "input_audio": {}}, "'text' and 'image_url' parts"),
    ],
)
def test_bad_image_parts_get_a_400_that_says_what_to_send(server, part, message):
    import re

    r = chat(server, [part, {"type": "text", "text": "hi"}])
    assert r.status_code == 400, r.text
    assert re.search(message, r.json()["error"]["message"]), r.json()


def test_unreachable_images_and_image_tokens_without_an_image(server, image_host):
    r = chat(server, [{"type": "image_url", "image_url": {"url": f"{image_host}/missing.png"}}])
    assert r.status_code == 400 and "HTTP 404" in r.json()["error"]["message"]
    r = chat(server, [{"type": "image_url", "image_url": {"url": f"http://127.0.0.1:{free_port()}/cat.png"}}])
    assert r.status_code == 400 and "could not fetch" in r.json()["error"]["message"]
    r = loopback_http.post(f"{server}/v1/completions", json={"prompt": "<image> what?", "max_tokens": 4}, timeout=60)
    assert r.status_code == 400 and "image" in r.json()["error"]["message"], r.text
    assert loopback_http.get(f"{server}/health").json()["status"] == "ok"


def test_the_language_artifact_is_served_without_the_model(served, llava, tiny_model_dir, tmp_path):
    """``serve --qpc_path`` on the language artifact (which names its vision artifact and holds the processor): the
    same answers as the server that compiled it, no weights read; from Python, from_artifact generates as the loaded
    model does and refuses to export. The vision artifact, a decoder's artifact, or a prompt-lookup server are refused
    with what to do."""
    from QEfficient import QEFFAutoModelForImageTextToText
    from QEfficient.serving.artifact import artifact_from_qpc

    language = Path(served[1].state.qpc_path)
    content = [{"type": "image_url", "image_url": {"url": data_url(image(1))}}, {"type": "text", "text": "What is this?"}]
    expected = chat(served[0], content).json()["choices"][0]["message"]["content"]
    app, runner = build_from_args(parse_args(["--qpc_path", str(language), "--model_name", "tiny-llava", "--num_cores", "1"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            r = chat(url, content)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == expected
            models = [m["id"] for m in loopback_http.get(f"{url}/v1/models").json()["data"]]
            assert models == ["tiny-llava"]  # --model_name names the artifact's model, as vLLM's --served-model-name
            body = {"model": "tiny-llava", "messages": [{"role": "user", "content": "My name is"}], "max_tokens": 2}
            assert loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code == 200  # --model_name: a name too
    finally:
        runner.stop()
    app, runner = build_from_args(parse_args(["--qpc_path", str(language), "--max_num_images", "1", "--num_cores", "1"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            r = chat(url, [content[0], content[0], content[1]])
            assert r.status_code == 400 and "image" in r.json()["error"]["message"], r.text  # --max_num_images kept
    finally:
        runner.stop()
    with pytest.raises(ValueError, match="--img_size is compiled into"):
        build_from_args(parse_args(["--qpc_path", str(language), "--img_size", "64"]))

    model = QEFFAutoModelForImageTextToText.from_artifact(language, num_cores=1)
    assert next(model.hf_model.parameters()).device.type == "meta"
    processor = AutoProcessor.from_pretrained(llava)
    inputs = processor(images=[image(2)], text=["USER: <image>\nWhat is this? ASSISTANT:"], return_tensors="pt")
    loaded = QEFFAutoModelForImageTextToText.from_pretrained(llava, kv_offload=True, continuous_batching=True)
    loaded.compile(prefill_seq_len=8, ctx_len=96, full_batch_size=2, num_cores=1)
    assert loaded.qpc_paths["lang_qpc_path"] == language  # the same artifacts
    got, want = (m.generate(inputs=inputs, processor=processor, generation_len=6, stream=False) for m in (model, loaded))
    assert [list(map(int, ids)) for ids in got.generated_ids] == [list(map(int, ids)) for ids in want.generated_ids]
    with pytest.raises(TypeError, match="without weights: load it with from_pretrained"):
        model.compile(prefill_seq_len=8, ctx_len=96, full_batch_size=2)
    # the two artifacts copied side by side elsewhere: the language artifact finds its vision artifact by its fingerprint
    import shutil

    for source, name in ((language, "language"), (loaded.qpc_paths["vision_qpc_path"], "vision")):
        shutil.copytree(source, tmp_path / "deploy" / name)
    moved = QEFFAutoModelForImageTextToText.from_artifact(tmp_path / "deploy" / "language", num_cores=1)
    assert moved.qpc_paths["vision_qpc_path"] == tmp_path / "deploy" / "vision"
    int8 = QEFFAutoModelForImageTextToText.from_pretrained(llava, kv_offload=True, continuous_batching=True)
    int8_vision = int8.compile(prefill_seq_len=8, ctx_len=96, full_batch_size=2, num_cores=1, mxfp6_matmul=True)["vision_qpc_path"]
    with pytest.raises(ValueError, match="another build's vision graph"):  # a vision artifact of another build, by hand
        QEFFAutoModelForImageTextToText.from_artifact(language, vision_qpc_path=int8_vision)
    with pytest.raises(ValueError, match="is not this vision-language model's vision graph"):  # not a vision graph at all
        QEFFAutoModelForImageTextToText.from_artifact(language, vision_qpc_path=tmp_path / "deploy" / "language")
    again = moved.generate(inputs=inputs, processor=processor, generation_len=6, stream=False)
    assert [list(map(int, ids)) for ids in again.generated_ids] == [list(map(int, ids)) for ids in want.generated_ids]

    vision = loaded.qpc_paths["vision_qpc_path"]
    with pytest.raises(ValueError, match="vision graph: serve its language artifact"):
        artifact_from_qpc(str(vision))
    with pytest.raises(ValueError, match="without speculative decoding"):
        artifact_from_qpc(str(language), prompt_lookup_num_tokens=2)
    from QEfficient import QEFFAutoModelForCausalLM

    decoder = QEFFAutoModelForCausalLM.from_pretrained(tiny_model_dir("llama")).compile(prefill_seq_len=8, ctx_len=32, num_cores=1)
    with pytest.raises(ValueError, match="is not the artifact of a vision-language model"):
        QEFFAutoModelForImageTextToText.from_artifact(decoder)


def test_a_one_graph_artifact_is_served_without_the_model(served, llava):
    """The one graph of ``kv_offload=False`` (QEfficient's default layout), compiled with continuous batching, holds the
    processor too: ``serve --qpc_path`` on it answers an image chat and a text chat as the server that compiled two
    graphs; from Python, from_artifact generates as the loaded model does; a vision artifact given beside it is refused."""
    from QEfficient import QEFFAutoModelForImageTextToText

    one_graph = QEFFAutoModelForImageTextToText.from_pretrained(llava, kv_offload=False, continuous_batching=True)
    qpc = one_graph.compile(prefill_seq_len=8, ctx_len=96, full_batch_size=2, num_cores=1)
    contents = [
        [{"type": "image_url", "image_url": {"url": data_url(image(3))}}, {"type": "text", "text": "What is this?"}],
        "My name is",
    ]
    expected = [chat(served[0], content).json()["choices"][0]["message"]["content"] for content in contents]
    app, runner = build_from_args(parse_args(["--qpc_path", str(qpc), "--num_cores", "1"]))
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            for content, answer in zip(contents, expected):
                r = chat(url, content)
                assert r.status_code == 200, r.text
                assert r.json()["choices"][0]["message"]["content"] == answer
    finally:
        runner.stop()
    model = QEFFAutoModelForImageTextToText.from_artifact(qpc, num_cores=1)
    assert not model.kv_offload and model.lang_qpc_path == qpc
    processor = AutoProcessor.from_pretrained(llava)
    inputs = processor(images=[image(2)], text=["USER: <image>\nWhat is this? ASSISTANT:"], return_tensors="pt")
    got, want = (m.generate(inputs=inputs, processor=processor, generation_len=6, stream=False) for m in (model, one_graph))
    assert [list(map(int, ids)) for ids in got.generated_ids] == [list(map(int, ids)) for ids in want.generated_ids]
    with pytest.raises(ValueError, match="is one graph"):
        QEFFAutoModelForImageTextToText.from_artifact(qpc, vision_qpc_path=qpc)


def _tiny_with_template(model_type: str, folder) -> tuple:
    """The sweep's tiny model of ``model_type`` with a chat template that writes the model's image placeholder."""
    from tests.image_text_sweep import BUILDERS

    builder, prompt = BUILDERS[model_type]
    folder = builder(folder)
    processor = AutoProcessor.from_pretrained(folder)
    processor.chat_template = CHAT_TEMPLATE.replace("<image>\n", prompt.removeprefix("Look: ").split(" Describe")[0])
    processor.save_pretrained(folder)
    return folder, processor


def _serve_chats(folder, contents: list, *flags: str) -> list[httpx.Response]:
    """A server for ``folder``, the chats sent at once, their answers."""
    args = parse_args(["--model_name", str(folder), "--prefill_seq_len", "8", "--ctx_len", "160", "--full_batch_size", "2", *flags])
    app, runner = build_from_args(args)
    try:
        with serve_on_loopback(app, log_level="critical") as url, ThreadPoolExecutor(len(contents)) as pool:
            return list(pool.map(lambda content: chat(url, content), contents))
    finally:
        runner.stop()


def _hf_texts(folder, processor, contents: list, **template) -> list[str]:
    from transformers import AutoModelForImageTextToText

    hf = AutoModelForImageTextToText.from_pretrained(folder).eval()
    texts = []
    for content in contents:
        inputs = processor.apply_chat_template(
            [{"role": "user", "content": content}],
            tokenize=True,
            return_dict=True,
            add_generation_prompt=True,
            return_tensors="pt",
            **template,
        )
        with torch.no_grad():
            out = hf.generate(**inputs, do_sample=False, max_new_tokens=TOKENS, pad_token_id=0)
        texts.append(processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return texts


@pytest.mark.parametrize("model_type", ["qwen2_vl", "mllama", "gemma3"])
def test_other_layouts_serve_images_and_text_as_hf(model_type, tmp_path):
    """Multimodal rotary positions (Qwen2-VL), cross-attention image slots (Mllama), bidirectional image blocks
    (Gemma 3): an image chat and a text-only chat at once, each equal to HF's greedy continuation."""
    folder, processor = _tiny_with_template(model_type, tmp_path / model_type)
    img = image(4, (48, 40))
    answers = _serve_chats(
        folder, [[{"type": "text", "text": "Look:"}, {"type": "image_url", "image_url": {"url": data_url(img)}}], "Tell me"]
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    expected = _hf_texts(
        folder, processor, [[{"type": "text", "text": "Look:"}, {"type": "image", "image": img}], [{"type": "text", "text": "Tell me"}]]
    )
    assert [a.json()["choices"][0]["message"]["content"] for a in answers] == expected


@pytest.mark.parametrize("model_type", ["mllama", "gemma3", "idefics3"])
def test_two_images_in_one_chat(model_type, tmp_path, tiny_model_dir):
    """Two images in one chat equal HF (the processor gets them as HF's chat path gives them: one list per
    conversation); Mllama takes them with two image slots per request (--max_num_images 2) and refuses a third."""
    folder, processor = _tiny_with_template(model_type, tmp_path / model_type)
    images = [image(5, (40, 40)), image(6, (30, 50))]
    parts = [{"type": "image_url", "image_url": {"url": data_url(img)}} for img in images]
    content = [parts[0], {"type": "text", "text": "and"}, parts[1]]
    flags = ["--max_num_images", "2"] if model_type == "mllama" else []
    answers = _serve_chats(folder, [content, [*content, parts[0]]] if flags else [content], *flags)
    assert answers[0].status_code == 200, answers[0].text
    expected = _hf_texts(
        folder, processor, [[{"type": "image", "image": images[0]}, {"type": "text", "text": "and"}, {"type": "image", "image": images[1]}]]
    )
    assert answers[0].json()["choices"][0]["message"]["content"] == expected[0]
    if flags:
        assert answers[1].status_code == 400 and "at most 2 per request (--max_num_images)" in answers[1].json()["error"]["message"]
        with pytest.raises(ValueError, match="--img_size and --max_num_images are for vision-language models"):
            build_from_args(parse_args(["--model_name", str(tiny_model_dir("llama")), "--max_num_images", "2"]))


def _black_png(width: int, height: int) -> bytes:
    """A one-bit PNG: a few KB that decode to width x height x 3 bytes of RGB."""
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_bomb() -> bytes:
    """A 12000 x 12000 one-bit PNG: 23 KB that decode to 432 MB of RGB."""
    return _black_png(12000, 12000)


def test_images_the_server_will_not_hold_or_fetch(server, image_host):
    """Bounded images, bounded fetches: each refused with a 400 that says what to do, and the server keeps serving."""
    from QEfficient.serving.vision_language import read_image

    def refused_parts(parts: list) -> str:
        r = chat(server, parts)
        assert r.status_code == 400, r.text
        return r.json()["error"]["message"]

    def refused(url: str) -> str:
        return refused_parts([{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "hi"}])

    assert "pixels" in refused("data:image/png;base64," + base64.b64encode(_png_bomb()).decode())
    assert "sides at most" in refused(data_url(image(8, (2, 400))))
    assert "not an image the server can read" in refused("data:image/png;base64," + base64.b64encode(b"P6\nR0 1\n255\n").decode())
    assert "not a valid URL" in refused("http://[::1/x.png")
    assert "could not fetch" in refused("http://127.0.0.1:abc/x.png")
    assert "not http(s)" in refused(f"{image_host}/redirect?to=ftp://user:pw@127.0.0.1:{free_port()}/x.png")
    assert "is not allowed" in refused(f"{image_host}/redirect?to=file:///etc/passwd")  # urllib's own check
    many = [{"type": "image_url", "image_url": {"url": f"{image_host}/cat.png"}}] * 17
    r = chat(server, many)
    assert r.status_code == 400 and "more than 16 image(s)" in r.json()["error"]["message"]
    big = "data:image/png;base64," + base64.b64encode(_black_png(6000, 6000)).decode()  # 36 M pixels each, 64 M per request
    assert "for all the images of a request" in refused_parts([{"type": "image_url", "image_url": {"url": big}}] * 2)
    long_text = {"type": "text", "text": "word " * 60}  # fits alone, not with the image's 16 tokens
    message = refused_parts([{"type": "image_url", "image_url": {"url": data_url(image(1))}}, long_text])
    assert "(image tokens included)" in message and "context is 96 tokens" in message
    r = loopback_http.post(f"{server}/v1/completions", json={"prompt": "<image> what?", "max_tokens": 4}, timeout=60)
    assert r.status_code == 400 and "send images as 'image_url' parts of a chat message" in r.json()["error"]["message"], r.text
    assert "not in an image format" in refused("data:image/png;base64," + base64.b64encode(b"plain text").decode())
    for scored in ({"echo": True, "logprobs": 1}, {"prompt_logprobs": 0}):  # a prompt's logprobs: not on this server
        r = loopback_http.post(f"{server}/v1/completions", json={"prompt": "what?", "max_tokens": 2, **scored}, timeout=60)
        assert r.status_code == 400 and "does not compute a prompt's logprobs" in r.json()["error"]["message"], r.text
    start = time.monotonic()
    with pytest.raises(Exception, match="not received within 1 s"):
        read_image(f"{image_host}/slow.png", "the image", timeout=1.0)
    assert time.monotonic() - start < 3
    assert "larger than 20971520 bytes" in refused(f"{image_host}/huge.png")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1400, 1300, 3), np.uint8))
    photo = data_url(noise)  # a body over the text server's 4 MiB: taken here
    assert len(photo) > 4 * 1024 * 1024
    assert chat(server, [{"type": "image_url", "image_url": {"url": photo}}, {"type": "text", "text": "hi"}]).status_code == 200
    r = chat(server, [{"type": "image_url", "image_url": {"url": photo + "A" * (33 * 1024 * 1024 - len(photo))}}])
    assert r.status_code == 413 and "larger than this server's limit of 33554432 bytes" in r.json()["error"]["message"]
    assert loopback_http.get(f"{server}/health").json()["status"] == "ok"


def test_data_url_spellings_redirects_and_a_tool_call_turn(server, llava, image_host):
    """Upper-case scheme, line breaks and the URL-safe alphabet in base64, an http redirect to the image, and an
    assistant turn without content: all taken, as vLLM takes them."""
    img = image(9, (36, 36))
    encoded = base64.urlsafe_b64encode(png(img)).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    r = chat(server, [{"type": "image_url", "image_url": {"url": "DATA:image/png;BASE64," + wrapped}}])
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == hf_chat_text(
        llava, [{"role": "user", "content": [{"type": "image", "image": img}]}]
    )
    r = chat(server, [{"type": "image_url", "image_url": f"{image_host}/redirect?to={image_host}/cat.png"}])  # a plain string, too
    assert r.status_code == 200, r.text
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
    body = {"messages": messages, "max_tokens": 3, "temperature": 0}
    assert loopback_http.post(f"{server}/v1/chat/completions", json=body, timeout=60).status_code == 200


def test_a_chat_template_from_the_command_line(tmp_path, tiny_model_dir):
    """--chat_template (a file, or the template itself) replaces a missing or unwanted template, for a
    vision-language model's processor and for a text model's tokenizer; a broken one fails at start."""
    folder = build_llava(tmp_path / "llava")  # its processor has no chat template
    template_file = tmp_path / "llava.jinja"
    template_file.write_text(CHAT_TEMPLATE)
    img = image(10)
    content = [{"type": "image_url", "image_url": {"url": data_url(img)}}, {"type": "text", "text": "What is this?"}]
    (answer,) = _serve_chats(folder, [content], "--chat_template", str(template_file))
    assert answer.status_code == 200, answer.text
    processor = AutoProcessor.from_pretrained(folder)
    expected = _hf_texts(
        folder, processor, [[{"type": "image", "image": img}, {"type": "text", "text": "What is this?"}]], chat_template=CHAT_TEMPLATE
    )
    assert answer.json()["choices"][0]["message"]["content"] == expected[0]

    llama = tiny_model_dir("llama")
    inline = "{% for m in messages %}<<{{ m.content }}>>{% endfor %}"
    args = parse_args(
        ["--model_name", str(llama), "--prefill_seq_len", "8", "--ctx_len", "64", "--full_batch_size", "1", "--chat_template", inline]
    )
    app, runner = build_from_args(args)
    try:
        with serve_on_loopback(app, log_level="critical") as url:
            body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0}
            r = loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    finally:
        runner.stop()
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] == len(app.state.tokenizer("<<hi>>")["input_ids"])
    for bad in ("{% if %}", str(tmp_path / "missing.jinja")):
        with pytest.raises(SystemExit):
            parse_args(["--chat_template", bad])


def test_bad_serving_options_and_templates_fail_at_start(tmp_path):
    """Sizes and image counts below 1, a template that raises on one message, and one that drops the image
    placeholder: each stops the server at start with what is wrong, before the first request."""
    folder = build_llava(tmp_path / "llava")
    base = ["--model_name", str(folder), "--ctx_len", "64", "--full_batch_size", "1", "--num_cores", "1"]
    for flag in ("--img_size", "--max_num_images"):
        with pytest.raises(ValueError, match=f"{flag[2:]} must be a positive"):
            build_from_args(parse_args([*base, flag, "0"]))
    with pytest.raises(SystemExit):
        parse_args([*base, "--chat_template", "{{ raise_exception('no') }}"])
    with pytest.raises(ValueError, match="does not write the image placeholder '<image>'"):
        build_from_args(parse_args([*base, "--chat_template", "{% for m in messages %}{{ m.role }}{% endfor %}"]))
    for extra in (["--prompt_lookup_num_tokens", "3"], ["--lora", f"a={tmp_path}"], ["--img_size", "100000"]):
        message = "without LoRA adapters or speculative decoding" if extra[0] != "--img_size" else "larger than any vision encoder"
        with pytest.raises(ValueError, match=message):
            build_from_args(parse_args([*base, *extra]))


TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "integer", "minimum": -12, "maximum": 12}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}


def test_tool_calls_with_an_image(llava, served):
    """A vision-language model's chat takes tools as a text model's does: a forced call is held to the tool's schema,
    streamed as written (the pieces add up to the unstreamed arguments); the tools and a tool-call turn reach the
    processor's template; with --tool_call_parser (vLLM's flags) "auto" is served, the model's text its answer, which
    --reasoning_parser reads as its thinking, in chat and in the Responses API."""
    import json

    url = served[0]
    content = [{"type": "image_url", "image_url": {"url": data_url(image(3))}}, {"type": "text", "text": "What time is it?"}]
    body = {"messages": [{"role": "user", "content": content}], "tools": [TIME_TOOL], "max_tokens": 24, "temperature": 0}
    named = {**body, "tool_choice": {"type": "function", "function": {"name": "get_time"}}}
    answer = loopback_http.post(f"{url}/v1/chat/completions", json=named, timeout=120).json()["choices"][0]
    (call,) = answer["message"]["tool_calls"]
    assert call["function"]["name"] == "get_time" and -12 <= json.loads(call["function"]["arguments"])["zone"] <= 12
    with loopback_http.stream("POST", f"{url}/v1/chat/completions", json={**named, "stream": True}, timeout=120) as r:
        deltas = [json.loads(x[6:])["choices"][0]["delta"] for x in r.iter_lines() if x.startswith("data: {")]
    assert "".join(c["function"]["arguments"] for d in deltas for c in d.get("tool_calls", [])) == call["function"]["arguments"]
    turn = {"role": "assistant", "content": None, "tool_calls": [{**call, "function": {**call["function"]}}]}
    again = {**body, "messages": [*body["messages"], turn, {"role": "tool", "content": "12:00"}], "max_tokens": 3, "tool_choice": "none"}
    r = loopback_http.post(f"{url}/v1/chat/completions", json=again, timeout=120)
    assert r.status_code == 200, r.text
    r = loopback_http.post(f"{url}/v1/chat/completions", json=body, timeout=120)  # "auto" without a parser: what to send
    assert r.status_code == 400 and r.json()["error"]["param"] == "tool_choice"
    args = ["--model_name", str(llava), "--prefill_seq_len", "8", "--ctx_len", "96", "--full_batch_size", "2", "--num_cores", "1"]
    parsers = ["--enable_auto_tool_choice", "--tool_call_parser", "hermes", "--reasoning_parser", "deepseek_r1"]
    app, runner = build_from_args(parse_args([*args, *parsers]))
    try:
        with serve_on_loopback(app, log_level="critical") as parsed:
            r = loopback_http.post(f"{parsed}/v1/chat/completions", json={**body, "max_tokens": TOKENS}, timeout=120)
            assert r.status_code == 200, r.text
            plain = loopback_http.post(f"{url}/v1/chat/completions", json={**body, "tools": None, "max_tokens": TOKENS}, timeout=120)
            text = plain.json()["choices"][0]["message"]["content"]
            message = r.json()["choices"][0]["message"]  # deepseek_r1 reads an answer without tags as thinking cut short
            assert (message["reasoning"], message["content"]) == (text, None)
            parts = [
                {"type": "input_image", "image_url": content[0]["image_url"]["url"]},
                {"type": "input_text", "text": content[1]["text"]},
            ]
            request = {"input": [{"role": "user", "content": parts}], "max_output_tokens": TOKENS, "temperature": 0}
            response = loopback_http.post(f"{parsed}/v1/responses", json=request, timeout=120).json()  # OpenAI's Responses API, an image in
            assert [(item["type"], item["content"][0]["text"]) for item in response["output"]] == [("reasoning", text)]
    finally:
        runner.stop()
