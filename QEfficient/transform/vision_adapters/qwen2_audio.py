"""Qwen2-Audio: audio, not images, through the image-text path. Each audio is a unit: its log-mel features (Whisper's,
[audios, mels, 3000]) and their mask through a Whisper-style encoder that reads the audio's frames only, pooled by two
and projected; the first frames' worth of each audio's states (as many as its length gives) take its audio tokens'
places in a Qwen2 text model, as its processor expands one placeholder into that many."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.audio import AUDIO_FEATURES, AudioTextAdapter

FEATURE_MASK = "feature_attention_mask"


@dataclass(frozen=True)
class Qwen2AudioAdapter(AudioTextAdapter):
    flat_embeddings = True  # the audios' tokens one after another: each gives as many as its length

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        """Two audios, the second's last third padding (no axis specialised on one length)."""
        mask = torch.ones(2, img_size, dtype=torch.int64)
        mask[1, 2 * img_size // 3 :] = 0
        return {AUDIO_FEATURES: torch.zeros(2, config.audio_config.num_mel_bins, img_size), FEATURE_MASK: mask}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        return {AUDIO_FEATURES: {0: "num_images"}, FEATURE_MASK: {0: "num_images"}, "vision_embeds": {1: "num_image_tokens"}}

    def image_features(self, hf: nn.Module, input_features: torch.Tensor, feature_attention_mask: torch.Tensor) -> torch.Tensor:
        """[1, the audios' tokens, text hidden]: transformers' audio features of each audio's frames, in order."""
        tower = hf.model.audio_tower
        frames, tokens = tower._get_feat_extract_output_lengths(feature_attention_mask.sum(-1))
        positions = torch.arange((input_features.shape[-1] - 2) // 2 + 1)
        keys = positions[None, :] < frames[:, None]  # the frames that hold audio, as transformers' mask keeps them
        additive = torch.zeros(keys.shape, dtype=input_features.dtype).masked_fill(~keys, torch.finfo(input_features.dtype).min)
        states = tower(input_features, attention_mask=additive[:, None, None, :]).last_hidden_state
        features = hf.model.multi_modal_projector(states)
        kept = torch.arange(features.shape[1])[None, :] < tokens[:, None]
        return features[kept][None]

    def tokens_of(self, mask: np.ndarray) -> np.ndarray:
        """Each audio's tokens from its feature mask: transformers' ``_get_feat_extract_output_lengths``."""
        frames = (mask.sum(-1) - 1) // 2 + 1
        return ((frames - 2) // 2 + 1).astype(np.int64)

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        """Each audio's features [audios, mels, frames] and their mask, as the processor pads them to 30 s."""
        features = self.features(inputs, img_size, config, "audios")
        mask = inputs.get(FEATURE_MASK)
        mask = np.ones(features.shape[::2], np.int64) if mask is None else np.asarray(mask, np.int64)
        if mask.shape != (len(features), img_size):
            raise ValueError(f"feature_attention_mask must be [audios, {img_size}], got {list(mask.shape)}.")
        return {AUDIO_FEATURES: features, FEATURE_MASK: mask, "_tokens": self.tokens_of(mask)}
