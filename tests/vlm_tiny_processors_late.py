"""Processors for the tiny models of tests/vlm_fixtures_late.py whose image processors have only a torchvision
backend (not installed here): stand-ins that do the same steps (torch's antialiased resize on uint8 images, as
torchvision's; then rescale and normalise). Each stands in for the host side only; the model path is the
architecture's own. Importing this registers them, so ``AutoProcessor.from_pretrained(folder)`` finds them by the
class name saved in the folder."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, BatchFeature, Molmo2Processor, MuseGlimmerProcessor, Step3p7Processor, UnlimitedOcrProcessor
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling, make_flat_list_of_images
from transformers.models.molmo2.image_processing_molmo2 import Molmo2ImageProcessor
from transformers.models.step3p7.image_processing_step3p7 import Step3p7ImageProcessor
from transformers.processing_utils import ProcessorMixin

from tests.vlm_tiny_processors import SubprocessorsFromArguments, _image_processor_and_tokenizer


def _uint8_chw(img) -> torch.Tensor:
    """An image as torchvision's backend holds it: uint8 [3, H, W]."""
    return torch.from_numpy(np.array(img.convert("RGB") if hasattr(img, "convert") else img, np.uint8)).permute(2, 0, 1)


def _resize(img: torch.Tensor, height: int, width: int, mode: str) -> torch.Tensor:
    """torchvision's resize of a uint8 [3, H, W] image (antialiased)."""
    if img.shape[-2:] == (height, width):
        return img
    return torch.nn.functional.interpolate(img[None], size=(height, width), mode=mode, antialias=True)[0]


class TinyStep3p7ImageProcessor(PilBackend):
    """Step-3.7's image processor (torchvision only) for images its global view covers: the size plan of HF's
    ``_plan_patches`` (square padding of extreme aspects, the max_image_size cap), bilinear resize to the planned size
    then to the square global view, rescale and CLIP-normalise. Local crops (an image longer than ``size`` or
    elongated past 1.5:1) are refused: DeepSeek-OCR 2's adapter does not take them."""

    size = {"height": 64, "width": 64}
    patch_size, max_image_size, vision_patch_size, downsampler_stride = 32, 3024, 4, 4
    image_mean, image_std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    model_input_names = ["pixel_values", "num_local_patches"]

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)

    def preprocess(self, images, **kwargs):
        side = self.size["height"]
        views = []
        for img in make_flat_list_of_images(images):
            img = _uint8_chw(img)
            height, width = img.shape[-2:]
            plan = self._plan_patches(int(width), int(height), side, self.patch_size)
            (global_w, global_h), window, needs_square_pad = plan[0], plan[2], plan[5]
            if window:
                raise ValueError(f"a {width}x{height} image gets Step-3.7's local crops, which this stand-in does not make")
            if needs_square_pad:
                square = torch.zeros(3, max(height, width), max(height, width), dtype=img.dtype)
                square[:, :height, :width] = img
                img = square
            views.append(_resize(_resize(img, global_h, global_w, "bilinear"), side, side, "bilinear"))
        pixels = torch.stack(views).float() / 255.0
        mean, std = torch.tensor(self.image_mean)[:, None, None], torch.tensor(self.image_std)[:, None, None]
        data = {"pixel_values": ((pixels - mean) / std).numpy(), "num_local_patches": [0] * len(views)}
        return BatchFeature(data=data, tensor_type=kwargs.get("return_tensors"))

    _plan_patches = Step3p7ImageProcessor._plan_patches  # HF's plan (no torchvision in it)
    _is_extreme_aspect = staticmethod(Step3p7ImageProcessor._is_extreme_aspect)


class TinyStep3p7Processor(SubprocessorsFromArguments, Step3p7Processor):
    """Step3p7Processor with TinyStep3p7ImageProcessor (found here by name)."""

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return _image_processor_and_tokenizer(TinyStep3p7ImageProcessor, pretrained_model_name_or_path)


AutoProcessor.register("tiny_step3p7_processor", TinyStep3p7Processor, exist_ok=True)


