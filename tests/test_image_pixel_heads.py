"""Image heads that answer pixels: super-resolution (QEFFAutoModelForImageToImage: Swin2SR), matting
(QEFFAutoModelForImageMatting: VitMatte, image and trimap in) and top-down pose estimation (QEFFAutoModelForPoseEstimation:
ViTPose). Each type of the three mappings is run as a tiny random model (weights widened so that the outputs follow the
image) equal to transformers within 1e-4 at a batch other than the export's, or is refused saying why; the ViTPose output
goes through the image processor's post-processing as it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForImageMatting,
    AutoModelForImageToImage,
    AutoModelForPoseEstimation,
    VitPoseImageProcessor,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_MATTING_MAPPING_NAMES,
    MODEL_FOR_IMAGE_TO_IMAGE_MAPPING_NAMES,
    MODEL_FOR_POSE_ESTIMATION_MAPPING_NAMES,
)

from QEfficient import QEFFAutoModelForImageMatting, QEFFAutoModelForImageToImage, QEFFAutoModelForPoseEstimation
from tests.helpers import widen_weights

_VITPOSE = dict(
    backbone_config=dict(
        model_type="vitpose_backbone", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=[64, 48],
        patch_size=[16, 16], out_indices=[2],
    ),
    num_labels=5,
)  # fmt: skip
HEADS = {
    "swin2sr": (
        AutoModelForImageToImage, QEFFAutoModelForImageToImage, "reconstruction", (3, 32, 32),
        dict(image_size=32, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4, upscale=2),
    ),
    "vitmatte": (
        AutoModelForImageMatting, QEFFAutoModelForImageMatting, "alphas", (4, 64, 64),
        dict(
            backbone_config=dict(
                model_type="vitdet", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64,
                pretrain_image_size=64, patch_size=16, num_channels=4, out_features=["stage2"],
            ),
            hidden_size=32, convstream_hidden_sizes=[8, 16, 16], fusion_hidden_sizes=[16, 16, 8, 8],
        ),
    ),
    "vitpose": (AutoModelForPoseEstimation, QEFFAutoModelForPoseEstimation, "heatmaps", (3, 64, 48), _VITPOSE),
}  # fmt: skip
NOT_SWEPT = {"sapiens2"}  # refused: its defaults build a model too large for a test


def tiny(model_type: str):
    auto_class, _, _, _, config = HEADS[model_type]
    torch.manual_seed(0)
    model = auto_class.from_config(AutoConfig.for_model(model_type, **config)).eval()
    widen_weights(model)
    if model_type == "vitmatte":  # its matting head ends near zero (alphas of 0.5 for any image) unless scaled
        with torch.no_grad():
            model.decoder.matting_head.matting_convs[-1].weight.mul_(1e4)
    return model


def test_every_type_runs_or_is_refused():
    for mapping in (MODEL_FOR_IMAGE_TO_IMAGE_MAPPING_NAMES, MODEL_FOR_IMAGE_MATTING_MAPPING_NAMES, MODEL_FOR_POSE_ESTIMATION_MAPPING_NAMES):
        assert set(mapping) <= set(HEADS) | NOT_SWEPT
    config = AutoConfig.for_model("vitpose", backbone_config=dict(model_type="vitpose_backbone", num_experts=6))
    with torch.device("meta"), pytest.raises(NotImplementedError, match="dataset_index"):
        QEFFAutoModelForPoseEstimation(AutoModelForPoseEstimation.from_config(config))


@pytest.mark.parametrize("model_type", list(HEADS))
def test_outputs_equal_transformers(model_type):
    _, qeff_class, output, shape, _ = HEADS[model_type]
    hf = tiny(model_type)
    pixels = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = getattr(hf(pixel_values=pixels), output).numpy()
    model = qeff_class(hf)
    if model_type == "swin2sr":
        with pytest.raises(ValueError, match="upscales images of any size"):
            model.compile(num_cores=1)
    model.compile(img_size=shape[1:], batch_size=2, num_cores=1)  # a full batch, then a short one
    got = getattr(model.generate({"pixel_values": pixels}), output).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1.0, np.abs(expected).max()), rtol=0)
    assert float(np.abs(expected[0] - expected[1]).max()) > 1e-2  # the image decides


def test_pose_post_processing_takes_the_output():
    hf = tiny("vitpose")
    processor = VitPoseImageProcessor(size={"height": 64, "width": 48})
    image = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes = [[[10.0, 20.0, 60.0, 90.0], [70.0, 5.0, 50.0, 100.0]]]  # two people: x, y, width, height
    inputs = processor(images=[image], boxes=boxes, return_tensors="pt")
    model = QEFFAutoModelForPoseEstimation(hf)
    model.compile(img_size=(64, 48), num_cores=1)
    with torch.no_grad():
        expected = processor.post_process_pose_estimation(hf(**inputs), boxes=boxes)
    got = processor.post_process_pose_estimation(model.generate(inputs), boxes=boxes)
    for a, b in zip(got[0], expected[0]):
        np.testing.assert_allclose(a["keypoints"].numpy(), b["keypoints"].numpy(), atol=1e-3)
        np.testing.assert_allclose(a["scores"].numpy(), b["scores"].numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="flip_pairs"):
        model.generate({**inputs, "flip_pairs": torch.tensor([[1, 2]])})
