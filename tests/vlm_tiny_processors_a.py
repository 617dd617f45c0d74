"""Processors for the tiny models of tests/vlm_fixtures_a.py where transformers' own cannot run here: image
processors with only a torchvision backend (not installed, PIL stand-ins that do the same steps), video processors
(torchvision), and transformers 5.24 bugs of a processor with its PIL backend. Each stands in for the host side
only; the model path is the architecture's own. Importing this registers them, so
``AutoProcessor.from_pretrained(folder)`` finds them by the class name saved in the folder."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from transformers import (
    Apertus1p5Processor,
    AutoProcessor,
    Cosmos3EdgeProcessor,
    FuyuImageProcessorPil,
    FuyuProcessor,
    Kimi_K25Processor,
    Qwen2VLProcessor,
)
from transformers.image_processing_backends import PilBackend

from tests.vlm_tiny_processors import SubprocessorsFromArguments, _image_processor_and_tokenizer


class TinyExaone4_5Processor(Qwen2VLProcessor):
    """EXAONE 4.5's processor (Qwen2-VL's without mm_token_type_ids: 1-D text positions) without the video
    processor, which needs torchvision (not installed here)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)

    def __call__(self, *args, **kwargs):
        out = super().__call__(*args, **kwargs)
        out.pop("mm_token_type_ids", None)
        return out


AutoProcessor.register("tiny_exaone4_5_processor", TinyExaone4_5Processor, exist_ok=True)


def tiny_ovis2_5_processor(**parts):
    """Ovis2.5's processor without the video processor, which needs torchvision (not installed here). Made on first
    use: transformers before 5.25 has no Ovis2.5."""
    from transformers.models.ovis2_5 import Ovis2_5Processor

    class TinyOvis2_5Processor(Ovis2_5Processor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)

    AutoProcessor.register("tiny_ovis2_5_processor", TinyOvis2_5Processor, exist_ok=True)
    return TinyOvis2_5Processor(**parts)


class TinyCosmos3EdgeProcessor(Cosmos3EdgeProcessor):
    """Cosmos3EdgeProcessor without the video processor, which needs torchvision (not installed here), and with
    mm_token_type_ids, which HF's generate requires for images (transformers 5.24's processor gives none)."""

    return_mm_token_type_ids = True

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


AutoProcessor.register("tiny_cosmos3_edge_processor", TinyCosmos3EdgeProcessor, exist_ok=True)


