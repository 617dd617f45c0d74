"""A sentence-transformers folder's files, read without the sentence-transformers package: its module list
(``modules.json``), a module's config and weights, its Transformer's ``sentence_bert_config.json``, and Dense modules as
numpy layers. Shared by the embedding models' head (models/sentence_transformers.py) and the retrievers' folders
(ColBERT's PyLate folders, SPLADE's SparseEncoder folders)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the elementwise activations a Dense module may end in here, as sentence-transformers names them (torch.nn.*)
DENSE_ACTIVATIONS = {
    "Identity": lambda x: x,
    "Tanh": np.tanh,
    "ReLU": lambda x: np.maximum(x, 0),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}


def token_limit(value) -> int | None:
    """A length limit as a tokenizer or config states it, None where it states none (transformers writes a huge number for
    a tokenizer without a limit)."""
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1_000_000 else None


def read_json(path: Path) -> dict | list | None:
    """A JSON file's content, or None where there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


def st_modules(folder: Path | None) -> list[dict] | None:
    """The folder's ``modules.json`` (each module's type and path), or None outside a sentence-transformers folder."""
    modules = read_json(Path(folder) / "modules.json") if folder else None
    return modules if isinstance(modules, list) else None


def transformer_module_config(folder: Path | None) -> dict:
    """The Transformer module's saved settings (its sentence_bert_config.json; the folder's own where modules.json names no
    Transformer), {} where there are none."""
    if folder is None:
        return {}
    module = next((m for m in st_modules(folder) or [] if module_kind(m) == "Transformer"), None)
    return sentence_bert_config(Path(folder), module)


def older_layout_message(folder: Path) -> str | None:
    """What to do with a sentence-transformers folder in its older layout (the model below the top, in
    ``0_Transformer/``), None for any other folder."""
    module = next((m for m in st_modules(folder) or [] if module_kind(m) == "Transformer"), None)
    nested = Path(folder) / str(module.get("path") or "") if module else None
    if nested is None or nested == Path(folder) or not (nested / "config.json").is_file():
        return None
    return (
        f"'{folder}' is a sentence-transformers model in its older layout, the transformer in '{nested.name}/'; QEfficient "
        "reads the current one (the transformer's files at the top, beside modules.json). Save it again with "
        "sentence-transformers (SentenceTransformer(folder).save(new_folder)), or load "
        f"'{nested}' with pooling= for the transformer alone (the folder's other modules left out)."
    )


def formats_chats(folder: Path | None) -> bool:
    """Whether a sentence-transformers folder (saved by 5.4 or later) has a Transformer that writes its inputs as chat
    messages: its ``modality_config`` lists "message" (inferred where the tokenizer had a chat template), and
    sentence-transformers then renders every text, and each pair, through the chat template."""
    modalities = transformer_module_config(folder).get("modality_config")
    return isinstance(modalities, dict) and "message" in modalities


def warn_chat_formatting(folder: Path | None) -> None:
    """A warning for a server over such a folder (formats_chats): served on plain text, as vLLM serves it."""
    if formats_chats(folder):
        logging.getLogger(__name__).warning(
            "%s's sentence-transformers config takes chat messages ('message' in modality_config): served on plain text, as "
            "vLLM serves it; sentence-transformers 5.4 and later render each text through the chat template.",
            folder,
        )


# the Transformer module's types vLLM takes for a CrossEncoder scored through its chat template (5.3's and 5.4's paths)
_TRANSFORMER_TYPES = ("sentence_transformers.models.Transformer", "sentence_transformers.base.modules.transformer.Transformer")


def cross_encoder_chat_settings(folder: Path | None) -> dict | None:
    """The chat-template arguments a sentence-transformers CrossEncoder scores its pairs with, as vLLM reads them: a
    CrossEncoder folder (config_sentence_transformers.json) whose one module is a Transformer at its root, for
    sequence classification, taking chat messages; its ``processing_kwargs.chat_template`` (possibly empty, with a
    template's name under "chat_template") less ``restore_suffix``. None for any other folder (scored as plain pairs)."""
    saved = read_json(Path(folder) / "config_sentence_transformers.json") if folder else None
    modules = read_json(Path(folder) / "modules.json") if folder else None
    modules = modules.get("modules") if isinstance(modules, dict) else modules  # vLLM reads this form too
    if not (isinstance(saved, dict) and saved.get("model_type") == "CrossEncoder" and isinstance(modules, list) and len(modules) == 1):
        return None
    settings = sentence_bert_config(Path(folder))
    module = modules[0] if isinstance(modules[0], dict) else {}
    if module.get("type") not in _TRANSFORMER_TYPES or module.get("path") or settings.get("transformer_task") != "sequence-classification":
        return None
    if "message" not in (settings.get("modality_config") or {}):
        return None
    processing = settings.get("processing_kwargs") or {}
    kwargs = (processing.get("chat_template") or {}) if isinstance(processing, dict) else None
    if not isinstance(kwargs, dict) or not isinstance(kwargs.get("chat_template", ""), str):
        raise ValueError(f"{folder}'s processing_kwargs.chat_template must be a JSON object, naming its template by a string.")
    if reserved := sorted({"tokenize", "tools"} & kwargs.keys()):
        raise ValueError(f"{folder}'s processing_kwargs.chat_template sets {reserved}, which a scorer cannot take.")
    return {key: value for key, value in kwargs.items() if key != "restore_suffix"}  # vLLM does not restore the suffix


