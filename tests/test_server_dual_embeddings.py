"""/v1/embeddings over a contrastive image-text model, as vLLM serves CLIP: ``serve --model_name`` on a tiny CLIP folder
(its processor: a byte-level BPE tokenizer and a CLIP image processor), on loopback. Texts as ``input`` and images as
``image_url`` parts of ``messages`` get transformers' get_text_features / get_image_features, L2-normalized, within
1e-5; bad requests get a 400 that says what to do."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.serving.tasks import pooling_task
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http
from tests.tiny_models import VOCAB, build_tokenizer

TEXTS = ["the cat sat on the mat", "a dog ran", "hello"]


def data_url(seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def tiny_clip(folder: Path) -> Path:
    """A tiny CLIP with its processor (a byte-level BPE tokenizer, a 32x32 image processor)."""
    tokenizer = build_tokenizer()
    text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, max_position_embeddings=24)
    text |= dict(vocab_size=VOCAB, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id, pad_token_id=0)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_server(tmp_path_factory):
    folder = tiny_clip(tmp_path_factory.mktemp("clip"))
    assert pooling_task(str(folder), None, "auto") == "embed"
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, str(folder), str(app.state.qpc_path)
    runner.stop()


def post(url: str, body: dict) -> httpx.Response:
    return loopback_http.post(f"{url}/v1/embeddings", json=body, timeout=120)


def normalized(x: torch.Tensor) -> np.ndarray:
    return (x / x.norm(dim=-1, keepdim=True)).numpy()


def test_texts_and_images_equal_transformers(clip_server):
    url, folder, _ = clip_server
    hf = CLIPModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    with torch.no_grad():
        expected_texts = np.concatenate(
            [normalized(hf.get_text_features(**processor.tokenizer(t, return_tensors="pt")).pooler_output) for t in TEXTS]
        )
        images = [Image.open(io.BytesIO(base64.b64decode(data_url(s).split(",", 1)[1]))).convert("RGB") for s in (1, 2)]
        pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
        expected_images = normalized(hf.get_image_features(pixel_values=pixels).pooler_output)

    answer = post(url, {"input": TEXTS})
    assert answer.status_code == 200, answer.text
    got = np.array([row["embedding"] for row in answer.json()["data"]])
    np.testing.assert_allclose(got, expected_texts, atol=1e-5, rtol=0)
    assert answer.json()["usage"]["prompt_tokens"] == sum(len(processor.tokenizer(t)["input_ids"]) for t in TEXTS)

    parts = [{"type": "image_url", "image_url": {"url": data_url(s)}} for s in (1, 2)]
    answer = post(url, {"messages": [{"role": "user", "content": parts}], "encoding_format": "base64"})
    assert answer.status_code == 200, answer.text
    got = np.stack([np.frombuffer(base64.b64decode(row["embedding"]), "<f4") for row in answer.json()["data"]])
    np.testing.assert_allclose(got, expected_images, atol=1e-5, rtol=0)
    # vLLM's use_activation false: the projections before normalization; embed_dtype float16, big-endian
    answer = post(url, {"messages": [{"role": "user", "content": parts}], "encoding_format": "base64", "use_activation": False})
    raw = np.stack([np.frombuffer(base64.b64decode(row["embedding"]), "<f4") for row in answer.json()["data"]])
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), expected_images, atol=1e-5, rtol=0)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1, atol=1e-3)
    answer = post(url, {"input": TEXTS, "encoding_format": "base64", "embed_dtype": "float16", "endianness": "big"})
    halves = np.stack([np.frombuffer(base64.b64decode(row["embedding"]), ">f2") for row in answer.json()["data"]])
    np.testing.assert_allclose(halves, expected_texts, atol=1e-3, rtol=0)


def test_bad_requests_say_what_to_do(clip_server):
    url, _, _ = clip_server
    image = [{"type": "image_url", "image_url": {"url": data_url(3)}}]
    cases = [
        ({"input": "a cat", "messages": [{"role": "user", "content": image}]}, "one of the two"),
        ({}, "one of the two"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a cat"}, *image]}]}, "send texts as 'input'"),
        ({"input": "a cat", "dimensions": 7}, "16 dimensions"),
        ({"input": "cat " * 40}, "more than the text tower's 24 positions"),
        ({"input": [[5, 100000]]}, "outside this model's vocabulary"),
        ({"input": "a cat", "truncate_prompt_tokens": 4}, "'truncate_prompt_tokens' is not applied by this server"),
        ({"input": "a cat", "normalize": False}, "'normalize' was removed (as in vLLM); use 'use_activation'"),  # (were answered
        ({"input": "a cat", "padding": "max_length"}, "'padding' other than"),  # as if not sent)
        ({"messages": [{"role": "user", "content": image}], "mm_processor_kwargs": {"crop_size": 8}}, "'mm_processor_kwargs' is not"),
    ]
    for body, message in cases:
        answer = post(url, body)
        assert answer.status_code == 400 and message in answer.json()["error"]["message"], (body, answer.text)
    folder = clip_server[1]  # the routes it has named, where options do not apply (it said /score, /rerank)
    with pytest.raises(ValueError, match=r"is served for text and image embeddings \(/v1/embeddings\): --chat_template do not"):
        build_from_args(parse_args(["--model_name", folder, "--chat_template", "{{ messages }}"]))


def test_the_artifacts_served_alone_answer_as_the_folder(tmp_path):
    """``serve --qpc_path`` on the text tower's artifact (which names the image tower's and keeps the processor) answers
    texts and images as the server on the folder does, after the folder is gone."""
    from starlette.testclient import TestClient

    folder = tiny_clip(tmp_path / "clip")
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    bodies = [
        {"input": TEXTS},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(s)}} for s in (1, 2)]}]},
    ]
    expected = [TestClient(app).post("/v1/embeddings", json=body).json() for body in bodies]
    qpc = str(app.state.qpc_path)
    runner.stop()
    shutil.rmtree(folder)
    app, runner = build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--model_name", "clip"]))
    client = TestClient(app)
    for body, answer in zip(bodies, expected, strict=True):
        got = client.post("/v1/embeddings", json={**body, "model": "clip"}).json()
        assert got["data"] == answer["data"] and got["usage"] == answer["usage"]
    assert client.post("/v1/embeddings", json={"input": "cat " * 40}).status_code == 400  # the compiled length bounds the texts
    runner.stop()
    image_tower = str((Path(qpc) / json.loads((Path(qpc) / "qconfig.json").read_text())["image_artifact"]).resolve())
    with pytest.raises(ValueError, match="served from its text artifact"):
        build_from_args(parse_args(["--qpc_path", image_tower, "--num_cores", "1"]))
    with pytest.raises(ValueError, match="--img_size"):  # compiled into the artifact
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--img_size", "64"]))
    with pytest.raises(ValueError, match=r"--ctx_len 1000 is more than .* reads \(\d+ tokens: its compiled length\)"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--ctx_len", "1000"]))


def test_the_text_artifact_names_its_own_image_tower(tmp_path, qeff_home):
    """Compiled for another image size, the text tower's artifact is another one (its companion is in its key); a text
    artifact copied away from its image tower's says so."""
    from QEfficient.models.dual_encoder import QEFFAutoModelForZeroShotImageClassification

    model = QEFFAutoModelForZeroShotImageClassification.from_pretrained(tiny_clip(tmp_path / "clip"))
    first = model.compile(num_cores=1)["text_qpc_path"]
    second = model.compile(num_cores=1, img_size=48)["text_qpc_path"]
    assert first != second
    assert QEFFAutoModelForZeroShotImageClassification.from_artifact(second).compiled_image_size == (48, 48)
    assert QEFFAutoModelForZeroShotImageClassification.from_artifact(first).compiled_image_size == (32, 32)
    alone = shutil.copytree(second, tmp_path / "elsewhere" / "a" / "b" / "text")
    with pytest.raises(FileNotFoundError, match="or copy them side by side"):
        QEFFAutoModelForZeroShotImageClassification.from_artifact(alone)
    shutil.copytree(model.qpc_paths["image_qpc_path"], alone.parent / "image")  # side by side: found by its fingerprint
    assert QEFFAutoModelForZeroShotImageClassification.from_artifact(alone).compiled_image_size == (48, 48)
    with pytest.raises(ValueError, match="another build's image graph"):  # the other size's tower
        QEFFAutoModelForZeroShotImageClassification.from_artifact(first, image_qpc_path=alone.parent / "image")
