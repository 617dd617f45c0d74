"""What makes a folder a ColBERT text retriever, read from its files: the projection after the encoder and how queries and
documents are tokenized. Two layouts are read:

* PyLate's (a sentence-transformers folder: ``modules.json`` lists the Transformer and ``pylate.models.Dense.Dense``
  modules, ``config_sentence_transformers.json`` holds the prefixes, lengths and skiplist);
* Stanford ColBERT's (``HF_ColBERT``: the encoder's checkpoint also holds ``linear.weight``; ``artifact.metadata``
  holds the marker tokens and lengths), as colbert-ir/colbertv2.0 and answerdotai/answerai-colbert-small-v1 ship;
* sentence-transformers 6's MultiVectorEncoder (Transformer, Dense, MultiVectorMask, Normalize modules; the prompts,
  lengths and query expansion in its own files), read into ``ColBERTSettings.multi_vector``.

Defaults are PyLate's where a PyLate or Stanford folder leaves a key out, as PyLate loads either layout.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from QEfficient.loading.sentence_transformers_files import (
    DenseLayer,
    module_kind,
    read_dense_module,
    read_json,
    sentence_bert_config,
    st_modules,
    token_limit,
)

# config.json architectures that mark a ColBERT checkpoint (vLLM's names for the same layout included)
COLBERT_ARCHITECTURES = ("HF_ColBERT", "ColBERTModel", "ColBERTModernBertModel")
PYLATE_DENSE = "pylate.models.Dense.Dense"


@dataclass(frozen=True)
class MultiVectorTokenization:
    """How sentence-transformers 6's MultiVectorEncoder tokenizes: each task's prompt put before the text (as text, not
    stripped), truncated at the task's length (the tokenizer's where none); a query's expansion (``strategy`` "fixed":
    padded to ``length`` with the expansion token; "min": to at least ``length``) scored, attended where ``attend``;
    the skiplist's tokens left out of the tasks in ``skiplist_tasks`` (a text with no task counts as a document), and a
    document's tokens outside ``keep_only_token_ids`` where it lists some."""

    query_prompt: str = ""
    document_prompt: str = ""
    query_length: int | None = None
    document_length: int | None = None
    expansion: dict | None = None
    skiplist_tasks: tuple[str, ...] = ("document",)
    keep_only_token_ids: tuple[int, ...] | None = None
    truncate_dim: int | None = None  # each vector's first dimensions, normalized again (config_sentence_transformers.json's)


@dataclass(frozen=True, eq=False)
class ColBERTSettings:
    """A ColBERT folder's projection and its query / document tokenization."""

    layers: tuple[DenseLayer, ...]  # each over every token
    query_prefix: str
    document_prefix: str
    query_length: int
    document_length: int
    do_query_expansion: bool = True  # queries padded to query_length with the mask token, every position kept
    attend_to_expansion_tokens: bool = False
    skiplist_words: tuple[str, ...] = field(default_factory=lambda: tuple(string.punctuation))
    do_lower_case: bool = False  # sentence-transformers' (sentence_bert_config.json)
    multi_vector: MultiVectorTokenization | None = None  # a sentence-transformers 6 MultiVectorEncoder's tokenization

    @property
    def dim(self) -> int:
        return int(self.layers[-1].weight.shape[0])


def is_colbert_folder(folder: str | Path | None) -> bool:
    """Whether ``folder`` holds a ColBERT text retriever in either layout (nothing is read but small JSON files)."""
    if not folder or not Path(folder).is_dir():
        return False
    folder = Path(folder)
    if any(m.get("type") == PYLATE_DENSE for m in (st_modules(folder) or [])) or _is_multi_vector(folder):
        return True
    config = read_json(folder / "config.json")
    return isinstance(config, dict) and any(a in COLBERT_ARCHITECTURES for a in config.get("architectures") or [])


def read_colbert_folder(folder: str | Path) -> ColBERTSettings:
    """The folder's ColBERT settings; a ValueError that says why where the folder is not one, or holds what is not run
    here (another sentence-transformers module, a residual Dense, an activation outside DENSE_ACTIVATIONS)."""
    folder = Path(folder)
    if not is_colbert_folder(folder):
        raise ValueError(
            f"{folder} is not a ColBERT model: expected a PyLate folder (modules.json with {PYLATE_DENSE}) or a Stanford "
            f"ColBERT checkpoint (config.json architectures {list(COLBERT_ARCHITECTURES)})."
        )
    if any(m.get("type") == PYLATE_DENSE for m in (st_modules(folder) or [])):
        return _pylate(folder)
    if _is_multi_vector(folder):
        return _multi_vector(folder)
    return _stanford(folder)


