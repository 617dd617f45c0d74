"""Image encoder-decoders (transformers' VisionEncoderDecoderModel: TrOCR, Donut, ViT-GPT2 captioners) in two
exportable parts, run by the model's own modules, as the text encoder-decoders are (transform/seq2seq.py); the
decoder step serves Pix2Struct, BLIP and transformers' EncoderDecoderModel too (transform/image_seq2seq.py,
transform/encoder_decoder.py):

* the encoder: pixels -> the vision encoder's patches (projected to the decoder's width where the model has that
  projection) -> every decoder layer's cross-attention keys and values, filled by one decoder step on a fresh
  transformers cache;
* a retained-state decoder step: the causal-LM decoder (TrOCR, GPT-2, mBART, BERT-like, ...) over a static
  self-attention cache, reading the cross keys/values.

The decoder's cross-attention mask is a graph input: all ones for an image's patches, Pix2Struct's padding patches
and an EncoderDecoderModel's padded text masked.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from QEfficient.transform.moe_op import traced_implementations
from QEfficient.transform.seq2seq import step_caches
from QEfficient.transform.static_kv import STATIC_KV_ATTENTION, as_mask_kind, visibility_mask

# decoders whose eager-only attention adds a full [batch, 1, queries, keys] mask (and reads no cross mask when none is
# given; Pix2Struct's adds it to a relative position bias); the others run the static-KV attention function, which
# reads one row of cross keys/values per image for all its decoder rows (beams)
ADDITIVE_DECODER_TYPES = frozenset({"trocr", "pix2struct_text_model", "blip_text_model"})
# causal-LM decoders of VisionEncoderDecoderModel whose step is proven token-exact (tests/test_vision_seq2seq.py;
# EncoderDecoderModel's: transform/encoder_decoder.py); others: QEFF_ALLOW_ANY_ARCHITECTURE=1
PROVEN_DECODERS = ("trocr", "gpt2", "mbart", "bert", "roberta")


def patches(hf: PreTrainedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """The encoder's last hidden states as the decoder's cross-attention reads them."""
    return projected(hf, hf.encoder(pixel_values=pixel_values).last_hidden_state)


def projected(hf: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """An encoder's output at the decoder's width: VisionEncoderDecoderModel's and EncoderDecoderModel's projection,
    where the widths differ and the decoder has no cross-attention width of its own."""
    if (
        hf.encoder.config.hidden_size != hf.decoder.config.hidden_size
        and getattr(hf.decoder.config, "cross_attention_hidden_size", None) is None
    ):
        hidden = hf.enc_to_dec_proj(hidden)
    return hidden


class QEffVisionSeq2SeqEncoder(nn.Module):
    """forward(pixel_values [B, C, H, W]) -> (cross_key.0, cross_value.0, ...) each [B, heads, patches, head_dim].

    ``spec``: the encoder graph's spec class (export/seq2seq_graph_specs.py), given by the model class: its names, axes and
    example inputs. The other image encoder-decoders (transform/image_seq2seq.py) change what the encoder reads
    (``encoded``), the text decoder that turns its output into cross keys/values (``text_decoder``) and the example."""

    def __init__(self, hf_model: PreTrainedModel, spec: type, encoder_config=None, decoder_config=None) -> None:
        super().__init__()
        self.hf = hf_model
        self.spec = spec
        self.encoder_config = encoder_config or hf_model.config.encoder
        self.decoder_config = decoder_config or hf_model.decoder.config
        with torch.no_grad():
            self.num_layers = len(self._fill(*self._dummy())) // 2

    def graph_spec(self) -> Any:
        return self.spec(self.num_layers)

    def dummy_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.spec.dummy_inputs(self.encoder_config)

    def encoded(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """What the decoder's cross-attention reads."""
        return patches(self.hf, pixel_values)

    def text_decoder(self) -> nn.Module:
        return self.hf.decoder

    def fill_masks(self, hidden: torch.Tensor) -> dict:
        """Masks for the step that fills the cross cache, where transformers' own would not trace (none here)."""
        return {}

    def _dummy(self) -> tuple[torch.Tensor, ...]:
        return tuple(t[:1] for t in self.dummy_inputs())

    def _fill(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._filled(self.encoded(*inputs))

    def _filled(self, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every decoder layer's cross keys and values over ``hidden`` (the encoder's output)."""
        # caches without a config: their layers are the decoder's (an mBART decoder's config counts its encoder's)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        start = torch.zeros(hidden.shape[0], 1, dtype=torch.int64)
        self.text_decoder()(input_ids=start, encoder_hidden_states=hidden, cache=cache, **self.fill_masks(hidden))
        return tuple(t for layer in cache.cross_attention_cache.layers for t in (layer.keys, layer.values))

    @torch.no_grad()
    def kv_shape(self) -> tuple[int, int]:
        """(heads, head_dim) of the cross keys: the decoder's self-attention cache has the same."""
        key = self._fill(*self._dummy())[0]
        return key.shape[1], key.shape[-1]

    @torch.no_grad()
    def kv_positions(self) -> int:
        """The cross keys' positions for one image of the configured size (its patches)."""
        return self._fill(*self._dummy())[0].shape[2]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._fill(*inputs)


class QEffVisionSeq2SeqDecoder(nn.Module):
    """forward(input_ids [B,S], position_ids [B,S], encoder_attention_mask [B, patches], cross_key.0, cross_value.0,
    ..., past_key.0, past_value.0, ...) -> (logits [B,1,V] at the step's last position, past_key.0_RetainedState, ...).
    The rows of a batch step together (one position for all), as the text encoder-decoders' do."""

    def __init__(
        self, hf_model: PreTrainedModel, num_layers: int, kv_shape: tuple[int, int], text_decoder: nn.Module | None = None
    ) -> None:
        """``text_decoder``: the causal-LM decoder where the model does not call it ``decoder`` (BLIP's text_decoder)."""
        super().__init__()
        self.hf = hf_model
        self.text_decoder = text_decoder if text_decoder is not None else hf_model.decoder
        self.config = self.text_decoder.config
        self.num_layers = num_layers
        self.heads, self.head_dim = kv_shape
        self.additive = self.config.model_type in ADDITIVE_DECODER_TYPES
        self.shared_cross = not self.additive

    def kv_shape(self, batch_size: int, ctx_len: int) -> tuple[int, int, int, int]:
        return (batch_size, self.heads, ctx_len, self.head_dim)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, encoder_attention_mask: torch.Tensor, *tensors: torch.Tensor):
        self_cache, cache = step_caches(position_ids, tensors, self.num_layers)
        visible = visibility_mask(position_ids, torch.arange(self_cache.keys[0].shape[2], device=input_ids.device))
        # the cross keys hold the encoder's output: the decoder reads only this placeholder's shape
        width = getattr(self.config, "cross_attention_hidden_size", None) or self.config.hidden_size
        placeholder = torch.zeros(input_ids.shape[0], encoder_attention_mask.shape[1], width)
        patches_visible = encoder_attention_mask[:, None, None, :].bool()
        if self.additive:  # full [batch, 1, queries, keys] additive masks, as this attention code checks them
            out = self.text_decoder(
                input_ids=input_ids,
                attention_mask=as_mask_kind(visible, "additive", torch.float32),
                encoder_hidden_states=placeholder,
                encoder_attention_mask=as_mask_kind(patches_visible, "additive", torch.float32).expand(-1, -1, input_ids.shape[1], -1),
                cache=cache,
                use_cache=True,
            )
        else:
            with traced_implementations(self.config, STATIC_KV_ATTENTION):
                out = self.text_decoder(
                    input_ids=input_ids,
                    attention_mask=visible,
                    encoder_hidden_states=placeholder,
                    encoder_attention_mask=patches_visible,
                    cache=cache,
                    use_cache=True,
                    cache_position=position_ids[0],
                )
        return (out.logits[:, -1:].float(), *self_cache.retained())
