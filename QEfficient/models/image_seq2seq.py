"""The image encoder-decoders that are not transformers' VisionEncoderDecoderModel, in the lifecycle of
QEFFAutoModelForVisionEncoderDecoder (two graphs, greedy, sampled or beam-search tokens equal to transformers'
``generate``): Pix2Struct, Florence-2, T5Gemma 2, BLIP captioning and PP-FormulaNet (transform/image_seq2seq.py).
``QEFFAutoModelForImageTextToText.from_pretrained`` returns these for such checkpoints; QEfficient has no such classes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import GenerationConfig, PretrainedConfig, PreTrainedModel

from QEfficient.export.graph_names import (
    ATTENTION_MASK,
    DECODER_ATTENTION_MASK,
    DECODER_INPUT_IDS,
    FLATTENED_PATCHES,
    INPUT_IDS,
    PIXEL_VALUES,
)
from QEfficient.export.seq2seq_graph_specs import (
    ImageTextSeq2SeqEncoderGraphSpec,
    PatchSeq2SeqEncoderGraphSpec,
    VisionSeq2SeqEncoderGraphSpec,
)
from QEfficient.models.vision_seq2seq import QEFFAutoModelForVisionEncoderDecoder
from QEfficient.transform.image_seq2seq import (
    QEffBlipEncoder,
    QEffFlorence2Encoder,
    QEffPix2StructEncoder,
    QEffPPFormulaNetEncoder,
    QEffT5Gemma2Encoder,
)
from QEfficient.transform.seq2seq import QEffSeq2SeqDecoder
from QEfficient.transform.vision_seq2seq import QEffVisionSeq2SeqDecoder

if TYPE_CHECKING:
    from PIL import Image

FLORENCE2_IMAGE_SIZE = (768, 768)  # Florence-2's processor's, where the checkpoint's folder has none


def _array(value, dtype) -> np.ndarray:
    return np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype)


def _given(inputs, names: tuple[str, ...], call: str) -> list:
    """``inputs``' arrays of ``names`` (a processor's output), or a ValueError that says how to make them."""
    if inputs is None or not hasattr(inputs, "get"):
        raise ValueError(f"generate() needs the processor's output: inputs={call}.")
    missing = [name for name in names if inputs.get(name) is None]
    if missing:
        raise ValueError(f"inputs has no {', '.join(missing)} (it has {sorted(inputs)}): pass inputs={call}.")
    return [inputs[name] for name in names]


class _ImageSeq2SeqModel(QEFFAutoModelForVisionEncoderDecoder):
    """The image encoder-decoders that are not VisionEncoderDecoderModel: no decoder type to prove (their decoder is
    their own), their task prompts follow transformers' start-token rule (not Donut's)."""

    @staticmethod
    def _check_details(model: PreTrainedModel) -> None:
        return None

    def _prompt_starts_sequence(self) -> bool:
        return False


class QEFFPix2StructForConditionalGeneration(_ImageSeq2SeqModel):
    """Pix2Struct (captioning, DePlot, MatCha, chart and screen question answering).

    >>> model = QEFFAutoModelForImageTextToText.from_pretrained("path/to/pix2struct-textcaps-base")
    >>> model.compile(ctx_len=64)
    >>> model.generate(processor, inputs=processor(images=image, return_tensors="pt"), generation_len=40).texts

    ``inputs``: the processor's output (``flattened_patches``, ``attention_mask``; a question checkpoint's processor
    draws the question onto the image; text given to a captioning checkpoint's becomes ``decoder_input_ids``, the
    decoder's prompt, as transformers' generate reads it)."""

    graph_kind = "pix2struct"
    hf_model_type, hf_class_name = "pix2struct", "Pix2StructForConditionalGeneration"
    CALL = "processor(images=image, return_tensors='pt')"

    def _graph_modules(self) -> tuple:
        encoder = QEffPix2StructEncoder(self.hf, PatchSeq2SeqEncoderGraphSpec)
        return encoder, QEffVisionSeq2SeqDecoder(self.hf, encoder.num_layers, encoder.kv_shape())

    def _encoder_specializations(self, batch_size: int) -> dict:
        return PatchSeq2SeqEncoderGraphSpec.specializations(batch_size, 0)  # any number of patches

    def image_request(self, image: Image.Image, prompt: str, tokenizer: Any, image_processor: Any) -> tuple[dict, int, int]:
        """The processor's output for the image (its text: a question drawn onto the image, or the decoder's first
        tokens for a captioning checkpoint); the positions read: the image's real patches and the decoder prompt."""
        inputs = dict(self.processor()(images=image, text=prompt or None, return_tensors="np"))
        ids = inputs.pop(DECODER_INPUT_IDS, None)
        inputs.pop(DECODER_ATTENTION_MASK, None)
        decoder_prompt = self.decoder_prompt(ids, 1, self.decoder_start()) if ids is not None and ids.size else None
        width = 1 if decoder_prompt is None else decoder_prompt.shape[1]
        options = {"inputs": inputs} | ({DECODER_INPUT_IDS: decoder_prompt} if decoder_prompt is not None else {})
        return options, width, int(inputs[ATTENTION_MASK].sum()) + width

    def image_positions(self) -> int:
        """The most patches an image takes: the processor's ``max_patches``."""
        return int(self.processor().image_processor.max_patches)

    def _inputs(self, tokenizer, prompts, inputs) -> dict[str, np.ndarray]:
        if prompts is not None:
            raise ValueError(f"Pass the image and its text through the processor: inputs={self.CALL[:-1]}, text=...).")
        patches, mask = _given(inputs, (FLATTENED_PATCHES, ATTENTION_MASK), self.CALL)
        patches, mask = _array(patches, np.float32), _array(mask, np.int64)
        width = 2 + self.encoder.encoder_config.patch_embed_hidden_size  # a patch's row, column and pixel values
        if patches.ndim != 3 or patches.shape[2] != width or mask.shape != patches.shape[:2]:
            raise ValueError(
                f"flattened_patches must be [images, patches, {width}] and attention_mask [images, patches], got "
                f"{list(patches.shape)} and {list(mask.shape)}: pass the processor's output."
            )
        return {FLATTENED_PATCHES: patches, ATTENTION_MASK: mask}