def _muse_glimmer_grid(height: int, width: int, unit: int, max_tokens: int) -> tuple[int, int]:
    """HF's muse_glimmer ``smart_resize`` (its module imports torchvision): the merged-token grid closest to the image's
    aspect ratio under the token cap, as a (height, width) in pixels."""
    ideal_h, ideal_w = height / unit, width / unit
    ratio = ideal_w / ideal_h if ideal_h > 0 else 1.0
    if ideal_h * ideal_w > max_tokens:
        ideal_h = (max_tokens / ratio) ** 0.5
        ideal_w = ideal_h * ratio
    pairs = {(h, w) for h in (math.floor(ideal_h), math.ceil(ideal_h)) for w in (math.floor(ideal_w), math.ceil(ideal_w))}
    pairs = [(h, w) for h, w in pairs if h >= 1 and w >= 1 and h * w <= max_tokens]
    pairs = pairs or [(max(1, round(ideal_h)), max(1, round(ideal_w)))]
    grid_h, grid_w = min(pairs, key=lambda grid: abs(grid[0] / grid[1] - height / width))
    return grid_h * unit, grid_w * unit


class TinyMuseGlimmerImageProcessor(PilBackend):
    """Muse Glimmer's image processor (torchvision only): HF's grid rule (merged tokens closest to the aspect ratio,
    at most ``max_image_tokens``), Lanczos resize (PIL's, which torchvision's CPU Lanczos follows), rescale and
    normalise to [-1, 1], then each patch flattened and repeated over the 2 temporal slots [N, 2 * 3 * p * p]."""

    patch_size, temporal_patch_size, merge_size, max_image_tokens = 7, 2, 2, 16
    image_mean, image_std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    model_input_names = ["pixel_values", "image_grid_thw"]

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)

    def preprocess(self, images, **kwargs):
        p, t = self.patch_size, self.temporal_patch_size
        patches, grids = [], []
        for img in make_flat_list_of_images(images):
            img = img if hasattr(img, "resize") else Image.fromarray(np.asarray(img))
            h, w = _muse_glimmer_grid(img.height, img.width, p * self.merge_size, self.max_image_tokens)
            array = np.asarray(img.convert("RGB").resize((w, h), Image.LANCZOS), np.float32) / 255.0
            array = ((array - np.array(self.image_mean, np.float32)) / np.array(self.image_std, np.float32)).transpose(2, 0, 1)
            gh, gw = h // p, w // p
            grid = array.reshape(3, gh, p, gw, p).transpose(1, 3, 0, 2, 4).reshape(gh * gw, 1, 3 * p * p)
            patches.append(np.repeat(grid, t, axis=1).reshape(gh * gw, t * 3 * p * p))
            grids.append([1, gh, gw])
        data = {"pixel_values": np.concatenate(patches), "image_grid_thw": np.array(grids, np.int64)}
        return BatchFeature(data=data, tensor_type=kwargs.get("return_tensors"))


