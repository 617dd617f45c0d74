"""QEFFAutoModelForKeypointDetection: SuperPoint as a tiny random model (weights widened so that the scores follow the
image), its keypoints, scores, descriptors and mask equal to transformers' forward (keypoints and mask exactly, scores
and descriptors within 1e-4) for a batch of images at a size other than the export's; the processor's post-processing
takes the output as it is."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AutoModelForKeypointDetection, SuperPointConfig, SuperPointImageProcessor
from transformers.models.auto.modeling_auto import MODEL_FOR_KEYPOINT_DETECTION_MAPPING_NAMES

from QEfficient import QEFFAutoModelForKeypointDetection
from QEfficient.transform.keypoints import KEYPOINT_DETECTORS
from tests.helpers import widen_weights

TINY = dict(encoder_hidden_sizes=[8, 8, 16, 16], decoder_hidden_size=32, descriptor_decoder_dim=16, max_keypoints=40)


def tiny(**extra):
    torch.manual_seed(0)
    model = AutoModelForKeypointDetection.from_config(SuperPointConfig(**{**TINY, **extra})).eval()
    widen_weights(model)
    return model


def test_every_keypoint_detection_type_runs():
    assert set(MODEL_FOR_KEYPOINT_DETECTION_MAPPING_NAMES) == KEYPOINT_DETECTORS


def _compare(got, expected):
    np.testing.assert_array_equal(got.mask.numpy(), expected.mask.numpy())
    np.testing.assert_allclose(got.keypoints.numpy(), expected.keypoints.numpy(), atol=1e-6)
    np.testing.assert_allclose(got.scores.numpy(), expected.scores.numpy(), atol=1e-4)
    np.testing.assert_allclose(got.descriptors.numpy(), expected.descriptors.numpy(), atol=1e-4)


def test_keypoints_equal_transformers():
    hf = tiny()
    model = QEFFAutoModelForKeypointDetection(hf)
    model.compile(batch_size=2, num_cores=1)  # three images: a full batch, then a short one
    gray = torch.rand(3, 1, 96, 80, generator=torch.Generator().manual_seed(1))  # not the export's 64 x 48
    pixels = gray.expand(-1, 3, -1, -1)  # the processor's grayscale, three times
    with torch.no_grad():
        expected = hf(pixel_values=pixels)
    got = model.generate({"pixel_values": pixels})
    _compare(got, expected)
    assert expected.mask.sum(1).tolist() == [40] * 3  # max_keypoints: the best 40 of each image
    unlimited = QEFFAutoModelForKeypointDetection(tiny(max_keypoints=-1))
    unlimited.compile(num_cores=1)
    with torch.no_grad():
        expected = unlimited.hf_model(pixel_values=pixels)
    _compare(unlimited.generate({"pixel_values": pixels}), expected)
    assert len(set(expected.mask.sum(1).tolist())) > 1  # every keypoint above the threshold: each image its own count
    odd = torch.rand(1, 1, 52, 70, generator=torch.Generator().manual_seed(2))  # one channel, sizes not multiples of 8
    with torch.no_grad():
        _compare(unlimited.generate({"pixel_values": odd}), unlimited.hf_model(pixel_values=odd))


def test_post_processing_takes_the_output():
    hf = tiny()
    processor = SuperPointImageProcessor(size={"height": 64, "width": 80})
    images = [np.random.default_rng(s).integers(0, 256, (50, 70, 3), dtype=np.uint8) for s in (1, 2)]
    inputs = processor(images, return_tensors="pt")
    model = QEFFAutoModelForKeypointDetection(hf)
    model.compile(num_cores=1)
    with torch.no_grad():
        expected = processor.post_process_keypoint_detection(hf(**inputs), [(50, 70)] * 2)
    got = processor.post_process_keypoint_detection(model.generate(inputs), [(50, 70)] * 2)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a["keypoints"].numpy(), b["keypoints"].numpy(), atol=1e-4)
        np.testing.assert_allclose(a["descriptors"].numpy(), b["descriptors"].numpy(), atol=1e-4)
