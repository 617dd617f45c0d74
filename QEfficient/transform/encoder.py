"""Encoders (any ``AutoModel``, and sequence classifiers) in export-ready form, with pooling inside.

The HF model runs unchanged except for the attention mask: it is handed a 4-D additive mask built
here. Given the 2-D mask, transformers decides in Python from the mask's values whether a mask
is needed at all, and tracing would freeze that decision into the graph.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable, Iterator

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform import moe_op
from QEfficient.transform.adapters import longformer
from QEfficient.transform.ctc import SPECTROGRAM_ENCODERS
from QEfficient.transform.decoder_encoder import STATIC_KV_DECODERS, QEffDecoderEncoder
from QEfficient.transform.rewrites import apply_rewrites, rewritten_functions

PoolingFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_pooling(last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real tokens of each row (what sentence-transformers calls mean pooling)."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_states.dtype)
    return (last_hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def cls_pooling(last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Each row's first real token (its CLS token), past any left padding: the first token of each sequence, as vLLM's
    CLS pooler and sentence-transformers 6 take it."""
    first = attention_mask.to(torch.int64).argmax(1)
    return last_hidden_states[torch.arange(last_hidden_states.shape[0], device=first.device), first]


def max_pooling(last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Largest value over the real tokens; padding is masked out of a copy, never in place."""
    masked = torch.where(attention_mask.unsqueeze(-1).bool(), last_hidden_states, torch.finfo(last_hidden_states.dtype).min)
    return masked.max(dim=1).values


def last_token_pooling(last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden state of each row's last real token, with padding on either side (decoder embedding models:
    Qwen3-Embedding, e5-mistral; sentence-transformers' "lasttoken")."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (attention_mask.to(torch.int64) * positions).argmax(1)
    return last_hidden_states[torch.arange(last_hidden_states.shape[0], device=last.device), last]


# "avg" is the same masked average per row (QEfficient's own "avg" averages batch row 0 only).
POOLING: dict[str, PoolingFn] = {
    "mean": mean_pooling,
    "avg": mean_pooling,
    "cls": cls_pooling,
    "max": max_pooling,
    "lasttoken": last_token_pooling,
}


def resolve_pooling(pooling: str | PoolingFn | None) -> PoolingFn | None:
    if pooling is None:
        return None
    if isinstance(pooling, str):
        if pooling not in POOLING:
            raise ValueError(
                f"Unknown pooling '{pooling}'. Use one of {sorted(POOLING)} or a callable (last_hidden_states, attention_mask)."
            )
        return POOLING[pooling]
    if callable(pooling):
        params = list(inspect.signature(pooling.forward if isinstance(pooling, nn.Module) else pooling).parameters)
        if params[:2] != ["last_hidden_states", "attention_mask"]:
            raise ValueError(f"A pooling callable must take (last_hidden_states, attention_mask); got parameters {params}.")
        return pooling
    raise TypeError(f"pooling must be a string, a callable or None, got {type(pooling).__name__}.")


def causal_lm_type(config) -> bool:
    """A causal LM's model type (not an encoder's that also has an LM head, as BERT)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _decoder_type(config) -> bool:
    """A causal LM's model type, or an encoder-decoder's."""
    return causal_lm_type(config) or bool(getattr(config, "is_encoder_decoder", False))


def eager_attention(config) -> contextlib.AbstractContextManager:
    """Plain attention ops in the graph (ONNX Runtime's transformer optimizer fuses that pattern), and mixture-of-experts
    layers as one MoE node (OpenAI's privacy filter; moe_op.py) instead of transformers' loop over the experts a trace
    would freeze."""
    return moe_op.traced_implementations(config, "eager")


