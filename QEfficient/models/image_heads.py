"""Image models whose head answers more than a class: object detection, mask classification (semantic, instance and
panoptic segmentation), depth estimation, semantic segmentation, super-resolution, matting and pose estimation. Each is
the image encoder's one graph at the compiled size, returning its head's outputs in an output class the image
processors' post-processing takes as it is."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (
    AutoModelForDepthEstimation,
    AutoModelForImageMatting,
    AutoModelForImageToImage,
    AutoModelForObjectDetection,
    AutoModelForPoseEstimation,
    AutoModelForSemanticSegmentation,
    AutoModelForUniversalSegmentation,
    PreTrainedModel,
)
from transformers.modeling_outputs import DepthEstimatorOutput, ImageSuperResolutionOutput, SemanticSegmenterOutput
from transformers.utils import ModelOutput

from QEfficient.models.image_encoder import QEFFAutoModelForImageClassification

_TEXT_MAPS = "a text detector: its output is a probability map of text regions, not class logits and boxes"
# detectors not run here, with why
UNSUPPORTED_DETECTION = dict.fromkeys(
    ("pp_ocrv5_mobile_det", "pp_ocrv5_server_det", "pp_ocrv6_medium_det", "pp_ocrv6_small_det"), _TEXT_MAPS
)


@dataclass
class ObjectDetectionOutput(ModelOutput):
    """A detector's class logits [images, queries, labels + 1] and boxes [images, queries, 4] (centre x, centre y, width,
    height, relative to the image), as every DETR-family output class holds them: what the image processors'
    ``post_process_object_detection`` reads."""

    logits: torch.Tensor | None = None
    pred_boxes: torch.Tensor | None = None


class QEFFAutoModelForObjectDetection(QEFFAutoModelForImageClassification):
    """Object detection (DETR, Conditional DETR, YOLOS, RT-DETR, ... ``ForObjectDetection``): generate() returns
    ObjectDetectionOutput (``logits``, ``pred_boxes``), which the image processor's ``post_process_object_detection``
    takes as it is. RT-DETR's choice of its top queries is ONNX Runtime's TopK, which breaks exact ties between scores
    by position (a trained model's scores do not tie; a random one with zero-initialized heads does)."""

    _hf_auto = AutoModelForObjectDetection
    _more_outputs = ("pred_boxes",)

    _unsupported = UNSUPPORTED_DETECTION

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> ObjectDetectionOutput:
        return ObjectDetectionOutput(**super().generate(inputs, device_ids, runtime_ai100))


@dataclass
class UniversalSegmentationOutput(ModelOutput):
    """A mask classifier's per-query class logits [images, queries, labels + 1] and mask logits [images, queries, height,
    width], as Mask2Former's, MaskFormer's and EoMT's output classes hold them: what the image processors' semantic,
    instance and panoptic post-processing read."""

    class_queries_logits: torch.Tensor | None = None
    masks_queries_logits: torch.Tensor | None = None
    patch_offsets: list | None = None  # EoMT's: where each of an image's patches lies (its processor's, passed through)


UNSUPPORTED_UNIVERSAL_SEGMENTATION = {
    "oneformer": "it reads a task prompt (task_inputs: semantic, instance or panoptic) beside the image",
    "videomt": "it reads video frames",
    "detr": "DetrForSegmentation answers a detector's boxes with a mask each (logits, pred_boxes, pred_masks), not mask "
    "classification's outputs",
}


class QEFFAutoModelForUniversalSegmentation(QEFFAutoModelForImageClassification):
    """Mask classification for semantic, instance and panoptic segmentation (Mask2Former, MaskFormer, EoMT, ...
    ``ForUniversalSegmentation``): generate() returns UniversalSegmentationOutput (``class_queries_logits``,
    ``masks_queries_logits``), which the image processor's ``post_process_*_segmentation`` take as they are."""

    _hf_auto = AutoModelForUniversalSegmentation
    _output_name = _head_output = "class_queries_logits"
    _more_outputs = ("masks_queries_logits",)
    _unsupported = UNSUPPORTED_UNIVERSAL_SEGMENTATION

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> UniversalSegmentationOutput:
        offsets = inputs.get("patch_offsets") if hasattr(inputs, "keys") else None
        return UniversalSegmentationOutput(**super().generate(inputs, device_ids, runtime_ai100), patch_offsets=offsets)


# depth models whose answer is more than their depth map, with why they are not run here
UNSUPPORTED_DEPTH = {
    "depth_pro": "its field-of-view head scales the depth to metres, and its post-processing reads that output too",
}


class QEFFAutoModelForDepthEstimation(QEFFAutoModelForImageClassification):
    """Depth estimation (Depth Anything, DPT, GLPN, ZoeDepth, ... ``ForDepthEstimation``): generate() returns
    transformers' DepthEstimatorOutput with ``predicted_depth`` [images, height, width], which the image processor's
    ``post_process_depth_estimation`` takes as it is. Prompt Depth Anything runs without its prompt depth map."""

    _hf_auto = AutoModelForDepthEstimation
    _output_name = _head_output = "predicted_depth"

    _unsupported = UNSUPPORTED_DEPTH

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        if model.config.model_type == "zoedepth" and len(model.config.bin_configurations) > 1:
            raise NotImplementedError(
                f"{type(model).__name__} with {len(model.config.bin_configurations)} bin configurations is not supported: it "
                "picks a head for each image from the image itself, which the graph would fix at export (one head only)."
            )
        super().__init__(model, **kwargs)

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> DepthEstimatorOutput:
        if hasattr(inputs, "keys") and inputs.get("prompt_depth") is not None:
            raise ValueError("The graph reads the image alone: a prompt_depth map is not taken; leave it out of the inputs.")
        return DepthEstimatorOutput(**super().generate(inputs, device_ids, runtime_ai100))


class QEFFAutoModelForSemanticSegmentation(QEFFAutoModelForImageClassification):
    """Semantic segmentation (SegFormer, UperNet, DPT, BEiT, MobileViT, ... ``ForSemanticSegmentation``): generate()
    returns transformers' SemanticSegmenterOutput with ``logits`` [images, labels, height, width] (the head's
    resolution), which the image processor's ``post_process_semantic_segmentation`` takes as it is."""

    _hf_auto = AutoModelForSemanticSegmentation

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> SemanticSegmenterOutput:
        return SemanticSegmenterOutput(**super().generate(inputs, device_ids, runtime_ai100))


class QEFFAutoModelForImageToImage(QEFFAutoModelForImageClassification):
    """Image super-resolution (Swin2SR, ``AutoModelForImageToImage``): generate() returns transformers'
    ImageSuperResolutionOutput with ``reconstruction`` [images, channels, height x scale, width x scale]. The processor
    pads each image to a multiple of the window, so its sizes vary: compile(img_size=...) at the size it writes."""

    _hf_auto = AutoModelForImageToImage
    _output_name = _head_output = "reconstruction"

    def _size(self, img_size) -> tuple[int, int]:
        if img_size is None:  # its config's image_size is a training crop; its processor writes any size
            raise ValueError(
                f"{type(self.hf_model).__name__} upscales images of any size, and its processor pads each to a multiple of "
                "the window: pass compile(img_size=(height, width)) for the size it writes."
            )
        return super()._size(img_size)

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> ImageSuperResolutionOutput:
        return ImageSuperResolutionOutput(**super().generate(inputs, device_ids, runtime_ai100))


@dataclass
class ImageMattingOutput(ModelOutput):
    """A matting model's alpha matte [images, 1, height, width], as transformers' VitMatte output holds it."""

    alphas: torch.Tensor | None = None


_SAPIENS_2 = "not swept here: its defaults build a model too large for a test (Sapiens 2's heads are not proven)"


class QEFFAutoModelForImageMatting(QEFFAutoModelForImageClassification):
    """Image matting (VitMatte, ``AutoModelForImageMatting``): pixel_values are the image and its trimap (4 channels, as
    the image processor writes them); generate() returns ImageMattingOutput with ``alphas`` [images, 1, height,
    width]. The processor pads each image to a multiple of 32: compile(img_size=...) at the size it writes."""

    _hf_auto = AutoModelForImageMatting
    _output_name = _head_output = "alphas"
    _unsupported = {"sapiens2": _SAPIENS_2}

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> ImageMattingOutput:
        return ImageMattingOutput(**super().generate(inputs, device_ids, runtime_ai100))


@dataclass
class PoseEstimatorOutput(ModelOutput):
    """A pose estimator's heatmaps [people, keypoints, height, width], as transformers' VitPose output holds them: what
    the image processor's ``post_process_pose_estimation`` reads."""

    heatmaps: torch.Tensor | None = None


class QEFFAutoModelForPoseEstimation(QEFFAutoModelForImageClassification):
    """Top-down pose estimation (ViTPose, ``AutoModelForPoseEstimation``): each person's crop in (the image processor
    crops the boxes it is given), keypoint heatmaps out; generate() returns PoseEstimatorOutput, which
    ``post_process_pose_estimation(outputs, boxes=...)`` takes as it is."""

    _hf_auto = AutoModelForPoseEstimation
    _output_name = _head_output = "heatmaps"
    _unsupported = {"sapiens2": _SAPIENS_2}

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        backbone = getattr(model.config, "backbone_config", None)
        if getattr(backbone, "num_experts", 1) > 1:
            raise NotImplementedError(
                f"{type(model).__name__} with {backbone.num_experts} experts (ViTPose+) is not supported: each image picks its "
                "expert by a dataset_index, which the graph does not read."
            )
        super().__init__(model, **kwargs)

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True) -> PoseEstimatorOutput:
        if hasattr(inputs, "keys") and inputs.get("flip_pairs") is not None:
            raise ValueError("flip_pairs (flipped test-time inputs) are not taken: leave them out of the inputs.")
        return PoseEstimatorOutput(**super().generate(inputs, device_ids, runtime_ai100))
