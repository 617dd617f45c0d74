"""Graph specs of the encoder-decoder models: Whisper's encoder and decoder step, text encoder-decoders' encoders
and decoder step, and the image encoder-decoders' encoders (VisionEncoderDecoderModel, Pix2Struct, Florence-2).

As in graph_specs.py: names from graph_names.py, no torch at import time (only ``dummy_inputs`` needs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from QEfficient.export.graph_names import (
    ATTENTION_MASK,
    CROSS_ATTENTIONS,
    ENCODER_ATTENTION_MASK,
    FLATTENED_PATCHES,
    GLOBAL_ATTENTION_MASK,
    INPUT_FEATURES,
    INPUT_IDS,
    INPUT_VALUES,
    PIXEL_VALUES,
    POSITION_IDS,
    past_names,
)
from QEfficient.export.graph_specs import DecoderGraphSpec


@dataclass(frozen=True)
class SpeechEncoderGraphSpec:
    """Whisper's encoder graph: log-mel features in, every decoder layer's cross-attention keys and
    values out (computed once per audio, then bound to the decoder for the whole generation)."""

    num_layers: int

    input_names = (INPUT_FEATURES,)

    @property
    def output_names(self) -> list[str]:
        return past_names(self.num_layers, "cross")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {INPUT_FEATURES: {0: "batch_size"}, **{n: {0: "batch_size"} for n in self.output_names}}

    @staticmethod
    def dummy_inputs(config) -> tuple:
        import torch

        return (torch.zeros(2, config.num_mel_bins, 2 * config.max_source_positions),)

    @staticmethod
    def specializations(batch_size: int, num_mel_bins: int, feature_len: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "num_mel_bins": str(num_mel_bins), "feature_len": str(feature_len)}
        return {"specializations": [{"name": "Encoder", "symbols": symbols}]}


@dataclass(frozen=True)
class SpeechDecoderGraphSpec(DecoderGraphSpec):
    """Whisper's decoder step: the retained-state decoder plus the encoder's cross keys/values; with ``alignment_heads``
    (the checkpoint's, as (layer, head) pairs) also those heads' cross-attention probabilities, which token timestamps
    are read from."""

    alignment_heads: tuple[tuple[int, int], ...] = field(default=(), kw_only=True)

    @property
    def output_names(self) -> list[str]:
        return [*super().output_names, *([CROSS_ATTENTIONS] if self.alignment_heads else [])]

    @property
    def cross_names(self) -> list[str]:
        return past_names(self.num_layers, "cross")

    @property
    def input_names(self) -> list[str]:
        return [INPUT_IDS, POSITION_IDS, *self.cross_names, *self.past_names]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        # one row of cross keys/values per audio, however many decoder rows (beams) it has
        axes = {**super().dynamic_axes(), **{n: {0: "audio_batch_size", 2: "encoder_ctx_len"} for n in self.cross_names}}
        if self.alignment_heads:
            axes[CROSS_ATTENTIONS] = {0: "audio_batch_size", 2: "rows_seq_len", 3: "encoder_ctx_len"}
        return axes

    def cross_rows(self, batch_size: int) -> int:
        """The dummy cross keys' rows for ``batch_size`` decoder rows (two beams of one audio)."""
        return batch_size // 2 or 1

    def dummy_inputs(self, qeff_module, kv_dtype=None, batch_size: int = 2, seq_len: int = 4, ctx_len: int = 16) -> tuple:
        import torch

        ids, pos, *past = super().dummy_inputs(qeff_module, kv_dtype, batch_size, seq_len, ctx_len)
        cross = [torch.zeros(qeff_module.kv_shape(self.cross_rows(batch_size), 6)) for _ in self.cross_names]
        return (ids, pos, *cross, *past)


@dataclass(frozen=True)
class Seq2SeqEncoderGraphSpec:
    """A text encoder-decoder's encoder graph: token ids and their mask in, every decoder layer's cross-attention keys
    and values out (computed once per batch of inputs, then bound to the decoder for the whole generation)."""

    num_layers: int

    input_names = (INPUT_IDS, ATTENTION_MASK)

    @property
    def output_names(self) -> list[str]:
        return past_names(self.num_layers, "cross")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {name: {0: "batch_size", 1: "encoder_seq_len"} for name in self.input_names}
        return {**axes, **{n: {0: "batch_size", 2: "encoder_seq_len"} for n in self.output_names}}

    @staticmethod
    def dummy_inputs() -> tuple:
        import torch

        ids = torch.arange(2, 14, dtype=torch.int64).reshape(2, 6)
        mask = torch.ones(2, 6, dtype=torch.int64)
        mask[1, 4:] = 0
        return ids, mask

    @staticmethod
    def specializations(batch_size: int, encoder_seq_len: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "encoder_seq_len": str(encoder_seq_len)}
        return {"specializations": [{"name": "Encoder", "symbols": symbols}]}


# speech encoder-decoder type -> what its encoder reads: raw 16 kHz samples [B, samples] or filter banks [B, frames, bins]
AUDIO_SEQ2SEQ_INPUTS = {
    "moonshine": INPUT_VALUES,
    "moonshine_streaming": INPUT_VALUES,
    "speech_to_text": INPUT_FEATURES,
    "speech-encoder-decoder": INPUT_VALUES,
    "speecht5": INPUT_VALUES,
    "canary": INPUT_FEATURES,  # a Parakeet encoder's log-mel frames [B, frames, mels]
    "cohere_asr": INPUT_FEATURES,
    "seamless_m4t": INPUT_FEATURES,  # w2v-BERT's log-mel frames [B, frames, 160 (two stacked)]
    "seamless_m4t_v2": INPUT_FEATURES,
}


def audio_feature_width(config) -> int:
    """The filter-bank width a speech encoder-decoder's ``input_features`` have: Speech2Text's channels x bins, a
    Parakeet encoder's (Canary's, Cohere ASR's) mel bins."""
    if hasattr(config, "input_feat_per_channel"):
        return int(config.input_feat_per_channel * config.input_channels)
    if hasattr(config, "feature_projection_input_dim"):  # SeamlessM4T's
        return int(config.feature_projection_input_dim)
    return int(config.encoder_config.num_mel_bins)


@dataclass(frozen=True)
class AudioSeq2SeqEncoderGraphSpec:
    """A speech encoder-decoder's encoder graph (Moonshine, Speech2Text, SpeechT5, Canary, ...: AUDIO_SEQ2SEQ_INPUTS): the audio
    (``audio_input``: raw samples [B, samples] or filter-bank features [B, frames, bins]) and its mask in, every decoder
    layer's cross-attention keys and values over the encoder's frames out, with those frames' mask, which the decoder's
    cross-attention reads."""

    num_layers: int
    audio_input: str = field(default=INPUT_VALUES, kw_only=True)

    @classmethod
    def of_model_type(cls, num_layers: int, model_type: str) -> AudioSeq2SeqEncoderGraphSpec:
        return cls(num_layers, audio_input=AUDIO_SEQ2SEQ_INPUTS[model_type])

    @property
    def input_names(self) -> tuple[str, str]:
        return (self.audio_input, ATTENTION_MASK)

    @property
    def output_names(self) -> list[str]:
        return [*past_names(self.num_layers, "cross"), ENCODER_ATTENTION_MASK]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {name: {0: "batch_size", 1: "audio_len"} for name in self.input_names}
        frames = {name: {0: "batch_size", 2: "encoder_seq_len"} for name in self.output_names[:-1]}
        return {**axes, **frames, ENCODER_ATTENTION_MASK: {0: "batch_size", 1: "encoder_seq_len"}}

    @staticmethod
    def dummy_inputs(config) -> tuple:
        """Two recordings for a model of ``config``, the second's last quarter padding: 4000 samples (a quarter second
        at 16 kHz), or 32 frames of the model's filter-bank width."""
        import torch

        generator = torch.Generator().manual_seed(0)
        if AUDIO_SEQ2SEQ_INPUTS[config.model_type] == INPUT_VALUES:
            audio = torch.randn(2, 4000, generator=generator)
        else:
            audio = torch.randn(2, 32, audio_feature_width(config), generator=generator)
        mask = torch.ones(2, audio.shape[1], dtype=torch.int64)
        mask[1, -audio.shape[1] // 4 :] = 0
        return audio, mask

    @staticmethod
    def specializations(batch_size: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "audio_len": "0"}  # audio of any length
        return {"specializations": [{"name": "Encoder", "symbols": symbols}]}


@dataclass(frozen=True)
class GlobalAttentionSeq2SeqEncoderGraphSpec(Seq2SeqEncoderGraphSpec):
    """LED's encoder graph: also which tokens attend globally (Longformer's ``global_attention_mask``, 0 or 1); the
    inputs padded to a multiple of the attention window by the host."""

    input_names = (INPUT_IDS, ATTENTION_MASK, GLOBAL_ATTENTION_MASK)

    @staticmethod
    def dummy_inputs(length: int) -> tuple:
        """Two inputs of ``length`` tokens (a multiple of the window), the second with its last two padding; the first
        token of each and one more of the second global."""
        import torch

        ids, mask = torch.arange(2, 2 + 2 * length, dtype=torch.int64).reshape(2, length), torch.ones(2, length, dtype=torch.int64)
        mask[1, -2:] = 0
        global_mask = torch.zeros_like(mask)
        global_mask[:, 0] = 1
        global_mask[1, 1] = 1
        return ids, mask, global_mask


@dataclass(frozen=True)
class Seq2SeqDecoderGraphSpec(SpeechDecoderGraphSpec):
    """A text encoder-decoder's decoder step: the retained-state decoder, the encoder's mask and its cross keys/values.
    The rows of a batch step together: the graph reads the first row's first position as every row's (these decoders
    place their tokens by the cache's length). ``shared_cross``: one row of cross keys/values per input, read by all
    its decoder rows (beams); else one per decoder row (families whose own attention code reads them)."""

    shared_cross: bool = field(default=False, kw_only=True)

    @property
    def input_names(self) -> list[str]:
        return [INPUT_IDS, POSITION_IDS, ENCODER_ATTENTION_MASK, *self.cross_names, *self.past_names]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = super().dynamic_axes()
        return {
            **axes,
            **{n: {0: "encoder_batch_size" if self.shared_cross else "batch_size", 2: "encoder_seq_len"} for n in self.cross_names},
            ENCODER_ATTENTION_MASK: {0: "batch_size", 1: "encoder_seq_len"},
        }

    def cross_rows(self, batch_size: int) -> int:
        return super().cross_rows(batch_size) if self.shared_cross else batch_size

    def dummy_inputs(self, qeff_module, kv_dtype=None, batch_size: int = 2, seq_len: int = 4, ctx_len: int = 16) -> tuple:
        import torch

        ids, pos, *rest = super().dummy_inputs(qeff_module, kv_dtype, batch_size, seq_len, ctx_len)
        mask = torch.ones(batch_size, 6, dtype=torch.int64)
        mask[-1, 4:] = 0
        return (ids, pos, mask, *rest)


@dataclass(frozen=True)
class VisionSeq2SeqEncoderGraphSpec:
    """An image encoder-decoder's encoder graph (VisionEncoderDecoderModel: TrOCR, Donut, ViT-GPT2 captioners): the
    image's pixels in, every decoder layer's cross-attention keys and values over its patches out."""

    num_layers: int

    input_names = (PIXEL_VALUES,)

    @property
    def output_names(self) -> list[str]:
        return past_names(self.num_layers, "cross")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {PIXEL_VALUES: {0: "batch_size"}, **{n: {0: "batch_size", 2: "encoder_seq_len"} for n in self.output_names}}

    @staticmethod
    def dummy_inputs(encoder_config) -> tuple:
        import torch

        size = encoder_config.image_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return (torch.zeros(2, getattr(encoder_config, "num_channels", 3), height, width),)

    @staticmethod
    def specializations(batch_size: int, height: int, width: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "height": str(height), "width": str(width)}
        return {"specializations": [{"name": "Encoder", "symbols": symbols}]}


@dataclass(frozen=True)
class PatchSeq2SeqEncoderGraphSpec(Seq2SeqEncoderGraphSpec):
    """Pix2Struct's encoder graph: an image as its processor writes it (up to ``max_patches`` patches, each its row,
    its column and its pixels; padding patches all zero) and the patches' mask in, every decoder layer's cross keys and
    values over the patches out. The mask is the decoder's cross-attention mask too."""

    input_names = (FLATTENED_PATCHES, ATTENTION_MASK)

    @staticmethod
    def dummy_inputs(patch_width: int) -> tuple:
        """Two images of 2 x 3 patches (``patch_width`` values each: channels x height x width), the second with its
        last two patches padding."""
        import torch

        patches = torch.rand(2, 6, patch_width, generator=torch.Generator().manual_seed(0))
        rows = torch.tensor([1, 1, 1, 2, 2, 2], dtype=torch.float32).expand(2, 6)
        columns = torch.tensor([1, 2, 3, 1, 2, 3], dtype=torch.float32).expand(2, 6)
        flattened = torch.cat([rows[..., None], columns[..., None], patches], -1)
        mask = torch.ones(2, 6, dtype=torch.int64)
        mask[1, 4:] = 0
        flattened[1, 4:] = 0
        return flattened, mask


@dataclass(frozen=True)
class ImageTextSeq2SeqEncoderGraphSpec(Seq2SeqEncoderGraphSpec):
    """Florence-2's encoder graph: the prompt's token ids (the image's placeholder tokens first, as its processor writes
    them), their mask and the image's pixels in; the image's features take the placeholders' places before the text
    encoder runs; every decoder layer's cross keys and values over the whole prompt out."""

    input_names = (INPUT_IDS, ATTENTION_MASK, PIXEL_VALUES)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {name: {0: "batch_size", 1: "encoder_seq_len"} for name in (INPUT_IDS, ATTENTION_MASK)}
        return {**axes, PIXEL_VALUES: {0: "batch_size"}, **{n: {0: "batch_size", 2: "encoder_seq_len"} for n in self.output_names}}

    @staticmethod
    def dummy_inputs(image_token_id: int, image_tokens: int, channels: int, height: int, width: int) -> tuple:
        """Two prompts: ``image_tokens`` placeholders, then 4 and 2 text tokens (the second padded)."""
        import torch

        text = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]], dtype=torch.int64)
        ids = torch.cat([torch.full((2, image_tokens), image_token_id, dtype=torch.int64), text], 1)
        mask = torch.ones_like(ids)
        mask[1, -2:] = 0
        return ids, mask, torch.zeros(2, channels, height, width)

    @staticmethod
    def specializations(batch_size: int, height: int, width: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "encoder_seq_len": "0", "height": str(height), "width": str(width)}
        return {"specializations": [{"name": "Encoder", "symbols": symbols}]}
