"""QEfficient's ``QEfficient.peft.lora`` import path: the many-adapter LoRA class."""

from QEfficient.peft.lora_model import QEffAutoLoraModelForCausalLM

__all__ = ["QEffAutoLoraModelForCausalLM"]
