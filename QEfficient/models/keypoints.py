"""QEFFAutoModelForKeypointDetection: SuperPoint (transformers' ``AutoModelForKeypointDetection``), and
QEFFAutoModelForKeypointMatching: SuperGlue (``AutoModelForKeypointMatching``), its SuperPoint then its matcher.

SuperPoint's dense part (the
keypoint scores after non-maximum suppression and the descriptor map) is one graph, for images of any size; picking each
image's keypoints and sampling their descriptors runs on the host with numpy, in transformers' order: the scores above
``keypoint_threshold``, those away from the borders (transformers' rule, as it computes it), the ``max_keypoints`` best,
their descriptors read bilinearly from the map (``grid_sample``, align_corners) and L2-normalized.

``generate(processor(images, return_tensors="pt"))`` returns transformers' SuperPointKeypointDescriptionOutput
(``keypoints`` relative to the image, ``scores``, ``descriptors``, ``mask``), which the processor's
``post_process_keypoint_detection`` takes as it is.

SuperGlue: ``generate(processor(pairs_of_images, return_tensors="pt"))`` finds each image's keypoints as above (padded
to the batch's most, as transformers pads them), normalizes them to the image's size on the host, and runs the matcher
graph (transform/keypoints.py) on the pairs; it returns transformers' SuperGlueKeypointMatchingOutput (``matches``,
``matching_scores``, ``keypoints``, ``mask``), which the processor's ``post_process_keypoint_matching`` takes as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForKeypointDetection, AutoModelForKeypointMatching, PreTrainedModel
from transformers.models.superglue.modeling_superglue import SuperGlueKeypointMatchingOutput
from transformers.models.superpoint.modeling_superpoint import SuperPointKeypointDescriptionOutput

from QEfficient.compile.ort_cpu import warn_ignored_options
from QEfficient.export.graph_names import PIXEL_VALUES
from QEfficient.export.task_graph_specs import (
    DESCRIPTORS,
    KEYPOINT_DETECTOR_KIND,
    KEYPOINT_MATCHER_KIND,
    KEYPOINT_SCORES,
    KEYPOINTS,
    MASK,
    MATCHES,
    SCORES,
    KeypointGraphSpec,
    KeypointMatcherGraphSpec,
)
from QEfficient.generation.encoder_run import run_in_batches
from QEfficient.loading.hf_loader import load_config
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.models.base import GraphArtifact, QEFFBaseModel
from QEfficient.transform.keypoints import DENSE_MATCHERS, QEffSuperGlueMatcher, QEffSuperPoint
from QEfficient.utils.arrays import as_numpy

SCALE = 8  # SuperPoint's descriptor map is 8 times coarser than the image


def pick_keypoints(scores: np.ndarray, threshold: float, border: int, max_keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints [N, 2] as (x, y), their scores [N]) of one image's score map [H, W], as transformers' keypoint
    decoder picks them (its border test compares rows and columns with 8 times the map's size, as it does)."""
    height, width = scores.shape
    rows, columns = np.nonzero(scores > threshold)  # row-major, as torch.nonzero
    values = scores[rows, columns]
    keep = (rows >= border) & (rows < height * SCALE - border) & (columns >= border) & (columns < width * SCALE - border)
    rows, columns, values = rows[keep], columns[keep], values[keep]
    if 0 <= max_keypoints < len(values):  # torch's top k, so that ties pick as transformers' do
        best = torch.topk(torch.from_numpy(values), max_keypoints, dim=0).indices.numpy()
        rows, columns, values = rows[best], columns[best], values[best]
    return np.stack([columns, rows], axis=-1).astype(np.float32), values.astype(np.float32)