@contextlib.contextmanager
def eager_everywhere(config) -> Iterator[None]:
    """Plain attention ops in every tower: the composite config's and its text and vision configs' implementation."""
    configs = [c for c in (config, getattr(config, "text_config", None), getattr(config, "vision_config", None)) if c is not None]
    old = [c._attn_implementation for c in configs]
    for c in configs:
        c._attn_implementation = "eager"
    try:
        yield
    finally:
        for c, value in zip(configs, old):
            c._attn_implementation = value


def bidirectional_window(padding: torch.Tensor, window: int, modeling_module: str) -> torch.Tensor:
    """The padding mask [B,1,1,S] within a bidirectional window: transformers' own rule (``modeling_module``'s, where it
    has one), evaluated on broadcast positions (Gemma 3 keeps |query - key| < sliding_window, ModernBERT <= it)."""
    from transformers import masking_utils

    module = sys.modules.get(modeling_module)
    overlay = getattr(module, "_bidirectional_window_overlay", None) or masking_utils.sliding_window_bidirectional_overlay
    positions = torch.arange(padding.shape[-1], device=padding.device)
    inside = overlay(window)(0, 0, positions[:, None], positions[None, :])
    return padding + (~inside).to(torch.float32) * torch.finfo(torch.float32).min


def bidirectional_masks(attention_mask: torch.Tensor, window: int | None, modeling_module: str) -> dict[str, torch.Tensor]:
    """An encoder's masks by layer type from the 2-D padding mask: padding hidden, and for its sliding layers (a
    ``window``) positions outside the window too."""
    padding = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
    masks = {"full_attention": padding}
    if window is not None:
        masks["sliding_attention"] = bidirectional_window(padding, window, modeling_module)
    return masks


# Encoders whose attention takes the 2-D padding mask and builds its own from it without a branch on its values
# (DeBERTa's relative positions), or that refuse a 4-D one (XLM's and FlauBERT's assert on its shape)
TWO_D_MASK_TYPES = frozenset(
    {"deberta", "deberta-v2", "xlm", "flaubert", "esm", "layoutlm", "ultrabert", "ultravbert", "eurobert", "longformer"}
    | {"layoutlmv3"}  # LayoutLMv3 appends its image patches' mask to the 2-D one
    | {"clip_text_model"}  # CLIP's text tower makes its causal mask from the 2-D one (a 4-D mask would replace it)
    | {"markuplm"}  # MarkupLM extends the 2-D mask itself (a 4-D one would be extended again)
)
# bidirectional encoders whose every layer attends within a window of ``sliding_window`` tokens either side
SLIDING_ENCODERS = frozenset({"openai_privacy_filter"})
# web-page models: each token's XPath in its HTML page (tag ids and subscripts per level) is a graph input
MARKUP_TYPES = frozenset({"markuplm"})
# document models: each token's box on its page (bbox) is a graph input; LayoutLMv3's page image too, where it embeds one
LAYOUT_TYPES = frozenset({"layoutlm", "lilt", "bros", "layoutlmv3"})
# encoders whose attention is Longformer's (a window either side, global tokens): the block-banded form
# (transform/adapters/longformer.py) replaces their self-attention, and the graph's lengths are multiples of the window
LONGFORMER_TYPES = frozenset({"longformer"})
# encoders that read no attention mask: every column, padding included, enters each token's output (FNet's Fourier
# mixing, a DFT by MatMuls here: transform/rewrites.py); their graph runs at the input's own width, as transformers does
UNMASKED_TYPES = frozenset({"fnet"})
# encoders whose output at a token reads its neighbouring columns, padding included (ConvBERT's span convolutions,
# Nystromformer's convolution over the values): they read the mask, but their graph too runs at the input's own width
WIDTH_TYPES = UNMASKED_TYPES | {"convbert", "nystromformer"}