class QEFFBlipForConditionalGeneration(_ImageSeq2SeqModel):
    """BLIP image captioning (``Salesforce/blip-image-captioning-*``), optionally continuing a text prompt.

    >>> model = QEFFAutoModelForImageTextToText.from_pretrained("path/to/blip-image-captioning-base")
    >>> model.compile(ctx_len=64)
    >>> model.generate(processor, inputs=processor(images=image, text="a picture of", return_tensors="pt")).texts

    As BLIP's own generate: the decoder starts with the text config's ``bos_token_id`` in place of the prompt's first
    token, the prompt's last (its ``[SEP]``) dropped, and ends at ``sep_token_id``."""

    graph_kind = "blip"
    hf_model_type, hf_class_name = "blip", "BlipForConditionalGeneration"

    @staticmethod
    def _check_details(model: PreTrainedModel) -> None:
        # a BLIP question-answering or retrieval checkpoint loads into this class too, with other weights' meaning
        saved = [a for a in getattr(model.config, "architectures", None) or [] if a != "BlipForConditionalGeneration"]
        if type(model).__name__ != "BlipForConditionalGeneration" or saved:
            kind = saved[0] if saved else type(model).__name__
            raise NotImplementedError(f"{kind} is not run here: BLIP's captioning model (BlipForConditionalGeneration) is.")

    def _graph_modules(self) -> tuple:
        encoder = QEffBlipEncoder(self.hf, VisionSeq2SeqEncoderGraphSpec)
        return encoder, QEffVisionSeq2SeqDecoder(self.hf, encoder.num_layers, encoder.kv_shape(), self.hf.text_decoder)

    @property
    def generation_config(self) -> GenerationConfig:
        """The text decoder's, with the tokens BLIP's generate passes it: start at bos, end at sep, pad with pad (a
        copy made at first use: change this one, ``model.generation_config``, to change what generate() does)."""
        if getattr(self, "_generation_config", None) is None:
            text = self.hf.config.text_config
            config = copy.deepcopy(self.hf.text_decoder.generation_config)
            config.update(decoder_start_token_id=text.bos_token_id, eos_token_id=text.sep_token_id, pad_token_id=text.pad_token_id)
            self._generation_config = config
        return self._generation_config

    def _check_max_positions(self, name: str, length: int, config=None) -> None:
        super()._check_max_positions(name, length, config or self.hf.config.text_config)

    def _processor_decoder_prompt(self, inputs) -> tuple:
        """The processor's text (``input_ids`` beside its ``pixel_values``), as BLIP's generate reads it: the first
        token made bos, the last dropped."""
        ids, mask = inputs.get(INPUT_IDS), inputs.get(ATTENTION_MASK)
        if ids is None or inputs.get(PIXEL_VALUES) is None:  # generate(pixel_values): transformers' spelling, no text
            return None, None
        if np.ndim(ids) != 2:
            raise ValueError(f"input_ids (the caption's start) must be [images, length], got shape {list(np.shape(ids))}.")
        ids = _array(ids, np.int64).copy()
        ids[:, 0] = self.generation_config.decoder_start_token_id
        return ids[:, :-1], None if mask is None else _array(mask, np.int64)[:, :-1]

    def _inputs(self, tokenizer, prompts, inputs) -> dict[str, np.ndarray]:
        if hasattr(inputs, "get") and inputs.get(INPUT_IDS) is not None and inputs.get(PIXEL_VALUES) is not None:
            inputs = {PIXEL_VALUES: inputs[PIXEL_VALUES]}  # the text is the decoder's prompt (_processor_decoder_prompt)
        return super()._inputs(tokenizer, prompts, inputs)

    def image_request(self, image: Image.Image, prompt: str, tokenizer: Any, image_processor: Any) -> tuple[dict, int, int]:
        """The image's pixels; the text, where given, the caption's start (as BLIP's processor and generate take it)."""
        if not prompt:
            return super().image_request(image, prompt, tokenizer, image_processor)
        inputs = dict(self.processor()(images=image, text=prompt, return_tensors="np"))
        width = self._processor_decoder_prompt(inputs)[0].shape[1]
        return {"inputs": inputs}, width, self.image_positions() + width


