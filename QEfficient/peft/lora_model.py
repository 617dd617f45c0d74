"""QEffAutoLoraModelForCausalLM: many LoRA adapters on one base model, a different one per row.

The graph takes the adapters as inputs (transform/lora.py): one export per target-module set, one
artifact per (target-module set, max_lora_rank); loading, unloading or switching adapters only
builds other tables, bound at generate() time.

    >>> m = QEffAutoLoraModelForCausalLM.from_pretrained("base/model")
    >>> m.load_adapter("adapters/gsm8k", "gsm8k"); m.load_adapter("adapters/magicoder", "magicoder")
    >>> m.compile(prefill_seq_len=32, ctx_len=256)
    >>> m.generate(tok, ["math", "code", "plain"], prompt_to_adapter_mapping=["gsm8k", "magicoder", "base"])
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
from transformers import PreTrainedModel

from QEfficient.export.graph_specs import LoraDecoderGraphSpec, SpeculativeLoraDecoderGraphSpec
from QEfficient.export.onnx_export import torchscript_export
from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.models.causal_lm import QEFFAutoModelForCausalLM
from QEfficient.peft.adapters import (
    BASE_ADAPTER,
    LoraAdapter,
    check_adapter_name,
    check_fits,
    read_lora_adapter,
    stack_tables,
)
from QEfficient.transform.lora import QEffLoraCausalLM, table_shapes
from QEfficient.utils.extras import require_extra

logger = logging.getLogger(__name__)


class QEffAutoLoraModelForCausalLM(QEFFAutoModelForCausalLM):
    """A causal LM whose compiled graph runs any of its loaded LoRA adapters per row ("base": none).

    Adapters may differ in rank and target modules: the graph covers the union of the loaded
    adapters' target modules (a module an adapter does not target gets zeros), and ranks up to
    ``compile(max_lora_rank=...)`` (default: the largest loaded). After compile(), an adapter that
    targets another module or has a larger rank is refused with what to do: compile() again (a new
    target module also re-exports the graph; a larger rank only rebuilds the artifact).
    """

    def __init__(self, model: PreTrainedModel, continuous_batching: bool = False, qaic_config: dict | None = None, **kwargs) -> None:
        # A speculative target ({"speculative_model_type": "target"}) drafts by prompt lookup only: a draft
        # model would need the adapters too.
        require_extra("lora", type(self).__name__)
        super().__init__(model, continuous_batching=continuous_batching, qaic_config=qaic_config, **kwargs)
        self.adapters: dict[str, LoraAdapter] = {}  # in id order: the i-th is table row i + 1
        self.lora_modules: tuple[str, ...] | None = None  # the target modules of the exported graph
        self.max_lora_rank: int | None = None  # the rank the compiled artifact takes
        self._tables: tuple[tuple, dict[str, np.ndarray]] | None = None
        self._downloaded: dict[str, LoraAdapter] = {}  # download_adapter()'s, not yet loaded
        self._beyond: dict[str, str] = {}  # loaded adapters the compiled artifact cannot take -> why
        self._parked_qpc: Path | None = None  # that artifact, back in use once they are unloaded

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike | PreTrainedModel, continuous_batching: bool = False, **kwargs
    ) -> QEffAutoLoraModelForCausalLM:
        """The base model: a folder, a hub id in the local cache, a .gguf file, or a loaded transformers model."""
        if isinstance(pretrained_model_name_or_path, PreTrainedModel):
            model = pretrained_model_name_or_path
            return cls(model, continuous_batching=continuous_batching, qaic_config=kwargs.pop("qaic_config", None))
        return super().from_pretrained(pretrained_model_name_or_path, continuous_batching, **kwargs)

    # --- adapters -----------------------------------------------------------------------------

    @property
    def active_adapter_to_id(self) -> dict[str, int]:
        """adapter name -> its row of the tables (0 is "base"), as upstream QEfficient names it."""
        return {name: i for i, name in enumerate(self.adapters, start=1)}

    def load_adapter(
        self, adapter_model_id: str | os.PathLike, adapter_name: str, adapter_weight: dict | None = None, adapter_config=None
    ) -> int:
        """Read a PEFT LoRA adapter (folder or cached hub id) as ``adapter_name``; returns its id. ``adapter_weight``
        (peft's state dict) with ``adapter_config`` (its PeftConfig): the adapter in memory, nothing read.

        No export and no compile: generate() binds the new tables. Refused with a clear error when it does not fit the
        base model. Once compiled, one that needs a target module or rank the artifact lacks is loaded, with a warning
        that compile() must run again (it exports the graph for the new set) before generate().
        """
        check_adapter_name(adapter_name)
        if adapter_name in self.adapters:  # (QEfficient's: skipped, with a warning; shown here, as the old one stays)
            warnings.warn(f"Adapter '{adapter_name}' is already loaded; unload_adapter() it first to replace it.", stacklevel=2)
            return self.active_adapter_to_id[adapter_name]
        adapter = self._downloaded.pop(adapter_name, None)
        if adapter is None:
            adapter = read_lora_adapter(adapter_model_id, adapter_name, adapter_weight, adapter_config)
        beyond = self._check_adapter(adapter)
        self.adapters[adapter_name] = adapter
        self._tables = None
        if beyond is not None:  # the artifact cannot take it: generate() waits for compile() (or for it to be unloaded)
            self._beyond[adapter_name] = beyond
            self._parked_qpc, self.qpc_path = self._parked_qpc or self.qpc_path, None
            warnings.warn(f"{beyond} Call compile() again before generate(): it exports the graph for the new set.", stacklevel=2)
        return self.active_adapter_to_id[adapter_name]

    def download_adapter(
        self, adapter_model_id: str | os.PathLike, adapter_name: str, adapter_weight: dict | None = None, adapter_config=None
    ) -> None:
        """QEfficient's: read an adapter (checked against the base model) without giving it an id; load_adapter() of
        the same name takes it from here."""
        check_adapter_name(adapter_name)
        if adapter_name in self.adapters or adapter_name in self._downloaded:
            warnings.warn(f"Adapter '{adapter_name}' is already read; skipped.", stacklevel=2)
            return
        adapter = read_lora_adapter(adapter_model_id, adapter_name, adapter_weight, adapter_config)
        self._check_adapter(adapter)  # (whether the artifact takes it: said at load)
        self._downloaded[adapter_name] = adapter

    def unload_adapter(self, adapter_name: str) -> bool:
        """Forget an adapter (the later ones move up an id); False when it was not loaded."""
        if self.adapters.pop(adapter_name, None) is None:
            logger.info("Adapter '%s' is not loaded", adapter_name)
            return False
        self._tables = None
        if self._beyond.pop(adapter_name, None) is not None and not self._beyond:  # the compiled artifact takes the rest
            self.qpc_path, self._parked_qpc = self._parked_qpc, None
        return True

    def _check_adapter(self, adapter: LoraAdapter) -> str | None:
        """Refused where it does not fit the base model; else why the compiled artifact cannot take it (None: it can)."""
        hf = self.model.hf
        check_fits(adapter, hf, table_shapes(hf, adapter.modules))
        if (self.qpc_path or self._parked_qpc) is None or self.lora_modules is None:
            return None
        missing = sorted(adapter.modules - set(self.lora_modules))
        if missing:
            has = list(self.lora_modules)
            return f"Adapter '{adapter.name}' targets {missing}, which the compiled graph has no tables for (it has {has})."
        if adapter.rank > self.max_lora_rank:
            return f"Adapter '{adapter.name}' has rank {adapter.rank}, more than the compiled max_lora_rank={self.max_lora_rank}."
        return None

    def _target_modules(self) -> tuple[str, ...]:
        modules = set().union(*(a.modules for a in self.adapters.values()))
        if not modules:
            raise ValueError(
                f"{type(self).__name__} has no adapter loaded: call load_adapter(path, name) first "
                "(for the base model alone use QEFFAutoModelForCausalLM)."
            )
        return tuple(sorted(modules))

    def adapter_tables(self) -> dict[str, np.ndarray]:
        """The graph's adapter inputs for the loaded adapters, at the compiled rank (built once per set)."""
        key = (tuple(self.adapters), self.lora_modules, self.max_lora_rank)
        if self._tables is None or self._tables[0] != key:
            shapes = table_shapes(self.model.hf, self.lora_modules)
            tables = stack_tables(list(self.adapters.values()), shapes, self.max_lora_rank)
            dtype = str(self.model.lm_head.weight.dtype).removeprefix("torch.")  # the graph's table inputs have the weights' dtype
            self._tables = (key, {name: table.astype(dtype, copy=False) for name, table in tables.items()})
        return self._tables[1]

    def adapter_ids(self, mapping: list[str | None], count: int) -> list[int]:
        """Table rows for ``prompt_to_adapter_mapping`` (None or "base": row 0); unknown names are refused."""
        if mapping is None:
            return [0] * count
        if isinstance(mapping, str) or len(mapping) != count:
            raise ValueError(f"prompt_to_adapter_mapping must be a list with one adapter name per prompt ({count}), got {mapping!r}.")
        ids = self.active_adapter_to_id
        unknown = sorted({str(n) for n in mapping if n not in ids and n not in (None, BASE_ADAPTER)})
        if unknown:
            raise ValueError(f"Unknown adapter name(s) {unknown}; loaded: {list(ids)} (or '{BASE_ADAPTER}' for none).")
        return [ids.get(n, 0) for n in mapping]

    # --- export, compile, generate ------------------------------------------------------------

    def _export_options(self, name: str, kv_dtype) -> dict:
        modules = self.lora_modules

        def export(tmp: Path) -> Path:
            lora = QEffLoraCausalLM(self.model, modules)
            try:
                kind = SpeculativeLoraDecoderGraphSpec if self.is_speculative_target else LoraDecoderGraphSpec
                spec = kind(lora.num_layers, modules)
                args = spec.dummy_inputs(lora, kv_dtype)
                return torchscript_export(lora, args, tmp / f"{name}.onnx", spec.input_names, spec.output_names, spec.dynamic_axes())
            finally:
                lora.release()

        extra = {"lora_target_modules": list(modules), "kv_cache_dtype": str(kv_dtype)}
        if self.is_speculative_target:  # only then: existing LoRA graphs keep their hashes
            extra["speculative_model_type"] = "target"
        return {"export_fn": export, "hash_extra": extra}

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> Path:
        """Export the graph for the loaded adapters' target modules (cached: the adapters' values are inputs)."""
        self.lora_modules = self._target_modules()
        return super().export(export_dir, **kwargs)

    def compile(self, onnx_path=None, compile_dir=None, *, max_lora_rank: int | None = None, **kwargs) -> Path:
        """As QEFFAutoModelForCausalLM.compile; ``max_lora_rank``: the largest adapter rank the artifact
        takes (default: the largest loaded), so adapters loaded later may have up to that rank."""
        if kwargs.get("speculative_draft") is not None:
            raise NotImplementedError("With LoRA adapters, speculative decoding drafts by prompt lookup only: drop speculative_draft.")
        modules = self._target_modules()
        largest = max(a.rank for a in self.adapters.values())
        if max_lora_rank is None:
            max_lora_rank = largest
        if isinstance(max_lora_rank, bool) or not isinstance(max_lora_rank, int) or max_lora_rank < largest:
            raise ValueError(f"max_lora_rank must be an integer >= the largest loaded adapter rank ({largest}), got {max_lora_rank!r}.")
        compiled = (self.lora_modules, self.max_lora_rank)  # a failed compile leaves the artifact it had, as it was
        self.lora_modules, self.max_lora_rank = modules, max_lora_rank
        try:
            qpc = super().compile(onnx_path, compile_dir, **kwargs)
        except BaseException:
            self.lora_modules, self.max_lora_rank = compiled
            raise
        self._beyond, self._parked_qpc = {}, None
        return qpc

    def _artifact_extra(self) -> dict:
        shapes = table_shapes(self.model.hf, self.lora_modules)
        return {"lora_table_shapes": {m: list(s) for m, s in shapes.items()}, "max_lora_rank": self.max_lora_rank}

    def generate(
        self, tokenizer, prompts: list[str] | str | None = None, prompt_to_adapter_mapping: list[str] | None = None, **kwargs
    ) -> CloudAI100ExecInfo:
        """Generation with each prompt's adapter (``prompt_to_adapter_mapping``, "base" for none;
        all "base" when omitted); the other arguments as QEFFAutoModelForCausalLM.generate."""
        if self.qpc_path is None:
            if self._beyond:
                raise TypeError(f"{next(iter(self._beyond.values()))} Call compile() again before generate() (or unload_adapter() it).")
            raise TypeError("Please run compile() before generate().")
        if kwargs.get("assistant_model") is not None:
            raise NotImplementedError("With LoRA adapters, speculative decoding drafts by prompt lookup only (prompt_lookup_num_tokens=K).")
        count = 1 if isinstance(prompts, str) else len(prompts or [])
        if kwargs.get("prompts_txt_file_path"):
            from QEfficient.generation.exec_kv import load_prompts

            count = len(load_prompts(None, kwargs["prompts_txt_file_path"]))
        ids = self.adapter_ids(prompt_to_adapter_mapping, count)
        return super().generate(tokenizer, prompts, lora_tables=self.adapter_tables(), prompt_to_lora_id_mapping=ids, **kwargs)


__all__ = ["QEffAutoLoraModelForCausalLM"]
