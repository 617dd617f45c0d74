"""vLLM's /classify over image and audio classifiers: ``serve --model_name`` on a ViT classifier folder with its image
processor, and on a Wav2Vec2 audio classifier with its feature extractor, on loopback. Images as data: URLs, audio as
OpenAI's input_audio and vLLM's audio_url parts of ``messages``; each input's probabilities equal transformers' softmax
over its logits (the folder's processor, then the model) within 1e-4, and bad requests get a 400 that says what to do."""

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

from QEfficient.cloud.serve import build_from_args
from QEfficient.cloud.serve_args import parse_args
from QEfficient.serving.tasks import media_classifier, pooling_task
from tests.helpers import serve_on_loopback
from tests.loopback import loopback_http

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


def vit_classifier(folder: Path, processor: bool = True) -> Path:
    """A tiny ViT classifier of LABELS with its image processor (32x32)."""
    torch.manual_seed(4)  # weights under which these images get different labels
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, patch_size=8, image_size=32)
    config.num_labels, config.id2label, config.label2id = 3, LABELS, {v: k for k, v in LABELS.items()}
    model = AutoModelForImageClassification.from_config(config).eval()
    with torch.no_grad():  # random init is small; widen it so the probabilities spread
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(folder)
    if processor:
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = vit_classifier(tmp_path_factory.mktemp("vit-classifier"))
    assert media_classifier(str(folder)) == "images" and pooling_task(str(folder), None, "auto") == "score"
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
    return loopback_http.post(f"{url}{route}", json=body, timeout=120)


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
    assert loopback_http.get(f"{url}/v1/models").json()["data"][0]["id"] == Path(folder).name


def test_bad_requests_say_what_to_do(classifier):
    url, _ = classifier
    image = image_parts(random_image(4, (32, 32)))
    cases = [
        ({"input": "a photo of a cat"}, "send them as 'image_url' parts"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is it?"}, *image]}]}, "reads only images"),
        ({"messages": [{"role": "user", "content": ""}]}, "no 'image_url' part"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA"}}]}]}, "takes 'image_url'"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}]}, "base64"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, "data: URL"),
        ({"messages": [{"role": "user", "content": image}], "mm_processor_kwargs": {"size": 64}}, "mm_processor_kwargs"),
        ({"messages": [{"role": "user", "content": image * 17}]}, "At most 16 inputs"),
    ]
    for body, message in cases:
        answer = post(url, body)
        assert answer.status_code == 400, (body, answer.text)
        assert message in answer.json()["error"]["message"], answer.text
    wrong = post(url, {"model": "other", "messages": [{"role": "user", "content": image}]})
    assert wrong.status_code == 404 and "does not exist" in wrong.json()["error"]["message"]


def test_folders_the_server_cannot_serve_are_refused(tmp_path):
    """No image processor; one that keeps the aspect ratio (the graph runs one size); classifier keys of --hf_overrides.
    ShieldGemma 2's and ImageGPT's classifiers, which read a prompt or token ids, are not served as image classifiers."""
    from transformers import ImageGPTConfig, ImageGPTForImageClassification

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, patch_size=8, image_size=32)
    config.num_labels = 2
    AutoModelForImageClassification.from_config(config).save_pretrained(tmp_path)
    argv = ["--model_name", str(tmp_path), "--num_cores", "1"]
    with pytest.raises(ValueError, match=r"is a classifier of images \(/classify\): --full_batch_size do not apply"):
        build_from_args(parse_args([*argv, "--full_batch_size", "8"]))  # (a decoder's batching, given)
    with pytest.raises(ValueError, match="preprocessor_config.json"):
        build_from_args(parse_args(argv))
    ViTImageProcessor(size={"shortest_edge": 32}, do_center_crop=False).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="runs one image size"):
        build_from_args(parse_args(argv))
    overrides = '{"classifier_from_token": ["no", "yes"], "method": "from_2_way_softmax"}'
    with pytest.raises(ValueError, match="classifier keys are for a causal LM"):
        build_from_args(parse_args([*argv, "--hf_overrides", overrides]))
    ImageGPTForImageClassification(ImageGPTConfig(n_embd=16, n_layer=1, n_head=2, vocab_size=17, n_positions=16)).save_pretrained(
        tmp_path / "imagegpt"
    )
    assert media_classifier(str(tmp_path / "imagegpt")) is None