class QEFFPPFormulaNetForConditionalGeneration(_ImageSeq2SeqModel):
    """PP-FormulaNet (formula images to LaTeX): a SAM-style tower at its config's image size, an MBart-style decoder.

    >>> model = QEFFAutoModelForImageTextToText.from_pretrained("path/to/PP-FormulaNet_plus-L_safetensors")
    >>> model.compile(ctx_len=512)
    >>> model.generate(processor, inputs=processor(images=image, return_tensors="pt"), generation_len=256).texts"""

    graph_kind = "pp_formulanet"
    hf_model_type, hf_class_name = "pp_formulanet", "PPFormulaNetForConditionalGeneration"

    def _graph_modules(self) -> tuple:
        encoder = QEffPPFormulaNetEncoder(self.hf, VisionSeq2SeqEncoderGraphSpec)
        return encoder, QEffSeq2SeqDecoder(self.hf, encoder.kv_shape(), config=self.hf.config.text_config)

    def _check_max_positions(self, name: str, length: int, config=None) -> None:
        super()._check_max_positions(name, length, config or self.hf.config.text_config)


class _PromptWithImage(_ImageSeq2SeqModel):
    """An encoder that reads a prompt whose placeholders take one image's features (Florence-2, T5Gemma 2): the
    processor's ``input_ids``, ``attention_mask`` and ``pixel_values``, one image per prompt."""

    CALL = "processor(text=prompt, images=image, return_tensors='pt')"

    def image_token_id(self) -> int:
        raise NotImplementedError

    def position_config(self, name: str) -> PretrainedConfig:
        """The config whose position table bounds ``name`` (ctx_len: the decoder's; else the encoder's prompt)."""
        raise NotImplementedError

    def _check_max_positions(self, name: str, length: int, config=None) -> None:
        super()._check_max_positions(name, length, config or self.position_config(name))

    def _encoder_specializations(self, batch_size: int) -> dict:
        return ImageTextSeq2SeqEncoderGraphSpec.specializations(batch_size, *self._image_size())

    def image_request(self, image: Image.Image, prompt: str, tokenizer: Any, image_processor: Any) -> tuple[dict, int, int]:
        """The processor's output for the image and its prompt; the positions read: the encoder's (the image's
        placeholders and the prompt's tokens) and the decoder's start token."""
        inputs = self.processor()(text=prompt, images=image, return_tensors="np")
        return {"inputs": dict(inputs)}, 1, int(inputs[INPUT_IDS].shape[1]) + 1

    def _inputs(self, tokenizer, prompts, inputs) -> dict[str, np.ndarray]:
        if prompts is not None:
            raise ValueError(f"Pass the prompt and the image through the processor: inputs={self.CALL}.")
        ids, mask, pixels = _given(inputs, (INPUT_IDS, ATTENTION_MASK, PIXEL_VALUES), self.CALL)
        ids, mask, pixels = _array(ids, np.int64), _array(mask, np.int64), _array(pixels, np.float32)
        height, width = self._image_size()
        if ids.ndim != 2 or mask.shape != ids.shape or pixels.shape != (len(ids), 3, height, width):
            raise ValueError(
                f"input_ids and attention_mask must be [prompts, length] and pixel_values [prompts, 3, {height}, {width}] "
                f"(one image per prompt, at the processor's size), got {list(ids.shape)}, {list(mask.shape)} and "
                f"{list(pixels.shape)}."
            )
        tokens = self.image_positions()
        placeholders = (ids == self.image_token_id()).sum(1)
        if (placeholders != tokens).any():
            raise ValueError(
                f"Each prompt must hold its image's {tokens} placeholder tokens (the processor writes them), got "
                f"{placeholders.tolist()}: pass inputs={self.CALL}."
            )
        self._check_max_positions("the prompt's length", ids.shape[1])
        return {INPUT_IDS: ids, ATTENTION_MASK: mask, PIXEL_VALUES: pixels}