def module_kind(module: dict) -> str:
    """A module's class name ("Transformer", "Pooling", "Dense", ...), without its package."""
    return str(module.get("type", "")).rsplit(".", 1)[-1]


# the Transformer module's config file, and the names older sentence-transformers releases gave it (its loader reads each)
TRANSFORMER_CONFIG_FILES = ("sentence_bert_config.json", "sentence_roberta_config.json", "sentence_distilbert_config.json")
TRANSFORMER_CONFIG_FILES += ("sentence_camembert_config.json", "sentence_albert_config.json", "sentence_xlm-roberta_config.json")
TRANSFORMER_CONFIG_FILES += ("sentence_xlnet_config.json",)


def sentence_bert_config(folder: Path, module: dict | None = None) -> dict:
    """The Transformer module's ``sentence_bert_config.json`` (max_seq_length, do_lower_case; or the older names of that
    file), {} where it has none."""
    where = Path(folder) / str((module or {}).get("path", ""))
    for name in TRANSFORMER_CONFIG_FILES:
        config = read_json(where / name)
        if isinstance(config, dict):
            return config
    return {}


def read_module_weights(where: Path) -> dict[str, np.ndarray]:
    """A module folder's weights as float32 (model.safetensors, else pytorch_model.bin)."""
    if (where / "model.safetensors").is_file():
        from safetensors.numpy import load_file

        try:  # float32 whatever the file holds (numpy reads bfloat16 where ml_dtypes is loaded)
            return {k: v.astype(np.float32) for k, v in load_file(where / "model.safetensors").items()}
        except TypeError:  # bfloat16, which numpy has no type for
            from safetensors.torch import load_file as load_torch

            return {k: v.float().numpy() for k, v in load_torch(where / "model.safetensors").items()}
    if (where / "pytorch_model.bin").is_file():
        import torch

        state = torch.load(where / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in state.items()}
    raise ValueError(f"The module {where} has neither model.safetensors nor pytorch_model.bin.")


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """sentence-transformers' Dense module: activation(x @ weight.T + bias) (a PyLate Dense, the same over each token),
    plus, where it has one (5.4's ``use_residual``), its input: as it is (``residual`` True), or projected where the sizes
    differ (``residual`` the projection's weight [out_features, in_features])."""

    weight: np.ndarray  # [out_features, in_features], float32
    bias: np.ndarray | None
    activation: str = "Identity"
    residual: np.ndarray | bool = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32, copy=False)
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        y = DENSE_ACTIVATIONS[self.activation](y).astype(np.float32, copy=False)
        if isinstance(self.residual, np.ndarray):
            return y + x @ self.residual.T
        return y + x if self.residual else y


def read_dense_module(where: Path) -> DenseLayer:
    """A Dense module folder (its config.json and linear.weight / linear.bias), refused where its activation is not
    among DENSE_ACTIVATIONS."""
    config = read_json(where / "config.json") or {}
    if "activation_function" not in config:
        raise ValueError(f"The Dense module {where.name} names no activation_function (sentence-transformers needs one).")
    activation = str(config["activation_function"] or "Identity").rsplit(".", 1)[-1]
    if activation not in DENSE_ACTIVATIONS:
        raise ValueError(
            f"The Dense module {where.name} ends in {config.get('activation_function')}; QEfficient runs "
            f"{', '.join(DENSE_ACTIVATIONS)} there."
        )
    weights = read_module_weights(where)
    if "linear.weight" not in weights:
        raise ValueError(f"The Dense module {where.name} holds no linear.weight.")
    residual: np.ndarray | bool = bool(config.get("use_residual"))
    if residual and weights["linear.weight"].shape[0] != weights["linear.weight"].shape[1]:
        if "residual.weight" not in weights:
            raise ValueError(f"The Dense module {where.name} adds a projected residual but holds no residual.weight.")
        residual = weights["residual.weight"]
    return DenseLayer(weights["linear.weight"], weights.get("linear.bias"), activation, residual)
