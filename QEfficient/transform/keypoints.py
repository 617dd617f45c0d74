"""SuperPoint (transformers' ``SuperPointForKeypointDetection``): its dense part as one module, forward(pixel_values) ->
(keypoint scores after non-maximum suppression [B, H, W], L2-normalized descriptor map [B, D, H / 8, W / 8]), computed
by transformers' own layers. Picking the keypoints (a threshold, the borders, the top k) and sampling their descriptors
vary in count by image: the host does them (models/keypoints.py), as transformers does image by image."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.rewrites import rewritten_functions

# types of transformers' keypoint detection mapping run here
KEYPOINT_DETECTORS = frozenset({"superpoint"})


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
