"""Graph specs: what each exported graph looks like from the outside.

A spec owns a graph kind's input and output names, its dynamic axes, the dummy inputs the exporter
traces with and the specializations (QEfficient's specializations.json) the compile step records.
The exporter, the runtime and generation all take names from here, so a name is written once
(Hugging Face optimum's ``OnnxConfig`` plays the same part). This module imports no torch at import
time: runtime/ and generation/ read the names without it; only ``dummy_inputs`` needs torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

INPUT_IDS = "input_ids"
POSITION_IDS = "position_ids"
ATTENTION_MASK = "attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"  # encoders with segment embeddings (BERT): a pair's second text is type 1
BBOX = "bbox"  # document models (LayoutLM, LiLT, Bros, LayoutLMv3): each token's box on its page [B, S, 4]
GLOBAL_ATTENTION_MASK = "global_attention_mask"  # Longformer attention (Longformer, LED's encoder): tokens seen by all
LOGITS = "logits"
VISION_EMBEDS = "vision_embeds"
IMAGE_IDX = "image_idx"
IMAGE_IDX_OUTPUT = "image_idx_output"
INPUT_FEATURES = "input_features"
# Whisper's decoder: its alignment heads' cross-attention probabilities [audios, heads, rows * S, frames] (token times)
CROSS_ATTENTIONS = "cross_attentions"
ROPE_POSITION_IDS = "rope_position_ids"
CROSS_ATTENTION_MASK = "cross_attention_mask"  # Mllama: the image tiles each token attends [B, S, images, tiles]
RETAINED_SUFFIX = "_RetainedState"
CONV_STATE = "conv_state"
SSM_STATE = "ssm_state"
LORA_IDS = "lora_ids"
CTX_LEN_AXIS = "ctx_len"  # the symbolic length of the KV cache inputs and outputs (axis 2)
# every input a vision-language model's language graph may have besides its cache and recurrent states; in the
# one-graph layout the rest are the vision branch's
LANGUAGE_SIDE_INPUTS = frozenset({INPUT_IDS, POSITION_IDS, VISION_EMBEDS, IMAGE_IDX, ROPE_POSITION_IDS, CROSS_ATTENTION_MASK})


def lora_table_names(module: str) -> tuple[str, str]:
    """The graph inputs holding every adapter's A and B matrices for target module ``module``."""
    return f"lora_a.{module}", f"lora_b.{module}"


def retained(name: str) -> str:
    """The output a runtime binds to the same buffer as input ``name`` (updated in place)."""
    return name + RETAINED_SUFFIX


RETAINED_EMBEDS = retained(VISION_EMBEDS)


def past_names(num_layers: int, prefix: str = "past") -> list[str]:
    """``past_key.0, past_value.0, past_key.1, ...``: the per-layer cache inputs, key before value."""
    return [f"{prefix}_{kind}.{i}" for i in range(num_layers) for kind in ("key", "value")]


def recurrent_state_names(has_ssm: Sequence[bool]) -> list[str]:
    """``conv_state.0, ssm_state.0, conv_state.1, ...``: the states of the recurrent layers (Mamba-style mixers,
    numbered among those layers), retained in place like the KV cache. Every recurrent layer keeps a
    convolution state; ``has_ssm[i]`` says whether layer i also keeps an SSM state (LFM2's short
    convolutions do not)."""
    return [name for i, ssm in enumerate(has_ssm) for name in (f"{CONV_STATE}.{i}", f"{SSM_STATE}.{i}")[: 1 + bool(ssm)]]


def decoder_specializations(prefill_seq_len: int, ctx_len: int, batch_size: int, full_batch_size: int | None = None) -> dict[str, Any]:
    """QEfficient's specializations.json: prefill and decode shapes (continuous batching: prefill one
    sequence at a time, decode all ``full_batch_size`` slots)."""
    if full_batch_size is None:
        specs = [{"name": "Prefill", "symbols": {"batch_size": str(batch_size), "seq_len": str(prefill_seq_len), "ctx_len": str(ctx_len)}}]
        if prefill_seq_len != 1:
            specs.append({"name": "Decode", "symbols": {"batch_size": str(batch_size), "seq_len": "1", "ctx_len": str(ctx_len)}})
        return {"specializations": specs}
    symbols = {"ctx_len": str(ctx_len), "full_batch_size": str(full_batch_size)}
    return {
        "specializations": [
            {"name": "Prefill", "symbols": {"batch_size": "1", "seq_len": str(prefill_seq_len), **symbols}},
            {"name": "Decode", "symbols": {"batch_size": str(full_batch_size), "seq_len": "1", **symbols}},
        ]
    }