class QEFFFlorence2ForConditionalGeneration(_PromptWithImage):
    """Florence-2 (captioning, OCR, detection and grounding by task prompts such as ``<CAPTION>``, ``<OCR>``, ``<OD>``).

    >>> model = QEFFAutoModelForImageTextToText.from_pretrained("path/to/Florence-2-base")
    >>> model.compile(ctx_len=256)
    >>> inputs = processor(text="<CAPTION>", images=image, return_tensors="pt")
    >>> model.generate(processor, inputs=inputs, generation_len=100).texts

    ``inputs``: the processor's output (``input_ids`` with the image's placeholders, ``attention_mask``,
    ``pixel_values`` at the processor's size, which the encoder graph is traced at). ``texts`` keep the location tokens
    that the processor's ``post_process_generation`` reads."""

    graph_kind = "florence2"
    hf_model_type, hf_class_name = "florence2", "Florence2ForConditionalGeneration"

    def _graph_modules(self) -> tuple:
        encoder = QEffFlorence2Encoder(self.hf, ImageTextSeq2SeqEncoderGraphSpec)
        return encoder, QEffSeq2SeqDecoder(self.hf, encoder.kv_shape(), config=self.hf.config.text_config)

    def export(self, export_dir=None, **kwargs) -> list[Path]:
        """The encoder graph at the processor's image size (the size is part of the export's hash)."""
        self.encoder.image_size = self._image_size()
        self.hash_params["image_size"] = list(self.encoder.image_size)
        return super().export(export_dir, **kwargs)

    def _image_size(self) -> tuple[int, int]:
        """(height, width) of the processor's pixel values: one blank image through the checkpoint's image processor
        (its resize and crop rules), else Florence-2's 768 x 768."""
        if getattr(self, "_processor_size", None) is None:
            self._processor_size = FLORENCE2_IMAGE_SIZE
            if self.local_model_dir is not None:
                from PIL import Image
                from transformers import AutoImageProcessor

                try:
                    processor = AutoImageProcessor.from_pretrained(self.local_model_dir)
                except (OSError, ValueError):  # a folder without the processor's files: Florence-2's own size
                    return self._processor_size
                shape = processor(images=Image.new("RGB", (32, 32)), return_tensors="np")[PIXEL_VALUES].shape
                self._processor_size = (int(shape[-2]), int(shape[-1]))
        return self._processor_size

    def image_token_id(self) -> int:
        return self.hf.config.image_token_id

    def position_config(self, name: str) -> PretrainedConfig:
        return self.hf.config.text_config

    def text_of(self, tokenizer, ids) -> str:
        """The text with its special tokens (the ``<loc_N>`` boxes of detection and grounding tasks, which the
        processor's ``post_process_generation`` reads), without the start, end and pad tokens."""
        tokens = getattr(tokenizer, "tokenizer", tokenizer)  # a processor's tokenizer
        drop = {t for t in (tokens.bos_token_id, tokens.eos_token_id, tokens.pad_token_id) if t is not None}
        return tokens.decode([int(t) for t in ids if int(t) not in drop], skip_special_tokens=False)

    def image_positions(self) -> int:
        """The encoder positions one image takes (its placeholders in the prompt)."""
        if getattr(self, "_image_tokens", None) is None:
            self.encoder.image_size = self._image_size()
            self._image_tokens = self.encoder.image_tokens()
        return self._image_tokens


