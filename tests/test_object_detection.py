"""Object detection: QEFFAutoModelForObjectDetection on tiny random models of transformers' detection mapping (DETR and
its family with a transformers ResNet backbone, Deformable DETR's multi-scale deformable attention, YOLOS, RT-DETR and
its v2, whose top queries are chosen from the encoder's anchors: the heads' weights widened so that scores do not tie), each
equal to transformers' logits and boxes within 1e-4; every other type refused or listed with why. The output is one
the image processors' post_process_object_detection takes as it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForObjectDetection, DetrImageProcessor
from transformers.models.auto.modeling_auto import MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES

from QEfficient import QEFFAutoModelForObjectDetection
from QEfficient.models.image_heads import UNSUPPORTED_DETECTION
from tests.helpers import widen_weights

_RESNET = dict(model_type="resnet", embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1] * 4, layer_type="basic")
_DETR = dict(
    use_timm_backbone=False, backbone_config=dict(_RESNET, out_features=["stage4"]), d_model=32, encoder_layers=1,
    decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37,
    num_queries=5, num_labels=3,
)  # fmt: skip
DETECTORS = {
    "detr": _DETR,
    "conditional_detr": _DETR,
    "table-transformer": _DETR,
    "dab-detr": dict(_DETR, hidden_size=32),
    "deformable_detr": dict(
        _DETR,
        backbone_config=dict(_RESNET, out_features=["stage2", "stage3", "stage4"]),
        num_feature_levels=3,
        encoder_n_points=2,
        decoder_n_points=2,
        decoder_layers=2,
    ),  # fmt: skip
    "yolos": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=[64, 64],
        patch_size=8,
        num_detection_tokens=5,
        num_labels=3,
    ),  # fmt: skip
}
_RT_DETR = dict(
    backbone_config=dict(_RESNET, model_type="rt_detr_resnet", out_features=["stage2", "stage3", "stage4"]), encoder_hidden_dim=32,
    encoder_in_channels=[16, 32, 64], decoder_in_channels=[32, 32, 32], d_model=32, encoder_layers=1, decoder_layers=2,
    encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, num_queries=5, num_labels=3,
    decoder_n_points=2,
)  # fmt: skip
DETECTORS |= {"rt_detr": _RT_DETR, "rt_detr_v2": _RT_DETR}
# two-stage: its proposals are the encoder's top-scoring positions, each box refined layer by layer
DETECTORS["deformable_detr-two-stage"] = dict(DETECTORS["deformable_detr"], two_stage=True, with_box_refine=True, two_stage_num_proposals=5)
_LARGE = "too large as its defaults build: needs a shape of its own"
NOT_SWEPT = {
    "lw_detr": "its defaults shrunk here do not build",
    **dict.fromkeys(("rf_detr", "d_fine", "deimv2", "pp_doclayout_v2", "pp_doclayout_v3", "pp_doclayout_v4"), _LARGE),
}


def tiny(name: str):
    torch.manual_seed(0)
    config = AutoConfig.for_model(name.split("-two-stage")[0], **DETECTORS[name])
    model = AutoModelForObjectDetection.from_config(config).eval()
    widen_weights(model)
    return model


def test_every_detection_type_runs_or_is_refused():
    swept = {name.split("-two-stage")[0] for name in DETECTORS}
    assert set(MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES) == swept | set(UNSUPPORTED_DETECTION) | set(NOT_SWEPT)
    config = AutoConfig.for_model("pp_ocrv5_mobile_det")
    with torch.device("meta"), pytest.raises(NotImplementedError, match="probability map of text regions"):
        QEFFAutoModelForObjectDetection(AutoModelForObjectDetection.from_config(config))


@pytest.mark.sweep
@pytest.mark.parametrize("model_type", list(DETECTORS))
def test_logits_and_boxes_equal_transformers(model_type):
    hf = tiny(model_type)
    pixels = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(pixel_values=pixels)
    model = QEFFAutoModelForObjectDetection(hf)
    model.compile(img_size=64, batch_size=3, num_cores=1)  # not the export's batch of 2: the batch axis is free
    out = model.generate({"pixel_values": pixels})
    for name in ("logits", "pred_boxes"):
        np.testing.assert_allclose(out[name].numpy(), getattr(expected, name).numpy(), atol=1e-4, rtol=0, err_msg=name)
    assert float((expected.logits[0] - expected.logits[1]).abs().max()) > 1e-3  # the image decides


def test_post_processing_takes_the_output():
    hf = tiny("detr")
    processor = DetrImageProcessor(size={"height": 64, "width": 64}, do_pad=False)
    images = [np.random.default_rng(s).integers(0, 256, (48, 80, 3), dtype=np.uint8) for s in (1, 2)]
    inputs = processor(images=images, return_tensors="pt")
    with torch.no_grad():
        expected = processor.post_process_object_detection(hf(**inputs), threshold=0.0, target_sizes=[(48, 80)] * 2)
    model = QEFFAutoModelForObjectDetection(hf)
    model.compile(img_size=64, num_cores=1)
    got = processor.post_process_object_detection(model.generate(inputs), threshold=0.0, target_sizes=[(48, 80)] * 2)
    padded = DetrImageProcessor(size={"height": 48, "width": 48}, do_pad=True, pad_size={"height": 64, "width": 64})
    with pytest.raises(ValueError, match="pixel_mask holds zeros"):
        model.generate(padded(images=images, return_tensors="pt"))
    for a, b in zip(got, expected):
        assert a["labels"].tolist() == b["labels"].tolist()
        np.testing.assert_allclose(a["scores"].numpy(), b["scores"].numpy(), atol=1e-5)
        np.testing.assert_allclose(a["boxes"].numpy(), b["boxes"].numpy(), atol=1e-3)


def test_a_graph_given_to_compile_runs_at_the_size_it_was_exported(tmp_path):
    """compile(onnx_path=...) of a graph traced at 64x96: that size by default, another refused (it was recorded as
    asked, and the artifact failed in ONNX Runtime)."""
    hf = tiny("detr")
    path = QEFFAutoModelForObjectDetection(hf).export(tmp_path / "wide", img_size=(64, 96))
    model = QEFFAutoModelForObjectDetection(hf)
    with pytest.raises(ValueError, match=r"was exported for 64x96 images, not 64x64: leave img_size out"):
        model.compile(onnx_path=path, img_size=64, num_cores=1)
    model.compile(onnx_path=path, num_cores=1)
    pixels = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(pixel_values=pixels).logits.numpy()
    np.testing.assert_allclose(model.generate({"pixel_values": pixels})["logits"].numpy(), expected, atol=1e-4, rtol=0)
