"""Greedy decoding of a transducer (Parakeet RNN-T and TDT) over its encoder states, with numpy and one decoding-step
callable (the step graph: transform/transducer.py), in transformers' order (its ``generate`` with the Parakeet
generation mixins):

* every step appends the argmax of the joint network's logits (for TDT, over the token and duration logits together,
  as transformers' generate does) to each row, for every row until all rows have walked past their audio (or emitted
  an eos token, where the generation config names one: a finished row then takes the pad token) or the sequences
  reach ``max_length``;
* the encoder frame a row reads advances by the predicted duration's index (TDT, as transformers' generate reads it:
  its durations are 0-4, index and value alike; a blank of duration 0 advances by 1) or, for RNN-T, by one on a blank
  or after ``max_symbols_per_step`` tokens at one frame;
* the prediction network keeps a row's state when its last token is blank (after the first step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# (decoder_input_ids, hidden_state, cell_state, decoder_output, keep_decoder_state, encoder_frame) ->
# (logits, hidden_state, cell_state, decoder_output)
TransducerStep = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TransducerRule:
    """What the loop needs of a transducer's config."""

    vocab_size: int
    blank_token_id: int
    start_token_id: int  # the generation config's decoder_start_token_id
    num_layers: int  # the prediction network's LSTM layers
    hidden_size: int  # its width
    max_symbols_per_step: int
    durations: tuple[int, ...] | None  # TDT's duration values (the loop reads their index); None for RNN-T
    eos_token_ids: tuple[int, ...] = ()  # the generation config's: a row that emits one is finished
    pad_token_id: int | None = None  # what a finished row takes, where there is an eos token


def greedy_transducer(
    step: TransducerStep, encoder_states: np.ndarray, valid_frames: np.ndarray, rule: TransducerRule, max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """(sequences [B, L] from the start token, durations [B, L] from 0): the rows of ``encoder_states`` [B, T, H], of
    which ``valid_frames`` [B] hold audio, decoded together."""
    rows, frames = encoder_states.shape[:2]
    hidden = np.zeros((rule.num_layers, rows, rule.hidden_size), np.float32)
    cell = np.zeros_like(hidden)
    output = np.zeros((rows, 1, rule.hidden_size), np.float32)
    sequences = [np.full(rows, rule.start_token_id, np.int64)]
    durations = [np.zeros(rows, np.int64)]
    frame = np.zeros(rows, np.int64)
    symbols = np.zeros(rows, np.int64)  # RNN-T: tokens emitted at the current frame
    unfinished = np.ones(rows, bool)
    started = False
    while True:
        last = sequences[-1]
        keep = (last == rule.blank_token_id) & started
        read = encoder_states[np.arange(rows), np.minimum(frame, frames - 1)]
        logits, hidden, cell, output = step(last[:, None], hidden, cell, output, keep[:, None].astype(np.int64), read)
        started = True
        argmax = logits.argmax(-1).astype(np.int64)
        chosen = argmax
        if rule.eos_token_ids:  # transformers pads the rows it has finished
            chosen = np.where(unfinished, chosen, rule.pad_token_id)
        if (chosen >= rule.vocab_size).any():
            raise ValueError(
                "The model's largest logit was a duration's, which transformers' generate appends as a token too (and then "
                "fails on): this model cannot be decoded greedily."
            )
        sequences.append(chosen)
        if rule.durations is not None:  # TDT: the token's and the duration's argmax apart
            token = logits[:, : rule.vocab_size].argmax(-1)
            advance = logits[:, rule.vocab_size :].argmax(-1).astype(np.int64)
            advance = np.where((token == rule.blank_token_id) & (advance == 0), 1, advance)
        else:  # RNN-T: the argmax is the token (before any padding of a finished row)
            blank = argmax == rule.blank_token_id
            symbols = np.where(blank, 0, symbols + 1)
            forced = symbols >= rule.max_symbols_per_step
            symbols = np.where(blank | forced, 0, symbols)
            advance = (blank | forced).astype(np.int64)
        frame = frame + advance
        durations.append(advance)
        unfinished &= frame < valid_frames
        if rule.eos_token_ids:
            unfinished &= ~np.isin(chosen, rule.eos_token_ids)
        if not unfinished.any() or len(sequences) >= max_length:
            break
    return np.stack(sequences, 1), np.stack(durations, 1)