class QEFFT5Gemma2ForConditionalGeneration(_PromptWithImage):
    """T5Gemma 2 with images (Gemma 3's tower; the prompt's ``<start_of_image>`` marks where the processor puts the
    image's tokens). Text alone: QEFFAutoModelForSeq2SeqLM runs the same checkpoint without the image tower.

    >>> model = QEFFAutoModelForImageTextToText.from_pretrained("path/to/t5gemma-2-270m-270m")
    >>> model.compile(ctx_len=128)
    >>> inputs = processor(text="<start_of_image> Describe the image.", images=image, return_tensors="pt")
    >>> model.generate(processor, inputs=inputs, generation_len=64).texts"""

    graph_kind = "t5gemma2"
    hf_model_type, hf_class_name = "t5gemma2", "T5Gemma2ForConditionalGeneration"
    runs_text_alone = True  # QEFFAutoModelForSeq2SeqLM runs a prompt without an image (infer takes it so)

    def _graph_modules(self) -> tuple:
        encoder = QEffT5Gemma2Encoder(self.hf, ImageTextSeq2SeqEncoderGraphSpec)
        return encoder, QEffSeq2SeqDecoder(self.hf, encoder.kv_shape())

    def _image_size(self) -> tuple[int, int]:
        return self.encoder.image_size

    def image_token_id(self) -> int:
        return self.hf.config.encoder.image_token_id

    def image_positions(self) -> int:
        return self.encoder.image_tokens()

    def position_config(self, name: str) -> PretrainedConfig:
        return self.hf.config.decoder if name == "ctx_len" else self.hf.config.encoder.text_config

    def image_request(self, image: Image.Image, prompt: str, tokenizer: Any, image_processor: Any) -> tuple[dict, int, int]:
        """The image goes where the prompt's ``<start_of_image>`` is, else before the text (the processor's rule for a
        prompt without text)."""
        boi = self.processor().boi_token
        return super().image_request(image, prompt if boi in prompt else f"{boi} {prompt}".strip(), tokenizer, image_processor)


# model_type -> the class that runs it: the image-text checkpoints that are encoder-decoders
IMAGE_SEQ2SEQ_CLASSES: dict[str, type[QEFFAutoModelForVisionEncoderDecoder]] = {
    "vision-encoder-decoder": QEFFAutoModelForVisionEncoderDecoder,
    "pix2struct": QEFFPix2StructForConditionalGeneration,
    "florence2": QEFFFlorence2ForConditionalGeneration,
    "t5gemma2": QEFFT5Gemma2ForConditionalGeneration,
    "blip": QEFFBlipForConditionalGeneration,
    "pp_formulanet": QEFFPPFormulaNetForConditionalGeneration,
}

__all__ = [
    "IMAGE_SEQ2SEQ_CLASSES",
    "QEFFBlipForConditionalGeneration",
    "QEFFFlorence2ForConditionalGeneration",
    "QEFFPix2StructForConditionalGeneration",
    "QEFFPPFormulaNetForConditionalGeneration",
    "QEFFT5Gemma2ForConditionalGeneration",
]
