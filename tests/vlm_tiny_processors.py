"""Processors for the tiny models of tests/vlm_family_fixtures_more.py where transformers' own cannot run
here: video processors (torchvision, not installed), class defaults that are not saved with the processor
(HF's sizes for real checkpoints); the tiling image processors with only a torchvision backend are in
tests/vlm_tiny_processors_tiles.py. Each stands in
for the host side only; the model path is the architecture's own. Importing this registers them, so
``AutoProcessor.from_pretrained(folder)`` finds them by the class name saved in the folder."""

from __future__ import annotations

from transformers import (
    AriaProcessor,
    AutoProcessor,
    Glm4vProcessor,
    GotOcr2Processor,
    HyperCLOVAXVisionV2Processor,
    LlavaNextVideoProcessor,
)


class SubprocessorsFromArguments:
    """For a tiny processor whose ``_get_arguments_from_pretrained`` loads its parts: transformers 5.25 loads a
    processor's parts in ``_resolve_subprocessors`` instead (5.24 has no such method), which takes parts given as
    keywords."""

    @classmethod
    def _resolve_subprocessors(cls, pretrained_model_name_or_path, processor_dict, **kwargs):
        parts = cls._get_arguments_from_pretrained(pretrained_model_name_or_path, processor_dict)
        loaded = dict(zip(cls.get_attributes(), parts))
        return super()._resolve_subprocessors(pretrained_model_name_or_path, processor_dict, **{**loaded, **kwargs})


def _image_processor_and_tokenizer(image_processor_class, path) -> list:
    """A processor's sub-processors when its image processor is a class of its own here (not found by name)."""
    from transformers import AutoTokenizer

    return [image_processor_class.from_pretrained(path), AutoTokenizer.from_pretrained(path)]


class TinyGlm4vProcessor(Glm4vProcessor):
    """Glm4vProcessor without the video processor, which needs torchvision (not installed here)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


AutoProcessor.register("tiny_glm4v_processor", TinyGlm4vProcessor, exist_ok=True)


class TinyHyperClovaXVisionProcessor(HyperCLOVAXVisionV2Processor):
    """HyperCLOVAXVisionV2Processor without the video processor, which needs torchvision (not installed here)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)


AutoProcessor.register("tiny_hyperclovax_vision_processor", TinyHyperClovaXVisionProcessor, exist_ok=True)


class TinyGotOcr2Processor(GotOcr2Processor):
    """GotOcr2Processor with the tiny model's 4 image tokens per image (a class default, not saved, in HF's)."""

    num_image_tokens = 4


AutoProcessor.register("tiny_got_ocr2_processor", TinyGotOcr2Processor, exist_ok=True)


class TinyLlavaNextVideoProcessor(SubprocessorsFromArguments, LlavaNextVideoProcessor):
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