def _is_multi_vector(folder: Path) -> bool:
    """A sentence-transformers MultiVectorEncoder over text (a Dense projection after its Transformer; one over a
    ``*ForRetrieval`` model, ColPali's, is a retriever of page images: models/retrieval.py)."""
    saved = read_json(folder / "config_sentence_transformers.json")
    text = any(module_kind(m) == "Dense" for m in st_modules(folder) or [])
    return isinstance(saved, dict) and saved.get("model_type") == "MultiVectorEncoder" and text


# the modules of a MultiVectorEncoder run here, in their order (Dense any number of times)
_MULTI_VECTOR_ORDER = {"Transformer": 0, "Dense": 1, "MultiVectorMask": 2, "Normalize": 3}


def _multi_vector(folder: Path) -> ColBERTSettings:
    modules = st_modules(folder) or []
    kinds = [module_kind(m) for m in modules]
    order = [_MULTI_VECTOR_ORDER.get(kind, -1) for kind in kinds]
    if (
        -1 in order
        or order != sorted(order)
        or kinds[:1] != ["Transformer"]
        or "Normalize" not in kinds
        or kinds.count("MultiVectorMask") > 1
    ):
        raise ValueError(
            f"{folder} is a sentence-transformers MultiVectorEncoder with the modules {kinds}; QEfficient runs a Transformer, "
            "Dense modules, a MultiVectorMask and a Normalize module, in that order (token pooling, routers and models "
            "without Normalize are not run here)."
        )
    for module, kind in zip(modules, kinds, strict=True):  # each over the token embeddings (their default: the pooled one)
        given = (read_json(folder / str(module.get("path", "")) / "config.json") or {}).get("module_input_name")
        if kind in ("Dense", "Normalize") and given != "token_embeddings":
            raise ValueError(f"{folder}'s {kind} module reads {given or 'sentence_embedding'!r}, not the token embeddings.")
    layers = [_dense_layer(folder / str(m.get("path", ""))) for m, kind in zip(modules, kinds, strict=True) if kind == "Dense"]
    transformer = sentence_bert_config(folder, modules[0])
    if "message" in (transformer.get("modality_config") or {}) or transformer.get("processing_kwargs"):
        raise ValueError(
            f"{folder}'s Transformer renders its texts through a chat template or sets processing_kwargs, which a "
            "MultiVectorEncoder here does not apply."
        )
    mask = next(
        (read_json(folder / str(m.get("path", "")) / "config.json") or {} for m, k in zip(modules, kinds) if k == "MultiVectorMask"), {}
    )
    tasks = mask.get("skiplist_tasks") or ["document"]
    keep_only = mask.get("keep_only_token_ids")
    saved = read_json(folder / "config_sentence_transformers.json") or {}
    prompts = saved.get("prompts") or {}
    expansion = transformer.get("query_expansion")
    length = (expansion or {}).get("length")
    if expansion is not None and (expansion.get("strategy") not in ("fixed", "min") or type(length) is not int or length < 1):
        raise ValueError(f"{folder}'s query_expansion {expansion!r} is not a 'fixed' or 'min' expansion of a positive length.")
    if expansion is not None and (transformer.get("query_length") or length) < length:
        raise ValueError(f"{folder}'s query_length {transformer['query_length']} is shorter than its query expansion's {length}.")
    tokenization = MultiVectorTokenization(
        query_prompt=str(prompts.get("query") or ""),
        document_prompt=str(prompts.get("document") or ""),
        query_length=transformer.get("query_length"),
        document_length=transformer.get("document_length"),
        expansion=expansion,
        skiplist_tasks=(tasks,) if isinstance(tasks, str) else tuple(tasks),
        keep_only_token_ids=None if keep_only is None else tuple(int(i) for i in keep_only),
        truncate_dim=saved.get("truncate_dim"),
    )
    # where a task sets no length, the tokenizer's within the positions (what a compile covers by default)
    limits = [(read_json(folder / "tokenizer_config.json") or {}).get("model_max_length"), transformer.get("max_seq_length")]
    limits.append((read_json(folder / "config.json") or {}).get("max_position_embeddings"))
    positions = min([n for n in map(token_limit, limits) if n is not None] or [512])
    return ColBERTSettings(
        layers=tuple(layers),
        query_prefix="",
        document_prefix="",
        query_length=int(tokenization.query_length or positions),
        document_length=int(tokenization.document_length or positions),
        do_query_expansion=expansion is not None,
        attend_to_expansion_tokens=bool((expansion or {}).get("attend")),
        skiplist_words=tuple(mask.get("skiplist_words") or ()),
        do_lower_case=bool(transformer.get("do_lower_case")),
        multi_vector=tokenization,
    )


