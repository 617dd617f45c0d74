"""What a model folder is served for: generation (the default), embeddings (/v1/embeddings) or scores (/score,
/rerank, /classify). ``--task`` forces one; "auto" tells them apart from the folder, as vLLM's runner detection does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TASKS = ("auto", "generate", "embed", "score")


def _folder_and_config(model_name: str) -> tuple[Path, Any] | None:
    """The model's folder and config; None for a GGUF file or what transformers cannot read (the other model kinds
    report unknown or missing models)."""
    from transformers import AutoConfig

    from QEfficient.loading.model_path import resolve_model_path

    try:
        folder, gguf_file = resolve_model_path(model_name, None)
        if gguf_file:
            return None
        return Path(folder), AutoConfig.from_pretrained(folder)
    except (OSError, ValueError):
        return None


def _text_encoder_architectures(config) -> list[str]:
    """The architectures of a text encoder's checkpoint (a masked-LM family such as BERT); [] for anything else."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or getattr(config, "is_decoder", False):
        return []
    return list(getattr(config, "architectures", None) or [])


def is_embedding_model(model_name: str) -> bool:
    """A sentence-transformers folder (modules.json), or a text encoder whose checkpoint is its base model only
    (architectures such as BertModel)."""
    found = _folder_and_config(model_name)
    if found is None:
        return False
    folder, config = found
    architectures = _text_encoder_architectures(config)
    if architectures and all(a.endswith("ForSequenceClassification") for a in architectures):
        return False  # a cross-encoder, which sentence-transformers 5.4 and later also saves with a modules.json
    if (folder / "modules.json").is_file():
        return True
    return bool(architectures) and all(a.endswith("Model") for a in architectures)


def is_sequence_classifier(model_name: str) -> bool:
    """A text encoder saved as a sequence classifier: a cross-encoder reranker or a text classifier."""
    found = _folder_and_config(model_name)
    architectures = _text_encoder_architectures(found[1]) if found else []
    return bool(architectures) and all(a.endswith("ForSequenceClassification") for a in architectures)


def pooling_task(model_name: str, gguf_file: str | None, task: str) -> str | None:
    """ "embed" or "score" when the model is served for embeddings or scores (``task`` forces it; "auto" detects
    it), else None: generation."""
    if gguf_file or task == "generate":
        return None
    if task in ("embed", "score"):
        return task
    if is_embedding_model(model_name):
        return "embed"
    return "score" if is_sequence_classifier(model_name) else None
