"""What a model folder is served for: generation (the default), embeddings (/v1/embeddings) or scores (/score,
/rerank, /classify; an image or audio classifier's: /classify). ``--task`` forces one; "auto" tells them apart from the folder,
as vLLM's runner detection does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TASKS = ("auto", "generate", "embed", "score")


def folder_and_config(model_name: str) -> tuple[Path, Any] | None:
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


def _saved_as_classifier(config) -> bool:
    """Saved as a text model's sequence classifier (every architecture ...ForSequenceClassification)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    architectures = getattr(config, "architectures", None) or []
    in_mapping = config.model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
    return in_mapping and bool(architectures) and all(a.endswith("ForSequenceClassification") for a in architectures)


def contrastive_image_text(config) -> bool:
    """A contrastive image-text model's checkpoint (CLIPModel, SiglipModel, ...: the zero-shot image classification
    mapping's class of its type)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES

    architectures = getattr(config, "architectures", None) or []
    whole = MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES.get(config.model_type)
    return whole is not None and architectures == [whole]


def reads_images(model_name: str) -> bool:
    """A contrastive image-text model's folder (CLIP, SigLIP): embeddings of texts and of images."""
    found = folder_and_config(model_name)
    return found is not None and contrastive_image_text(found[1])


def is_embedding_model(model_name: str) -> bool:
    """A sentence-transformers folder (modules.json), a text encoder whose checkpoint is its base model only
    (architectures such as BertModel), a contrastive image-text model (CLIP, SigLIP), or DPR's question or passage
    encoder."""
    found = folder_and_config(model_name)
    if found is None:
        return False
    folder, config = found
    if _saved_as_classifier(config):
        return False  # a cross-encoder, which sentence-transformers 5.4 and later also saves with a modules.json
    if contrastive_image_text(config):  # CLIP, SigLIP, ...: text and image embeddings, as vLLM serves them
        return True
    if config.model_type == "dpr" and any(a in ("DPRQuestionEncoder", "DPRContextEncoder") for a in config.architectures or []):
        return True  # DPR's question or passage encoder: one embedding per text
    architectures = _text_encoder_architectures(config)
    if (folder / "modules.json").is_file():
        return True
    return bool(architectures) and all(a.endswith("Model") for a in architectures)


def is_sequence_classifier(model_name: str) -> bool:
    """A text model saved as a sequence classifier: a cross-encoder reranker or a text classifier, an encoder's
    (BERT) or a decoder's (Qwen2ForSequenceClassification), which vLLM also serves for scores, not generation."""
    found = folder_and_config(model_name)
    return found is not None and _saved_as_classifier(found[1])


def _media_read(config) -> str | None:
    """ "images" for an image classifier's checkpoint (its type in transformers' image-classification mapping, every
    architecture an image classifier: DeiT's distilled one ends in ...WithTeacher), "audio" for an audio classifier's,
    else None."""
    import transformers
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
        MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    )

    architectures = getattr(config, "architectures", None) or []
    kinds = {
        "images": (MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES, ("ForImageClassification", "WithTeacher"), ("pixel_values",)),
        "audio": (
            MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
            ("ForSequenceClassification", "ForAudioClassification"),
            ("input_values", "input_features"),
        ),
    }
    for noun, (mapping, heads, inputs) in kinds.items():
        if config.model_type not in mapping or not architectures or not all(a.endswith(heads) for a in architectures):
            continue
        # what each class reads: ImageGPT's classifier reads token ids, ShieldGemma 2's a prompt with its image
        classes = [getattr(transformers, a, None) for a in architectures]
        if all(c is not None and getattr(c, "main_input_name", None) in inputs for c in classes):
            return noun
    return None


def media_classifier(model_name: str) -> str | None:
    """ "images" or "audio" for an image or audio classifier's folder (served for /classify), else None."""
    found = folder_and_config(model_name)
    return None if found is None else _media_read(found[1])


