"""QEfficient: Hugging Face models exported to ONNX and run fast on ONNX Runtime, with Qualcomm QEfficient's API."""

import logging

from QEfficient._version import __version__
from QEfficient.generation.exec_kv import cloud_ai_100_exec_kv
from QEfficient.models.causal_lm import QEFFAutoModelForCausalLM
from QEfficient.models.encoder import QEFFAutoModel, QEFFAutoModelForSequenceClassification
from QEfficient.models.image_text import QEFFAutoModelForImageTextToText

__all__ = [
    "QEFFAutoModel",
    "QEFFAutoModelForCausalLM",
    "QEFFAutoModelForImageTextToText",
    "QEFFAutoModelForSequenceClassification",
    "cloud_ai_100_exec_kv",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
