"""What a sentence-transformers model folder adds to its encoder (modules.json): pooling, Dense projections and
normalization, read from the folder's files without the sentence-transformers package.

The modules run here are Transformer (the exported graph), Pooling (any of its modes, several concatenated as
sentence-transformers does), Dense (a linear layer with an elementwise activation) and LayerNorm, run in numpy after
pooling, and Normalize. A folder with anything else is refused by ``check_sentence_transformers_folder``: its
embeddings would differ from sentence-transformers' without a word.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from QEfficient.loading.sentence_transformers_files import (
    TRANSFORMER_CONFIG_FILES,
    DenseLayer,
    module_kind,
    read_dense_module,
    read_json,
    read_module_weights,
    sentence_bert_config,
    st_modules,
    token_limit,
)

logger = logging.getLogger(__name__)

SENTENCE_TRANSFORMERS_MODULES = ("Transformer", "Pooling", "Dense", "LayerNorm", "Normalize")
# Pooling's config key -> the name in HOST_POOLING, in the order Pooling concatenates the modes it is given
POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


# Pooling's ``pooling_mode`` string, which overrides its boolean keys
_POOLING_MODE_NAMES = {"cls": "cls_token", "max": "max_tokens", "mean": "mean_tokens", "mean_sqrt_len_tokens": "mean_sqrt_len_tokens"}
_POOLING_MODE_NAMES |= {"weightedmean": "weightedmean_tokens", "lasttoken": "lasttoken"}


def _pooling_modes(folder: Path, module: dict) -> list[str]:
    """The Pooling module's modes (POOLING_MODES' keys) in the order their vectors are concatenated: those its
    ``pooling_mode`` names (one, or from sentence-transformers 5.4 a list of them, in that order; the booleans are then
    ignored), else its ``pooling_mode_*`` booleans in sentence-transformers' fixed order."""
    config_file = Path(folder) / str(module.get("path", "")) / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    named = config.get("pooling_mode")
    if named is not None:
        keys = [_POOLING_MODE_NAMES.get(str(name).lower()) for name in (named if isinstance(named, list) else [named])]
        if not keys or None in keys:
            raise ValueError(
                f"This model's Pooling names the mode {named!r}; sentence-transformers knows {', '.join(_POOLING_MODE_NAMES)}."
            )
        return [f"pooling_mode_{key}" for key in keys]
    unknown = [k for k, v in config.items() if k.startswith("pooling_mode_") and v and k not in POOLING_MODES]
    on = [k for k in POOLING_MODES if config.get(k)] + unknown
    return on or ["pooling_mode_mean_tokens"]  # sentence-transformers' default where no mode is on (or named)


# the order sentence-transformers runs them in, each module at most once but Dense and LayerNorm (on the pooled vector)
_ORDER = {"Transformer": 0, "Pooling": 1, "Dense": 2, "LayerNorm": 2, "Normalize": 3}


def check_sentence_transformers_folder(folder: Path | None) -> None:
    """Refuse a sentence-transformers model with a module, pooling mode or activation not run here (e.g. a CNN, LSTM or
    WordWeights module); nothing to check outside such a folder."""
    saved = read_json(Path(folder) / "config_sentence_transformers.json") if folder else None
    if isinstance(saved, dict) and saved.get("model_type") == "MultiVectorEncoder":
        raise ValueError(
            f"{folder} is a sentence-transformers MultiVectorEncoder (a late-interaction model: one vector per token): load it "
            "with QEFFColBERTModel (or QEFFAutoModel, which does so), not as a sentence embedding model."
        )
    kinds = []
    for module in st_modules(folder) or []:
        kind = module_kind(module)
        if kind not in SENTENCE_TRANSFORMERS_MODULES:
            raise ValueError(
                f"This sentence-transformers model has a {kind} module ({module.get('path')}); QEfficient runs "
                f"{', '.join(SENTENCE_TRANSFORMERS_MODULES)} only, so it would give other vectors than sentence-transformers."
            )
        kinds.append(kind)
        if kind == "Pooling":
            modes = _pooling_modes(folder, module)
            unknown = [m for m in modes if m not in POOLING_MODES]
            if not modes or unknown:
                raise ValueError(f"This model pools with {modes}; QEfficient pools by {', '.join(POOLING_MODES)} (one or several).")
    ranks = [_ORDER[k] for k in kinds]
    repeated = any(kinds.count(k) > 1 for k in set(kinds) - {"Dense", "LayerNorm"})
    if kinds and (kinds[:2] != ["Transformer", "Pooling"] or ranks != sorted(ranks) or repeated):
        raise ValueError(
            f"This sentence-transformers model runs {' -> '.join(kinds)}; QEfficient runs Transformer -> Pooling -> Dense "
            "and LayerNorm (any number) -> Normalize, in that order."
        )
    pooled_layers(folder)  # the Dense and LayerNorm modules' weights, activations and inputs are ones run here