@dataclass(frozen=True)
class DecoderGraphSpec:
    """The retained-state decoder: ids and positions in, last-position logits and the updated cache out.

    ``num_layers`` counts the layers with a KV cache; ``state_layers`` has one entry per recurrent layer
    (whether it keeps an SSM state beside its conv state), whose states follow the cache in the inputs
    and outputs (hybrid models have both).
    """

    num_layers: int
    state_layers: tuple[bool, ...] = field(default=(), kw_only=True)  # keyword-only: subclasses add positional fields

    @property
    def state_names(self) -> list[str]:
        return recurrent_state_names(self.state_layers)

    @property
    def past_names(self) -> list[str]:
        """Every retained input: the KV cache, then the recurrent states."""
        return past_names(self.num_layers) + self.state_names

    @property
    def retained_names(self) -> list[str]:
        return [retained(n) for n in self.past_names]

    @property
    def input_names(self) -> list[str]:
        return [INPUT_IDS, POSITION_IDS, *self.past_names]

    @property
    def output_names(self) -> list[str]:
        return [LOGITS, *self.retained_names]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {
            INPUT_IDS: {0: "batch_size", 1: "seq_len"},
            POSITION_IDS: {0: "batch_size", 1: "seq_len"},
            LOGITS: {0: "batch_size"},
        }
        for n in past_names(self.num_layers):
            axes[n] = {0: "batch_size", 2: CTX_LEN_AXIS}
            axes[retained(n)] = {0: "batch_size", 2: CTX_LEN_AXIS}
        for n in self.state_names:
            axes[n] = axes[retained(n)] = {0: "batch_size"}
        return axes

    def dummy_inputs(self, qeff_module, kv_dtype=None, batch_size: int = 2, seq_len: int = 4, ctx_len: int = 16) -> tuple:
        """Trace-time inputs; no dimension is 1, so no exporter specialises a dynamic axis on it."""
        import torch

        ids = torch.zeros(batch_size, seq_len, dtype=torch.int64)
        pos = torch.arange(seq_len, dtype=torch.int64)[None].repeat(batch_size, 1)
        pos[1, -1] = -1  # exercise the padding path while tracing
        dtype = kv_dtype or next(qeff_module.parameters()).dtype
        past = [torch.zeros(qeff_module.kv_shape(batch_size, ctx_len), dtype=dtype) for _ in range(2 * qeff_module.num_layers)]
        state_dtype = next(qeff_module.parameters()).dtype  # recurrent states stay in the compute dtype
        states = [torch.zeros(batch_size, *shape, dtype=state_dtype) for shape in getattr(qeff_module, "state_shapes", [])]
        return (ids, pos, *past, *states)

    specializations = staticmethod(decoder_specializations)


@dataclass(frozen=True)
class SpeculativeDecoderGraphSpec(DecoderGraphSpec):
    """The speculative target decoder: as the decoder, with logits [B, S, V] for every position of
    the chunk (a verify step scores K+1 positions at once)."""

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {**super().dynamic_axes(), LOGITS: {0: "batch_size", 1: "seq_len"}}


@dataclass(frozen=True)
class LoraDecoderGraphSpec(DecoderGraphSpec):
    """The decoder with LoRA adapters as inputs (transform/lora.py): each row's adapter id, and per
    target module the stacked A [layers, adapters, in, rank] and B [layers, adapters, rank, out]
    tables, the adapter count and rank being dynamic axes."""

    modules: tuple[str, ...] = ()

    @property
    def table_names(self) -> list[str]:
        names = [lora_table_names(m) for m in self.modules]
        return [a for a, _ in names] + [b for _, b in names]

    @property
    def input_names(self) -> list[str]:
        return [INPUT_IDS, POSITION_IDS, LORA_IDS, *self.table_names, *self.past_names]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {**super().dynamic_axes(), LORA_IDS: {0: "batch_size"}}
        for a, b in (lora_table_names(m) for m in self.modules):
            axes[a] = {1: "num_adapters", 3: "lora_rank"}
            axes[b] = {1: "num_adapters", 2: "lora_rank"}
        return axes

    def dummy_inputs(self, qeff_module, kv_dtype=None, batch_size: int = 2, seq_len: int = 4, ctx_len: int = 16) -> tuple:
        import torch

        ids, pos, *past = super().dummy_inputs(qeff_module, kv_dtype, batch_size, seq_len, ctx_len)
        lora_ids = torch.arange(batch_size, dtype=torch.int64)[:, None] % 3
        return (ids, pos, lora_ids, *qeff_module.dummy_tables(num_adapters=3, rank=2), *past)


