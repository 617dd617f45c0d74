"""LoRA adapters (PEFT) on the retained-state decoder: adapters are inputs of the graph (transform/lora.py)."""

from QEfficient.peft.auto import QEffAutoPeftModelForCausalLM
from QEfficient.peft.lora_model import QEffAutoLoraModelForCausalLM

__all__ = ["QEffAutoLoraModelForCausalLM", "QEffAutoPeftModelForCausalLM"]