def sentence_transformers_pooling(folder: Path | None, default: str = "mean") -> list[str]:
    """The poolings a sentence-transformers model folder declares (its Pooling module's config), in the order their
    vectors are concatenated; else [``default``]."""
    for module in st_modules(folder) or []:
        if module_kind(module) == "Pooling":
            return [POOLING_MODES[key] for key in _pooling_modes(folder, module)]
    return [default]


def vllm_pooling(folder: Path | None, decoder: bool) -> list[str] | None:
    """How vLLM pools a model whose folder declares no pooling (no sentence-transformers Pooling module): a ``decoder``
    at its last token, an encoder at its first (CLS), where sentence-transformers would take the mean; None where the
    folder declares its own. (vLLM reads a folder's CLS, mean and last-token modes; one that pools max, weightedmean,
    mean / sqrt(length) or several modes at once is pooled here as sentence-transformers pools it, as the model was
    trained, where vLLM takes another mode.)"""
    if any(module_kind(module) == "Pooling" for module in st_modules(folder) or []):
        return None
    return ["lasttoken" if decoder else "cls"]


def sentence_transformers_truncate_dim(folder: Path | None) -> int | None:
    """The width a SentenceTransformer folder's vectors are cut to by default (config_sentence_transformers.json's
    ``truncate_dim``, which sentence-transformers saves from 5.4 on), None where it sets none."""
    saved = read_json(Path(folder) / "config_sentence_transformers.json") if folder else None
    value = saved.get("truncate_dim") if isinstance(saved, dict) else None
    if value is not None and (type(value) is not int or value < 1):
        raise ValueError(f"This model's config_sentence_transformers.json sets truncate_dim {value!r}, not a positive integer.")
    return value


def sentence_transformers_prompt(folder: Path | None, prompt_name: str | None = None, prompt: str | None = None) -> str:
    """The text sentence-transformers' ``encode`` puts before each sentence: ``prompt``, else the folder's prompt named
    ``prompt_name`` (config_sentence_transformers.json's ``prompts``; "query" and "document" are empty where it saves
    none, as sentence-transformers 6 gives every model both), else its ``default_prompt_name``'s, else none."""
    saved = Path(folder) / "config_sentence_transformers.json" if folder else None
    config = json.loads(saved.read_text()) if saved and saved.is_file() else {}
    prompts = {"query": "", "document": ""} | {k: v for k, v in (config.get("prompts") or {}).items() if v is not None}
    if prompt is not None and prompt_name is not None:
        warnings.warn("Encode with a prompt or a prompt_name, not both: the prompt is used, as sentence-transformers does.", stacklevel=3)
    if prompt is None and prompt_name is not None:
        if prompt_name not in prompts:
            raise ValueError(f"Prompt name '{prompt_name}' is not among this model's prompts {sorted(prompts)}.")
        prompt = prompts[prompt_name]
    elif prompt is None and config.get("default_prompt_name"):
        if config["default_prompt_name"] not in prompts:
            raise ValueError(
                f"This model's default prompt name '{config['default_prompt_name']}' is not among its prompts {sorted(prompts)}."
            )
        prompt = prompts[config["default_prompt_name"]]
    return prompt or ""