@dataclass(frozen=True)
class SpeculativeLoraDecoderGraphSpec(LoraDecoderGraphSpec, SpeculativeDecoderGraphSpec):
    """A speculative target with LoRA inputs: the LoRA decoder's inputs, logits for every position."""


@dataclass(frozen=True)
class ImageTextDecoderGraphSpec(DecoderGraphSpec):
    """The language graph of a vision-language model: the decoder's inputs plus the image embeddings,
    the index of the first one a chunk uses, and the vision adapter's own extra inputs."""

    extra_inputs: tuple[str, ...] = ()

    @property
    def input_names(self) -> list[str]:
        return [INPUT_IDS, POSITION_IDS, VISION_EMBEDS, IMAGE_IDX, *self.extra_inputs, *self.past_names]

    @property
    def output_names(self) -> list[str]:
        return [LOGITS, IMAGE_IDX_OUTPUT, *self.retained_names]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {
            **super().dynamic_axes(),
            VISION_EMBEDS: {0: "vision_batch", 1: "vision_size"},
            IMAGE_IDX: {0: "batch_size"},
            IMAGE_IDX_OUTPUT: {0: "batch_size"},
        }


@dataclass(frozen=True)
class EncoderGraphSpec:
    """Encoders (embeddings, sequence classification): ids and mask (and token types, for encoders that have
    them; which tokens attend globally, for Longformer's; each token's box on its page, and the page's image at
    ``image_size``, for the document models) in, one output."""

    output_name: str
    pooled: bool = False
    token_types: bool = False
    global_attention: bool = False
    layout: bool = False  # a document model's bbox [B, S, 4] (x0, y0, x1, y1 on a 0-1000 page)
    image_size: tuple[int, int] | None = None  # LayoutLMv3's page image pixel_values [B, 3, H, W]
    float_boxes: bool = False  # Bros': the boxes as fractions of the page (float32), not integers

    @property
    def input_names(self) -> tuple[str, ...]:
        optional = ((TOKEN_TYPE_IDS,) if self.token_types else ()) + ((GLOBAL_ATTENTION_MASK,) if self.global_attention else ())
        optional += ((BBOX,) if self.layout else ()) + ((PIXEL_VALUES,) if self.image_size else ())
        return (INPUT_IDS, ATTENTION_MASK) + optional

    @property
    def output_names(self) -> list[str]:
        return [self.output_name]

    @property
    def kind(self) -> str:
        return "SeqClassification" if self.output_name == LOGITS else "Embedding"

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {
            **{name: {0: "batch_size", 1: "seq_len"} for name in self.input_names},
            **({PIXEL_VALUES: {0: "batch_size"}} if self.image_size else {}),
            # LayoutLMv3's per-token outputs may hold its image patches after the text: their own length
            self.output_name: {0: "batch_size"} if self.pooled else {0: "batch_size", 1: "tokens" if self.image_size else "seq_len"},
        }

    def dummy_inputs(self, length: int = 8) -> dict[str, Any]:
        """{input name: tensor}, in the graph's order: two rows of ``length`` tokens, the second's last ones padding; a
        pair's token types; the first token of each row global, and one more of the second (a question's two)."""
        import torch

        mask = torch.ones(2, length, dtype=torch.int64)
        mask[1, 5:] = 0
        types = torch.zeros(2, length, dtype=torch.int64)
        types[:, 4:] = 1  # a pair: the second text's tokens
        global_mask = torch.zeros(2, length, dtype=torch.int64)
        global_mask[:, 0] = 1
        global_mask[1, 1] = 1
        values = {INPUT_IDS: torch.zeros(2, length, dtype=torch.int64), ATTENTION_MASK: mask}
        values |= {TOKEN_TYPE_IDS: types, GLOBAL_ATTENTION_MASK: global_mask}
        if self.layout:  # boxes with x0 <= x1 and y0 <= y1, as a processor writes them
            generator = torch.Generator().manual_seed(0)
            corners = torch.rand(2, length, 2, 2, generator=generator)
            corners = corners if self.float_boxes else (corners * 1000).to(torch.int64)
            values[BBOX] = torch.sort(corners, dim=2).values.reshape(2, length, 4)
        if self.image_size:
            values[PIXEL_VALUES] = torch.rand(2, 3, *self.image_size, generator=torch.Generator().manual_seed(0))
        return {name: values[name] for name in self.input_names}

    def specializations(self, lengths: list[int], batch_size: int) -> dict[str, Any]:
        return {
            "specializations": [
                {
                    "name": f"{self.kind}_{i}" if len(lengths) > 1 else self.kind,
                    "symbols": {"batch_size": str(batch_size), "seq_len": str(n)},
                }
                for i, n in enumerate(lengths)
            ]
        }