def sample_descriptors(keypoints: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
    """[N, D]: the descriptor map [D, h, w] read bilinearly at each keypoint (pixel coordinates), as transformers'
    ``grid_sample(align_corners=True)`` (zeros outside the map), each row then L2-normalized."""
    channels, height, width = descriptors.shape
    if not len(keypoints):
        return np.zeros((0, channels), np.float32)
    shifted = keypoints - SCALE / 2 + 0.5
    grid = shifted / np.array([width * SCALE - SCALE / 2 - 0.5, height * SCALE - SCALE / 2 - 0.5], np.float32) * 2 - 1
    x, y = (grid[:, 0] + 1) / 2 * (width - 1), (grid[:, 1] + 1) / 2 * (height - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    sampled = np.zeros((len(keypoints), channels), np.float32)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        weight = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        sampled[inside] += weight[inside, None] * descriptors[:, yi[inside], xi[inside]].T
    return sampled / np.maximum(np.linalg.norm(sampled, axis=-1, keepdims=True), 1e-12)


class QEFFAutoModelForKeypointDetection(QEFFBaseModel):
    """SuperPoint (module docstring).

    >>> model = QEFFAutoModelForKeypointDetection.from_pretrained("path/to/superpoint")
    >>> model.compile(num_cores=16)
    >>> out = model.generate(processor(images, return_tensors="pt"))
    >>> processor.post_process_keypoint_detection(out, [image.size[::-1] for image in images])
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.model = QEffSuperPoint(model.eval())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        return cls._from_auto(AutoModelForKeypointDetection, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> Path:
        """Export to ONNX (cached under QEFF_HOME); returns the path."""
        spec = KeypointGraphSpec()
        return self._export_one_graph(spec, spec.dummy_inputs(1), KEYPOINT_DETECTOR_KIND, export_dir, kwargs)

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        **compiler_options,
    ) -> Path:
        """Build the artifact for images of any size, ``batch_size`` of one size at a time."""
        return self._compile_graph(
            onnx_path,
            compile_dir,
            {"output_name": KEYPOINT_SCORES, "kind": KEYPOINT_DETECTOR_KIND},
            {},
            KeypointGraphSpec.specializations(batch_size),
            batch_size=batch_size,
            num_devices=num_devices,
            num_cores=num_cores,
            mxfp6_matmul=False,  # a small convolutional network: float32
            compiler_options=compiler_options,
        )

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> SuperPointKeypointDescriptionOutput:
        """Keypoints, scores, descriptors and mask for an image processor's output (or pixel_values [images, channels,
        height, width]; its first channel is read), as transformers' forward returns them."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        pixels = inputs[PIXEL_VALUES] if hasattr(inputs, "keys") else inputs
        pixels = np.ascontiguousarray(as_numpy(pixels), dtype=np.float32)
        pixels = pixels[None] if pixels.ndim == 3 else pixels
        if pixels.ndim != 4 or not len(pixels) or pixels.shape[2] < SCALE or pixels.shape[3] < SCALE:
            raise ValueError(f"pixel_values must be [images, channels, height, width] of at least 8 x 8, got {list(pixels.shape)}.")
        pixels = np.ascontiguousarray(pixels[:, :1])  # SuperPoint reads the first channel (the processor's gray, repeated)
        if not runtime_ai100:
            with torch.no_grad():
                scores, descriptors = (t.numpy() for t in self.model(torch.from_numpy(pixels)))
        else:
            session, params = self._graph_session("superpoint", self.qpc_path)
            scores, descriptors = run_in_batches(session, {PIXEL_VALUES: pixels}, params["batch_size"])
        rule = self.model.hf.keypoint_decoder  # transformers' decoder keeps its config's rules from its construction
        picked = [pick_keypoints(s, rule.keypoint_threshold, rule.border_removal_distance, rule.max_keypoints) for s in scores]
        count = max(len(values) for _, values in picked)
        keypoints = np.zeros((len(pixels), count, 2), np.float32)
        values = np.zeros((len(pixels), count), np.float32)
        sampled = np.zeros((len(pixels), count, descriptors.shape[1]), np.float32)
        mask = np.zeros((len(pixels), count), np.int32)
        for row, ((points, point_scores), dense) in enumerate(zip(picked, descriptors)):
            keypoints[row, : len(points)], values[row, : len(points)] = points, point_scores
            sampled[row, : len(points)] = sample_descriptors(points, dense)
            mask[row, : len(points)] = 1
        keypoints /= np.array([pixels.shape[3], pixels.shape[2]], np.float32)  # relative (x, y)
        return SuperPointKeypointDescriptionOutput(
            keypoints=torch.from_numpy(keypoints),
            scores=torch.from_numpy(values),
            descriptors=torch.from_numpy(sampled),
            mask=torch.from_numpy(mask),
        )


def normalized_keypoints(relative: np.ndarray, height: int, width: int) -> np.ndarray:
    """SuperGlue's ``normalize_keypoints`` of keypoints relative to the image (as SuperPoint gives them), in its float32
    steps: to pixels, less the image's centre, over 0.7 times its longer side."""
    size = np.array([width, height], np.float32)
    return (relative * size - size / 2) / (size.max() * np.float32(0.7))