# vLLM's hf_overrides that score a causal LM by some of its tokens' logits (its Qwen3-Reranker recipe); with an
# ``architectures`` that names a sequence classifier. Every other key changes the model's config (loading/config_overrides.py).
CLASSIFIER_OVERRIDES = ("architectures", "classifier_from_token", "method", "is_original_qwen3_reranker", "use_pad_token")


def _names_classifier(architectures: Any) -> bool:
    return (
        isinstance(architectures, list) and bool(architectures) and all(str(a).endswith("ForSequenceClassification") for a in architectures)
    )


def split_hf_overrides(overrides: dict | None) -> tuple[dict, dict]:
    """``--hf_overrides`` as (the keys that make a causal LM a classifier, the keys that change its config)."""
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise ValueError(f"--hf_overrides must be a JSON object, got {overrides!r:.80}.")
    classifier_keys = set(CLASSIFIER_OVERRIDES) - ({"architectures"} if not _names_classifier(overrides.get("architectures")) else set())
    classifier = {k: v for k, v in overrides.items() if k in classifier_keys}
    return classifier, {k: v for k, v in overrides.items() if k not in classifier}


def classifier_overrides(overrides: dict | None) -> tuple[dict, bool | None]:
    """The classifier keys of ``--hf_overrides`` as QEFFAutoModelForSequenceClassification.from_pretrained's keywords
    (classifier_from_token, method), and use_pad_token (None: the model's own). ``architectures`` is checked only: the
    classifier is transformers' own for the model's type. As vLLM, is_original_qwen3_reranker means from_2_way_softmax,
    and classifier_from_token needs one of them."""
    overrides = split_hf_overrides(overrides)[0]
    use_pad_token = overrides.get("use_pad_token")
    if use_pad_token is not None and not isinstance(use_pad_token, bool):
        raise ValueError(f"--hf_overrides: 'use_pad_token' must be true or false, got {use_pad_token!r}.")
    method, original = overrides.get("method"), overrides.get("is_original_qwen3_reranker", False)
    if not isinstance(original, bool):
        raise ValueError(f"--hf_overrides: 'is_original_qwen3_reranker' must be true or false, got {original!r}.")
    if original:
        if method not in (None, "from_2_way_softmax"):
            raise ValueError(f"--hf_overrides: is_original_qwen3_reranker means the method from_2_way_softmax, not {method!r}.")
        method = "from_2_way_softmax"
    tokens = overrides.get("classifier_from_token")
    if (tokens is None) != (method is None):
        raise ValueError(
            "--hf_overrides: 'classifier_from_token' goes with 'method' (from_2_way_softmax or no_post_processing) or "
            "'is_original_qwen3_reranker': true, as vLLM takes them."
        )
    conversion = {} if tokens is None else {"classifier_from_token": tokens, "method": method}
    return conversion, use_pad_token


def pooling_task(model_name: str, gguf_file: str | None, task: str, hf_overrides: dict | None = None) -> str | None:
    """ "embed" or "score" when the model is served for embeddings or scores (``task`` forces it; "auto" detects
    it, and vLLM's ``hf_overrides`` that make a causal LM a classifier mean scores), else None: generation. Overrides
    of other config keys leave the task as the folder's."""
    if split_hf_overrides(hf_overrides)[0]:
        classifier_overrides(hf_overrides)
        if gguf_file:
            raise ValueError("--hf_overrides makes a model's folder a classifier, not a GGUF file.")
        if task not in ("auto", "score"):
            raise ValueError("--hf_overrides makes a causal LM a classifier, served for scores: leave out --task or use --task score.")
        return "score"
    if gguf_file or task == "generate":
        return None
    if task in ("embed", "score"):
        return task
    if is_embedding_model(model_name):
        return "embed"
    return "score" if is_sequence_classifier(model_name) or media_classifier(model_name) else None