@dataclass(frozen=True)
class VisionGraphSpec:
    """A vision encoder: its adapter's inputs in (pixel_values, ...), ``vision_embeds`` out."""

    input_names: tuple[str, ...]
    axes: dict

    output_names = (VISION_EMBEDS,)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return dict(self.axes)

    @staticmethod
    def specializations(img_size: int, batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "Vision", "symbols": {"batch_size": str(batch_size), "img_size": str(img_size)}}]}


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


ENCODER_ATTENTION_MASK = "encoder_attention_mask"


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


PIXEL_VALUES = "pixel_values"


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


IMAGE_ENCODER_KIND = "image_encoder"  # an image encoder's artifact (its manifest's "kind")
VIDEO_CLASSIFIER_KIND = "video_classifier"  # a video classifier's artifact
DUAL_ENCODER_KIND = "dual-encoder"  # the prefix of a contrastive image-text model's towers' artifact kinds (-text, -image)


@dataclass(frozen=True)
class ImageEncoderGraphSpec:
    """Image encoders (ViT, DINOv2, ConvNeXt, ...) and their classifiers: the pixels at the compiled size in, one output
    (the last hidden state, pooled where asked, or the logits)."""

    output_name: str
    more_outputs: tuple[str, ...] = ()  # a detector's boxes after its logits

    input_names = (PIXEL_VALUES,)

    @property
    def output_names(self) -> list[str]:
        return [self.output_name, *self.more_outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {PIXEL_VALUES: {0: "batch_size"}, **{name: {0: "batch_size"} for name in self.output_names}}

    @staticmethod
    def dummy_inputs(channels: int, height: int, width: int) -> tuple:
        import torch

        return (torch.rand(2, channels, height, width, generator=torch.Generator().manual_seed(0)),)

    @staticmethod
    def specializations(batch_size: int, height: int, width: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "height": str(height), "width": str(width)}
        return {"specializations": [{"name": "ImageEncoder", "symbols": symbols}]}


@dataclass(frozen=True)
class VideoClassificationGraphSpec:
    """Video classifiers (VideoMAE, TimeSformer, ViViT, V-JEPA 2): the frames [batch, frames, channels, height, width]
    at the compiled size in (named as the model names them: pixel_values, or pixel_values_videos), the logits out."""

    input_name: str

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self.input_name,)

    output_names = [LOGITS]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {self.input_name: {0: "batch_size"}, LOGITS: {0: "batch_size"}}

    @staticmethod
    def dummy_inputs(frames: int, channels: int, height: int, width: int) -> tuple:
        import torch

        return (torch.rand(2, frames, channels, height, width, generator=torch.Generator().manual_seed(0)),)

    @staticmethod
    def specializations(batch_size: int, frames: int, height: int, width: int) -> dict[str, Any]:
        symbols = {"batch_size": str(batch_size), "num_frames": str(frames), "height": str(height), "width": str(width)}
        return {"specializations": [{"name": "VideoClassifier", "symbols": symbols}]}


FLATTENED_PATCHES = "flattened_patches"
# a processor's decoder prompt (Pix2Struct's text) and its mask, as transformers names them
DECODER_INPUT_IDS = "decoder_input_ids"
DECODER_ATTENTION_MASK = "decoder_attention_mask"


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


INPUT_VALUES = "input_values"


@dataclass(frozen=True)
class CTCGraphSpec:
    """CTC speech models: raw 16 kHz samples in, per-frame logits out."""

    input_names = (INPUT_VALUES,)
    output_names = (LOGITS,)

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return {INPUT_VALUES: {0: "batch_size", 1: "seq_len"}, LOGITS: {0: "batch_size", 1: "frames"}}

    @staticmethod
    def dummy_inputs(config=None) -> tuple:
        import torch

        return (torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1,)

    @staticmethod
    def specializations(lengths: list[int], batch_size: int) -> dict[str, Any]:
        return {
            "specializations": [
                {"name": f"CTC_{i}" if len(lengths) > 1 else "CTC", "symbols": {"batch_size": str(batch_size), "seq_len": str(n)}}
                for i, n in enumerate(lengths)
            ]
        }


