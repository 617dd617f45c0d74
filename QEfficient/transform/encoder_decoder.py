"""transformers' EncoderDecoderModel (a text encoder such as BERT or RoBERTa paired with a cross-attending causal-LM
decoder: BERT2BERT, RoBERTa2GPT-2 summarisers) in the text encoder-decoders' two graphs: the encoder's token ids and
mask -> cross keys/values (its output projected to the decoder's width where the model has that projection), and the
image encoder-decoders' decoder step (transform/vision_seq2seq.py), which reads the encoder's mask.
"""

from __future__ import annotations

import torch

from QEfficient.transform.vision_seq2seq import QEffVisionSeq2SeqEncoder, projected

MODEL_TYPE = "encoder-decoder"
# the halves proven token-exact with padded text (tests/test_seq2seq.py); others: QEFF_ALLOW_ANY_ARCHITECTURE=1
PROVEN_ENCODERS = ("bert", "roberta")
PROVEN_DECODERS = ("bert", "gpt2")


def unproven_halves(config, encoders: tuple[str, ...] = PROVEN_ENCODERS, decoders: tuple[str, ...] = PROVEN_DECODERS) -> str | None:
    """What is not proven of an EncoderDecoderModel's ``config`` ("a 'longformer' encoder"), or None; ``encoders`` and
    ``decoders``: the proven types (a SpeechEncoderDecoderModel's others)."""
    if config.encoder.model_type not in encoders:
        return f"a {config.encoder.model_type!r} encoder (proven: {', '.join(encoders)})"
    if config.decoder.model_type not in decoders:
        return f"a {config.decoder.model_type!r} decoder (proven: {', '.join(decoders)})"
    return None


def two_vocabularies(config) -> bool:
    """Whether an EncoderDecoderModel's halves read different vocabularies (BERT2GPT-2): one tokenizer cannot write
    the prompt and read the answer."""
    return getattr(config, "model_type", None) == MODEL_TYPE and config.encoder.vocab_size != config.decoder.vocab_size


class QEffEncoderDecoderEncoder(QEffVisionSeq2SeqEncoder):
    """forward(input_ids [B, S], attention_mask [B, S]) -> cross keys/values over the S positions."""

    def dummy_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.spec.dummy_inputs()

    def encoded(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return projected(self.hf, self.hf.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state)