def is_text_to_speech(model_name: str) -> bool:
    """Whether the folder holds a VITS model (what QEFFAutoModelForTextToWaveform runs: /v1/audio/speech)."""
    found = folder_and_config(model_name)
    return found is not None and found[1].model_type == "vits"


def is_retriever(model_name: str) -> bool:
    """Whether the folder holds a late-interaction document retriever (ColPali: QEFFAutoModelForRetrieval;
    serving/retrieval_app.py)."""
    from QEfficient.loading.hf_loader import retrieval_class_name

    found = folder_and_config(model_name)
    return found is not None and retrieval_class_name(found[1].model_type) is not None


def is_colbert(model_name: str) -> bool:
    """Whether the folder holds a ColBERT text retriever (QEFFColBERTModel; serving/colbert_app.py)."""
    from QEfficient.loading.colbert import is_colbert_folder

    found = folder_and_config(model_name)
    return found is not None and is_colbert_folder(found[0])


def is_sparse_encoder(model_name: str) -> bool:
    """Whether the folder holds a sentence-transformers SparseEncoder (SPLADE: QEFFSparseEncoder; served with vLLM's
    SPLADE_ARCHITECTURE override, serving/embeddings_app.open_splade_embeddings_app)."""
    from QEfficient.loading.model_path import resolve_model_path
    from QEfficient.loading.sparse_encoder import is_sparse_encoder_folder

    try:  # not folder_and_config: an inference-free one's folder may hold no config of its own (its model's is in a subfolder)
        folder, gguf_file = resolve_model_path(model_name, None)
    except (OSError, ValueError):
        return False
    return not gguf_file and is_sparse_encoder_folder(folder)


def refuse_inference_free(model_name: str) -> None:
    """A ValueError for an inference-free SparseEncoder's folder (a Router: its queries are weighed without the model),
    which vLLM does not serve, nor does any server here."""
    from QEfficient.loading.model_path import resolve_model_path
    from QEfficient.loading.sparse_encoder import is_inference_free_folder

    if is_inference_free_folder(resolve_model_path(model_name, None)[0]):
        raise ValueError(
            f"'{model_name}' is an inference-free SparseEncoder (its queries are weighed without the model), which vLLM does "
            "not serve, nor does QEfficient: run it with QEFFSparseEncoder.encode_query and encode_document."
        )


# vLLM's pooling tasks (--pooler_config's "task"); BGE-M3's heads answer the last two (serving/bge_m3_app.py)
POOLER_TASKS = ("embed", "classify", "token_embed", "token_classify")
BGE_M3_TASKS = ("token_embed", "token_classify")
BGE_M3_ARCHITECTURE = "BgeM3EmbeddingModel"  # vLLM's, named in hf_overrides to load BGE-M3's heads
SPLADE_ARCHITECTURE = "BertSpladeSparseEmbeddingModel"  # vLLM's, named in hf_overrides to serve a SPLADE model