class AudioClassificationGraphSpec(CTCGraphSpec):
    """Audio classifiers over raw 16 kHz samples: the samples in, one row of logits per audio out (the model pools its
    frames)."""

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return {INPUT_VALUES: {0: "batch_size", 1: "seq_len"}, LOGITS: {0: "batch_size"}}


EMBEDDINGS = "embeddings"  # a speaker-verification model's x-vector [audios, D] (transformers' XVectorOutput)


class AudioXVectorGraphSpec(CTCGraphSpec):
    """Speaker verification over raw 16 kHz samples (Wav2Vec2, WavLM, ... ``ForXVector``): the samples in, the speaker
    classifier's logits and the x-vector (its embedding) per audio out."""

    output_names = (LOGITS, EMBEDDINGS)

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return {INPUT_VALUES: {0: "batch_size", 1: "seq_len"}, LOGITS: {0: "batch_size"}, EMBEDDINGS: {0: "batch_size"}}


OUTPUT = "output"  # an encoder's last hidden state (pooled where asked), as QEfficient's QEFFAutoModel names it


class AudioFeatureGraphSpec(CTCGraphSpec):
    """Audio encoders' hidden states over raw 16 kHz samples (Wav2Vec2Model, HubertModel, ...): the samples in, the last
    hidden state per frame out."""

    output_names = (OUTPUT,)

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        return {INPUT_VALUES: {0: "batch_size", 1: "seq_len"}, OUTPUT: {0: "batch_size", 1: "frames"}}


@dataclass(frozen=True)
class SpectrogramClassificationGraphSpec:
    """Audio classifiers over a spectrogram of one fixed size (the Audio Spectrogram Transformer's 1024 x 128 frames,
    named input_values; Whisper's encoder's 80 x 3000, input_features): the features in, one row of logits out."""

    input_name: str
    shape: tuple[int, int]  # one audio's features

    output_names = (LOGITS,)

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self.input_name,)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {self.input_name: {0: "batch_size"}, LOGITS: {0: "batch_size"}}

    def dummy_inputs(self, config=None) -> tuple:
        import torch

        return (torch.randn(2, *self.shape, generator=torch.Generator().manual_seed(0)),)

    @staticmethod
    def specializations(lengths: list[int], batch_size: int) -> dict[str, Any]:
        return {"specializations": [{"name": "AudioClassification", "symbols": {"batch_size": str(batch_size)}}]}


LOGITS_MASK = "logits_mask"  # a spectrogram CTC model's output frames that hold audio (its subsampled input mask)


@dataclass(frozen=True)
class FeatureCTCGraphSpec(CTCGraphSpec):
    """CTC models that read their feature extractor's spectrogram (Parakeet, Wav2Vec2-BERT): the features and their
    frames' mask in, per-frame logits and which output frames hold audio out (transformers' Parakeet decodes the others
    as blanks)."""

    input_names = (INPUT_FEATURES, ATTENTION_MASK)
    output_names = (LOGITS, LOGITS_MASK)

    @staticmethod
    def dynamic_axes() -> dict[str, dict[int, str]]:
        frames = {0: "batch_size", 1: "seq_len"}
        out = {0: "batch_size", 1: "frames"}
        return {INPUT_FEATURES: frames, ATTENTION_MASK: frames, LOGITS: out, LOGITS_MASK: out}

    @staticmethod
    def dummy_inputs(config=None) -> tuple:
        """Two inputs of 100 frames of the model's feature width, the second's last 20 padding."""
        import torch

        bins = feature_width(config)
        features = torch.randn(2, 100, bins, generator=torch.Generator().manual_seed(0))
        mask = torch.ones(2, 100, dtype=torch.int64)
        mask[1, 80:] = 0
        return features, mask


def feature_width(config) -> int:
    """The width of a frame of a spectrogram CTC model's input features: its encoder config's mel bins (Parakeet), or
    its feature projection's input (Wav2Vec2-BERT: stacked mel bins)."""
    encoder = getattr(config, "encoder_config", None) or config
    bins = getattr(encoder, "num_mel_bins", None) or getattr(encoder, "feature_projection_input_dim", None)
    if bins is None:
        raise ValueError(f"{type(config).__name__} names no feature width (num_mel_bins or feature_projection_input_dim).")
    return int(bins)
