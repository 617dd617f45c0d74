"""Transducer speech recognizers (Parakeet RNN-T and TDT: transformers' ``ParakeetForRNNT``, ``ParakeetForTDT``) as two
modules: the encoder (the spectrogram and its mask -> the projected encoder states and the frames that hold audio), run
once per batch, and one decoding step (the prediction network's LSTM on the last token, then the joint network on one
encoder frame), run by the host's greedy loop (generation/transducer_decoding.py).

transformers' prediction network keeps its state for a row whose last token is blank (its cache's masked update): the
step takes that choice as an input (``keep_decoder_state``) and returns the state to carry, so the loop needs no torch.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

# the transducer types run here, and those of transformers' RNN-T / TDT mappings that are not, with why
TRANSDUCERS = frozenset({"parakeet_rnnt", "parakeet_tdt"})
UNSUPPORTED_TRANSDUCERS = {
    "nemotron3_5_asr": "its encoder and decoding differ from Parakeet's and are not proven here",
    "nemotron_asr_streaming": "it decodes audio in streaming chunks with a cache across them, which is not run here",
}


def check_transducer_type(model_type: str) -> None:
    reason = UNSUPPORTED_TRANSDUCERS.get(model_type)
    if reason is None and model_type not in TRANSDUCERS:
        reason = f"the transducers run here are {', '.join(sorted(TRANSDUCERS))}"
    if reason is not None:
        raise NotImplementedError(f"'{model_type}' is not supported: {reason}.")


def check_transducer(model: PreTrainedModel) -> None:
    check_transducer_type(model.config.model_type)


class QEffTransducerEncoder(nn.Module):
    """forward(input_features [B, frames, mels], attention_mask [B, frames]) -> (encoder states [B, T, H] projected for
    the joint network, the frames that hold audio [B, T] as int64), transformers' ``get_audio_features``."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.hf = hf_model

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.hf.get_audio_features(input_features=input_features, attention_mask=attention_mask, output_attention_mask=True)
        return out.pooler_output, out.attention_mask.to(torch.int64)


class QEffTransducerStep(nn.Module):
    """forward(decoder_input_ids [B, 1], hidden_state, cell_state [layers, B, H], decoder_output [B, 1, H],
    keep_decoder_state [B, 1], encoder_frame [B, H]) -> (logits [B, vocab (+ durations)], hidden_state, cell_state,
    decoder_output): the prediction network on the last token (its previous state kept where ``keep_decoder_state``),
    then the joint network on the encoder frame."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.hf = hf_model

    def forward(self, decoder_input_ids, hidden_state, cell_state, decoder_output, keep_decoder_state, encoder_frame):
        decoder = self.hf.decoder
        output, (new_hidden, new_cell) = decoder.lstm(decoder.embedding(decoder_input_ids), (hidden_state, cell_state))
        output = decoder.decoder_projector(output)
        keep = keep_decoder_state.bool()  # [B, 1]
        output = torch.where(keep[:, :, None], decoder_output, output)
        state_keep = keep.transpose(0, 1)[:, :, None]  # [1, B, 1]
        hidden_state = torch.where(state_keep, hidden_state, new_hidden)
        cell_state = torch.where(state_keep, cell_state, new_cell)
        logits = self.hf.joint(decoder_hidden_states=output[:, None], encoder_hidden_states=encoder_frame[:, None, None])
        return logits[:, 0, 0], hidden_state, cell_state, output
