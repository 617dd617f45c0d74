"""Speech encoder-decoders other than Whisper (Moonshine, Speech2Text, SpeechT5, Canary, ...; transformers'
SpeechEncoderDecoderModel: a Wav2Vec2-like encoder paired with a causal-LM decoder) in the text encoder-decoders' two
graphs, run by the model's own modules:

* the encoder: the audio (raw samples or filter-bank features) and its mask of any length -> every decoder layer's
  cross-attention keys and values over the encoder's frames, and those frames' mask (the audio mask subsampled by the
  encoder's convolutions, as the model computes it), which the decoder's cross-attention reads;
* a retained-state decoder step: the model's decoder and head over a static self-attention cache
  (SpeechEncoderDecoderModel's causal-LM decoder: the image encoder-decoders' step, transform/vision_seq2seq.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.encoder_decoder import unproven_halves as unproven_pair
from QEfficient.transform.moe_op import traced_implementations
from QEfficient.transform.rewrites import rewritten_functions
from QEfficient.transform.seq2seq import step_caches
from QEfficient.transform.static_kv import STATIC_KV_ATTENTION, as_mask_kind, visibility_mask
from QEfficient.transform.vision_seq2seq import QEffVisionSeq2SeqEncoder, projected

SPEECH_ENCODER_DECODER = "speech-encoder-decoder"
# decoders that place their tokens by position ids, rotary or a table's (the others by the cache's length)
POSITIONED_DECODER_TYPES = frozenset({"moonshine", "moonshine_streaming", "canary", "cohere_asr"})
SEAMLESS_TYPES = frozenset({"seamless_m4t", "seamless_m4t_v2"})  # their speech-to-text models
# models whose encoder is Parakeet's FastConformer over log-mel frames, with a decoder of their own
PARAKEET_ENCODER_TYPES = frozenset({"canary", "cohere_asr"})
# decoders whose eager-only attention adds full [batch, 1, queries, keys] masks, reads one row of cross keys/values per
# decoder row, and takes its token ids as ``input_values`` (SpeechT5's text decoder with its prenet)
ADDITIVE_DECODER_TYPES = frozenset({"speecht5"})


class _IdsAsValues(nn.Module):
    """SpeechT5's text decoder called with ``input_ids``, as the other decoders are: it names them ``input_values``."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids: torch.Tensor, **kwargs):
        return self.decoder(input_values=input_ids, **kwargs)


# SpeechEncoderDecoderModel's halves proven token-exact (tests/test_speech_encoder_decoder.py); others: QEFF_ALLOW_ANY_ARCHITECTURE=1
PROVEN_ENCODERS = ("wav2vec2", "hubert")
PROVEN_DECODERS = ("bert", "gpt2", "mbart")


def unproven_halves(config) -> str | None:
    """What is not proven of a SpeechEncoderDecoderModel's ``config`` ("a 'data2vec-audio' encoder"), or None."""
    return unproven_pair(config, PROVEN_ENCODERS, PROVEN_DECODERS)


def encoded_audio(hf: PreTrainedModel, audio: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the encoder's frames as the decoder's cross-attention reads them, their mask [B, frames]) for ``audio`` and its
    mask, as the model's own forward computes them."""
    kind = hf.config.model_type
    if kind in ("moonshine", "moonshine_streaming"):  # its output holds the subsampled frames' mask
        out = hf.get_encoder()(input_values=audio, attention_mask=attention_mask)
        return out.last_hidden_state, out.attention_mask.to(torch.int64)
    if kind in PARAKEET_ENCODER_TYPES:  # its output holds the subsampled frames' mask
        out = hf.get_encoder()(input_features=audio, attention_mask=attention_mask)
        return out.last_hidden_state, out.attention_mask.to(torch.int64)
    if kind == "speech_to_text":
        encoder = hf.get_encoder()
        hidden = encoder(input_features=audio, attention_mask=attention_mask).last_hidden_state
        return hidden, encoder._get_feature_vector_attention_mask(hidden.shape[1], attention_mask)
    if kind in SEAMLESS_TYPES:  # its adaptor's subsampled lengths, as its speech-to-text forward computes them
        hidden = hf.speech_encoder(input_features=audio, attention_mask=attention_mask).last_hidden_state
        lengths = hf._compute_sub_sample_lengths_from_attention_mask(attention_mask)
        frames = (torch.arange(hidden.shape[1])[None, :] < lengths[:, None]).to(torch.int64)
        return hidden, frames
    if kind == "speecht5":
        encoder = hf.get_encoder()
        hidden = encoder(input_values=audio, attention_mask=attention_mask).last_hidden_state
        return hidden, encoder.prenet._get_feature_vector_attention_mask(hidden.shape[1], attention_mask).to(torch.int64)
    hidden = hf.encoder(input_values=audio, attention_mask=attention_mask).last_hidden_state
    frames = hf.encoder._get_feature_vector_attention_mask(hidden.shape[1], attention_mask).to(torch.int64)
    return projected(hf, hidden), frames


