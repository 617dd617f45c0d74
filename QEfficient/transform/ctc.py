"""CTC speech models (Wav2Vec2, Wav2Vec2-Conformer, HuBERT, WavLM, Data2VecAudio, UniSpeech) as one graph: raw audio in,
logits out."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from QEfficient.transform.rewrites import apply_rewrites, rewritten_functions

# audio encoders (base models) that read a spectrogram of any length with its frames' mask, run for their hidden states
SPECTROGRAM_ENCODERS = frozenset({"wav2vec2-bert"})
# models whose audio comes with a channel axis ([B, 1, samples]: Omnilingual ASR's feature extractor adds it); the
# graph takes [B, samples] as for the others
CHANNEL_AXIS_TYPES = frozenset({"omniasr_ctc"})


class QEffCTC(nn.Module):
    """forward(input_values [B, samples]) -> logits [B, frames, vocab] (float32; a classifier's [B, labels], a frame
    classifier's [B, frames, labels], a base model's last hidden state [B, frames, D], a speaker-verification model's
    logits and x-vector [B, D]); a spectrogram model's
    forward(input_features [B, frames, width], attention_mask [B, frames]) -> logits and which output frames hold audio
    (a classifier's, frame classifier's, speaker-verification model's or base model's: its outputs as above).

    ``spec``: the graph's spec class (export/media_graph_specs.py), given by the model class."""

    def __init__(self, hf_model: PreTrainedModel, spec: type) -> None:
        super().__init__()
        self.hf = hf_model
        self.config = hf_model.config
        self.spec = spec
        apply_rewrites(hf_model)  # Wav2Vec2-Conformer's relative positions (transform/rewrites.py)

    def forward(self, values: torch.Tensor, attention_mask: torch.Tensor | None = None):
        if attention_mask is None:
            values = values[:, None, :] if self.config.model_type in CHANNEL_AXIS_TYPES else values
            with rewritten_functions(self.hf):  # raw samples, or a classifier's fixed-size spectrogram (Whisper's features)
                out = self.hf(**{self.hf.main_input_name: values})
            if getattr(out, "embeddings", None) is not None:  # a speaker-verification model: its logits and x-vector
                return out.logits.float(), out.embeddings.float()
            return (out.logits if hasattr(out, "logits") else out.last_hidden_state).float()  # a base model's states
        out = self.hf(input_features=values, attention_mask=attention_mask)
        if getattr(out, "embeddings", None) is not None:  # a speaker-verification model: its logits and x-vector
            return out.logits.float(), out.embeddings.float()
        logits = (out.logits if hasattr(out, "logits") else out.last_hidden_state).float()  # a base model's states
        if len(self.spec.output_names) == 1:  # a classifier's pooled logits, a frame classifier's, a base model's states
            return logits
        # a CTC model's spectrogram and its frames' mask: the logits, and the output frames that hold audio (the model's
        # own subsampled mask where it has one, as its generate() reads it; else every frame)
        if hasattr(self.hf, "_get_output_attention_mask"):
            holds_audio = self.hf._get_output_attention_mask(attention_mask, target_length=logits.shape[1])
        else:
            holds_audio = torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device)
        return logits, holds_audio.to(torch.int64)