def _pylate(folder: Path) -> ColBERTSettings:
    layers = []
    for module in st_modules(folder) or []:
        kind = str(module.get("type", ""))
        if kind == PYLATE_DENSE:
            layers.append(_dense_layer(folder / str(module.get("path", ""))))
        elif kind.rsplit(".", 1)[-1] != "Transformer":
            raise ValueError(f"This ColBERT folder's module {kind!r} is not run here (PyLate's Transformer and Dense modules are).")
    config = read_json(folder / "config_sentence_transformers.json") or {}
    if config.get("default_prompt_name"):
        raise ValueError(f"This ColBERT folder prepends the prompt {config['default_prompt_name']!r} to every text, which is not run here.")
    prefixes = {key: config.get(key, default) for key, default in (("query_prefix", "[Q] "), ("document_prefix", "[D] "))}
    return ColBERTSettings(
        layers=tuple(layers),
        query_prefix=str(prefixes["query_prefix"] or ""),
        document_prefix=str(prefixes["document_prefix"] or ""),
        query_length=int(config.get("query_length") or 32),
        document_length=int(config.get("document_length") or 180),
        do_query_expansion=bool(config.get("do_query_expansion", True)),
        attend_to_expansion_tokens=bool(config.get("attend_to_expansion_tokens") or False),
        skiplist_words=tuple(string.punctuation if config.get("skiplist_words") is None else config["skiplist_words"]),
        do_lower_case=bool(sentence_bert_config(folder).get("do_lower_case")),
    )


def _dense_layer(where: Path) -> DenseLayer:
    if (read_json(where / "config.json") or {}).get("use_residual"):
        raise ValueError(f"The Dense module {where.name} adds its input back (use_residual), which is not run here.")
    return read_dense_module(where)


def _stanford(folder: Path) -> ColBERTSettings:
    weights = _weights(folder, ("linear.weight",))
    if "linear.weight" not in weights:
        raise ValueError(f"{folder} is marked HF_ColBERT but its checkpoint holds no 'linear.weight' (the projection).")
    # the keys PyLate reads (its own defaults where they are missing: its skiplist is punctuation whatever
    # mask_punctuation says)
    meta = read_json(folder / "artifact.metadata") or {}
    meta = {**(meta.get("config") or {}), **meta} if isinstance(meta, dict) else {}
    return ColBERTSettings(
        layers=(DenseLayer(weights["linear.weight"], None),),
        query_prefix=str(meta.get("query_token_id") or "[unused0]"),
        document_prefix=str(meta.get("doc_token_id") or "[unused1]"),
        query_length=int(meta.get("query_maxlen") or 32),
        document_length=int(meta.get("doc_maxlen") or 180),
        attend_to_expansion_tokens=bool(meta.get("attend_to_mask_tokens") or False),
    )


def _weights(where: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``names`` from the folder's checkpoint as float32 (a safetensors file, sharded or not, read tensor by tensor; else a
    pytorch_model.bin)."""
    index = read_json(where / "model.safetensors.index.json")
    files = {name: index["weight_map"][name] for name in names if name in index.get("weight_map", {})} if index else {}
    if not index and (where / "model.safetensors").is_file():
        files = dict.fromkeys(names, "model.safetensors")
    if index or files:
        from safetensors import safe_open

        found = {}
        for name, file in files.items():
            with safe_open(str(where / file), framework="pt") as f:
                if name in f.keys():  # noqa: SIM118 (safe_open has no __contains__)
                    found[name] = f.get_tensor(name).float().numpy()
        return found
    if (where / "pytorch_model.bin").is_file():
        import torch

        state = torch.load(where / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return {name: state[name].float().numpy() for name in names if name in state}
    raise ValueError(f"{where} has neither model.safetensors nor pytorch_model.bin.")
