"""QEffAutoPeftModelForCausalLM: a PEFT LoRA adapter folder loaded on its base model, one adapter active.

    >>> m = QEffAutoPeftModelForCausalLM.from_pretrained("adapters/magicoder")  # base from adapter_config.json
    >>> m.compile(prefill_seq_len=32, ctx_len=256)
    >>> m.generate(tok, ["def fibonacci"])
    >>> m.load_adapter("adapters/gsm8k", "gsm8k"); m.set_adapter("gsm8k")  # no export, no compile

It is QEffAutoLoraModelForCausalLM with every row on the active adapter: the adapters are inputs of
the graph, so set_adapter() and load_adapter() of a compatible adapter never export or compile again.
"""

from __future__ import annotations

import os

from transformers import PreTrainedModel

from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.peft.adapters import BASE_ADAPTER, check_adapter_name, read_adapter_config
from QEfficient.peft.lora_model import QEffAutoLoraModelForCausalLM


class QEffAutoPeftModelForCausalLM(QEffAutoLoraModelForCausalLM):
    """One LoRA adapter at a time (``set_adapter``; ``disable_adapter`` runs the base model)."""

    def __init__(self, model: PreTrainedModel, continuous_batching: bool = False, **kwargs) -> None:
        super().__init__(model, continuous_batching=continuous_batching, **kwargs)
        self._active: str | None = None

    @classmethod
    def from_pretrained(
        cls,
        pretrained_name_or_path: str | os.PathLike,
        adapter_name: str = "default",
        *,
        base_model: str | os.PathLike | PreTrainedModel | None = None,
        continuous_batching: bool = False,
        **kwargs,
    ) -> QEffAutoPeftModelForCausalLM:
        """Load the adapter at ``pretrained_name_or_path`` (a PEFT folder or cached hub id) on its base
        model: ``base_model`` (a path, hub id or loaded transformers model), else the adapter's
        ``base_model_name_or_path``. Other keyword arguments go to the base model's loading."""
        check_adapter_name(adapter_name)
        if base_model is None:
            base_model = read_adapter_config(pretrained_name_or_path).base_model_name_or_path
            if not base_model:
                raise ValueError(
                    f"The adapter at '{pretrained_name_or_path}' does not name its base model (base_model_name_or_path is empty); "
                    "pass base_model=PATH_OR_MODEL."
                )
        obj = super().from_pretrained(base_model, continuous_batching=continuous_batching, **kwargs)
        obj.load_adapter(pretrained_name_or_path, adapter_name)
        obj.set_adapter(adapter_name)
        return obj

    @property
    def active_adapter(self) -> str | None:
        return self._active

    def set_adapter(self, adapter_name: str) -> None:
        """Make a loaded adapter the active one (no export, no compile)."""
        if adapter_name not in self.adapters:
            raise ValueError(f"Adapter '{adapter_name}' is not loaded (loaded: {list(self.adapters)}); load_adapter(path, name) first.")
        self._active = adapter_name

    def disable_adapter(self) -> None:
        """Run the base model alone until set_adapter() is called."""
        self._active = None

    def unload_adapter(self, adapter_name: str) -> bool:
        if adapter_name == self._active:
            self._active = None
        return super().unload_adapter(adapter_name)

    def generate(self, tokenizer, prompts: list[str] | str | None = None, **kwargs) -> CloudAI100ExecInfo:
        """Every prompt with the active adapter; arguments as QEFFAutoModelForCausalLM.generate."""
        if "prompt_to_adapter_mapping" in kwargs:
            raise TypeError("QEffAutoPeftModelForCausalLM runs its active adapter; use QEffAutoLoraModelForCausalLM for one per prompt.")
        count = 1 if isinstance(prompts, str) else len(prompts or [])
        if kwargs.get("prompts_txt_file_path"):
            from QEfficient.generation.exec_kv import load_prompts

            count = len(load_prompts(None, kwargs["prompts_txt_file_path"]))
        mapping = [self._active or BASE_ADAPTER] * count
        return super().generate(tokenizer, prompts, prompt_to_adapter_mapping=mapping, **kwargs)


__all__ = ["QEffAutoPeftModelForCausalLM"]
