"""VibeVoice ASR: audio, not images, through the image-text path. Each audio's raw 24 kHz samples ([audios, 1, samples],
padded to the batch's longest, a multiple of the tokenizers' hop) run through its two causal convolutional tokenizers
(acoustic and semantic), whose latents a projector sums; one audio token per hop of the audio's own samples, one audio
after another, into a Qwen2 text model.

transformers encodes long audio in chunks with its convolutions' caches: the same latents as one pass over the whole
audio, as the chunks and the audio are whole hops. And it adds noise to the acoustic latents by default (``sample=True``:
its sigma-VAE); the graph does not, as transformers with ``sample=False``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.audio import RawAudioAdapter


@dataclass(frozen=True)
class VibeVoiceASRAdapter(RawAudioAdapter):
    def hop(self, config) -> int:
        return int(config.acoustic_tokenizer_encoder_config.hop_length)

    def frames_of(self, config, samples: np.ndarray) -> np.ndarray:
        """The audio tokens of ``samples`` samples: one per hop, the last partial (the processor's count)."""
        return -(-np.asarray(samples, np.int64) // self.hop(config))

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        """Two audios of three hops, the second's last hop and a half padding."""
        samples = 3 * self.hop(config)
        mask = torch.ones(2, samples, dtype=torch.int64)
        mask[1, samples // 2 :] = 0
        return {self.audio_input: torch.zeros(2, 1, samples), self.mask_input: mask}

    def image_features(self, hf: nn.Module, input_values: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """[1, the audios' tokens, text hidden]: the projected latents of both tokenizers in one pass, each audio's own
        hops (transformers' ``get_audio_features`` with ``sample=False``)."""
        model = hf.model
        acoustic = model.acoustic_tokenizer_encoder(input_values).latents
        semantic = model.semantic_tokenizer_encoder(input_values).latents
        features = model.multi_modal_projector(acoustic, semantic)
        hop = self.hop(hf.config)
        tokens = (padding_mask.sum(-1) + hop - 1) // hop
        kept = torch.arange(features.shape[1], device=features.device)[None, :] < tokens[:, None]
        return features[kept][None]

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        """The processor's ``input_values`` and ``padding_mask``, the samples a whole number of hops, as it pads them."""
        vision = super().vision_inputs(inputs, img_size, config)
        samples, hop = vision[self.audio_input].shape[2], self.hop(config)
        if samples % hop or not samples:
            raise ValueError(
                f"input_values must hold a whole number of the tokenizers' hops ({hop} samples), got {samples}: pass the "
                "processor's output (it pads to them)."
            )
        return vision
