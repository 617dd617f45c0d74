"""Qwen2-Audio: audio, not images, through the image-text path. Each audio is a unit: its log-mel features (Whisper's,
[audios, mels, 3000]) and their mask through a Whisper-style encoder that reads the audio's frames only, pooled by two
and projected; the first frames' worth of each audio's states (as many as its length gives) take its audio tokens'
places in a Qwen2 text model, as its processor expands one placeholder into that many."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from QEfficient.transform.vision_adapters.audio import MaskedAudioAdapter


@dataclass(frozen=True)
class Qwen2AudioAdapter(MaskedAudioAdapter):
    mask_input: str = "feature_attention_mask"
    chat_clips: ClassVar[int | None] = None  # its processor takes a text's clips in order

    def image_features(self, hf: nn.Module, input_features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[1, the audios' tokens, text hidden]: transformers' audio features of each audio's frames, in order (its
        model has no ``get_audio_features``: the steps of its forward)."""
        tower = hf.model.audio_tower
        frames, tokens = tower._get_feat_extract_output_lengths(mask.sum(-1))
        positions = torch.arange((input_features.shape[-1] - 2) // 2 + 1)
        keys = positions[None, :] < frames[:, None]  # the frames that hold audio, as transformers' mask keeps them
        additive = torch.zeros(keys.shape, dtype=input_features.dtype).masked_fill(~keys, torch.finfo(input_features.dtype).min)
        states = tower(input_features, attention_mask=additive[:, None, None, :]).last_hidden_state
        features = hf.model.multi_modal_projector(states)
        kept = torch.arange(features.shape[1])[None, :] < tokens[:, None]
        return features[kept][None]
