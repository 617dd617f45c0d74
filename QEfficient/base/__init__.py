"""QEfficient's ``QEfficient.base`` import path: the auto classes and ``QEFFCommonLoader``."""

from QEfficient.base.common import QEFFCommonLoader
from QEfficient.models.causal_lm import QEFFAutoModelForCausalLM
from QEfficient.models.encoder import QEFFAutoModel, QEFFAutoModelForSequenceClassification
from QEfficient.models.image_text import QEFFAutoModelForImageTextToText

__all__ = [
    "QEFFAutoModel",
    "QEFFAutoModelForCausalLM",
    "QEFFAutoModelForImageTextToText",
    "QEFFAutoModelForSequenceClassification",
    "QEFFCommonLoader",
]