# Encoder types that cannot run as a graph here, and why (tests/test_encoder_sweep.py proves the others)
UNSUPPORTED_ENCODERS = {
    "tapas": "its table pooling (scatter_reduce without the initial values) has no ONNX export",
    "yoso": "its attention hashes with random projections drawn on every call, so no two runs agree (transformers' neither)",
    "reformer": "its LSH attention draws random buckets and chunks the sequence in Python",
    "mra": "its block-sparse attention runs as a CUDA kernel; without one transformers returns zeros for it (and traces no mask)",
}


# document models whose inputs are not graph inputs here, and why (the others: LAYOUT_TYPES)
UNSUPPORTED_DOCUMENT_MODELS = {
    "layoutlmv2": "its page image goes through a detectron2 backbone, which neither transformers here nor this graph runs",
}

# encoders of text and an object detector's image regions, whose region features are not graph inputs here, and why
UNSUPPORTED_REGION_ENCODERS = {
    "lxmert": "it reads each image's regions from an object detector (visual_feats, visual_pos) beside the text, which "
    "this encoder graph does not take (and transformers does not compute)",
}

# types of transformers' text-encoding mapping (AutoModelForTextEncoding) not run as text encoders here, and why
UNSUPPORTED_TEXT_ENCODING = {
    "t5gemma": "its encoder's sliding-window layers need a mask this graph does not write for them",
    **dict.fromkeys(
        ("llama4", "mllama", "emu3", "molmo2_text", "tipsv2_text_model"),
        "the text model of a multimodal model, not proven as a text encoder here",
    ),
}


# Question-answering heads that read the input beyond the encoder's output, and why they are refused
UNSUPPORTED_QA = {
    "big_bird": "without token_type_ids its head builds them from the first separator, which this graph does not",
    "splinter": "its head masks the logits with the 2-D attention mask, which this graph gives it in 4-D",
    "canine": "its characters' mask is built from a 2-D mask, which this graph gives it in 4-D",
}


# encoder classes whose output is one embedding per text (transformers' pooler_output), run as a pooled graph
EMBEDDING_HEADS = frozenset({"DPRQuestionEncoder", "DPRContextEncoder"})

# Decoders whose sequence classifier or base model (an embedding model's) cannot run here, and why
# (tests/test_encoder_sweep.py proves the others; those of decoder_encoder.STATIC_KV_DECODERS run the causal-LM graph)
UNSUPPORTED_DECODER_CLASSIFIERS = {
    "xlnet": "transformers does not mark its attention causal, and with the graph's padding mask it would attend both ways",
}


def check_encoder_type(config, classifier: bool = False) -> None:
    """An encoder type (or a decoder's sequence classifier) known not to run as a graph is refused before anything is
    exported, saying why."""
    reason = UNSUPPORTED_ENCODERS.get(config.model_type) or UNSUPPORTED_DOCUMENT_MODELS.get(config.model_type)
    reason = reason or UNSUPPORTED_REGION_ENCODERS.get(config.model_type)
    if reason is not None:
        raise ValueError(f"'{config.model_type}' is not supported as an encoder here: {reason}.")
    reason = UNSUPPORTED_DECODER_CLASSIFIERS.get(config.model_type)
    if reason is not None:
        raise ValueError(f"'{config.model_type}' is not supported as a decoder's classifier or base model here: {reason}.")


