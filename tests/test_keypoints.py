"""QEFFAutoModelForKeypointDetection: SuperPoint as a tiny random model (weights widened so that the scores follow the
image), its keypoints, scores, descriptors and mask equal to transformers' forward (keypoints and mask exactly, scores
and descriptors within 1e-4) for a batch of images at a size other than the export's; the processor's post-processing
takes the output as it is. QEFFAutoModelForKeypointMatching: SuperGlue over that SuperPoint, its matches equal to
transformers' exactly and their scores within 1e-5, for pairs batched past the compiled batch, images of two sizes, a
pair without keypoints and the processor's round trip; LightGlue and EfficientLoFTR are refused saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForKeypointDetection,
    AutoModelForKeypointMatching,
    EfficientLoFTRConfig,
    EfficientLoFTRForKeypointMatching,
    EfficientLoFTRImageProcessorPil,
    SuperGlueConfig,
    SuperGlueForKeypointMatching,
    SuperGlueImageProcessorPil,
    SuperPointConfig,
    SuperPointImageProcessor,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_KEYPOINT_DETECTION_MAPPING_NAMES, MODEL_FOR_KEYPOINT_MATCHING_MAPPING_NAMES
from transformers.models.efficientloftr.modeling_efficientloftr import EfficientLoFTRKeypointMatchingOutput

from QEfficient import QEFFAutoModelForKeypointDetection, QEFFAutoModelForKeypointMatching, QEFFEfficientLoFTRForKeypointMatching
from QEfficient.compile.ort_cpu import read_artifact
from QEfficient.serving.encoder_artifact import is_encoder_artifact
from QEfficient.transform.keypoints import DENSE_MATCHERS, KEYPOINT_DETECTORS, KEYPOINT_MATCHERS, UNSUPPORTED_KEYPOINT_MATCHERS
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


@pytest.fixture(scope="module")
def superglue(tmp_path_factory):
    folder = tmp_path_factory.mktemp("superglue")
    config = SuperGlueConfig(
        keypoint_detector_config=SuperPointConfig(**{**TINY, "max_keypoints": -1, "keypoint_threshold": 0.05}),
        hidden_size=16, keypoint_encoder_sizes=[8, 16],
        gnn_layers_types=["self", "cross"] * 2, num_attention_heads=2, sinkhorn_iterations=20,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = SuperGlueForKeypointMatching(config).eval()
    widen_weights(hf)
    hf.save_pretrained(folder)
    model = QEFFAutoModelForKeypointMatching.from_pretrained(folder)
    model.compile(batch_size=2, num_cores=1)  # three pairs: a full batch, then a short one
    return SuperGlueForKeypointMatching.from_pretrained(folder).eval(), model  # transformers' own, untouched


def _compare_matches(got, expected):
    np.testing.assert_array_equal(got.mask.numpy(), expected.mask.numpy())
    np.testing.assert_array_equal(got.matches.numpy(), expected.matches.numpy())
    np.testing.assert_allclose(got.matching_scores.numpy(), expected.matching_scores.numpy(), atol=1e-5)
    np.testing.assert_allclose(got.keypoints.numpy(), expected.keypoints.numpy(), atol=1e-6)


def test_every_keypoint_matching_type_runs_or_is_refused():
    assert set(MODEL_FOR_KEYPOINT_MATCHING_MAPPING_NAMES) == KEYPOINT_MATCHERS | DENSE_MATCHERS | set(UNSUPPORTED_KEYPOINT_MATCHERS)
    with torch.device("meta"), pytest.raises(NotImplementedError, match="stop early and prune"):
        QEFFAutoModelForKeypointMatching(AutoModelForKeypointMatching.from_config(AutoConfig.for_model("lightglue")))


@pytest.mark.parametrize("size", [(96, 80), (64, 112)])
def test_matches_equal_transformers(superglue, size):
    hf, model = superglue
    gray = torch.rand(3, 2, 1, *size, generator=torch.Generator().manual_seed(size[0]))
    gray[2, 1] = gray[2, 0]  # a pair of one image twice
    pixels = gray.expand(-1, -1, 3, -1, -1)
    with torch.no_grad():
        expected = hf(pixel_values=pixels)
    _compare_matches(model.generate({"pixel_values": pixels}), expected)
    _compare_matches(model.generate(pixels, runtime_ai100=False), expected)
    assert (expected.mask == 0).any()  # images of their own keypoint counts, padded to the most
    assert (expected.matches >= 0).sum() > 4 and (expected.matches[0] != expected.matches[1]).any()  # the images decide


def test_matching_threshold_is_read_at_run_time(superglue):
    hf, model = superglue
    gray = torch.rand(2, 2, 1, 96, 80, generator=torch.Generator().manual_seed(5))
    pixels = gray.expand(-1, -1, 3, -1, -1)
    with torch.no_grad():
        scores = hf(pixel_values=pixels).matching_scores
    passing = scores[scores > 0].unique()  # sorted
    threshold = float(passing[len(passing) // 2 - 1 : len(passing) // 2 + 1].mean())  # between two scores: about half pass
    hf.config.matching_threshold = model.config.matching_threshold = threshold
    try:
        with torch.no_grad():
            expected = hf(pixel_values=pixels)
        got = model.generate(pixels)
    finally:
        hf.config.matching_threshold = model.config.matching_threshold = 0.0
    _compare_matches(got, expected)
    assert 0 < (expected.matches >= 0).sum() < (scores > 0).sum()


def test_no_keypoints_and_the_processor_round_trip(superglue):
    hf, model = superglue
    flat = torch.zeros(1, 2, 3, 64, 64)
    decoders = (hf.keypoint_detector.keypoint_decoder, model.hf_model.keypoint_detector.keypoint_decoder)
    threshold = decoders[0].keypoint_threshold
    for decoder in decoders:  # scores are at most 1: no keypoint passes (the host reads transformers' decoder's rule)
        decoder.keypoint_threshold = 2.0
    try:
        with torch.no_grad():
            expected = hf(pixel_values=flat)
        got = model.generate({"pixel_values": flat})
    finally:
        for decoder in decoders:
            decoder.keypoint_threshold = threshold
    assert got.matches.shape == expected.matches.shape == (1, 2, 0) and got.matches.dtype == expected.matches.dtype
    _compare_matches(got, expected)
    processor = SuperGlueImageProcessorPil(size={"height": 64, "width": 80})
    images = [[np.random.default_rng(s).integers(0, 256, (50, 70, 3), dtype=np.uint8) for s in (1, 2)]]
    inputs = processor(images, return_tensors="pt")
    with torch.no_grad():
        want = processor.post_process_keypoint_matching(hf(**inputs), [[(50, 70), (50, 70)]])
    got = processor.post_process_keypoint_matching(model.generate(inputs), [[(50, 70), (50, 70)]])
    for a, b in zip(got, want):
        for name in ("keypoints0", "keypoints1", "matching_scores"):
            np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), atol=1e-4, err_msg=name)
    with pytest.raises(ValueError, match="pairs of images"):
        model.generate({"pixel_values": flat[0]})
    with pytest.raises(ValueError, match="at least 8 x 8"):
        model.generate({"pixel_values": flat[..., :6, :6]})


def assert_matches_equal_but_ties(got: torch.Tensor, expected: torch.Tensor, confidences: list[torch.Tensor]) -> torch.Tensor:
    """A dense matcher's matches equal transformers' but where its coarse confidences tie to float rounding. Drawn weights
    leave them within a millionth of each other: where a keypoint's best two (in its row, or in its match's column) tie,
    ONNX Runtime's kernels may pick the other one (one keypoint of 1,536 on an AMD EPYC). Returns where they are equal."""
    differ = np.argwhere(got.numpy() != expected.numpy())
    assert len(differ) <= expected.numel() // 100, differ
    for pair, image, keypoint in differ:
        confidence = confidences[pair] if image == 0 else confidences[pair].T
        matched = {int(got[pair, image, keypoint]), int(expected[pair, image, keypoint])} - {-1}
        best_two = [torch.topk(values, 2).values for values in [confidence[keypoint], *(confidence[:, j] for j in matched)]]
        assert any(top[1] >= top[0] * (1 - 1e-6) for top in best_two), (pair, image, keypoint, best_two)
    return torch.from_numpy(got.numpy() == expected.numpy())