def test_an_image_classifiers_artifact_answers_as_its_folder(tmp_path):
    """``serve --qpc_path`` on an image classifier's artifact (what a Ray replica runs): /classify with the image
    processor and labels the artifact keeps, after the model's folder is deleted, equal to the server on the folder;
    other tasks, --pooler_config, an artifact without an image processor and an image encoder's are refused."""
    import shutil

    from fastapi.testclient import TestClient

    from QEfficient import QEFFAutoModelForImageClassification, QEFFAutoModelForImageFeatureExtraction
    from QEfficient.distributed.ray_serve import application_from_args

    folder = vit_classifier(tmp_path / "vit")
    images = image_parts(random_image(1, (40, 50)), random_image(2, (64, 64)), random_image(3, (32, 20)))
    body = {"messages": [{"role": "user", "content": images}]}
    requests = (body, body | {"use_activation": False})
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    expected = [TestClient(app).post("/classify", json=request).json()["data"] for request in requests]
    runner.stop()
    qpc = str(shutil.copytree(app.state.qpc_path, tmp_path / "artifact"))
    shutil.rmtree(folder)
    app, runner = build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--model_name", "vit"]))
    client = TestClient(app)
    got = [client.post("/v1/classify", json=request | {"model": "vit"}).json()["data"] for request in requests]
    assert got == expected and len(got[0]) == 3 and got[0] != got[1]
    bad = client.post("/classify", json={"input": "a cat"})
    assert bad.status_code == 400 and "image_url" in bad.json()["error"]["message"]
    runner.stop()
    with pytest.raises(ValueError, match="image classifier's artifact, served for /classify: --task embed does not apply"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--task", "embed"]))
    with pytest.raises(ValueError, match="image classifier's artifact, served for /classify: --pooler_config's use_activation"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--pooler_config", '{"use_activation": false}']))
    with pytest.raises(ValueError, match="served as it was compiled: --img_size does not apply"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--img_size", "64"]))
    wide = QEFFAutoModelForImageClassification.from_pretrained(vit_classifier(tmp_path / "wide")).compile(num_cores=1, img_size=64)
    with pytest.raises(ValueError, match="runs one image size"):  # in Ray's driver, not in every replica
        application_from_args(parse_args(["--ray", "--qpc_path", str(wide), "--ship_artifact", "off"]))
    bare = QEFFAutoModelForImageClassification.from_pretrained(vit_classifier(tmp_path / "bare", processor=False))
    with pytest.raises(ValueError, match="holds no image processor for a server"):
        build_from_args(parse_args(["--qpc_path", str(bare.compile(num_cores=1)), "--num_cores", "1"]))
    features = QEFFAutoModelForImageFeatureExtraction.from_pretrained(vit_classifier(tmp_path / "features"))
    with pytest.raises(ValueError, match="image model's artifact that no server here takes"):
        build_from_args(parse_args(["--qpc_path", str(features.compile(num_cores=1)), "--num_cores", "1"]))


def wav2vec2_classifier(folder: Path) -> Path:
    """A tiny Wav2Vec2 classifier of LABELS with its feature extractor."""
    from transformers import AutoModelForAudioClassification, Wav2Vec2Config, Wav2Vec2FeatureExtractor

    shape = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=40, conv_dim=(16,) * 7)
    config = Wav2Vec2Config(**shape, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, num_labels=3)
    config.id2label, config.label2id = LABELS, {v: k for k, v in LABELS.items()}
    torch.manual_seed(0)
    model = AutoModelForAudioClassification.from_config(config).eval()
    with torch.no_grad():  # logits of a few units, not hundredths
        model.projector.weight.mul_(10.0)
        model.classifier.weight.mul_(10.0)
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def audio_classifier(tmp_path_factory):
    folder = wav2vec2_classifier(tmp_path_factory.mktemp("wav2vec2-classifier"))
    assert media_classifier(str(folder)) == "audio" and pooling_task(str(folder), None, "auto") == "score"
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    with serve_on_loopback(app, log_level="critical") as url:
        yield url, str(folder)
    runner.stop()


def wav(samples: np.ndarray, rate: int = 16000, channels: int = 1) -> bytes:
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat((samples * 32767).astype("<i2"), channels).tobytes())
    return buffer.getvalue()


def ast_classifier(folder: Path) -> Path:
    """A tiny Audio Spectrogram Transformer classifier (a spectrogram of one size) with its feature extractor."""
    from transformers import ASTConfig, ASTFeatureExtractor, AutoModelForAudioClassification

    config = ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, max_length=64, num_mel_bins=32)
    config.num_labels, config.id2label, config.label2id = 3, LABELS, {v: k for k, v in LABELS.items()}
    torch.manual_seed(0)
    model = AutoModelForAudioClassification.from_config(config).eval()
    with torch.no_grad():  # logits of a few units
        model.classifier.dense.weight.mul_(10.0)
    model.save_pretrained(folder)
    ASTFeatureExtractor(num_mel_bins=32, max_length=64).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("builder", [wav2vec2_classifier, ast_classifier], ids=["raw-samples", "fixed-spectrogram"])
