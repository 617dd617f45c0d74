"""vLLM's /classify over an image classifier: ``serve --model_name`` on a ViT classifier folder with its image processor,
on loopback. Images sent as data: URLs in ``messages``; each image's probabilities equal transformers' softmax over
its logits (the folder's processor, then the model) within 1e-4, and bad requests get a 400 that says what to do."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageClassification, ViTConfig, ViTImageProcessor

from QEfficient.cloud.serve import build_from_args, parse_args
from QEfficient.serving.tasks import is_image_classifier, pooling_task
from tests.helpers import serve_on_loopback

LABELS = {0: "cat", 1: "dog", 2: "fox"}


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def random_image(seed: int, size: tuple[int, int]) -> Image.Image:
    """Noise around a colour of its own (noise alone looks alike to a tiny random model)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, 3) + rng.integers(-30, 31, (size[1], size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def image_parts(*images: Image.Image) -> list[dict]:
    return [{"type": "image_url", "image_url": {"url": data_url(image)}} for image in images]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vit-classifier")
    torch.manual_seed(4)  # weights under which these images get different labels
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, patch_size=8, image_size=32)
    config.num_labels, config.id2label, config.label2id = 3, LABELS, {v: k for k, v in LABELS.items()}
    model = AutoModelForImageClassification.from_config(config).eval()
    with torch.no_grad():  # random init is small; widen it so the probabilities spread
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    assert is_image_classifier(str(folder)) and pooling_task(str(folder), None, "auto") == "score"
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, str(folder)
    runner.stop()


def hf_logits(folder: str, images: list[Image.Image]) -> np.ndarray:
    processor = ViTImageProcessor.from_pretrained(folder)
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(**processor(images=images, return_tensors="pt")).logits.numpy()


def post(url: str, body: dict, route: str = "/classify") -> httpx.Response:
    return httpx.post(f"{url}{route}", json=body, timeout=120)


def test_images_classified_as_transformers(classifier):
    url, folder = classifier
    images = [random_image(1, (40, 50)), random_image(2, (64, 64)), random_image(3, (32, 20))]
    logits = hf_logits(folder, images)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    messages = [{"role": "user", "content": image_parts(*images[:2])}, {"role": "user", "content": image_parts(images[2])}]
    answer = post(url, {"model": folder, "messages": messages})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list" and body["model"] == folder and body["id"].startswith("classify-")
    assert [row["index"] for row in body["data"]] == [0, 1, 2]
    np.testing.assert_allclose([row["probs"] for row in body["data"]], expected, atol=1e-4, rtol=0)
    assert [row["label"] for row in body["data"]] == [LABELS[int(i)] for i in expected.argmax(1)]
    assert len(set(row["label"] for row in body["data"])) > 1  # the images, not the weights alone, decide
    assert all(row["num_classes"] == 3 for row in body["data"])

    one = post(url, {"messages": [{"role": "user", "content": image_parts(images[1])}], "use_activation": False}, "/v1/classify")
    assert one.status_code == 200, one.text
    np.testing.assert_allclose(one.json()["data"][0]["probs"], logits[1], atol=1e-4, rtol=0)
    assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == Path(folder).name


def test_bad_requests_say_what_to_do(classifier):
    url, _ = classifier
    image = image_parts(random_image(4, (32, 32)))
    cases = [
        ({"input": "a photo of a cat"}, "send them as 'image_url' parts"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, *image]}]}, "reads only images"),
        ({"messages": [{"role": "user", "content": ""}]}, "no 'image_url' part"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}]}, "base64"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, "data: URL"),
        ({"messages": [{"role": "user", "content": image}], "mm_processor_kwargs": {"size": 64}}, "mm_processor_kwargs"),
        ({"messages": [{"role": "user", "content": image * 17}]}, "At most 16 images"),
    ]
    for body, message in cases:
        answer = post(url, body)
        assert answer.status_code == 400, (body, answer.text)
        assert message in answer.json()["error"]["message"], answer.text
    wrong = post(url, {"model": "other", "messages": [{"role": "user", "content": image}]})
    assert wrong.status_code == 404 and "does not exist" in wrong.json()["error"]["message"]


def test_a_folder_without_its_image_processor_is_refused(tmp_path):
    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, patch_size=8, image_size=32)
    config.num_labels = 2
    AutoModelForImageClassification.from_config(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="preprocessor_config.json"):
        build_from_args(parse_args(["--model_name", str(tmp_path), "--num_cores", "1"]))
