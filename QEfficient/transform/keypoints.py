"""SuperPoint (transformers' ``SuperPointForKeypointDetection``): its dense part as one module, forward(pixel_values) ->
(keypoint scores after non-maximum suppression [B, H, W], L2-normalized descriptor map [B, D, H / 8, W / 8]), computed
by transformers' own layers. Picking the keypoints (a threshold, the borders, the top k) and sampling their descriptors
vary in count by image: the host does them (models/keypoints.py), as transformers does image by image.

SuperGlue (``SuperGlueForKeypointMatching``): its matcher as one module over the keypoints of image pairs (padded to
the pair batch's most, with their mask), forward(keypoints, descriptors, scores, mask) -> (matches, matching_scores),
transformers' ``_match_image_pair`` (its graph network, the Sinkhorn iterations, the mutual check) with a matching
threshold of 0. The host gives the keypoints already normalized to the image's size (transformers normalizes them with
Python numbers, which a trace would fix at the export's size), so one graph serves images of any size, and applies the
configured threshold to the scores, which transformers compares on both images alike.

EfficientLoFTR (``EfficientLoFTRForKeypointMatching``): the whole model as one module (QEffDenseMatcher)."""

from __future__ import annotations

import sys

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.rewrites import rewritten_functions

# types of transformers' keypoint detection mapping run here
KEYPOINT_DETECTORS = frozenset({"superpoint"})
# types of transformers' keypoint matching mapping run here (their detector through QEffSuperPoint), and not, with why
KEYPOINT_MATCHERS = frozenset({"superglue"})
DENSE_MATCHERS = frozenset({"efficientloftr"})  # one graph from the image pairs (QEffDenseMatcher)
UNSUPPORTED_KEYPOINT_MATCHERS = {
    "lightglue": "its layers stop early and prune keypoints by their confidence, decided from the data layer by layer",
}


class QEffSuperPoint(nn.Module):
    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        if hf_model.config.model_type not in KEYPOINT_DETECTORS:
            raise NotImplementedError(f"{type(hf_model).__name__} is not supported: the keypoint detectors run here are SuperPoint's.")
        self.hf = hf_model

    @property
    def config(self):
        return self.hf.config

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hf.encoder(self.hf.extract_one_channel_pixel_values(pixel_values), return_dict=True).last_hidden_state
        with rewritten_functions(self.hf):  # its non-maximum suppression over [B, 1, H, W] (rewrites.py)
            scores = self.hf.keypoint_decoder._get_pixel_scores(hidden)
        decoder = self.hf.descriptor_decoder
        descriptors = decoder.conv_descriptor_b(decoder.relu(decoder.conv_descriptor_a(hidden)))
        return scores, nn.functional.normalize(descriptors, p=2, dim=1)


class QEffSuperGlueMatcher(nn.Module):
    """forward(keypoints normalized [B, 2, N, 2], descriptors [B, 2, N, D], scores [B, 2, N], mask [B, 2, N]) ->
    (matches [B, 2, N], matching_scores [B, 2, N]) (module docstring)."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        model_type = hf_model.config.model_type
        if model_type in UNSUPPORTED_KEYPOINT_MATCHERS:
            raise NotImplementedError(f"{type(hf_model).__name__} is not supported: {UNSUPPORTED_KEYPOINT_MATCHERS[model_type]}.")
        if model_type in DENSE_MATCHERS:
            raise NotImplementedError(
                f"{type(hf_model).__name__} runs as QEFFEfficientLoFTRForKeypointMatching (one graph from the pixels): "
                "load it with QEFFAutoModelForKeypointMatching.from_pretrained, or wrap it: QEFFEfficientLoFTRForKeypointMatching(model)."
            )
        if model_type not in KEYPOINT_MATCHERS:
            raise NotImplementedError(f"{type(hf_model).__name__} is not supported: the keypoint matchers run here are SuperGlue's.")
        self.hf = hf_model

    def forward(self, keypoints, descriptors, scores, mask) -> tuple[torch.Tensor, torch.Tensor]:
        module = sys.modules[type(self.hf).__module__]
        normalize, threshold = module.normalize_keypoints, self.hf.config.matching_threshold
        # the host has normalized the keypoints, and keeps the matches above the threshold (its own at run time)
        module.normalize_keypoints, self.hf.config.matching_threshold = keypoints_as_given, 0.0
        try:
            matches, matching_scores, _, _ = self.hf._match_image_pair(keypoints, descriptors, scores, 1, 1, mask=mask)
        finally:
            module.normalize_keypoints, self.hf.config.matching_threshold = normalize, threshold
        return matches, matching_scores


def keypoints_as_given(keypoints: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """SuperGlue's ``normalize_keypoints`` while the matcher runs: the host has normalized them."""
    return keypoints


class QEffDenseMatcher(nn.Module):
    """EfficientLoFTR (``EfficientLoFTRForKeypointMatching``) whole: forward(pixel_values [pairs, 2, C, H, W]) ->
    (matches, matching_scores [pairs, 2, positions], keypoints [pairs, 2, positions, 2]), its coarse positions fixed by
    the image size. Its matching is written with fixed-size tensors (masks, not lists), so the whole model is one graph
    (the dynamo exporter's: the TorchScript one fails on its in-place writes)."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        if hf_model.config.model_type not in DENSE_MATCHERS:
            raise NotImplementedError(f"{type(hf_model).__name__} is not a semi-dense matcher run here (EfficientLoFTR).")
        self.hf = hf_model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.hf(pixel_values=pixel_values)
        return out.matches, out.matching_scores, out.keypoints
