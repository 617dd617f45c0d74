"""Image encoders through QEFFAutoModel (which gives a QEFFAutoModelForImageFeatureExtraction for a model that reads
pixels) and QEFFAutoModelForImageClassification: ViT, DINOv2 with registers (its position table resized by antialiased
bicubic interpolation, which has no ONNX export: a constant of the graph at the compiled size), ResNet, ConvNeXt and
Swin as tiny random models; the last hidden state and the logits equal transformers' within 1e-4 over a batch larger
than the compiled one. A sweep of transformers' image-classification types with a tiny config each, run once by hand,
is in the README."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForImageClassification,
    ConvNextConfig,
    Dinov2WithRegistersConfig,
    ResNetConfig,
    SwinConfig,
    ViTConfig,
)

from QEfficient import QEFFAutoModel, QEFFAutoModelForImageClassification, QEFFAutoModelForImageFeatureExtraction

_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, patch_size=8)
CONFIGS = {
    "vit": lambda: ViTConfig(**_VIT, image_size=32),
    # trained at 64, its processor crops 32: the table is resized, and compile() reads the size from the processor
    "dinov2_with_registers": lambda: Dinov2WithRegistersConfig(**_VIT, image_size=64),
    "resnet": lambda: ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"),
    "convnext": lambda: ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
    "swin": lambda: SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=4),
}


def _saved(auto, model_type: str, folder, **config):
    settings = CONFIGS[model_type]()
    for key, value in config.items():
        setattr(settings, key, value)
    torch.manual_seed(0)
    hf = auto.from_config(settings).eval()
    hf.save_pretrained(folder)
    if model_type == "dinov2_with_registers":
        (folder / "preprocessor_config.json").write_text(json.dumps({"do_center_crop": True, "crop_size": {"height": 32, "width": 32}}))
    return hf


@pytest.mark.parametrize("model_type", list(CONFIGS))
def test_image_encoders_and_classifiers_equal_transformers(model_type, tmp_path):
    pixels = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    hf = _saved(AutoModel, model_type, tmp_path / "base")
    with torch.no_grad():
        expected = hf(pixel_values=pixels).last_hidden_state.numpy()
    model = QEFFAutoModel.from_pretrained(tmp_path / "base")
    assert isinstance(model, QEFFAutoModelForImageFeatureExtraction)
    model.compile(img_size=None if model_type == "dinov2_with_registers" else 32, batch_size=2, num_cores=1)
    np.testing.assert_allclose(model.generate({"pixel_values": pixels})["output"], expected, atol=1e-4, rtol=0)

    hf = _saved(AutoModelForImageClassification, model_type, tmp_path / "classifier", num_labels=3)
    with torch.no_grad():
        expected = hf(pixel_values=pixels).logits
    classifier = QEFFAutoModelForImageClassification.from_pretrained(tmp_path / "classifier")
    classifier.compile(img_size=32, num_cores=1)
    got = classifier.generate({"pixel_values": pixels})["logits"]
    assert isinstance(got, torch.Tensor) and got.shape == (3, 3)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4, rtol=0)


def test_pooling_int8_and_bad_inputs(tmp_path):
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    hf = _saved(AutoModel, "vit", tmp_path)
    with torch.no_grad():
        hidden = hf(pixel_values=pixels).last_hidden_state.numpy()
    for pooling, expected in (("cls", hidden[:, 0]), ("mean", hidden.mean(1))):
        model = QEFFAutoModel.from_pretrained(tmp_path, pooling=pooling)
        model.compile(num_cores=1)
        np.testing.assert_allclose(model.generate({"pixel_values": pixels})["output"], expected, atol=1e-4, rtol=0)
    quantized = QEFFAutoModel.from_pretrained(tmp_path).compile(num_cores=1, mxfp6_matmul=True)  # int8 GEMMs
    assert quantized != model.qpc_path
    with pytest.raises(ValueError, match=r"compiled for 32x32"):
        model.generate({"pixel_values": torch.rand(1, 3, 48, 48)})
    with pytest.raises(ValueError, match=r"pixel_values must be \[images, 3, height, width\]"):
        model.generate({"pixel_values": torch.rand(2, 1, 32, 32)})
    for size in (32.0, "32"):  # (a float was a TypeError from tuple())
        with pytest.raises(ValueError, match="img_size must be a positive integer or \\(height, width\\)"):
            model.compile(img_size=size, num_cores=1)
    with pytest.raises(ValueError, match="QEFFAutoModelForImageFeatureExtraction"):
        QEFFAutoModel(hf)  # the text encoder class, given an image model directly
    _saved(AutoModel, "resnet", tmp_path / "resnet")
    with pytest.raises(ValueError, match="load it without pooling"):
        QEFFAutoModel.from_pretrained(tmp_path / "resnet", pooling="mean").compile(img_size=32, num_cores=1)


def test_other_image_models_and_servers(tmp_path):
    """A distilled DeiT's classifier (...WithTeacher: the mean of its two heads), ViT at a size other than its config's
    (its table resized, as transformers does when asked), ViT-MAE refused (random patches on every call), and the
    servers, which take text, refuse an image encoder and its artifact saying so."""
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher, ViTMAEConfig, ViTMAEModel, ViTModel

    from QEfficient.cloud.serve import build_from_args
    from QEfficient.cloud.serve_args import parse_args

    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    DeiTForImageClassificationWithTeacher(DeiTConfig(**_VIT, image_size=32, num_labels=3)).save_pretrained(tmp_path / "deit")
    hf = DeiTForImageClassificationWithTeacher.from_pretrained(tmp_path / "deit").eval()
    with torch.no_grad():
        expected = hf(pixel_values=pixels).logits.numpy()
    model = QEFFAutoModelForImageClassification.from_pretrained(tmp_path / "deit")
    model.compile(num_cores=1)
    np.testing.assert_allclose(model.generate({"pixel_values": pixels})["logits"].numpy(), expected, atol=1e-4, rtol=0)

    hf = _saved(AutoModel, "vit", tmp_path / "vit")
    wide = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(pixel_values=wide, interpolate_pos_encoding=True).last_hidden_state.numpy()
    model = QEFFAutoModel.from_pretrained(tmp_path / "vit")
    path = model.compile(img_size=48, num_cores=1)
    np.testing.assert_allclose(model.generate({"pixel_values": wide})["output"], expected, atol=1e-4, rtol=0)

    ViTMAEModel(ViTMAEConfig(**_VIT, image_size=32)).save_pretrained(tmp_path / "mae")
    with pytest.raises(ValueError, match="at random on every call"):
        QEFFAutoModel.from_pretrained(tmp_path / "mae")
    assert isinstance(hf, ViTModel)
    for argv in (["--qpc_path", str(path)], ["--model_name", str(tmp_path / "vit"), "--task", "embed"]):
        with pytest.raises(ValueError, match="image encoder|reads images"):
            build_from_args(parse_args([*argv, "--num_cores", "1"]))


@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_mobilevitv2_folding_equals_torch_fold(size):
    """MobileViTV2's patch folding as a reshape (transform/rewrites.py) equals ``nn.functional.fold`` of transformers'
    ``unfold`` layout, rows and columns past the last whole patch zeros as ``fold`` leaves them."""
    from types import SimpleNamespace

    from QEfficient.transform.rewrites import mobilevitv2_folding

    layer = SimpleNamespace(patch_height=2, patch_width=2)
    patches = torch.randn(2, 3, 4, (size[0] // 2) * (size[1] // 2))
    expected = torch.nn.functional.fold(patches.reshape(2, 12, -1), output_size=size, kernel_size=(2, 2), stride=(2, 2))
    assert torch.equal(mobilevitv2_folding(layer, patches, size), expected)


def test_convnext_compiles_at_the_square_its_processor_crops(tmp_path):
    """ConvNeXt's processor (shortest_edge with crop_pct) writes shortest_edge square images whatever config.image_size
    says: compile() runs there, so its output equals transformers' (it compiled at 224 and refused the 64x64 images)."""
    from PIL import Image
    from transformers import AutoModelForImageClassification, ConvNextConfig, ConvNextImageProcessor

    torch.manual_seed(0)
    config = ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=3)  # image_size: 224
    hf = AutoModelForImageClassification.from_config(config).eval()
    hf.save_pretrained(tmp_path)
    ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=0.875).save_pretrained(tmp_path)
    inputs = ConvNextImageProcessor.from_pretrained(tmp_path)(images=[Image.new("RGB", (100, 80), "teal")], return_tensors="pt")
    assert tuple(inputs["pixel_values"].shape[2:]) == (64, 64)
    model = QEFFAutoModelForImageClassification.from_pretrained(tmp_path)
    model.compile(num_cores=1)
    with torch.no_grad():
        expected = hf(**inputs).logits.numpy()
    np.testing.assert_allclose(np.asarray(model.generate(inputs)["logits"]), expected, atol=1e-4, rtol=0)
