"""Graph specs: what each exported graph looks like from the outside.

A spec owns a graph kind's input and output names, its dynamic axes, the dummy inputs the exporter
traces with and the specializations (QEfficient's specializations.json) the compile step records.
The exporter, the runtime and generation all take names from the specs and from graph_names.py, so a
name is written once (Hugging Face optimum's ``OnnxConfig`` plays the same part). This module holds the
decoders' and the text encoders' specs; the encoder-decoders' are in seq2seq_graph_specs.py, the image,
video and audio models' in media_graph_specs.py, the task models' in task_graph_specs.py. No torch at
import time: runtime/ and generation/ read the specs without it; only ``dummy_inputs`` needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from QEfficient.export.graph_names import (
    ATTENTION_MASK,
    BBOX,
    CTX_LEN_AXIS,
    GLOBAL_ATTENTION_MASK,
    IMAGE_IDX,
    IMAGE_IDX_OUTPUT,
    INPUT_IDS,
    LOGITS,
    LORA_IDS,
    PIXEL_VALUES,
    POSITION_IDS,
    TOKEN_TYPE_IDS,
    VISION_EMBEDS,
    XPATH_SUBS_SEQ,
    XPATH_TAGS_SEQ,
    lora_table_names,
    past_names,
    recurrent_state_names,
    retained,
)


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
    ``image_size``, for the document models; each token's XPath, for MarkupLM) in, one output."""

    output_name: str
    pooled: bool = False
    token_types: bool = False
    global_attention: bool = False
    layout: bool = False  # a document model's bbox [B, S, 4] (x0, y0, x1, y1 on a 0-1000 page)
    image_size: tuple[int, int] | None = None  # LayoutLMv3's page image pixel_values [B, 3, H, W]
    float_boxes: bool = False  # Bros': the boxes as fractions of the page (float32), not integers
    xpath_depth: int | None = None  # MarkupLM's XPaths [B, S, depth] (tag ids, subscripts)

    @property
    def input_names(self) -> tuple[str, ...]:
        optional = ((TOKEN_TYPE_IDS,) if self.token_types else ()) + ((GLOBAL_ATTENTION_MASK,) if self.global_attention else ())
        optional += ((BBOX,) if self.layout else ()) + ((PIXEL_VALUES,) if self.image_size else ())
        optional += (XPATH_TAGS_SEQ, XPATH_SUBS_SEQ) if self.xpath_depth else ()
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
        if self.xpath_depth:  # a shallow path per token, then padding levels (their ids do not matter to the trace)
            levels = torch.zeros(2, length, self.xpath_depth, dtype=torch.int64)
            levels[:, :, :3] = torch.arange(1, min(3, self.xpath_depth) + 1)
            values |= {XPATH_TAGS_SEQ: levels, XPATH_SUBS_SEQ: levels.clone()}
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
