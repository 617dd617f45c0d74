"""QEFFAutoModelForVisionEncoderDecoder: transformers' VisionEncoderDecoderModel (TrOCR, Donut, ViT-GPT2 captioners and
other image encoders paired with a causal-LM decoder) as two graphs, as the text encoder-decoders run: the image
encoder's cross keys/values bound to a retained-state decoder step (transform/vision_seq2seq.py), greedy, sampled or
beam-search tokens equal to transformers' ``generate`` (generation/seq2seq_generation.py).

QEfficient has no such class; ``QEFFAutoModelForImageTextToText.from_pretrained`` returns this one for such a checkpoint.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from transformers import AutoModelForImageTextToText, PreTrainedModel

from QEfficient.export.graph_specs import INPUT_IDS, PIXEL_VALUES, VisionSeq2SeqEncoderGraphSpec
from QEfficient.export.onnx_export import export_seq2seq_decoder_onnx, export_vision_seq2seq_encoder_onnx
from QEfficient.models.base import EncoderDecoderModel
from QEfficient.models.seq2seq_lm import QEFFAutoModelForSeq2SeqLM
from QEfficient.transform.vision_seq2seq import QEffVisionSeq2SeqDecoder, QEffVisionSeq2SeqEncoder

MODEL_TYPE = "vision-encoder-decoder"
# decoders whose step is proven token-exact (tests/test_vision_seq2seq.py); others: QEFF_ALLOW_ANY_ARCHITECTURE=1
PROVEN_DECODERS = ("trocr", "gpt2", "mbart", "bert", "roberta")
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
    export_graphs = (export_vision_seq2seq_encoder_onnx, export_seq2seq_decoder_onnx)
    reads_images = True

    def __init__(self, model: PreTrainedModel, **kwargs) -> None:
        if getattr(getattr(model, "config", None), "model_type", None) != MODEL_TYPE:
            raise TypeError(f"{type(model).__name__} is not a VisionEncoderDecoderModel; QEFFAutoModelForVisionEncoderDecoder runs those.")
        decoder_type = model.config.decoder.model_type
        if decoder_type not in PROVEN_DECODERS and os.environ.get(ALLOW_ANY) != "1":
            raise NotImplementedError(
                f"A {decoder_type!r} decoder is not proven here for image encoder-decoders (proven: {', '.join(PROVEN_DECODERS)}); "
                f"{ALLOW_ANY}=1 tries it anyway."
            )
        EncoderDecoderModel.__init__(self, model, kwargs.pop("pretrained_model_name_or_path", None))
        self.hf = model.eval()
        self.encoder = QEffVisionSeq2SeqEncoder(self.hf)
        self.decoder = QEffVisionSeq2SeqDecoder(self.hf, self.encoder.num_layers, self.encoder.kv_shape())
        self.qpc_paths = None

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
        drop = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
        return tokenizer.decode([int(t) for t in ids if int(t) not in drop], skip_special_tokens=False)

    def _prompt_starts_sequence(self) -> bool:
        return "donut" in self.encoder.encoder_config.model_type.lower()  # transformers' exception: task prompts

    def image_positions(self) -> int:
        """The encoder's positions for one image (its patches), which the decoder's cross-attention reads."""
        return int(self.encoder.kv_positions())

    def _check_max_positions(self, name: str, length: int, config=None) -> None:
        super()._check_max_positions(name, length, config or self.hf.decoder.config)  # the decoder's position table

    def _inputs(self, tokenizer, prompts, inputs) -> tuple[np.ndarray, np.ndarray]:
        """(pixel_values [N, C, H, W] float32, a placeholder mask: every patch is read)."""
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
        return pixels, np.ones((len(pixels), 1), np.int64)


__all__ = ["QEFFAutoModelForVisionEncoderDecoder"]
