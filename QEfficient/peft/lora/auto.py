"""QEfficient's ``QEfficient.peft.lora.auto`` import path."""

from QEfficient.peft.lora_model import QEffAutoLoraModelForCausalLM

__all__ = ["QEffAutoLoraModelForCausalLM"]