class QEffEncoder(nn.Module):
    """forward(input_ids [B,S], attention_mask [B,S], token_type_ids [B,S] where the model has them) -> pooled [B,H],
    last hidden state [B,S,H], logits [B,L], a token classifier's [B,S,L], a masked LM's [B,S,V], or a QA head's start and
    end logits [B,S,2]."""

    def __init__(self, hf_model: PreTrainedModel, pooling: PoolingFn | None = None) -> None:
        super().__init__()
        name = type(hf_model).__name__
        main_input = getattr(hf_model, "main_input_name", "input_ids")
        if main_input == "pixel_values":
            raise ValueError(
                f"{name} reads pixel_values: run it with QEFFAutoModelForImageFeatureExtraction or "
                "QEFFAutoModelForImageClassification (QEFFAutoModel.from_pretrained picks the first)."
            )
        if main_input in ("input_values", "input_features"):
            states = (
                "its hidden states with QEFFAutoModelForAudioFeatureExtraction (QEFFAutoModel.from_pretrained picks it for "
                "the encoders of CTC models over raw samples, and Wav2Vec2-BERT's), "
                if main_input == "input_values" or hf_model.config.model_type in SPECTROGRAM_ENCODERS
                else ""
            )
            raise ValueError(
                f"{name} reads audio ({main_input}): {states}its text is read with QEFFAutoModelForCTC or "
                "QEFFAutoModelForSpeechSeq2Seq (Whisper), its classes with QEFFAutoModelForAudioClassification; other audio "
                "models are not run here."
            )
        # a head over every token (NER's token classifier; extractive QA's start and end logits; a masked LM's vocabulary)
        # (XLM's and FlauBERT's masked LMs are their WithLMHeadModel classes)
        self.token_head = name.endswith(("ForTokenClassification", "ForQuestionAnswering", "ForMaskedLM", "WithLMHeadModel"))
        # a multiple-choice head scores each (context, choice) row alone: the graph takes rows, the host groups choices
        self.multiple_choice = name.endswith("ForMultipleChoice")
        self.classifier = self.token_head or hasattr(hf_model, "classifier") or self.multiple_choice
        self.classifier = self.classifier or name.endswith(("ForSequenceClassification", "ForNextSentencePrediction"))
        if name.endswith("ForConditionalGeneration") and getattr(hf_model.config, "is_encoder_decoder", False):
            raise ValueError(f"{name} is an encoder-decoder model (BART's masked LM is one): run it with QEFFAutoModelForSeq2SeqLM.")
        check_encoder_type(hf_model.config, self.classifier)
        if getattr(hf_model.config, "use_tpu_fourier_optimizations", False):  # FNet's DFT matrices of one length
            raise ValueError(
                f"{name} sets use_tpu_fourier_optimizations, which fixes its inputs to tpu_short_seq_length tokens; load it "
                "with use_tpu_fourier_optimizations=False (from_pretrained passes it to transformers): the same transform "
                "at any length."
            )
        self.hf = hf_model
        self.pooling = pooling
        # an encoder whose output is its embedding (DPR's question and passage encoders: the [CLS] state, projected)
        self.embedding_head = name in EMBEDDING_HEADS
        if self.embedding_head and pooling is not None:
            raise ValueError(f"{name}'s output is already its embedding ([texts, hidden]): load it without pooling.")
        # a decoder whose own modules do not serve here runs the causal-LM path's graph (decoder_encoder.py)
        static_kv = hf_model.config.model_type in STATIC_KV_DECODERS
        # a decoder's attention says so (is_causal); its masks, sliding windows included, are transformers' own
        self.causal = static_kv or any(getattr(m, "is_causal", False) is True for m in hf_model.modules() if m is not hf_model)
        # segment embeddings (BERT's type_vocab_size 2): a cross-encoder's pair needs them, one text gets zeros
        self.token_types = (getattr(self.config, "type_vocab_size", 0) or 0) > 1 and "token_type_ids" in inspect.signature(
            hf_model.forward
        ).parameters
        self.layout = self.config.model_type in LAYOUT_TYPES
        self.xpath_depth = self.config.max_depth if self.config.model_type in MARKUP_TYPES else None
        self.float_boxes = self.config.model_type == "bros"  # its boxes are fractions of the page
        # LayoutLMv3's page image (its patches join the sequence), at the size its patch embedding was built for
        visual = self.config.model_type == "layoutlmv3" and getattr(self.config, "visual_embed", False)
        self.image_size = (self.config.input_size, self.config.input_size) if visual else None
        if self.image_size and pooling is not None:
            raise ValueError(
                f"{name}'s hidden states hold its page image's patches after the text: load it without pooling (its "
                "heads pool as the model does)."
            )
        # a bidirectional model with sliding-window layers (EmbeddingGemma): one mask per layer type, built here,
        # since transformers builds the windowed one with vmap, which tracing does not take; or one window per layer
        # (NeoMME's per_layer_config; None: a full-attention layer), masks keyed by layer; a composite model's text
        # config holds them (ModernVBERT's ModernBERT)
        self.layer_windows, self.window = None, None  # the per-layer windows; the one of every sliding layer
        if "sliding_window" in (getattr(self.config, "per_layer_attributes", None) or ()):  # windows that differ by layer
            per_layer = self.config.per_layer_config
            if not self.causal and any(c.sliding_window for c in per_layer):
                self.layer_windows = [c.sliding_window for c in per_layer]
        else:
            text = getattr(self.config, "text_config", None) or self.config
            if getattr(text, "sliding_window", None) and getattr(text, "layer_types", None) and not self.causal:
                self.window = text.sliding_window
            elif self.config.model_type in SLIDING_ENCODERS:  # every layer windowed: one mask
                self.window = text.sliding_window
        # a decoder's classifier (Qwen2ForSequenceClassification): its head reads the last real token, found from the
        # mask as vLLM does; transformers finds it by pad_token_id in input_ids, which the graph's zero padding breaks
        self.last_token_head = self.classifier and self.causal and isinstance(getattr(hf_model, "score", None), nn.Linear)
        if self.classifier and not self.last_token_head and _decoder_type(self.config):
            raise ValueError(
                f"{type(hf_model).__name__} is not run as a classifier here: a decoder's is when its head is a 'score' Linear "
                "and its attention is causal as transformers marks it (Llama, Qwen2, Mistral, Gemma, GPT-2 style)."
            )
        if name.endswith("ForQuestionAnswering") and self.config.model_type in UNSUPPORTED_QA:
            raise ValueError(f"{name} is not supported here: {UNSUPPORTED_QA[self.config.model_type]}.")
        if self.token_head and self.causal:
            raise ValueError(
                f"{name} is a decoder's head over every token: token classification, question answering and masked LM "
                "heads run for encoders here."
            )
        self.static_kv = QEffDecoderEncoder(hf_model, self.classifier) if static_kv else None
        # Longformer's tokens marked for global attention: a graph input; what transformers' head marks when given none
        # (its classifier the first token, its QA head the question) the host marks (generation/encoder_run.py)
        self.global_attention = self.config.model_type in LONGFORMER_TYPES
        self.reads_padding = self.config.model_type in WIDTH_TYPES
        self.unmasked = self.config.model_type in UNMASKED_TYPES  # (FNet) takes no mask at all
        if self.global_attention or self.unmasked:
            apply_rewrites(hf_model)  # Longformer's attention by blocks of its window, FNet's DFT (transform/rewrites.py)

    @property
    def example_length(self) -> int:
        """The export example's length: a multiple of a Longformer's window (its padding, traced, must be none)."""
        return longformer.window_multiple(self.config) if self.config.model_type in LONGFORMER_TYPES else 8

    def graph_lengths(self, lengths: list[int]) -> list[int]:
        """The compiled lengths for ``lengths``: a Longformer's rounded up to multiples of its window, as transformers
        pads its inputs."""
        if self.config.model_type not in LONGFORMER_TYPES:
            return lengths
        return sorted({longformer.padded_length(self.config, n) for n in lengths})

    @property
    def config(self):
        return self.hf.config

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        global_attention_mask: torch.Tensor | None = None,
        bbox: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        xpath_tags_seq: torch.Tensor | None = None,
        xpath_subs_seq: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.static_kv is not None:
            out = self.static_kv(input_ids, attention_mask)
            return self.pooling(out, attention_mask) if self.pooling is not None and not self.classifier else out
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        page = (("bbox", bbox), ("pixel_values", pixel_values), ("xpath_tags_seq", xpath_tags_seq), ("xpath_subs_seq", xpath_subs_seq))
        extra |= {name: value for name, value in page if value is not None}
        if global_attention_mask is not None:
            extra["global_attention_mask"] = global_attention_mask
        if self.unmasked:
            mask = None  # the model takes none (the mask still serves pooling below)
        elif self.config.model_type in TWO_D_MASK_TYPES:
            mask = attention_mask  # the model builds its own mask from the 2-D one, without a branch on its values
        elif self.causal:  # a decoder's base model (Qwen3-Embedding, e5-mistral)
            mask, extra["use_cache"] = attention_mask, False
        else:
            mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
            if self.layer_windows is not None:
                mask = {i: mask if window is None else self._window(mask, window) for i, window in enumerate(self.layer_windows)}
            elif self.config.model_type in SLIDING_ENCODERS:
                mask = self._window(mask, self.window)
            elif self.window is not None:
                mask, extra["use_cache"] = bidirectional_masks(attention_mask, self.window, type(self.hf).__module__), False
        with eager_attention(self.config), rewritten_functions(self.hf):
            if self.last_token_head:
                hidden = self.hf.base_model(input_ids=input_ids, attention_mask=mask, **extra).last_hidden_state
                return self.hf.score(last_token_pooling(hidden, attention_mask))
            if self.multiple_choice:
                return self._row_scores(input_ids, attention_mask, mask, extra)
            if self.classifier and getattr(self.config, "classifier_pooling", None) == "mean":  # ModernBERT's head pools by the mask
                with self.with_base_mask(mask):
                    out = self.hf(input_ids=input_ids, attention_mask=attention_mask, **extra)
            else:
                out = self.hf(input_ids=input_ids, attention_mask=mask, **extra)
        if hasattr(out, "start_logits"):  # extractive QA: [B, S, 2], start then end
            return torch.stack([out.start_logits, out.end_logits], dim=-1)
        if self.classifier:  # a masked LM's logits are pooled by a pooling made for them (SPLADE's: transform/splade.py)
            return self.pooling(out.logits, attention_mask) if getattr(self.pooling, "reads_logits", False) else out.logits
        if self.embedding_head:  # DPR's encoders: their embedding is the output
            return out.pooler_output
        hidden = out.last_hidden_state
        return self.pooling(hidden, attention_mask) if self.pooling is not None else hidden

    def _row_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask, extra: dict) -> torch.Tensor:
        """A multiple-choice head's score of each row [R, 1], each row one choice: transformers' head gets the rows as
        [R, 1, S] (one choice each) with the 2-D padding mask, which it flattens and may pool with (ModernBERT's mean);
        its base model gets the mask built above (``with_base_mask``)."""
        with self.with_base_mask(mask):
            rows = {name: value[:, None] for name, value in extra.items() if isinstance(value, torch.Tensor)}
            return self.hf(input_ids=input_ids[:, None], attention_mask=attention_mask[:, None], **rows).logits

    @contextlib.contextmanager
    def with_base_mask(self, mask) -> Iterator[None]:
        """While it runs, the base model's forward takes ``mask`` (the one built for the graph) in place of the
        attention mask its head hands it: for heads that also read the 2-D mask themselves (multiple choice, ModernBERT's
        mean pooling). The wrapper is set on the instance and the instance's own forward, if any, put back after."""
        base = self.hf.base_model
        own = base.__dict__.get("forward")
        forward = base.forward

        def with_mask(*args, **kwargs):
            kwargs["attention_mask"] = mask
            return forward(*args, **kwargs)

        base.forward = with_mask
        try:
            yield
        finally:
            if own is None:
                del base.forward
            else:
                base.forward = own

    def _window(self, padding: torch.Tensor, window: int) -> torch.Tensor:
        return bidirectional_window(padding, window, type(self.hf).__module__)
