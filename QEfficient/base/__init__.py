"""QEfficient's ``QEfficient.base`` import path: the auto classes and ``QEFFCommonLoader``."""

from QEfficient.base.common import QEFFCommonLoader
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
    "QEFFCommonLoader",
]