def test_efficientloftr_matches_equal_transformers(tmp_path):
    """EfficientLoFTR, a semi-dense matcher, as one graph (the dynamo exporter's): its matches equal transformers' but where
    transformers' own confidences tie to float rounding, scores and refined keypoints within 1e-4, for pairs of different
    images and a shifted noisy copy, run pair by pair (as transformers on each pair alone); the processor's post-processing
    takes them as they are. Its weights are left as drawn (its coarse threshold at 0), which leaves dozens of mutual matches a pair."""
    config = EfficientLoFTRConfig(
        stage_num_blocks=[1, 1, 1], out_features=[16, 16, 32], stage_stride=[2, 1, 2], hidden_size=32, num_attention_layers=2,
        num_attention_heads=8, fine_kernel_size=4, fine_matching_slice_dim=4, coarse_matching_threshold=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    EfficientLoFTRForKeypointMatching(config).eval().save_pretrained(tmp_path)
    processor = EfficientLoFTRImageProcessorPil(size={"height": 64, "width": 64})
    processor.save_pretrained(tmp_path)
    hf = EfficientLoFTRForKeypointMatching.from_pretrained(tmp_path).eval()
    model = QEFFAutoModelForKeypointMatching.from_pretrained(tmp_path)
    assert isinstance(model, QEFFEfficientLoFTRForKeypointMatching)
    with pytest.raises(ValueError, match="mixes the pairs of a batch"):
        model.compile(batch_size=2, num_cores=1)
    model.compile(num_cores=1)  # at the processor's 64 x 64
    generator = torch.Generator().manual_seed(1)
    pixels = torch.rand(3, 2, 3, 64, 64, generator=generator)
    # a shifted copy with noise (an exact copy ties the dual softmax's maxima, which torch and ONNX Runtime break apart)
    pixels[1, 1] = torch.roll(pixels[1, 0], shifts=(8, 8), dims=(1, 2)) + 0.05 * torch.rand(3, 64, 64, generator=generator)
    confidences = []  # transformers' coarse confidences, pair by pair, as its mutual-nearest step reads them
    find_matches = hf._get_matches_from_scores

    def keep_confidences(scores: torch.Tensor):
        confidences.append(scores.flatten(1, 2).flatten(2)[0])
        return find_matches(scores)

    hf._get_matches_from_scores = keep_confidences
    with torch.no_grad():  # pair by pair: transformers' batched forward hands a pair another pair's match indices
        parts = [hf(pixel_values=pixels[i : i + 1]) for i in range(len(pixels))]
    del hf._get_matches_from_scores
    expected = EfficientLoFTRKeypointMatchingOutput(
        **{name: torch.cat([getattr(part, name) for part in parts]) for name in ("matches", "matching_scores", "keypoints")}
    )
    got = model.generate({"pixel_values": pixels})
    same = assert_matches_equal_but_ties(got.matches, expected.matches, confidences)
    np.testing.assert_allclose(got.matching_scores[same].numpy(), expected.matching_scores[same].numpy(), rtol=1e-4)
    np.testing.assert_allclose(got.keypoints[same].numpy(), expected.keypoints[same].numpy(), atol=1e-4)
    assert (expected.matches >= 0).sum(dim=(1, 2)).min() > 10  # every pair has matches to compare
    with torch.no_grad():  # the reason pairs run alone: batched, transformers' indices move between pairs
        assert not torch.equal(hf(pixel_values=pixels).matches, expected.matches)
    images = [[np.random.default_rng(s).integers(0, 256, (50, 70, 3), dtype=np.uint8) for s in (1, 2)]]
    inputs = processor(images, return_tensors="pt")
    with torch.no_grad():
        want = processor.post_process_keypoint_matching(hf(**inputs), [[(50, 70), (50, 70)]])
    for a, b in zip(processor.post_process_keypoint_matching(model.generate(inputs), [[(50, 70), (50, 70)]]), want):
        for name, tolerance in (("keypoints0", 1), ("keypoints1", 1), ("matching_scores", 1e-4)):  # keypoints: whole pixels
            np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), atol=tolerance, err_msg=name)
    one_channel = {"pixel_values": pixels[:, :, :1]}  # the first channel is what transformers reads
    assert_matches_equal_but_ties(model.generate(one_channel).matches, expected.matches, confidences)
    assert_matches_equal_but_ties(model.generate(one_channel, runtime_ai100=False).matches, expected.matches, confidences)
    with pytest.raises(ValueError, match="compiled for 64 x 64"):
        model.generate({"pixel_values": pixels[..., :32, :32]})
    with pytest.raises(ValueError, match="no server here takes from an artifact"):  # serve --qpc_path on a task's graph
        is_encoder_artifact(read_artifact(model.qpc_path))