def test_an_audio_classifiers_artifact_answers_as_its_folder(tmp_path, builder):
    """``serve --qpc_path`` on an audio classifier's artifact (raw samples; a spectrogram of one size): /classify with the
    feature extractor and labels it keeps, after the model's folder is deleted, equal to the server on the folder;
    another task is refused."""
    import shutil

    from fastapi.testclient import TestClient

    from tests.test_ctranslate2_whisper import DATA, read_wav

    folder = builder(tmp_path / "model")
    speech = read_wav(DATA / "speech16k.wav")
    clips = [speech[:24000], speech[40000:52000]]
    parts = [{"type": "input_audio", "input_audio": {"data": base64.b64encode(wav(c)).decode(), "format": "wav"}} for c in clips]
    requests = [
        {"messages": [{"role": "user", "content": parts}]},
        {"messages": [{"role": "user", "content": parts[:1]}], "use_activation": False},
    ]
    app, runner = build_from_args(parse_args(["--model_name", str(folder), "--num_cores", "1"]))
    expected = [TestClient(app).post("/classify", json=request).json()["data"] for request in requests]
    runner.stop()
    qpc = str(shutil.copytree(app.state.qpc_path, tmp_path / "artifact"))
    if builder is wav2vec2_classifier:  # its encoder's artifact (hidden states): no server takes it alone
        from QEfficient import QEFFAutoModelForAudioFeatureExtraction

        encoder = QEFFAutoModelForAudioFeatureExtraction.from_pretrained(folder).compile(num_cores=1, seq_len=16000)
        with pytest.raises(ValueError, match="is an audio model's artifact that no server here takes"):
            build_from_args(parse_args(["--qpc_path", str(encoder), "--num_cores", "1"]))
    shutil.rmtree(folder)
    app, runner = build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1"]))
    got = [TestClient(app).post("/classify", json=request).json()["data"] for request in requests]
    runner.stop()
    assert got == expected and len(got[0]) == 2 and len(got[1]) == 1
    with pytest.raises(ValueError, match="an audio classifier's artifact, served for /classify: --task embed does not apply"):
        build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", "--task", "embed"]))


def test_audio_classified_as_transformers(audio_classifier):
    """Two clips of the test recording (16-bit WAV), one as OpenAI's input_audio, one as vLLM's audio_url (a stereo
    file: its channels averaged); each clip's probabilities equal transformers' on the same samples."""
    from transformers import AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

    from tests.test_ctranslate2_whisper import DATA, read_wav

    url, folder = audio_classifier
    speech = read_wav(DATA / "speech16k.wav")
    clips = [np.round(c * 32767) / 32767 for c in (speech[:24000], speech[40000:52000])]  # what 16 bits hold
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(folder)
    hf = AutoModelForAudioClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = np.stack([hf(**extractor(c, sampling_rate=16000, return_tensors="pt")).logits[0].numpy() for c in clips])
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    parts = [
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav(clips[0])).decode(), "format": "wav"}},
        {"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64," + base64.b64encode(wav(clips[1], channels=2)).decode()}},
    ]
    answer = post(url, {"messages": [{"role": "user", "content": parts}]})
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose([row["probs"] for row in answer.json()["data"]], expected, atol=1e-4, rtol=0)
    assert [row["label"] for row in answer.json()["data"]] == [LABELS[int(i)] for i in expected.argmax(1)]

    at_8k = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav(clips[0], rate=8000)).decode(), "format": "wav"}}
    cases = [
        ([at_8k], "sampled at 8000 Hz"),
        ([{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}}], "reads PCM WAV"),
        ([{"type": "input_audio", "input_audio": {"data": base64.b64encode(b"not a wav").decode()}}], "not a PCM WAV file"),
        ([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}], "takes 'input_audio' or 'audio_url'"),
        ([{"type": "input_audio", "input_audio": {"data": base64.b64encode(wav(np.zeros(40 * 16000))).decode()}}], "to 30 s"),
        ([{"type": "input_audio", "input_audio": {"data": base64.b64encode(wav(np.zeros(100))).decode()}}], "from 400 samples"),
    ]
    for content, message in cases:
        answer = post(url, {"messages": [{"role": "user", "content": content}]})
        assert answer.status_code == 400, (message, answer.text)
        assert message in answer.json()["error"]["message"], answer.text