class QEFFAutoModelForKeypointMatching(QEFFBaseModel):
    """SuperGlue (module docstring).

    >>> model = QEFFAutoModelForKeypointMatching.from_pretrained("path/to/superglue_outdoor")
    >>> model.compile(num_cores=16)
    >>> out = model.generate(processor([[image_a, image_b]], return_tensors="pt"))
    >>> processor.post_process_keypoint_matching(out, [[image_a.size[::-1], image_b.size[::-1]]])
    """

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        self.matcher = QEffSuperGlueMatcher(self.hf)
        self.detector = QEFFAutoModelForKeypointDetection(self.hf.keypoint_detector)
        self.qpc_paths: dict[str, Path] = {}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache (an EfficientLoFTR folder gives a
        QEFFEfficientLoFTRForKeypointMatching); other keyword arguments go to transformers."""
        folder, _ = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        if load_config(folder).model_type in DENSE_MATCHERS:
            from QEfficient.models.dense_matching import QEFFEfficientLoFTRForKeypointMatching

            return QEFFEfficientLoFTRForKeypointMatching.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        return cls._from_auto(AutoModelForKeypointMatching, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.hf

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> dict[str, Path]:
        """Export the keypoint detector's graph and the matcher's (each cached under QEFF_HOME)."""
        warn_ignored_options("export()", kwargs)
        spec, name = KeypointMatcherGraphSpec(), self.model_name.replace("/", "_")
        matcher_args = spec.dummy_inputs(self.config.hidden_size)
        matcher = self._export_spec_graph(self.matcher, spec, matcher_args, f"{name}-matcher", KEYPOINT_MATCHER_KIND, export_dir)
        self.onnx_path = {"detector": self.detector.export(export_dir), "matcher": matcher}
        return self.onnx_path

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        **compiler_options,
    ) -> dict[str, Path]:
        """Build the detector's artifact (images of any size) and the matcher's, for ``batch_size`` image pairs at a
        time: {"detector_qpc_path": ..., "matcher_qpc_path": ...}."""
        self._check_graphs_compile(onnx_path, num_devices, compiler_options, batch_size=batch_size, num_cores=num_cores)
        detector = self.detector.compile(compile_dir=compile_dir, batch_size=2 * batch_size, num_cores=num_cores)
        matcher = GraphArtifact(
            "matcher",
            self.export()["matcher"],
            {"kind": KEYPOINT_MATCHER_KIND, "output_name": MATCHES},
            {"batch_size": batch_size, "mxfp6_matmul": False},
            KeypointMatcherGraphSpec.specializations(batch_size),
        )
        self._compile_graphs([matcher], compile_dir, num_cores, main="matcher")
        self.qpc_paths = {"detector_qpc_path": detector, **self.qpc_paths}  # the detector's: its own class built it
        return self.qpc_paths

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> SuperGlueKeypointMatchingOutput:
        """Matches for an image processor's output of image pairs (or pixel_values [pairs, 2, channels, height,
        width]), as transformers' forward returns them (module docstring)."""
        if device_ids is not None and len(device_ids) > 1:
            warn_ignored_options("generate()", {"device_ids": device_ids})
        pixels = np.asarray(as_numpy(inputs[PIXEL_VALUES] if hasattr(inputs, "keys") else inputs), dtype=np.float32)
        if pixels.ndim != 5 or pixels.shape[1] != 2 or not len(pixels):
            raise ValueError(f"pixel_values must be pairs of images [pairs, 2, channels, height, width], got {list(pixels.shape)}.")
        pairs, _, channels, height, width = pixels.shape
        if height < SCALE or width < SCALE:
            raise ValueError(f"The images must be at least {SCALE} x {SCALE} pixels, got {height} x {width}.")
        if runtime_ai100 and "detector_qpc_path" not in self.qpc_paths:
            raise TypeError("Please run compile() before generate(), or pass runtime_ai100=False to run PyTorch.")
        found = self.detector.generate(pixels.reshape(pairs * 2, channels, height, width), runtime_ai100=runtime_ai100)
        relative = found.keypoints.numpy().reshape(pairs, 2, -1, 2)
        mask = found.mask.numpy().reshape(pairs, 2, -1)
        count = relative.shape[2]
        if count == 0:  # transformers' answer for no keypoints
            matches, scores = np.full((pairs, 2, 0), -1, np.int32), np.zeros((pairs, 2, 0), np.float32)
        else:
            feed = {
                KEYPOINTS: normalized_keypoints(relative, height, width),
                DESCRIPTORS: found.descriptors.numpy().reshape(pairs, 2, count, -1),
                SCORES: found.scores.numpy().reshape(pairs, 2, count),
                MASK: mask,
            }
            matches, scores = self._match(feed, runtime_ai100)
            keep = scores > self.config.matching_threshold  # the graph's threshold is 0 (transform/keypoints.py)
            matches, scores = np.where(keep, matches, -1), np.where(keep, scores, np.float32(0))
        return SuperGlueKeypointMatchingOutput(
            matches=torch.from_numpy(matches),
            matching_scores=torch.from_numpy(scores),
            keypoints=torch.from_numpy(relative),
            mask=torch.from_numpy(mask),
        )

    def _match(self, feed: dict[str, np.ndarray], runtime_ai100: bool) -> tuple[np.ndarray, np.ndarray]:
        if not runtime_ai100:
            with torch.no_grad():
                return tuple(t.numpy() for t in self.matcher(*map(torch.from_numpy, feed.values())))
        session, params = self._graph_session("matcher")
        return tuple(run_in_batches(session, feed, params["batch_size"]))  # pairs are independent
