"""QEfficient's import path for the auto classes (``QEfficient.transformers.models.modeling_auto``)."""

from QEfficient.models.causal_lm import QEFFAutoModelForCausalLM

__all__ = ["QEFFAutoModelForCausalLM"]
