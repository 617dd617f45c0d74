"""The image-classification sweep: each of transformers' image-classification types proven here, as a tiny config
built from its defaults or a shape of its own (``tiny_image_config``), equals transformers' logits within 1e-4 through
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
    # with a shape of their own (PER_TYPE)
    "bit", "clip", "convnext", "convnextv2", "donut-swin", "hgnet_v2", "metaclip_2", "mobilevitv2", "pvt", "pvt_v2",
    "siglip", "swin", "swinv2",
]  # fmt: skip
_SHAPE_FAILS = "its defaults shrunk by this sweep's rule do not build or run in transformers itself"
NOT_SWEPT = {
    **dict.fromkeys(("efficientnet", "levit", "perceiver", "pp_lcnet", "siglip2", "textnet"), _SHAPE_FAILS),
    "deit": _SHAPE_FAILS + " (tests/test_image_encoder.py runs its distilled classifier)",
    "shieldgemma2": "a Gemma 3 vision-language model as a classifier: too large as this sweep builds it",
    **dict.fromkeys(("dinat", "timm_wrapper"), "needs natten or timm, not installed here"),
    "imagegpt": "reads pixel clusters as input_ids, not pixel_values",
}
# convolutional nets with batch norm and ReLU6 whose tiny random shapes give nearly the same logits for any image, so
# their comparison proves less than the others'
NEAR_CONSTANT = frozenset({"mobilenet_v1", "mobilenet_v2", "mobilevit", "mobilevitv2"})
_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8)
_TEXT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
_SWIN = dict(image_size=32, patch_size=4, embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=4)  # block 2: shifted
_PVT = dict(image_size=32, num_encoder_blocks=2, depths=[1, 1], hidden_sizes=[8, 16], num_attention_heads=[1, 2], mlp_ratios=[2, 2])
PER_TYPE = {
    "bit": dict(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_groups=8, layer_type="bottleneck"),
    "convnext": dict(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
    "convnextv2": dict(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
    "swin": _SWIN,
    "donut-swin": _SWIN,
    "swinv2": _SWIN,
    "pvt": dict(_PVT, sequence_reduction_ratios=[2, 1], patch_sizes=[4, 2], strides=[4, 2]),
    "pvt_v2": dict(_PVT, sr_ratios=[2, 1], patch_sizes=[7, 3], strides=[4, 2]),
    "mobilevitv2": dict(image_size=64, patch_size=2, width_multiplier=0.25),
    "clip": dict(vision_config=_VIT, text_config=_TEXT),
    "siglip": dict(vision_config=_VIT, text_config=_TEXT),
    "metaclip_2": dict(vision_config=_VIT, text_config=_TEXT),
    "hgnet_v2": dict(
        stem_channels=[3, 8, 16],
        stage_in_channels=[16, 32],
        stage_mid_channels=[8, 16],
        stage_out_channels=[32, 64],
        stage_num_blocks=[1, 1],
        stage_downsample=[False, True],
        stage_light_block=[False, False],
        stage_kernel_size=[3, 3],
        stage_numb_of_layers=[2, 2],
        hidden_sizes=[32, 64],
        depths=[1, 1],
        embedding_size=16,
    ),  # fmt: skip
}
SHRINK = dict(
    num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8,
    hidden_sizes=[16, 32], depths=[1, 1], embed_dim=16, num_heads=[2, 2], embed_dims=[16, 32], num_channels=3,
)  # fmt: skip


def tiny_image_config(model_type: str):
    """``model_type``'s defaults with each size this rule knows shrunk (lists kept at their own length), or its own
    shape (``PER_TYPE``)."""
    if model_type in PER_TYPE:
        return AutoConfig.for_model(model_type, **PER_TYPE[model_type], num_labels=3)
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
    hf = AutoModelForImageClassification.from_config(config)
    with torch.no_grad():  # weights at a scale that keeps activations' (initialisations of 0.02 leave the logits nearly
        for weight in hf.parameters():  # independent of the image), zero or near-zero tensors (position tables, layer
            if weight.dim() >= 2:  # scales of 1e-6) drawn at random: every block enters the comparison
                weight.normal_(0, weight[0].numel() ** -0.5)
            elif weight.abs().max() < 1e-3:
                weight.normal_(0, 0.2)
    hf.save_pretrained(tmp_path)
    hf = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    size = getattr(config, "image_size", None) or getattr(getattr(config, "vision_config", None), "image_size", None) or 32
    size = size if isinstance(size, int) else size[0]  # Hiera's is [height, width]
    pixels = torch.rand(2, getattr(config, "num_channels", 3), size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(pixel_values=pixels).logits.numpy()
    model = QEFFAutoModelForImageClassification.from_pretrained(tmp_path)
    model.compile(img_size=size, num_cores=1)
    np.testing.assert_allclose(model.generate({"pixel_values": pixels})["logits"].numpy(), expected, atol=1e-4, rtol=0)
    if model_type not in NEAR_CONSTANT:
        assert np.abs(expected[0] - expected[1]).max() > 1e-3  # the logits follow the image