def sentence_transformers_pools_prompt(folder: Path | None) -> bool:
    """Whether the folder's Pooling pools the prompt's tokens too (its ``include_prompt``, true by default; false:
    INSTRUCTOR, GRIT, which pool the sentence's tokens only)."""
    for module in st_modules(folder) or []:
        where = Path(folder) / str(module.get("path", "")) / "config.json"
        if module_kind(module) == "Pooling" and where.is_file():
            return json.loads(where.read_text()).get("include_prompt", True) is not False
    return True


def sentence_transformers_normalizes(folder: Path | None) -> bool | None:
    """Whether a sentence-transformers model folder ends in a Normalize module; None when it is not such a folder."""
    modules = st_modules(folder)
    return None if modules is None else any(module_kind(m) == "Normalize" for m in modules)


@dataclass(frozen=True)
class LayerNormLayer:
    """sentence-transformers' LayerNorm module: torch's LayerNorm (eps 1e-5) over the pooled vector."""

    weight: np.ndarray
    bias: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32, copy=False)
        centered = x - x.mean(-1, keepdims=True)
        scaled = centered / np.sqrt((centered * centered).mean(-1, keepdims=True) + 1e-5)
        return (scaled * self.weight + self.bias).astype(np.float32, copy=False)


def pooled_layers(folder: Path | None) -> list[DenseLayer | LayerNormLayer]:
    """The folder's Dense and LayerNorm modules in order (none outside a sentence-transformers folder)."""
    layers = []
    for module in st_modules(folder) or []:
        kind = module_kind(module)
        if kind not in ("Dense", "LayerNorm"):
            continue
        where = Path(folder) / str(module.get("path", ""))
        if kind == "LayerNorm":
            weights = read_module_weights(where)
            layers.append(LayerNormLayer(np.asarray(weights["norm.weight"], np.float32), np.asarray(weights["norm.bias"], np.float32)))
            continue
        config = json.loads((where / "config.json").read_text())
        routes = {config.get(key, "sentence_embedding") for key in ("module_input_name", "module_output_name")}
        if routes != {"sentence_embedding"}:
            raise ValueError(
                f"The Dense module {where.name} reads or writes {sorted(routes)}; QEfficient runs a Dense on the pooled "
                "sentence embedding only."
            )
        layers.append(read_dense_module(where))
    return layers


def sentence_transformers_width(folder: Path | None, hidden_size: int, pooled: bool = False) -> int:
    """The embeddings' width: the last Dense module's output, else the encoder's hidden size times the folder's pooling
    modes (one where the graph ``pooled``)."""
    dense = [layer for layer in pooled_layers(folder) if isinstance(layer, DenseLayer)]
    modes = 1 if pooled else len(sentence_transformers_pooling(folder))
    return int(dense[-1].weight.shape[0]) if dense else int(hidden_size) * modes


# Each pooling takes the hidden states [B, S, H], the mask of the columns pooled [B, S] and each row's first real column
# [B] (past its left padding), as sentence-transformers 6's Pooling reads them.
def _mean(hidden: np.ndarray, mask: np.ndarray, start: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)


def _max(hidden: np.ndarray, mask: np.ndarray, start: np.ndarray) -> np.ndarray:
    return np.where(mask[..., None].astype(bool), hidden, np.finfo(hidden.dtype).min).max(1)


