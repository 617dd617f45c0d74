"""QEfficient's import path for the auto classes (``QEfficient.transformers.models.modeling_auto``)."""

from QEfficient.models.causal_lm import QEFFAutoModelForCausalLM
from QEfficient.models.encoder import QEFFAutoModel, QEFFAutoModelForSequenceClassification
from QEfficient.models.image_text import QEFFAutoModelForImageTextToText

__all__ = ["QEFFAutoModel", "QEFFAutoModelForCausalLM", "QEFFAutoModelForImageTextToText", "QEFFAutoModelForSequenceClassification"]