def resolve_pooler_task(
    model_name: str, gguf_file: str | None, pooler_task: str | None, task: str, hf_overrides: dict | None
) -> tuple[str | None, str, dict | None]:
    """vLLM's ``--pooler_config`` task with ``--task`` and ``--hf_overrides``: (BGE-M3's head task to serve, or None; the
    ``--task`` to go on with; the overrides left to apply). As vLLM, BGE-M3's heads need ``hf_overrides`` naming
    ``BgeM3EmbeddingModel`` (that key is taken here, not applied to the config); "embed" is its dense vectors, the
    default. "embed" and "classify" are ``--task`` embed and score; "token_embed" is also what ColBERT and ColPali-style
    retrievers answer."""
    architectures = (hf_overrides or {}).get("architectures")
    if architectures == [SPLADE_ARCHITECTURE] and (gguf_file or not (is_sparse_encoder(model_name) or _is_masked_lm(model_name))):
        raise ValueError(
            f"--hf_overrides names {SPLADE_ARCHITECTURE}, but '{model_name}' is neither a SPLADE folder (sentence-transformers' "
            "SparseEncoder) nor a masked LM's checkpoint: leave 'architectures' out."
        )
    if pooler_task is None and architectures != [BGE_M3_ARCHITECTURE]:
        return None, task, hf_overrides
    if pooler_task is not None and pooler_task not in POOLER_TASKS:
        combined = " (vLLM answers BGE-M3's 'embed&token_classify' through an IO processor plugin only)" if "&" in str(pooler_task) else ""
        raise ValueError(f"--pooler_config's task must be one of {', '.join(POOLER_TASKS)}, not {pooler_task!r}{combined}.")
    folder = None if gguf_file else folder_and_config(model_name)
    bge_m3 = folder is not None and _holds_bge_m3_heads(folder[0])
    overrides = dict(hf_overrides or {})
    if overrides.get("architectures") == [BGE_M3_ARCHITECTURE]:
        if not bge_m3:
            raise ValueError(
                f"--hf_overrides names {BGE_M3_ARCHITECTURE}, but '{model_name}' is not a BGE-M3 folder (its encoder with "
                "FlagEmbedding's colbert_linear.pt and sparse_linear.pt): leave 'architectures' out."
            )
        del overrides["architectures"]
        if pooler_task in BGE_M3_TASKS:
            if overrides:
                raise ValueError(f"BGE-M3's heads are served as saved: --hf_overrides {sorted(overrides)} do not apply; leave them out.")
            if task != "auto":
                raise ValueError(f"--task {task} does not go with --pooler_config's task {pooler_task!r}: leave --task out.")
            return pooler_task, task, None
        if pooler_task == "classify":
            raise ValueError("BGE-M3 is no classifier: its tasks are embed (the default), token_embed and token_classify.")
    elif pooler_task in BGE_M3_TASKS:
        if bge_m3:
            raise ValueError(
                f"As vLLM, BGE-M3's '{pooler_task}' output needs its heads loaded: add --hf_overrides "
                f'\'{{"architectures": ["{BGE_M3_ARCHITECTURE}"]}}\'.'
            )
        if pooler_task == "token_embed" and not gguf_file and (is_colbert(model_name) or is_retriever(model_name)):
            return None, task, hf_overrides  # what these servers answer anyway
        raise ValueError(
            f"--pooler_config's task {pooler_task!r} is served here for BGE-M3 (with --hf_overrides naming {BGE_M3_ARCHITECTURE})"
            f"{' and for ColBERT and ColPali-style retrievers' if pooler_task == 'token_embed' else ''}; '{model_name}' is not one."
        )
    if pooler_task in ("embed", "classify") and not gguf_file and (is_colbert(model_name) or is_retriever(model_name)):
        raise ValueError(f"'{model_name}' is a late-interaction retriever: its pooling task is token_embed, not {pooler_task!r}.")
    if pooler_task in ("embed", "classify"):
        wanted = "embed" if pooler_task == "embed" else "score"
        if task not in ("auto", wanted):
            raise ValueError(f"--task {task} does not go with --pooler_config's task {pooler_task!r}: leave --task out.")
        task = wanted
    return None, task, overrides or None


def names_splade(hf_overrides: dict | None) -> bool:
    """Whether vLLM's ``hf_overrides`` name its SPLADE architecture (a SPLADE folder or a masked LM served as SPLADE)."""
    return (hf_overrides or {}).get("architectures") == [SPLADE_ARCHITECTURE]


def _is_masked_lm(model_name: str) -> bool:
    from QEfficient.loading.sparse_encoder import is_masked_lm_folder

    found = folder_and_config(model_name)
    return found is not None and is_masked_lm_folder(found[0])


def _holds_bge_m3_heads(folder: Path) -> bool:
    from QEfficient.loading.bge_m3 import is_bge_m3_folder

    return is_bge_m3_folder(folder)