class TinyKimiK25ImageProcessor(PilBackend):
    """Kimi K2.5's image processor has only a torchvision backend (not installed). This one does what it does, with
    PIL: HF's ``navit_resize`` rule (bicubic, never upscaling, at most 8 patches a side), zero padding to multiples of
    2 x 7 px, rescale and normalise, then 7x7 patches in raster order [num_patches, 3, 7, 7] and ``image_grid_thw``."""

    patch_size, merge_size, max_patches, max_side = 7, 2, 64, 8
    image_mean, image_std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    model_input_names = ["pixel_values", "image_grid_thw"]

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)

    def _navit_resize(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """HF's navit_resize (its module imports torchvision): the resized and the padded (height, width)."""
        p, factor = self.patch_size, self.patch_size * self.merge_size
        patches = max(1.0, height // p) * max(1.0, width // p)
        scale = min(1.0, math.sqrt(self.max_patches / patches), self.max_side * p / height, self.max_side * p / width)
        h = min(max(1, int(height * scale)), self.max_side * p)
        w = min(max(1, int(width * scale)), self.max_side * p)
        return (h, w), (h + (factor - h % factor) % factor, w + (factor - w % factor) % factor)

    def preprocess(self, images, **kwargs):
        from transformers import BatchFeature
        from transformers.image_utils import make_flat_list_of_images

        p = self.patch_size
        patches, grids = [], []
        for img in make_flat_list_of_images(images):
            img = img if hasattr(img, "resize") else Image.fromarray(np.asarray(img))
            (h, w), (pad_h, pad_w) = self._navit_resize(img.height, img.width)
            array = np.zeros((pad_h, pad_w, 3), np.float32)
            array[:h, :w] = np.asarray(img.convert("RGB").resize((w, h), Image.BICUBIC), np.float32)
            array = (array / 255.0 - np.array(self.image_mean, np.float32)) / np.array(self.image_std, np.float32)
            gh, gw = pad_h // p, pad_w // p
            patches.append(array.reshape(gh, p, gw, p, 3).transpose(0, 2, 4, 1, 3).reshape(gh * gw, 3, p, p))
            grids.append([1, gh, gw])
        data = {"pixel_values": np.concatenate(patches), "image_grid_thw": np.array(grids, np.int64)}
        return BatchFeature(data=data, tensor_type=kwargs.get("return_tensors"))


class TinyKimiK25Processor(SubprocessorsFromArguments, Kimi_K25Processor):
    """Kimi_K25Processor with TinyKimiK25ImageProcessor and no video processor (torchvision), found here by name."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return _image_processor_and_tokenizer(TinyKimiK25ImageProcessor, pretrained_model_name_or_path)


AutoProcessor.register("tiny_kimi_k25_processor", TinyKimiK25Processor, exist_ok=True)


class TinyFuyuImageProcessor(FuyuImageProcessorPil):
    """FuyuImageProcessorPil whose patchify_image takes the torch tensors FuyuProcessor hands it (transformers 5.24's
    processor with the PIL backend fails on them: numpy's transpose on a tensor)."""

    def patchify_image(self, image, patch_size=None):
        return torch.from_numpy(super().patchify_image(np.asarray(image), patch_size=patch_size))


class TinyFuyuProcessor(SubprocessorsFromArguments, FuyuProcessor):
    """FuyuProcessor with TinyFuyuImageProcessor (saved as its own class, so found here by name). Fuyu's sentencepiece
    tokenizer starts every text with "▁", which FuyuProcessor strips off the image tokens' ids; the tiny BPE
    tokenizer does not, so the image text starts with that token here."""

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        return "▁" + super().replace_image_token(image_inputs, image_idx, **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return _image_processor_and_tokenizer(TinyFuyuImageProcessor, pretrained_model_name_or_path)


AutoProcessor.register("tiny_fuyu_processor", TinyFuyuProcessor, exist_ok=True)


class TinyApertus1p5ImageProcessor(PilBackend):
    """Apertus 1.5's image processor has only a torchvision backend (not installed). This one does what it does, with
    PIL: Qwen2-VL's smart resize to multiples of the 8 px spatial factor (576..1024 pixels here), bicubic, rescale and
    normalise to [-1, 1], pad the batch to its largest image (bottom/right zeros), true sizes in ``image_sizes``."""

    spatial_factor, min_pixels, max_pixels = 8, 24 * 24, 32 * 32
    model_input_names = ["pixel_values", "image_sizes"]

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)

    def preprocess(self, images, **kwargs):
        from transformers import BatchFeature
        from transformers.image_utils import make_flat_list_of_images
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        arrays = []
        for img in make_flat_list_of_images(images):
            img = img if hasattr(img, "resize") else Image.fromarray(np.asarray(img))
            h, w = smart_resize(img.height, img.width, self.spatial_factor, self.min_pixels, self.max_pixels)
            array = np.asarray(img.convert("RGB").resize((w, h), Image.BICUBIC), np.float32) / 127.5 - 1.0
            arrays.append(array.transpose(2, 0, 1))
        sizes = [a.shape[1:] for a in arrays]
        high, wide = max(h for h, _ in sizes), max(w for _, w in sizes)
        padded = np.stack([np.pad(a, ((0, 0), (0, high - a.shape[1]), (0, wide - a.shape[2]))) for a in arrays])
        data = {"pixel_values": padded, "image_sizes": np.array(sizes, np.int64)}
        return BatchFeature(data=data, tensor_type=kwargs.get("return_tensors"))


class TinyApertus1p5Processor(SubprocessorsFromArguments, Apertus1p5Processor):
    """Apertus1p5Processor with TinyApertus1p5ImageProcessor (found here by name) and WavTokenizer's feature extractor."""

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        from transformers import AutoTokenizer, WavTokenizerFeatureExtractor

        return [
            TinyApertus1p5ImageProcessor.from_pretrained(pretrained_model_name_or_path),
            WavTokenizerFeatureExtractor.from_pretrained(pretrained_model_name_or_path),
            AutoTokenizer.from_pretrained(pretrained_model_name_or_path),
        ]


AutoProcessor.register("tiny_apertus1p5_processor", TinyApertus1p5Processor, exist_ok=True)