def _mean_sqrt_len(hidden: np.ndarray, mask: np.ndarray, start: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(1) / np.sqrt(np.clip(weights.sum(1), 1e-9, None))


def _weighted_mean(hidden: np.ndarray, mask: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Tokens weighted by their place in the row, 1-based from its first real token (sentence-transformers' weightedmean:
    later tokens count more; 6 counts from past the left padding, 5.3 from the first column)."""
    weights = (mask * (np.arange(1, mask.shape[1] + 1) - start[:, None]))[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)


def _first_token(hidden: np.ndarray, mask: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The first pooled column: the CLS token, past any left padding and, where the prompt is left out, past the prompt
    (sentence-transformers 6's cls; 5.3 took the first column)."""
    return hidden[np.arange(len(hidden)), mask.argmax(1)]


def _last_token(hidden: np.ndarray, mask: np.ndarray, start: np.ndarray) -> np.ndarray:
    last = (mask.astype(np.int64) * np.arange(mask.shape[1])).argmax(1)
    return hidden[np.arange(len(hidden)), last]


# transform/encoder.POOLING's, on the host in numpy (the graph returned hidden states); CLS and weightedmean read left
# padding as sentence-transformers 6 does
HOST_POOLING = {
    "mean": _mean,
    "avg": _mean,
    "cls": _first_token,
    "max": _max,
    "mean_sqrt_len": _mean_sqrt_len,
    "weightedmean": _weighted_mean,
    "lasttoken": _last_token,
}


class EmbeddingHead:
    """What follows an embedding graph, as sentence-transformers runs it: the folder's poolings, concatenated, unless
    the graph ``pooled`` (outside such a folder a decoder's last token, an encoder's mean), its Dense
    and LayerNorm modules, then an L2 norm. A folder with modules not run here is refused when the head is made."""

    def __init__(self, folder: Path | None, pooled: bool, causal: bool) -> None:
        check_sentence_transformers_folder(folder)
        self.layers = pooled_layers(folder)
        self.pooling = None if pooled else sentence_transformers_pooling(folder, "lasttoken" if causal else "mean")

    def __call__(
        self, output: np.ndarray, mask: np.ndarray, normalize: bool, prompt_length: int = 0, pooling: list[str] | None = None
    ) -> np.ndarray:
        """``output``: the graph's hidden states [B, S, H] (or pooled [B, H]); ``mask`` [B, <=S] covers the real
        columns, the graph's columns past it are padding; each row's first ``prompt_length`` real columns are left out of
        the pooling (sentence-transformers' Pooling with ``include_prompt`` false); ``pooling``: other poolings than the
        folder's (a server's, vllm_pooling), unless the graph pooled (its own pooling, or a model whose output is one vector
        per input: DPR's)."""
        if self.pooling is not None and output.ndim == 3:
            full = np.zeros(output.shape[:2], np.int64)
            width = min(output.shape[1], mask.shape[1])
            full[:, :width] = mask[:, :width]
            start = full.argmax(1)  # each row's first real column: 0 unless it is padded on the left
            full[np.arange(full.shape[1]) < (start + prompt_length)[:, None]] = 0
            unknown = [name for name in pooling or () if name not in HOST_POOLING]
            if unknown:
                raise ValueError(f"Unknown pooling {unknown}: use {sorted(HOST_POOLING)}.")
            output = np.concatenate([HOST_POOLING[name](output, full, start) for name in pooling or self.pooling], axis=1)
        for layer in self.layers:
            output = layer(output)
        return l2_normalized(output) if normalize else output


def l2_normalized(embeddings: np.ndarray) -> np.ndarray:
    """Each row at unit length (sentence-transformers' Normalize)."""
    return embeddings / np.clip(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12, None)


MODEL_FILES_SUBDIR = "model_files"  # in an encoder's artifact: its config and sentence-transformers modules
MODEL_FILES_FORMAT = 4  # how copy_serving_files writes them: part of the artifact's key
SERVING_CONFIG = "serving_config.json"  # the config's values a server reads, as transformers resolves them
_SERVING_CONFIG_KEYS = (
    "model_type",
    "architectures",
    "hidden_size",
    "vocab_size",
    "max_position_embeddings",
    "pad_token_id",
    "num_labels",
    "id2label",
    "problem_type",
    "sentence_transformers",
    "sbert_ce_default_activation_function",
    "use_pad_token",  # False: a pair is scored as its two texts joined (vLLM's LLM as reranker)
    "matryoshka_dimensions",  # a Matryoshka model's shorter widths (serving/embeddings_app.matryoshka_width)
    "is_matryoshka",
    "bos_token_id",  # BGE-M3's token tasks leave them out (serving/bge_m3_app.py), as transformers' config resolves them
    "eos_token_id",
)
_TOP_FILES = ("config.json", "modules.json", *TRANSFORMER_CONFIG_FILES, "config_sentence_transformers.json")


def serving_files(folder: Path | None) -> list[Path]:
    """What a server reads from the model's folder besides the graph and the tokenizer (paths relative to it): the
    config and, in a sentence-transformers folder, its module list and the Pooling / Dense / LayerNorm / Normalize folders."""
    if not folder:
        return []
    folder = Path(folder)
    files = [Path(name) for name in _TOP_FILES if (folder / name).is_file()]
    for module in st_modules(folder) or []:
        where = str(module.get("path", ""))
        if where and module_kind(module) in ("Pooling", "Dense", "LayerNorm", "Normalize") and (folder / where).is_dir():
            files += sorted(p.relative_to(folder) for p in (folder / where).rglob("*") if p.is_file())
    return files


def serving_config_values(config) -> dict:
    """What SERVING_CONFIG keeps of ``config`` (part of the artifact's key: a config changed in memory, such as a
    converted classifier's, is another artifact)."""
    return {key: getattr(config, key, None) for key in _SERVING_CONFIG_KEYS}


def copy_serving_files(folder: Path, destination: Path, config) -> None:
    """``serving_files`` into ``destination``, with ``config``'s values as transformers resolves them (DistilBERT's
    ``dim`` as hidden_size, default labels) in SERVING_CONFIG; a Dense or LayerNorm module's weights as float32
    model.safetensors, which the server reads without torch (a pytorch_model.bin, or bfloat16, would need it)."""
    from safetensors.numpy import save_file

    destination.mkdir(parents=True, exist_ok=True)
    (destination / SERVING_CONFIG).write_text(json.dumps(serving_config_values(config), indent=1, default=str))

    for relative in serving_files(folder):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative.name in ("model.safetensors", "pytorch_model.bin"):
            if not target.with_name("model.safetensors").is_file():
                save_file(read_module_weights(folder / relative.parent), str(target.with_name("model.safetensors")))
        else:
            shutil.copy2(folder / relative, target)


def input_limits(folder: Path, config, tokenizer) -> dict[str, int]:
    """What bounds an encoder's input, by name: sentence-transformers' max_seq_length, the tokenizer's
    model_max_length and the model's positions (RoBERTa's family counts its padding offset among them)."""
    limits = {"max_seq_length": sentence_bert_config(Path(folder)).get("max_seq_length")}
    if token_limit(tokenizer.model_max_length) is not None:
        limits["tokenizer's model_max_length"] = int(tokenizer.model_max_length)
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        offset = config.pad_token_id + 1 if config.model_type in ("roberta", "xlm-roberta", "camembert", "mpnet") else 0
        limits["positions"] = int(positions) - offset
    return {name: int(n) for name, n in limits.items() if n}


def max_input_tokens(folder: Path, config, tokenizer, ctx_len: int) -> int:
    """The longest input served: ``ctx_len`` within the model's ``input_limits``."""
    return int(min([ctx_len, *input_limits(folder, config, tokenizer).values()]))


def served_input_limit(folder: Path, config, tokenizer, ctx_len: int | None, name: str, compiled: int | None = None) -> int:
    """The longest input a server on the model ``name`` takes: ``ctx_len`` (--ctx_len; None: the default, or all of an
    artifact's ``compiled`` length) within its ``input_limits``; one given past them is refused, naming the limit
    (utils/checks.served_length)."""
    from QEfficient.utils.checks import served_length

    limits = input_limits(folder, config, tokenizer) | ({"compiled length": compiled} if compiled else {})
    binding = min(limits, key=limits.get, default=None)
    default = limits[binding] if compiled else None
    return served_length(limits.get(binding), ctx_len or default, name, binding or "")
