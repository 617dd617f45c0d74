"""The device, the model and its tokenizer for fine-tuning, with peft's LoRA applied."""

from __future__ import annotations

import logging
import random
import warnings
from typing import Any

import numpy as np
import torch

from QEfficient.finetune.configs.training import Device, Task_Mode, TrainConfig
from QEfficient.finetune.utils.config_utils import generate_peft_config
from QEfficient.utils.extras import require_extra

logger = logging.getLogger("QEfficient")


def resolve_device(device: str) -> torch.device:
    """``qaic[:N]`` (QEfficient's default) trains on the CPU here, with a warning; ``cuda[:N]`` needs a GPU torch sees."""
    kind = str(device).split(":", 1)[0]
    if kind not in {d.value for d in Device}:
        raise ValueError(f"--device must be qaic, cpu or cuda (optionally :N), got {device!r}.")
    if kind == "qaic":
        warnings.warn("finetune: no Cloud AI 100 here (device 'qaic'): training on the CPU; --device cpu says so.", stacklevel=3)
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: torch sees no CUDA device (this torch is built for the CPU?); use --device cpu.")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device must be qaic, cpu or cuda (optionally :N), got {device!r}.") from None


def check_options(train_config: TrainConfig) -> None:
    """Options that need more than one process or a device this backend lacks, refused with what to do instead."""
    if train_config.enable_ddp or train_config.enable_pp:
        raise ValueError("enable_ddp / enable_pp: fine-tuning runs in one process here; run without them.")
    if train_config.batching_strategy != "padding":
        raise ValueError(f"batching_strategy {train_config.batching_strategy!r}: only 'padding' is supported (as QEfficient).")
    if train_config.task_mode not in (Task_Mode.GENERATION.value, Task_Mode.SEQ_CLASSIFICATION.value):
        raise ValueError(f"task_mode must be 'generation' or 'seq_classification', got {train_config.task_mode!r}.")
    names = ("gradient_accumulation_steps", "train_batch_size", "val_batch_size", "num_epochs", "intermediate_step_save")
    for name in (*names, "convergence_counter"):
        if int(getattr(train_config, name)) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(train_config, name)}.")
    if train_config.context_length is not None and train_config.context_length < 2:
        raise ValueError(f"context_length must be at least 2 tokens, got {train_config.context_length}.")
    if train_config.use_peft:
        require_extra("lora", "fine-tuning with LoRA (use_peft)")
    elif train_config.from_peft_checkpoint:
        raise ValueError("from_peft_checkpoint continues a LoRA adapter: it needs use_peft true.")
    if train_config.use_profiler or train_config.opByOpVerifier:
        warnings.warn("finetune: use_profiler / opByOpVerifier are Cloud AI 100 tools: ignored.", stacklevel=3)


def setup_seeds(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def load_model_and_tokenizer(
    train_config: TrainConfig, dataset_config: Any, device: torch.device, peft_options: dict | None = None
) -> tuple[Any, Any]:
    """transformers' model in float32 (the CPU trains in float32; CUDA adds float16 autocast) and its tokenizer,
    then LoRA (a new adapter from the options, or ``from_peft_checkpoint`` to continue one)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from QEfficient.utils._utils import hf_download

    path = hf_download(train_config.model_name)
    if path.endswith(".gguf"):  # trained on its de-quantized weights, as transformers loads them
        from QEfficient.loading.hf_loader import converted_gguf

        path = str(converted_gguf(path))
    if train_config.task_mode == Task_Mode.SEQ_CLASSIFICATION.value:
        num_labels = getattr(dataset_config, "num_labels", None)
        if num_labels is None:
            raise ValueError("task_mode seq_classification needs the dataset config's num_labels (imdb_dataset has 2).")
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=int(num_labels), dtype=torch.float32)
        base = getattr(model, getattr(model, "base_model_prefix", ""), None)
        if base is None:
            raise ValueError(f"{type(model).__name__} names no base model (base_model_prefix) to freeze under its classifier.")
        for param in base.parameters():  # the classifier alone trains (QEfficient's)
            param.requires_grad = False
    else:
        model = AutoModelForCausalLM.from_pretrained(path, use_cache=False, attn_implementation="sdpa", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(hf_download(train_config.tokenizer_name) if train_config.tokenizer_name else path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = tokenizer.eos_token_id
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        logger.warning("finetune: the tokenizer has more tokens than the embedding matrix; resizing it.")
        model.resize_token_embeddings(len(tokenizer))
    if train_config.gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise ValueError(f"{type(model).__name__} does not support gradient checkpointing: run without it.")
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"preserve_rng_state": True})
    model = apply_peft(model, train_config, **(peft_options or {}))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("finetune: %s trainable parameters of %s (%.4f %%)", f"{trainable:,d}", f"{total:,d}", 100 * trainable / total)
    return model.to(device), tokenizer


def apply_peft(model: Any, train_config: TrainConfig, **kwargs: Any) -> Any:
    if not train_config.use_peft:
        return model
    from peft import PeftModel, get_peft_model

    if train_config.from_peft_checkpoint:
        try:
            return PeftModel.from_pretrained(model, train_config.from_peft_checkpoint, is_trainable=True)
        except RuntimeError as err:  # torch's "size mismatch for ...lora_A.weight"
            if "size mismatch" not in str(err):
                raise
            raise ValueError(
                f"The checkpoint {train_config.from_peft_checkpoint} does not fit {type(model).__name__} (its adapter's shapes are "
                f"another model's: {str(err).splitlines()[-1].strip()}): resume with the model it was trained on."
            ) from None
    peft_config = generate_peft_config(train_config, **kwargs)
    try:
        return get_peft_model(model, peft_config)
    except ValueError as err:  # peft's "Target modules {...} not found in the base model"
        hint = " Set target_modules (--peft_config_file)." if "arget modules" in str(err) else ""
        raise ValueError(f"LoRA cannot be applied to {type(model).__name__}: {err}{hint}") from err
