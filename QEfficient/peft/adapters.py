"""PEFT LoRA adapter folders read into per-module matrices, and stacked into the graph's adapter tables.

An adapter saved by ``peft`` (``adapter_config.json`` + ``adapter_model.safetensors``) holds, per
targeted Linear, ``lora_A`` [r, in] and ``lora_B`` [out, r]; PEFT adds ``scaling * B(A(x))`` with
``scaling = alpha / r`` (``alpha / sqrt(r)`` with rsLoRA, per-module alpha and rank from
``alpha_pattern`` / ``rank_pattern``). The scaling is folded into B here, so the graph computes
``(x @ A^T) @ (scaling * B^T)``; a rank below the table's is zero-padded, which adds exact zeros.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from QEfficient.export.graph_names import lora_table_names
from QEfficient.transform.lora import layer_of
from QEfficient.utils.extras import require_extra

logger = logging.getLogger(__name__)

BASE_ADAPTER = "base"  # prompt_to_adapter_mapping's name for rows without an adapter (table row 0)

_KEY = re.compile(r"^base_model\.model\.(?P<path>.+)\.lora_(?P<kind>[AB])\.weight$")

# LoraConfig features that change the computation beyond (x A^T) B^T, which the graph does not hold
_UNSUPPORTED = {
    "use_dora": "DoRA (use_dora=True)",
    "lora_bias": "LoRA biases (lora_bias=True)",
    "modules_to_save": "modules_to_save (fully trained copies of modules)",
    "trainable_token_indices": "trainable_token_indices",
    "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)",
    "target_parameters": "target_parameters (LoRA on parameters, not modules)",
    "layer_replication": "layer_replication",
    "fan_in_fan_out": "fan_in_fan_out (Conv1D layers)",
}


@dataclass
class LoraAdapter:
    """One adapter: per target module name, per layer, (A^T [in, r], scaling * B^T [r, out]) in float32."""

    name: str
    source: str
    base_model_name_or_path: str | None
    weights: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)  # the module paths it targets, as in the base model

    @property
    def modules(self) -> set[str]:
        return set(self.weights)

    @property
    def rank(self) -> int:
        return max(a.shape[1] for layers in self.weights.values() for a, _ in layers.values())


def check_adapter_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"adapter_name must be a non-empty string, got {name!r}.")
    if name == BASE_ADAPTER:
        raise ValueError(f"'{BASE_ADAPTER}' names the model without an adapter; give the adapter another name.")
    return name


def read_adapter_config(adapter: str | os.PathLike):
    """The adapter's PeftConfig (a folder with adapter_config.json, or a hub id in the local cache)."""
    require_extra("lora", "LoRA adapters")
    from peft import PeftConfig

    try:
        return PeftConfig.from_pretrained(str(adapter))
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"'{adapter}' is not a PEFT adapter: expected a folder with adapter_config.json (saved by peft's "
            f"save_pretrained), or the id of one in the local Hugging Face cache ({err})."
        ) from None


