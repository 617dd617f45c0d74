"""Emu3: images become discrete tokens, as Chameleon's, with images of any size: a 3-D-convolution VQ-VAE encoder
(the image repeated over the temporal factor's frames) quantises each image to a grid of codes, each code maps
to its text token, each row of codes is followed by an end-of-line token, and the text model's table embeds them.

The vision graph takes one image at a time (the processor pads a batch to its largest image; HF encodes the
padded image and keeps the codes of its real size, ``image_sizes``), and returns its h*(w+1) embeddings as one row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from QEfficient.transform.vision_adapters.base import VisionLanguageAdapter


@dataclass(frozen=True)
class Emu3Adapter(VisionLanguageAdapter):
    flat_embeddings = True
    vision_per_unit = True

    @staticmethod
    def spatial_factor(config) -> int:
        """Pixels per code along a side."""
        return 2 ** (len(config.vq_config.channel_multiplier) - 1)

    @staticmethod
    def image_tokens(sizes: np.ndarray, factor: int) -> np.ndarray:
        """Image tokens of images of (height, width) ``sizes``: a row of codes, then an end-of-line token, per code row."""
        return (sizes[:, 0] // factor) * (sizes[:, 1] // factor + 1)

    def default_img_size(self, config) -> int:
        return 0  # any size: the processor resizes each image to multiples of the spatial factor

    def vision_example(self, config, img_size: int) -> dict[str, torch.Tensor]:
        f = self.spatial_factor(config)
        # two images, so that no axis is specialised on 1 (the runtime gives one image a run)
        return {"pixel_values": torch.zeros(2, 3, 3 * f, 4 * f), "image_sizes": torch.tensor([[3 * f, 4 * f]] * 2)}

    def vision_axes(self) -> dict[str, dict[int, str]]:
        images = {0: "num_images"}
        return {"pixel_values": {**images, 2: "height", 3: "width"}, "image_sizes": images, "vision_embeds": {1: "num_image_tokens"}}

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor, image_sizes: torch.Tensor = None) -> torch.Tensor:
        # Emu3VQVAE.encode, for one image whose code grid is cut to its real size by tensors (encode cuts by Python ints)
        vq, mapping = hf.model.vqmodel, hf.model.vocabulary_mapping
        frames = pixel_values.to(vq.dtype).unsqueeze(1).repeat(1, vq.config.temporal_downsample_factor, 1, 1, 1)
        hidden = vq.quant_conv(vq.encoder(frames).permute(0, 2, 1, 3, 4)).permute(0, 2, 1, 3, 4)
        f = vq.vision_spatial_factor
        codes = vq.quantize(hidden)[:, 0, : image_sizes[0, 0] // f, : image_sizes[0, 1] // f]  # the runtime's one image
        tokens = mapping.img2bpe_mapping_tensor.to(torch.int64)[codes]
        tokens = torch.cat([tokens, torch.full_like(tokens[:, :, :1], mapping.eol_token_id)], dim=2)
        return hf.model.get_input_embeddings()(tokens.reshape(1, -1))

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return hf.model.text_model, hf.lm_head, hf.config.text_config

    def image_token_id(self, config) -> int:
        return int(config.vocabulary_map["<image>"])

    def vision_inputs(self, inputs, img_size: int, config) -> dict[str, np.ndarray]:
        sizes = np.asarray(inputs["image_sizes"]).astype(np.int64).reshape(-1, 2)
        return {
            "pixel_values": np.ascontiguousarray(np.asarray(inputs["pixel_values"], dtype=np.float32)),
            "image_sizes": sizes,
            "_tokens": self.image_tokens(sizes, self.spatial_factor(config)).astype(np.int64),
        }


@dataclass(frozen=True)
class Apertus1p5Adapter(Emu3Adapter):
    """Apertus 1.5: Emu3's host side; a 2-D VQGAN encoder run on each image cut to its real size (HF does the same),
    codes offset into the shared vocabulary, no end-of-line tokens among the image tokens (the processor writes them
    as text)."""

    @staticmethod
    def spatial_factor(config) -> int:
        return 2 ** (len(config.vision_config.channel_multiplier) - 1)

    @staticmethod
    def image_tokens(sizes: np.ndarray, factor: int) -> np.ndarray:
        return (sizes[:, 0] // factor) * (sizes[:, 1] // factor)

    def image_features(self, hf: nn.Module, pixel_values: torch.Tensor, image_sizes: torch.Tensor = None) -> torch.Tensor:
        image = pixel_values[:, :, : image_sizes[0, 0], : image_sizes[0, 1]]  # the runtime's one image, at its own size
        codes = hf.model.vision_tokenizer.encode(image).image_tokens
        return hf.model.get_input_embeddings()(codes.reshape(1, -1) + hf.config.image_token_offset)

    def language(self, hf: nn.Module) -> tuple[nn.Module, nn.Module, Any]:
        return hf.model.language_model, hf.lm_head, hf.config.text_config

    image_token_id = VisionLanguageAdapter.image_token_id