class TinyMuseGlimmerProcessor(SubprocessorsFromArguments, MuseGlimmerProcessor):
    """MuseGlimmerProcessor with TinyMuseGlimmerImageProcessor and no video processor (torchvision): its image
    tokens, set as HF's __init__ sets them (which hands the mixin a video processor)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.image_start_token, self.image_end_token = "<|patch|>", "<|image_start|>", "<|image_end|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        ProcessorMixin.__init__(self, image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return _image_processor_and_tokenizer(TinyMuseGlimmerImageProcessor, pretrained_model_name_or_path)


AutoProcessor.register("tiny_muse_glimmer_processor", TinyMuseGlimmerProcessor, exist_ok=True)


class TinyMuseSparkProcessor(TinyMuseGlimmerProcessor):
    """Muse Spark's processor for image prompts: Muse Glimmer's image path and tokens (no audio feature extractor)."""


AutoProcessor.register("tiny_muse_spark_processor", TinyMuseSparkProcessor, exist_ok=True)


class TinyUnlimitedOcrImageProcessor(PilBackend):
    """Unlimited OCR's image processor (torchvision only), its global view: bicubic resize of the longer side to
    ``size`` (torch's antialiased resize of the uint8 image, as torchvision's), centred on a square of the background
    colour, rescale and normalise to [-1, 1]. Images longer than ``tile_size`` get local crops there: refused here."""

    size = {"height": 64, "width": 64}
    tile_size, background_color = 640, [127, 127, 127]
    image_mean, image_std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    model_input_names = ["pixel_values", "num_local_patches", "patches_grid"]

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)

    def preprocess(self, images, **kwargs):
        side = max(self.size["height"], self.size["width"])
        views = []
        for img in make_flat_list_of_images(images):
            img = _uint8_chw(img)
            height, width = (int(v) for v in img.shape[-2:])
            if max(height, width) > self.tile_size:
                raise ValueError(f"a {width}x{height} image gets Unlimited OCR's local crops, which this stand-in does not make")
            scale = side / max(height, width)
            img = _resize(img, round(height * scale), round(width * scale), "bicubic")
            square = torch.tensor(self.background_color, dtype=torch.uint8)[:, None, None].repeat(1, side, side)
            top, left = (side - img.shape[1]) // 2, (side - img.shape[2]) // 2
            square[:, top : top + img.shape[1], left : left + img.shape[2]] = img
            views.append(square)
        pixels = torch.stack(views).float() / 255.0
        mean, std = torch.tensor(self.image_mean)[:, None, None], torch.tensor(self.image_std)[:, None, None]
        data = {"pixel_values": ((pixels - mean) / std).numpy()}
        out = BatchFeature(data=data, tensor_type=kwargs.get("return_tensors"))
        out["num_local_patches"], out["patches_grid"] = [0] * len(views), [[1, 1]] * len(views)
        return out


class TinyUnlimitedOcrProcessor(SubprocessorsFromArguments, UnlimitedOcrProcessor):
    """UnlimitedOcrProcessor with TinyUnlimitedOcrImageProcessor (found here by name)."""

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return _image_processor_and_tokenizer(TinyUnlimitedOcrImageProcessor, pretrained_model_name_or_path)


AutoProcessor.register("tiny_unlimited_ocr_processor", TinyUnlimitedOcrProcessor, exist_ok=True)


_RESAMPLE_MODES = {PILImageResampling.BILINEAR: "bilinear", PILImageResampling.BICUBIC: "bicubic"}


class TinyMolmo2ImageProcessor(Molmo2ImageProcessor):
    """Molmo 2's image processor (HF's own crops, patches and pooling indices) with its two torchvision calls done
    by torch: the resize (a float tensor, antialias as asked: torchvision's tensor resize is this interpolation)
    and the normalisation."""

    def resize(self, image, size, resample=None, antialias=True, **kwargs):
        mode = _RESAMPLE_MODES[PILImageResampling(PILImageResampling.BILINEAR if resample is None else resample)]
        batch = image if image.dim() == 4 else image[None]
        out = torch.nn.functional.interpolate(batch, size=(size.height, size.width), mode=mode, align_corners=False, antialias=antialias)
        return out if image.dim() == 4 else out[0]

    def normalize(self, image, mean, std, inplace=False, **kwargs):
        mean, std = (torch.as_tensor(v, dtype=image.dtype).reshape(-1, 1, 1) for v in (mean, std))
        return (image - mean) / std


class TinyMolmo2Processor(SubprocessorsFromArguments, Molmo2Processor):
    """Molmo2Processor with TinyMolmo2ImageProcessor and no video processor (torchvision): its image settings and
    tokens, set as HF's __init__ sets them (which hands the mixin a video processor)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_use_col_tokens, self.use_single_crop_col_tokens, self.use_single_crop_start_token = True, None, True
        self.video_use_col_tokens, self.use_frame_special_tokens = False, True
        self.image_token, self.video_token = tokenizer.image_token, tokenizer.video_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        names = ["<im_patch>", "<im_col>", "<im_start>", "<low_res_im_start>", "<frame_start>", "<im_end>", "<frame_end>", "<im_low>"]
        self.image_token_ids = tokenizer.convert_tokens_to_ids(names)
        ProcessorMixin.__init__(self, image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return _image_processor_and_tokenizer(TinyMolmo2ImageProcessor, pretrained_model_name_or_path)


AutoProcessor.register("tiny_molmo2_processor", TinyMolmo2Processor, exist_ok=True)
