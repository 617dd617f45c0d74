"""QEFFAutoModelForVisionEncoderDecoder: transformers' VisionEncoderDecoderModel (TrOCR, Donut, ViT-GPT2 captioners and
other image encoders paired with a causal-LM decoder) as two graphs, as the text encoder-decoders run: the image
encoder's cross keys/values bound to a retained-state decoder step (transform/vision_seq2seq.py), greedy, sampled or
beam-search tokens equal to transformers' ``generate`` (generation/seq2seq_generation.py).

QEfficient has no such class; ``QEFFAutoModelForImageTextToText.from_pretrained`` returns this one for such a checkpoint.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import AutoModelForImageTextToText, PreTrainedModel

from QEfficient.export.graph_names import DECODER_INPUT_IDS, INPUT_IDS, PIXEL_VALUES
from QEfficient.export.onnx_export import export_seq2seq_decoder_onnx, export_vision_seq2seq_encoder_onnx
from QEfficient.export.seq2seq_graph_specs import VisionSeq2SeqEncoderGraphSpec
from QEfficient.generation.seq2seq_generation import Seq2SeqRules
from QEfficient.models.base import EncoderDecoderModel
from QEfficient.models.seq2seq_lm import QEFFAutoModelForSeq2SeqLM
from QEfficient.transform.rewrites import apply_rewrites
from QEfficient.transform.vision_seq2seq import PROVEN_DECODERS, QEffVisionSeq2SeqDecoder, QEffVisionSeq2SeqEncoder

if TYPE_CHECKING:
    from PIL import Image

MODEL_TYPE = "vision-encoder-decoder"
ALLOW_ANY = "QEFF_ALLOW_ANY_ARCHITECTURE"


class QEFFAutoModelForVisionEncoderDecoder(QEFFAutoModelForSeq2SeqLM):
    """>>> model = QEFFAutoModelForVisionEncoderDecoder.from_pretrained("path/to/trocr-base-printed")
    >>> model.compile(ctx_len=64)
    >>> model.generate(processor, inputs=processor(images=image, return_tensors="pt"), generation_len=40).texts

    ``generate(tokenizer_or_processor, inputs=...)``: ``inputs`` the image processor's output (``pixel_values``);
    transformers' spelling ``generate(pixel_values, max_new_tokens=40)`` works too. The rest as
    QEFFAutoModelForSeq2SeqLM.generate (beams, sampling, streamer)."""

    auto_class = AutoModelForImageTextToText
    graph_kind = "vision-seq2seq"
    hf_model_type, hf_class_name = MODEL_TYPE, "VisionEncoderDecoderModel"  # what this class runs
    export_graphs = (export_vision_seq2seq_encoder_onnx, export_seq2seq_decoder_onnx)

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        self._check_model(model)
        EncoderDecoderModel.__init__(self, model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        apply_rewrites(self.hf)  # methods that do not export as transformers writes them (transform/rewrites.py)
        self.encoder, self.decoder = self._graph_modules()
        self.qpc_paths = None

    @classmethod
    def _check_model(cls, model: PreTrainedModel) -> None:
        """A model of another type is refused with the class that runs it; then the class's own checks."""
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type != cls.hf_model_type:
            from QEfficient.models.image_seq2seq import IMAGE_SEQ2SEQ_CLASSES

            other = IMAGE_SEQ2SEQ_CLASSES.get(model_type)
            hint = f"load it with {other.__name__} (or QEFFAutoModelForImageTextToText)" if other else f"{cls.__name__} runs those"
            raise TypeError(f"{type(model).__name__} is not a {cls.hf_class_name}: {hint}.")
        cls._check_details(model)

    @staticmethod
    def _check_details(model: PreTrainedModel) -> None:
        """The decoder's type is one proven here."""
        decoder_type = model.config.decoder.model_type
        if decoder_type not in PROVEN_DECODERS and os.environ.get(ALLOW_ANY) != "1":
            raise NotImplementedError(
                f"A {decoder_type!r} decoder is not proven here for image encoder-decoders (proven: {', '.join(PROVEN_DECODERS)}); "
                f"{ALLOW_ANY}=1 tries it anyway."
            )

    def _graph_modules(self) -> tuple:
        """(the encoder's module, the decoder step's module), each exported to a graph."""
        encoder = QEffVisionSeq2SeqEncoder(self.hf, VisionSeq2SeqEncoderGraphSpec)
        return encoder, QEffVisionSeq2SeqDecoder(self.hf, encoder.num_layers, encoder.kv_shape())

    def _encoder_specializations(self, batch_size: int) -> dict:
        return VisionSeq2SeqEncoderGraphSpec.specializations(batch_size, *self._image_size())

    def _image_size(self) -> tuple[int, int]:
        """(height, width) the encoder graph reads: its config's image size, as its processor resizes to it."""
        size = self.encoder.encoder_config.image_size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def text_of(self, tokenizer, ids) -> str:
        """Donut's output keeps its tags (``<s_menu>``, ``<s_nm>``: special tokens its processor's ``token2json`` reads),
        without the end and pad tokens, as transformers' Donut examples decode it; the others' skip special tokens."""
        if not self._prompt_starts_sequence():
            return super().text_of(tokenizer, ids)
        tokens = getattr(tokenizer, "tokenizer", tokenizer)  # a processor's tokenizer
        drop = {t for t in (tokens.eos_token_id, tokens.pad_token_id) if t is not None}
        return tokens.decode([int(t) for t in ids if int(t) not in drop], skip_special_tokens=False)

    def _prompt_starts_sequence(self) -> bool:
        return "donut" in self.encoder.encoder_config.model_type.lower()  # transformers' exception: task prompts

    def image_request(self, image: Image.Image, prompt: str, tokenizer: Any, image_processor: Any) -> tuple[dict, int, int]:
        """One image and its text as generate() takes them, for the server and the CLI: (generate's ``inputs`` and
        ``decoder_input_ids``, the decoder prompt's tokens with its start token, the positions the request reads: the
        image's patches and that prompt). The text here is the decoder's first tokens (Donut's task prompt)."""
        pixels = image_processor(images=image, return_tensors="np")[PIXEL_VALUES]
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        decoder_prompt = self.decoder_prompt(np.array([ids]), 1, self.decoder_start()) if ids else None
        width = 1 if decoder_prompt is None else decoder_prompt.shape[1]
        options = {"inputs": {PIXEL_VALUES: pixels}} | ({DECODER_INPUT_IDS: decoder_prompt} if ids else {})
        return options, width, self.image_positions() + width

    def decoder_start(self) -> int:
        """The decoder's start token, as generate() reads it from the checkpoint."""
        return Seq2SeqRules.from_generation_config(self.generation_config, self.config).decoder_start_token_id

    def processor(self) -> Any:
        """The checkpoint's processor (transformers' AutoProcessor), loaded once."""
        if getattr(self, "_processor", None) is None:
            if self.local_model_dir is None:
                raise ValueError("This model was not loaded from a folder: pass generate() the processor's output (inputs=...).")
            from transformers import AutoProcessor

            self._processor = AutoProcessor.from_pretrained(self.local_model_dir)
        return self._processor

    def image_positions(self) -> int:
        """The encoder's positions for one image (its patches), which the decoder's cross-attention reads."""
        return int(self.encoder.kv_positions())

    def _check_max_positions(self, name: str, length: int, config=None) -> None:
        super()._check_max_positions(name, length, config or self.hf.decoder.config)  # the decoder's position table

    def _inputs(self, tokenizer, prompts, inputs) -> dict[str, np.ndarray]:
        """{pixel_values: [N, C, H, W] float32} (no mask: the decoder reads every patch)."""
        if prompts is not None:
            raise ValueError(
                "This image encoder-decoder reads images, not prompts: pass inputs=processor(images=..., return_tensors='pt') "
                "(or the pixel_values)."
            )
        if inputs is None:
            raise ValueError("generate() needs the images: inputs=processor(images=..., return_tensors='pt'), or pixel_values.")
        pixels = inputs.get(PIXEL_VALUES, inputs.get(INPUT_IDS)) if hasattr(inputs, "get") else inputs
        if pixels is None:
            raise ValueError(f"inputs has no pixel_values (it has {sorted(inputs)}): pass the image processor's output.")
        pixels = np.asarray(pixels.detach().cpu() if isinstance(pixels, torch.Tensor) else pixels, np.float32)
        expected = self.encoder.encoder_config
        channels = getattr(expected, "num_channels", 3)
        height, width = self._image_size()
        if pixels.ndim != 4 or pixels.shape[1:] != (channels, height, width):
            raise ValueError(
                f"pixel_values must be [images, {channels}, {height}, {width}] (the encoder's image size, to which its "
                f"processor resizes), got {list(pixels.shape)}."
            )
        return {PIXEL_VALUES: pixels}


__all__ = ["QEFFAutoModelForVisionEncoderDecoder"]
