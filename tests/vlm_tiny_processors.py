"""Processors for the tiny models of tests/vlm_family_fixtures_more.py where transformers' own cannot run
here: image processors with only a torchvision backend (not installed), video processors (torchvision),
class defaults that are not saved with the processor (HF's sizes for real checkpoints). Each stands in
for the host side only; the model path is the architecture's own. Importing this registers them, so
``AutoProcessor.from_pretrained(folder)`` finds them by the class name saved in the folder."""

from __future__ import annotations

import numpy as np
from PIL import Image
from transformers import (
    AriaProcessor,
    AutoProcessor,
    Glm4vProcessor,
    GotOcr2Processor,
    HyperCLOVAXVisionV2Processor,
    Lfm2VlProcessor,
    Llama4Processor,
    LlavaNextVideoProcessor,
    SiglipImageProcessorPil,
)
from transformers.processing_utils import ImagesKwargs


def _image_processor_and_tokenizer(image_processor_class, path) -> list:
    """A processor's sub-processors when its image processor is a class of its own here (not found by name)."""
    from transformers import AutoTokenizer

    return [image_processor_class.from_pretrained(path), AutoTokenizer.from_pretrained(path)]


class TinyGlm4vProcessor(Glm4vProcessor):
    """Glm4vProcessor without the video processor, which needs torchvision (not installed here)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


AutoProcessor.register("tiny_glm4v_processor", TinyGlm4vProcessor, exist_ok=True)


class TinyLlama4ImageProcessor(SiglipImageProcessorPil):
    """Llama 4's image processor has only a torchvision backend (not installed): this one resizes every image
    to one tile (no tiling) and states the tile grid, 1x1, as Llama 4's does."""

    def _preprocess(self, images, **kwargs):
        out = super()._preprocess(images, **kwargs)
        out["aspect_ratios"] = np.ones((len(out["pixel_values"]), 2), np.int64)
        return out


class TinyLlama4Processor(Llama4Processor):
    """Llama4Processor with TinyLlama4ImageProcessor (saved as its own class, so found here by name)."""

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return _image_processor_and_tokenizer(TinyLlama4ImageProcessor, pretrained_model_name_or_path)


AutoProcessor.register("tiny_llama4_processor", TinyLlama4Processor, exist_ok=True)


class _Lfm2VlImagesKwargs(ImagesKwargs, total=False):
    return_row_col_info: bool


class TinyLfm2VlImageProcessor(SiglipImageProcessorPil):
    """LFM2-VL's image processor has only a torchvision backend (not installed). This one keeps what the model
    sees: each image resized (PIL) so its longest side is 42 px and both sides are multiples of 14 (patch 7 x
    factor 2), cut into 7x7 patches [num_patches, 3 * 49], padded to 36 patches with a mask, its patch grid in
    ``spatial_shapes``; no tiling (one tile per image)."""

    tile_size, downsample_factor, encoder_patch_size, use_thumbnail, max_num_patches = 42, 2, 7, False, 36
    valid_kwargs = _Lfm2VlImagesKwargs

    def __call__(self, images, **kwargs):
        return self.preprocess(images, **kwargs)

    def preprocess(self, images, **kwargs):
        from transformers import BatchFeature
        from transformers.image_utils import make_flat_list_of_images

        pixel_values, masks, shapes, sizes = [], [], [], []
        for img in make_flat_list_of_images(images):
            img = img if hasattr(img, "resize") else Image.fromarray(np.asarray(img))
            scale = 42 / max(img.size)
            w, h = (max(14, round(side * scale / 14) * 14) for side in img.size)
            array = np.asarray(img.convert("RGB").resize((w, h), Image.BICUBIC), np.float32) / 255.0
            array = (array - np.array(self.image_mean, np.float32)) / np.array(self.image_std, np.float32)
            patches = array.reshape(h // 7, 7, w // 7, 7, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 7 * 7 * 3)
            mask = np.zeros(self.max_num_patches, np.int64)
            mask[: len(patches)] = 1
            pixel_values.append(np.pad(patches, ((0, self.max_num_patches - len(patches)), (0, 0))))
            masks.append(mask)
            shapes.append([h // 7, w // 7])
            sizes.append([h, w])
        data = {"pixel_values": np.stack(pixel_values), "pixel_attention_mask": np.stack(masks), "spatial_shapes": np.array(shapes)}
        if kwargs.get("return_row_col_info"):
            data.update(image_rows=[1] * len(sizes), image_cols=[1] * len(sizes), image_sizes=sizes)
        return BatchFeature(data=data, tensor_type=kwargs.get("return_tensors"))


class TinyLfm2VlProcessor(Lfm2VlProcessor):
    """Lfm2VlProcessor with TinyLfm2VlImageProcessor (saved as its own class, so found here by name)."""

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        return _image_processor_and_tokenizer(TinyLfm2VlImageProcessor, pretrained_model_name_or_path)


AutoProcessor.register("tiny_lfm2_vl_processor", TinyLfm2VlProcessor, exist_ok=True)


class TinyHyperClovaXVisionProcessor(HyperCLOVAXVisionV2Processor):
    """HyperCLOVAXVisionV2Processor without the video processor, which needs torchvision (not installed here)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


AutoProcessor.register("tiny_hyperclovax_vision_processor", TinyHyperClovaXVisionProcessor, exist_ok=True)


class TinyGotOcr2Processor(GotOcr2Processor):
    """GotOcr2Processor with the tiny model's 4 image tokens per image (a class default, not saved, in HF's)."""

    num_image_tokens = 4


AutoProcessor.register("tiny_got_ocr2_processor", TinyGotOcr2Processor, exist_ok=True)


class TinyLlavaNextVideoProcessor(LlavaNextVideoProcessor):
    """LlavaNextVideoProcessor without the video processor, which needs torchvision (not installed here); tests that
    pass videos give it a stand-in (tests/test_vlm_video_llava.py)."""

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template=None,
        patch_size=None,
        vision_feature_select_strategy=None,
        num_additional_image_tokens=0,
        **kwargs,
    ):
        from transformers.processing_utils import ProcessorMixin

        # LlavaNextVideoProcessor.__init__ passes its sub-processors by position, video processor first
        self.patch_size, self.vision_feature_select_strategy = patch_size, vision_feature_select_strategy
        self.num_additional_image_tokens = num_additional_image_tokens
        self.image_token, self.video_token = "<image>", "<video>"
        self.image_token_id, self.video_token_id = tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        from transformers import LlavaNextImageProcessorPil

        return _image_processor_and_tokenizer(LlavaNextImageProcessorPil, pretrained_model_name_or_path)


AutoProcessor.register("tiny_llava_next_video_processor", TinyLlavaNextVideoProcessor, exist_ok=True)


class TinyAriaProcessor(AriaProcessor):
    """AriaProcessor at the tiny model's image size (HF's sets 980 px as a class default, not saved)."""

    images_kwargs = {"max_image_size": 490, "min_image_size": 70, "split_image": False}


AutoProcessor.register("tiny_aria_processor", TinyAriaProcessor, exist_ok=True)
