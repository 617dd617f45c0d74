"""The image-classification sweep: each of transformers' image-classification types proven here, as a tiny config
built from its defaults (``tiny_image_config``), equals transformers' logits within 1e-4 through
QEFFAutoModelForImageClassification; every other type is listed with why it is not swept (marked ``sweep``: CI runs
it, ``-m 'not sweep'`` skips it locally)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

from QEfficient import QEFFAutoModelForImageClassification

PROVEN = [
    "beit", "cvt", "data2vec-vision", "dinov2", "dinov2_with_registers", "focalnet", "hiera", "ijepa", "mobilenet_v1",
    "mobilenet_v2", "mobilevit", "poolformer", "regnet", "resnet", "segformer", "swiftformer", "vit", "vit_msn",
]  # fmt: skip
_SHAPE_FAILS = "its defaults shrunk by this sweep's generic rule do not build or run in transformers itself"
NOT_SWEPT = {
    **dict.fromkeys(
        (
            "bit",
            "convnext",
            "convnextv2",
            "deit",
            "donut-swin",
            "hgnet_v2",
            "levit",
            "mobilevitv2",
            "pvt",
            "pvt_v2",
            "swin",
            "swinv2",
            "textnet",
            "pp_lcnet",
        ),
        _SHAPE_FAILS,
    ),  # fmt: skip
    **dict.fromkeys(("clip", "metaclip_2", "siglip", "siglip2", "efficientnet", "shieldgemma2"), "too large as this sweep builds it"),
    **dict.fromkeys(("dinat", "timm_wrapper"), "needs natten or timm, not installed here"),
    "imagegpt": "reads pixel clusters as input_ids, not pixel_values",
    "perceiver": _SHAPE_FAILS,
}
SHRINK = dict(
    num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8,
    hidden_sizes=[16, 32], depths=[1, 1], embed_dim=16, num_heads=[2, 2], embed_dims=[16, 32], num_channels=3,
)  # fmt: skip


def tiny_image_config(model_type: str):
    """``model_type``'s defaults with each size this rule knows shrunk (lists kept at their own length)."""
    defaults = AutoConfig.for_model(model_type)
    values = {}
    for key, small in SHRINK.items():
        if not hasattr(defaults, key):
            continue
        current = getattr(defaults, key)
        if isinstance(current, (list, tuple)) != isinstance(small, list):
            continue
        if isinstance(small, list) and len(current) != len(small):
            small = (
                [small[0] * (i + 1) for i in range(len(current))] if key in ("hidden_sizes", "embed_dims") else [small[0]] * len(current)
            )
        values[key] = small
    return AutoConfig.for_model(model_type, **values, num_labels=3)


def test_every_image_classification_type_is_swept_or_listed():
    assert set(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES) == set(PROVEN) | set(NOT_SWEPT)


@pytest.mark.sweep
@pytest.mark.parametrize("model_type", PROVEN)
def test_image_classification_type_equals_transformers(model_type, tmp_path):
    config = tiny_image_config(model_type)
    torch.manual_seed(0)
    AutoModelForImageClassification.from_config(config).save_pretrained(tmp_path)
    hf = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    size = getattr(config, "image_size", None) or 32
    size = size if isinstance(size, int) else size[0]  # Hiera's is [height, width]
    pixels = torch.rand(2, getattr(config, "num_channels", 3), size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(pixel_values=pixels).logits.numpy()
    model = QEFFAutoModelForImageClassification.from_pretrained(tmp_path)
    model.compile(img_size=size, num_cores=1)
    np.testing.assert_allclose(model.generate({"pixel_values": pixels})["logits"].numpy(), expected, atol=1e-4, rtol=0)
