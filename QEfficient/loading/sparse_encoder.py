"""What makes a folder a SPLADE sparse encoder (sentence-transformers' SparseEncoder: naver/splade-*,
opensearch-project/opensearch-neural-sparse-encoding-*, ...), read from its files: ``modules.json`` lists an
MLMTransformer (a masked LM) and a SpladePooling, whose config says how the vocabulary-sized vector is pooled."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

_MODULES = "sentence_transformers.sparse_encoder.models."
SPLADE_MODULES = (f"{_MODULES}MLMTransformer", f"{_MODULES}SpladePooling")


@dataclass(frozen=True)
class SpladeSettings:
    """SpladePooling's config and the MLMTransformer's: log(1 + relu(logits)) (twice for ``log1p_relu``) at the attended
    tokens, then the max or sum over them; inputs truncated to ``max_seq_length``, lowercased where ``do_lower_case``."""

    pooling_strategy: str = "max"
    activation_function: str = "relu"
    max_seq_length: int | None = None
    do_lower_case: bool = False


def _modules(folder: Path) -> list[dict]:
    path = folder / "modules.json"
    modules = json.loads(path.read_text()) if path.is_file() else []
    return modules if isinstance(modules, list) else []


def is_sparse_encoder_folder(folder: str | Path | None) -> bool:
    """Whether ``folder`` holds a sentence-transformers SparseEncoder (any of its modules)."""
    return bool(folder) and Path(folder).is_dir() and any(str(m.get("type", "")).startswith(_MODULES) for m in _modules(Path(folder)))


def read_splade_folder(folder: str | Path) -> SpladeSettings:
    """The folder's SPLADE settings; a ValueError saying why for a SparseEncoder this does not run (an inference-free
    one, whose queries go through a SparseStaticEmbedding and a Router; a sparse autoencoder over dense embeddings)."""
    folder = Path(folder)
    kinds = [str(m.get("type", "")) for m in _modules(folder)]
    if kinds != list(SPLADE_MODULES):
        names = " -> ".join(k.rsplit(".", 1)[-1] for k in kinds) or "no modules.json"
        raise ValueError(f"{folder} runs {names}; QEfficient runs SPLADE sparse encoders (MLMTransformer -> SpladePooling) only.")
    pooling_path = folder / str(_modules(folder)[1].get("path", "")) / "config.json"
    pooling = json.loads(pooling_path.read_text()) if pooling_path.is_file() else {}
    strategy, activation = pooling.get("pooling_strategy", "max"), pooling.get("activation_function", "relu")
    if strategy not in ("max", "sum") or activation not in ("relu", "log1p_relu"):
        raise ValueError(
            f"SpladePooling with {strategy!r} pooling and {activation!r} is not sentence-transformers' (max or sum; relu or log1p_relu)."
        )
    transformer_path = folder / str(_modules(folder)[0].get("path", "")) / "sentence_bert_config.json"
    transformer = json.loads(transformer_path.read_text()) if transformer_path.is_file() else {}
    return SpladeSettings(strategy, activation, transformer.get("max_seq_length"), bool(transformer.get("do_lower_case")))