def read_lora_adapter(adapter: str | os.PathLike, name: str, weights: dict | None = None, config=None) -> LoraAdapter:
    """Read a PEFT LoRA adapter (folder or cached hub id) into per-module matrices; ``weights`` (peft's state dict:
    tensors or arrays) and ``config`` (its PeftConfig) given together are taken as they are, nothing read (QEfficient's
    ``adapter_weight`` and ``adapter_config``)."""
    if (weights is None) != (config is None):  # QEfficient reads the adapter from its path then; so does this
        message = f"adapter_weight and adapter_config go together; with one of them the adapter is read from '{adapter}'."
        warnings.warn(message, stacklevel=3)
        weights = config = None
    config = config if config is not None else read_adapter_config(adapter)
    from peft.utils import load_peft_weights
    from peft.utils.other import get_pattern_key

    if str(config.peft_type.value if hasattr(config.peft_type, "value") else config.peft_type) != "LORA":
        raise NotImplementedError(f"Adapter '{adapter}' is a {config.peft_type} adapter; only LoRA adapters are supported.")
    for option, what in _UNSUPPORTED.items():
        if getattr(config, option, None):
            raise NotImplementedError(f"Adapter '{adapter}' uses {what}, which is not supported; only plain LoRA on Linear layers is.")
    if getattr(config, "bias", "none") != "none":
        raise NotImplementedError(f"Adapter '{adapter}' trains biases (bias={config.bias!r}); only bias='none' is supported.")
    state = weights if weights is not None else load_peft_weights(str(adapter), device="cpu")
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in state.items():
        match = _KEY.match(key)
        if match is None:
            raise NotImplementedError(f"Adapter '{adapter}' holds '{key}', which is not a LoRA matrix of a Linear layer (not supported).")
        as_array = tensor.float().numpy() if hasattr(tensor, "float") else np.asarray(tensor, dtype=np.float32)
        pairs.setdefault(match["path"], {})[match["kind"]] = as_array
    out = LoraAdapter(name, str(adapter), config.base_model_name_or_path)
    for path, pair in sorted(pairs.items()):
        if set(pair) != {"A", "B"}:
            raise ValueError(f"Adapter '{adapter}' has lora_{'B' if 'A' in pair else 'A'} missing for {path}; the file is incomplete.")
        layer = layer_of(path)
        if layer is None:
            raise NotImplementedError(f"Adapter '{adapter}' targets {path}, outside the decoder layers; only their Linears are supported.")
        a, b = pair["A"], pair["B"]
        rank = a.shape[0]
        alpha = config.alpha_pattern.get(get_pattern_key(config.alpha_pattern.keys(), path), config.lora_alpha)
        scaling = alpha / math.sqrt(rank) if config.use_rslora else alpha / rank
        out.weights.setdefault(path.rsplit(".", 1)[-1], {})[layer] = (np.ascontiguousarray(a.T), np.ascontiguousarray((b * scaling).T))
        out.paths.append(path)
    if not out.weights:
        raise ValueError(f"Adapter '{adapter}' has no LoRA weights.")
    return out


def check_fits(adapter: LoraAdapter, model, shapes: dict[str, tuple[int, int, int]]) -> None:
    """The adapter's matrices fit this base model's layers (``shapes``: module -> (layers, in, out))."""
    made_for = f" (it was made for {adapter.base_model_name_or_path})" if adapter.base_model_name_or_path else ""
    for path in adapter.paths:
        try:
            model.get_submodule(path)
        except AttributeError:
            raise ValueError(f"Adapter '{adapter.name}' targets {path}, which this base model does not have{made_for}.") from None
    for module, layers in adapter.weights.items():
        _, fan_in, fan_out = shapes[module]
        for layer, (a, b) in layers.items():
            if a.shape[0] != fan_in or b.shape[1] != fan_out:
                raise ValueError(
                    f"Adapter '{adapter.name}' does not fit this base model{made_for}: its {module} of layer {layer} maps "
                    f"{a.shape[0]} -> {b.shape[1]} features, the model's maps {fan_in} -> {fan_out}."
                )


def stack_tables(adapters: list[LoraAdapter], shapes: dict[str, tuple[int, int, int]], rank: int) -> dict[str, np.ndarray]:
    """The graph's adapter tables: row 0 zeros (the base model), row i the i-th adapter, rank zero-padded."""
    tables = {}
    for module, (layers, fan_in, fan_out) in shapes.items():
        a = np.zeros((layers, len(adapters) + 1, fan_in, rank), dtype=np.float32)
        b = np.zeros((layers, len(adapters) + 1, rank, fan_out), dtype=np.float32)
        for row, adapter in enumerate(adapters, start=1):
            for layer, (a_t, b_t) in adapter.weights.get(module, {}).items():
                a[layer, row, :, : a_t.shape[1]] = a_t
                b[layer, row, : b_t.shape[0], :] = b_t
        a_name, b_name = lora_table_names(module)
        tables[a_name], tables[b_name] = a, b
    return tables


def save_tables(tables: dict[str, np.ndarray], path: Path) -> Path:
    """The tables in one .npz (a server process reads them without torch)."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **tables)
    os.replace(tmp, path)
    return path
