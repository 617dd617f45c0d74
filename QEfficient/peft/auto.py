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

import numpy as np
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
    ) -> QEffAutoPeftModelForCausalLM | QEffAutoLoraModelForCausalLM:
        """Load the adapter at ``pretrained_name_or_path`` (a PEFT folder or cached hub id) on its base
        model: ``base_model`` (a path, hub id or loaded transformers model), else the adapter's
        ``base_model_name_or_path``. ``finite_adapters=True`` (QEfficient's) returns a QEffAutoLoraModelForCausalLM
        holding the adapter instead. Other keyword arguments go to the base model's loading."""
        check_adapter_name(adapter_name)
        finite_adapters = kwargs.pop("finite_adapters", False)
        if base_model is None:
            base_model = read_adapter_config(pretrained_name_or_path).base_model_name_or_path
            if not base_model:
                raise ValueError(
                    f"The adapter at '{pretrained_name_or_path}' does not name its base model (base_model_name_or_path is empty); "
                    "pass base_model=PATH_OR_MODEL."
                )
        if finite_adapters:  # QEfficient's: the many-adapter class, with this adapter loaded as its first
            lora = QEffAutoLoraModelForCausalLM.from_pretrained(base_model, continuous_batching=continuous_batching, **kwargs)
            lora.load_adapter(pretrained_name_or_path, adapter_name)
            return lora
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

    def generate(self, tokenizer=None, prompts: list[str] | str | None = None, **kwargs) -> CloudAI100ExecInfo | np.ndarray:
        """Every prompt with the active adapter; arguments as QEFFAutoModelForCausalLM.generate.

        Upstream QEfficient's transformers-like form works too: ``generate(**tokenizer(texts,
        return_tensors="pt"), max_new_tokens=N)`` (or ``inputs=ids``) returns the new token ids
        [batch, N] (greedy; the pad id after a row's end).
        """
        ids = kwargs.pop("inputs", None)
        ids = kwargs.pop("input_ids", None) if ids is None else ids
        if ids is None and hasattr(tokenizer, "shape"):  # generate(input_ids, ...): upstream's and transformers' first argument
            ids, tokenizer = tokenizer, None
        if ids is not None:
            return self._generate_ids(ids, tokenizer, **kwargs)
        if "prompt_to_adapter_mapping" in kwargs:
            raise TypeError("QEffAutoPeftModelForCausalLM runs its active adapter; use QEffAutoLoraModelForCausalLM for one per prompt.")
        count = 1 if isinstance(prompts, str) else len(prompts or [])
        if kwargs.get("prompts_txt_file_path"):
            from QEfficient.generation.exec_kv import load_prompts

            count = len(load_prompts(None, kwargs["prompts_txt_file_path"]))
        mapping = [self._active or BASE_ADAPTER] * count
        return super().generate(tokenizer, prompts, prompt_to_adapter_mapping=mapping, **kwargs)

    def _generate_ids(
        self,
        ids,
        tokenizer=None,
        attention_mask=None,
        max_new_tokens=None,
        generation_config=None,
        streamer=None,
        do_sample: bool | None = None,
        num_beams: int | None = None,
    ):
        from transformers import AutoTokenizer

        from QEfficient.compile.ort_cpu import read_artifact
        from QEfficient.generation.exec_kv import right_padding
        from QEfficient.generation.lora_generation import LoraTextGeneration
        from QEfficient.generation.text_generation import eos_token_ids
        from QEfficient.runtime.ort_session import open_kv_session

        if self.qpc_path is None:
            raise TypeError("Please run compile() before generate().")
        max_new_tokens = max_new_tokens or getattr(generation_config, "max_new_tokens", None)
        # upstream QEfficient's limits: greedy only
        if do_sample or getattr(generation_config, "do_sample", False):
            raise NotImplementedError("do_sample=True not supported currently: generate(input_ids=...) decodes greedily.")
        if (num_beams or getattr(generation_config, "num_beams", None) or 1) > 1:
            raise NotImplementedError("num_beams>1 not supported currently: generate(input_ids=...) decodes greedily.")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"generate(input_ids=...) needs max_new_tokens > 0, got {max_new_tokens!r}.")
        ids = np.asarray(ids, dtype=np.int64).reshape(len(ids), -1)
        mask = np.ones_like(ids, dtype=bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
        token_lists = [row[keep].tolist() for row, keep in zip(ids, mask)]
        if tokenizer is None:  # (loaded here: padded on the right without a word)
            tokenizer = right_padding(AutoTokenizer.from_pretrained(self.local_model_dir), quiet=True)
        session = self._session("kv", (str(self.qpc_path), self._num_cores), lambda: open_kv_session(self.qpc_path, self._num_cores))
        rows = [self.active_adapter_to_id.get(self._active, 0)] * len(token_lists)
        eos = eos_token_ids(tokenizer, self.model.hf.generation_config)
        prefill_len = read_artifact(self.qpc_path)["compile_params"]["prefill_seq_len"]
        gen = LoraTextGeneration(session, right_padding(tokenizer), prefill_len, eos, None, self.adapter_tables(), rows)
        out = np.full((len(token_lists), max_new_tokens), gen.pad_id, dtype=np.int64)
        for first in range(0, len(token_lists), gen.batch_size):
            batch = token_lists[first : first + gen.batch_size]
            padded = batch + [batch[-1]] * (gen.batch_size - len(batch))
            _, new, _ = gen.generate_batch(None, max_new_tokens, streamer if gen.batch_size == 1 else None, padded, first)
            out[first : first + len(batch), : new.shape[1]] = new[: len(batch), :max_new_tokens]
        return out


__all__ = ["QEffAutoPeftModelForCausalLM"]
