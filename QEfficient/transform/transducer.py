"""Transducer speech recognizers (Parakeet RNN-T and TDT: transformers' ``ParakeetForRNNT``, ``ParakeetForTDT``; Nemotron
ASR's RNN-T over whole clips) as two modules: the encoder (the spectrogram and its mask, and Nemotron 3.5's language
prompt -> the projected encoder states and the frames that hold audio), run once per batch, and one decoding step
(the prediction network's LSTM on the last token, then the joint network on one encoder frame), run by the host's
greedy loop (generation/transducer_decoding.py).

transformers' prediction network keeps its state for a row whose last token is blank (its cache's masked update): the
step takes that choice as an input (``keep_decoder_state``) and returns the state to carry, so the loop needs no torch.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.rewrites import apply_rewrites, rewritten_functions

NUM_LOOKAHEAD_TOKENS = "num_lookahead_tokens"
# the transducer types run here: every type of transformers' RNN-T and TDT mappings
TRANSDUCERS = frozenset({"parakeet_rnnt", "parakeet_tdt", "nemotron_asr_streaming", "nemotron3_5_asr"})
# transducers whose encoder reads a prompt per clip (``prompt_ids``: Nemotron 3.5 ASR's language)
PROMPTED_TRANSDUCERS = frozenset({"nemotron3_5_asr"})


def check_transducer_type(model_type: str) -> None:
    if model_type not in TRANSDUCERS:
        raise NotImplementedError(f"'{model_type}' is not supported: the transducers run here are {', '.join(sorted(TRANSDUCERS))}.")


def check_transducer(model: PreTrainedModel) -> None:
    check_transducer_type(model.config.model_type)


class QEffTransducerEncoder(nn.Module):
    """forward(input_features [B, frames, mels], attention_mask [B, frames]) -> (encoder states [B, T, H] projected for
    the joint network, the frames that hold audio [B, T] as int64), transformers' ``get_audio_features``."""

    def __init__(self, hf_model: PreTrainedModel) -> None:
        super().__init__()
        self.hf = hf_model
        apply_rewrites(hf_model)  # Nemotron ASR's attention with rows of no key as torch's SDPA gives them (rewrites.py)

    def forward(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor, prompt_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        extra = lookahead_kwargs(self.hf.config) | ({} if prompt_ids is None else {"prompt_ids": prompt_ids})
        with rewritten_functions(self.hf.encoder):  # a streaming encoder's chunked attention mask without vmap (rewrites.py)
            out = self.hf.get_audio_features(
                input_features=input_features, attention_mask=attention_mask, output_attention_mask=True, **extra
            )
        return out.pooler_output, out.attention_mask.to(torch.int64)


def lookahead_kwargs(config) -> dict[str, int]:
    """A streaming encoder's right context (Nemotron ASR's ``num_lookahead_tokens``, in encoder frames), fixed in its
    graph: its config's default; {} for the others."""
    lookahead = getattr(config.encoder_config, "default_num_lookahead_tokens", None)
    return {} if lookahead is None else {NUM_LOOKAHEAD_TOKENS: int(lookahead)}


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
