"""QEfficient's import path for the auto classes (``QEfficient.transformers.models.modeling_auto``)."""

from QEfficient.models.causal_lm import QEFFAutoModelForCausalLM
from QEfficient.models.ctc import QEFFAutoModelForCTC
from QEfficient.models.encoder import QEFFAutoModel, QEFFAutoModelForSequenceClassification
from QEfficient.models.image_text import QEFFAutoModelForImageTextToText
from QEfficient.models.speech_seq2seq import QEFFAutoModelForSpeechSeq2Seq

__all__ = [
    "QEFFAutoModel",
    "QEFFAutoModelForCausalLM",
    "QEFFAutoModelForCTC",
    "QEFFAutoModelForImageTextToText",
    "QEFFAutoModelForSequenceClassification",
    "QEFFAutoModelForSpeechSeq2Seq",
]
