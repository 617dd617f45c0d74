"""Processors for the tiny Inkling models (tests/vlm_fixtures_inkling.py): Inkling's and Inkling 2's image
processors have only a torchvision backend (not installed here), so PIL stand-ins do their steps (no resize by
default; pad with -1 on the 0-255 scale; rescale and normalise fused as torchvision's backend fuses them; cut into
patches). The processors themselves are HF's. Importing this registers them, so ``AutoProcessor.from_pretrained``
finds them by the class name saved in the folder."""

from __future__ import annotations

import math

import numpy as np
from transformers import AutoProcessor, AutoTokenizer, BatchFeature, Inkling2Processor, InklingProcessor
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, make_flat_list_of_images
from transformers.models.inkling.feature_extraction_inkling import InklingFeatureExtractor

from tests.vlm_tiny_processors import SubprocessorsFromArguments


def _rgb_float(img) -> np.ndarray:
    """[3, H, W] float32 on the 0-255 scale. Inkling 2 composites transparency onto an 8-pixel checkerboard."""
    if getattr(img, "mode", "RGB") == "RGBA":
        rgba = np.asarray(img, np.int32)
        rows, cols = np.arange(rgba.shape[0])[:, None] // 8, np.arange(rgba.shape[1])[None, :] // 8
        background = np.where((rows + cols) % 2 == 0, 204, 153)[..., None]
        alpha = rgba[..., 3:4]
        rgb = (rgba[..., :3] * alpha + background * (255 - alpha) + 127) // 255
    else:
        rgb = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img)
    return rgb.astype(np.float32).transpose(2, 0, 1)


def _normalise(pixels: np.ndarray, mean, std) -> np.ndarray:
    """torchvision's backend: rescale by 1/255 folded into the mean and std."""
    mean = np.asarray(mean, np.float32)[:, None, None] * 255.0
    std = np.asarray(std, np.float32)[:, None, None] * 255.0
    return (pixels - mean) / std


def _pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bottom/right padding with -1 (before rescaling), as HF's ``pad(..., fill_value=-1.0)``."""
    out = np.full((image.shape[0], height, width), -1.0, np.float32)
    out[:, : image.shape[1], : image.shape[2]] = image
    return out


class TinyInklingImageProcessor(PilBackend):
    """InklingImageProcessor without ``rescale_image_frac`` (None by default: no resize): HF's patch cut (rows
    ``ceil(H / P)``, columns ``W // P + 1``), each patch padded to P x P, CLIP-normalised, two temporal copies,
    laid out [patches, 2, P, P, C]."""

    size = {"height": 40, "width": 40}
    image_mean, image_std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    model_input_names = ["pixel_values", "num_patches"]

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)

    def preprocess(self, images, **kwargs):
        p = self.size["height"]
        patches, counts = [], []
        for img in make_flat_list_of_images(images):
            image = _rgb_float(img.convert("RGB") if hasattr(img, "convert") else img)
            rows, cols = math.ceil(image.shape[1] / p), image.shape[2] // p + 1
            cut = [_pad(image[:, i * p : (i + 1) * p, j * p : (j + 1) * p], p, p) for i in range(rows) for j in range(cols)]
            patches += [_normalise(c, self.image_mean, self.image_std) for c in cut]
            counts.append(len(cut))
        pixels = np.stack(patches)[..., None].repeat(2, axis=-1).transpose(0, 4, 2, 3, 1)  # [N, 2, P, P, C]
        return BatchFeature(data={"pixel_values": pixels, "num_patches": np.array(counts)}, tensor_type=kwargs.get("return_tensors"))


class TinyInklingProcessor(SubprocessorsFromArguments, InklingProcessor):
    """InklingProcessor with TinyInklingImageProcessor (found here by name)."""

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        path = pretrained_model_name_or_path
        return [
            InklingFeatureExtractor.from_pretrained(path),
            TinyInklingImageProcessor.from_pretrained(path),
            AutoTokenizer.from_pretrained(path),
        ]


class TinyInkling2ImageProcessor(PilBackend):
    """Inkling2ImageProcessor: the image padded to whole tokens of ``size`` (patch x merge) pixels, normalised to
    [-1, 1], one [size, size, C] block per image token (row-major); ``image_grid_thw`` counts image tokens."""

    size = {"height": 40, "width": 40}
    image_mean, image_std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    model_input_names = ["pixel_values", "image_grid_thw"]

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)

    def preprocess(self, images, **kwargs):
        s = self.size["height"]
        blocks, grids = [], []
        for img in make_flat_list_of_images(images):
            image = _rgb_float(img)
            channels, height, width = image.shape
            rows, cols = math.ceil(height / s), math.ceil(width / s)
            image = _normalise(_pad(image, rows * s, cols * s), self.image_mean, self.image_std)
            blocks.append(image.reshape(channels, rows, s, cols, s).transpose(1, 3, 2, 4, 0).reshape(-1, s, s, channels))
            grids.append([1, rows, cols])
        data = {"pixel_values": np.concatenate(blocks), "image_grid_thw": np.array(grids, np.int64)}
        return BatchFeature(data=data, tensor_type=kwargs.get("return_tensors"))


class TinyInkling2Processor(SubprocessorsFromArguments, Inkling2Processor):
    """Inkling2Processor with TinyInkling2ImageProcessor (found here by name)."""

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        path = pretrained_model_name_or_path
        return [TinyInkling2ImageProcessor.from_pretrained(path), AutoTokenizer.from_pretrained(path)]


AutoProcessor.register("tiny_inkling_processor", TinyInklingProcessor, exist_ok=True)
AutoProcessor.register("tiny_inkling2_processor", TinyInkling2Processor, exist_ok=True)