class QEffSpeechSeq2SeqEncoder(QEffVisionSeq2SeqEncoder):
    """forward(audio, attention_mask [B, samples or frames]) -> (cross_key.0, cross_value.0, ..., encoder_attention_mask
    [B, encoder frames]) with cross keys/values [B, heads, encoder frames, head_dim]."""

    def __init__(self, hf_model: PreTrainedModel, spec: type) -> None:
        nested = hf_model.config.model_type == SPEECH_ENCODER_DECODER
        config = hf_model.config
        super().__init__(
            hf_model, spec, config.encoder if nested else config, hf_model.decoder.config if nested else hf_model.get_decoder().config
        )

    def graph_spec(self) -> Any:
        return self.spec.of_model_type(self.num_layers, self.hf.config.model_type)

    def dummy_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.spec.dummy_inputs(self.hf.config)

    def text_decoder(self) -> nn.Module:
        kind = self.hf.config.model_type
        if kind in ADDITIVE_DECODER_TYPES:
            return _IdsAsValues(self.hf.get_decoder())
        return self.hf.decoder if kind == SPEECH_ENCODER_DECODER else self.hf.get_decoder()

    def encoded(self, audio: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with rewritten_functions(self.hf):  # Moonshine Streaming's banded masks (rewrites.py)
            return encoded_audio(self.hf, audio, attention_mask)[0]

    def forward(self, audio: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with rewritten_functions(self.hf):
            hidden, frames = encoded_audio(self.hf, audio, attention_mask)
        return (*self._filled(hidden), frames)


class QEffSpeechSeq2SeqDecoder(nn.Module):
    """forward(input_ids [B,S], position_ids [B,S], encoder_attention_mask [B, frames], cross_key.0, cross_value.0, ...,
    past_key.0, past_value.0, ...) -> (logits [B,1,V] at the step's last position, past_key.0_RetainedState, ...): the
    model's decoder (Moonshine's, Speech2Text's) and its output head, called directly: Speech2Text's own forward would
    subsample the (already subsampled) mask again."""

    def __init__(self, hf_model: PreTrainedModel, num_layers: int, kv_shape: tuple[int, int]) -> None:
        super().__init__()
        self.hf = hf_model
        self.additive = hf_model.config.model_type in ADDITIVE_DECODER_TYPES
        # the static-KV attention reads one row of cross keys/values per audio for all its beams; SpeechT5's own one per row
        self.shared_cross = not self.additive
        self.text_decoder = _IdsAsValues(hf_model.get_decoder()) if self.additive else hf_model.get_decoder()
        self.head = hf_model.get_output_embeddings()
        self.config = hf_model.get_decoder().config
        self.num_layers = num_layers
        self.heads, self.head_dim = kv_shape
        self.positioned = hf_model.config.model_type in POSITIONED_DECODER_TYPES
        # the encoder states' width where the decoder projects them before its layers (Cohere ASR's), else any
        self.encoder_width = getattr(getattr(hf_model.config, "encoder_config", None), "hidden_size", 1)

    def kv_shape(self, batch_size: int, ctx_len: int) -> tuple[int, int, int, int]:
        return (batch_size, self.heads, ctx_len, self.head_dim)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, encoder_attention_mask: torch.Tensor, *tensors: torch.Tensor):
        self_cache, cache = step_caches(position_ids, tensors, self.num_layers)
        visible = visibility_mask(position_ids, torch.arange(self_cache.keys[0].shape[2], device=input_ids.device))
        placeholder = torch.zeros(input_ids.shape[0], encoder_attention_mask.shape[1], self.encoder_width)  # the cache holds the keys
        # a padding slot's position (-1) read as 0: a table's lookup (Cohere ASR's) takes no -1; its row is not used
        extra = {"position_ids": position_ids.clamp(min=0)} if self.positioned else {}
        if self.additive:  # full [batch, 1, queries, keys] additive masks, as this attention code checks them
            frames = encoder_attention_mask[:, None, None, :].bool().expand(-1, -1, input_ids.shape[1], -1)
            hidden = self.text_decoder(
                input_ids=input_ids,
                attention_mask=as_mask_kind(visible, "additive", torch.float32),
                encoder_hidden_states=placeholder,
                encoder_attention_mask=as_mask_kind(frames, "additive", torch.float32),
                cache=cache,
                use_cache=True,
            ).last_hidden_state
            return (self.head(hidden[:, -1:]).float(), *self_cache.retained())
        with traced_implementations(self.config, STATIC_KV_ATTENTION):
            hidden = self.text_decoder(
                input_ids=input_ids,
                attention_mask=visible,
                encoder_hidden_states=placeholder,
                encoder_attention_mask=encoder_attention_mask[:, None, None, :].bool(),
                cache=cache,
                use_cache=True,
                **extra,
            ).last_hidden_state
        return (self.head(hidden[:, -1:]).float(), *self_cache.retained())


__all__ = ["QEffSpeechSeq2SeqDecoder", "QEffSpeechSeq2SeqEncoder"]
