"""``python -m QEfficient.cloud.finetune``: QEfficient's fine-tuning command and ``main(**options)``.

The model trains in transformers with peft's LoRA on the CPU (QEfficient's ``--device qaic``) or on CUDA; the
adapters it saves run here as any other: ``QEffAutoPeftModelForCausalLM.from_pretrained(folder)``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import StepLR

from QEfficient.finetune.configs.peft_config import LoraConfig
from QEfficient.finetune.configs.training import TrainConfig
from QEfficient.finetune.utils.config_utils import generate_dataset_config, generate_peft_config, update_config, warn_unknown_options
from QEfficient.finetune.utils.dataset_utils import get_dataloader, get_longest_seq_length
from QEfficient.finetune.utils.model_utils import apply_peft, check_options, load_model_and_tokenizer, resolve_device, setup_seeds
from QEfficient.finetune.utils.parser import get_finetune_parser
from QEfficient.finetune.utils.train_utils import NothingToTrainError, train

__all__ = ["apply_peft", "generate_peft_config", "load_model_and_tokenizer", "main", "setup_dataloaders", "setup_seeds", "train"]
logger = logging.getLogger("QEfficient")


def log_level(value: str | int) -> int:
    """A logging level from a name ("INFO") or a number ("20")."""
    if isinstance(value, int) or str(value).strip().isdigit():
        return int(value)
    level = logging.getLevelName(str(value).strip().upper())
    if not isinstance(level, int):
        raise ValueError(f"log_level must be a logging level such as INFO or 20, got {value!r}.")
    return level


def setup_dataloaders(train_config: TrainConfig, dataset_config: Any, tokenizer: Any) -> tuple[Any, Any, int]:
    """(train loader, evaluation loader or None, the longest example's length)."""
    train_loader = get_dataloader(tokenizer, dataset_config, train_config, split="train")
    eval_loader = get_dataloader(tokenizer, dataset_config, train_config, split="val") if train_config.run_validation else None
    rows = list(train_loader.dataset) + (list(eval_loader.dataset) if eval_loader else [])
    return train_loader, eval_loader, get_longest_seq_length(rows)[0]


@contextlib.contextmanager
def log_file(train_config: TrainConfig) -> Iterator[None]:
    """With ``dump_logs``, the run's log lines also go to ``<output_dir>_node_rank_0/logs/log-file-<time>.txt``
    (QEfficient's file), at ``log_level``, for the length of the run."""
    if not train_config.dump_logs:
        yield
        return
    folder = Path(f"{train_config.output_dir}_node_rank_0") / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    level = log_level(train_config.log_level)
    handler = logging.FileHandler(folder / f"log-file-{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}.txt")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(levelname)s - %(name)s - %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    if not logger.isEnabledFor(level):
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()


# what a user's options and files raise before training: the command line prints the message, not a traceback
USER_ERRORS = (OSError, ValueError, TypeError, NotImplementedError)


def main(**kwargs: Any) -> dict:
    """Fine-tune with QEfficient's options (the fields of ``TrainConfig`` and its ``LoraConfig``, and
    ``custom_dataset_config``); returns its results dictionary (losses, perplexity or accuracy, times)."""
    return _finetune(_options(**kwargs))


def _finetune(options: tuple, user_error: Callable[[str], None] | None = None) -> dict:
    """Load, prepare and train under the run's log file; ``user_error(message)`` (the command line's) instead of
    raising a user's error: before training starts, or training's NothingToTrainError (a failure while training keeps
    its traceback)."""
    with log_file(options[0]):
        try:
            parts = _setup(*options)
        except USER_ERRORS as err:
            if user_error is not None:
                user_error(str(err))  # the command line's: prints the message and exits
            raise
        try:
            return train(*parts, options[0])
        except NothingToTrainError as err:
            if user_error is not None:
                user_error(str(err))
            raise


def _options(**kwargs: Any) -> tuple:
    """(train config, dataset config, device, LoRA options) from QEfficient's options, checked."""
    if "lora_r" in kwargs:  # the command line's name for LoRA's r
        kwargs["r"] = kwargs.pop("lora_r")
    warn_unknown_options(kwargs)
    train_config = TrainConfig()
    update_config(train_config, **kwargs)
    check_options(train_config)
    log_level(train_config.log_level)
    dataset_config = generate_dataset_config(train_config.dataset, kwargs.pop("custom_dataset_config", None))
    device = resolve_device(train_config.device)
    train_config.device = str(device)
    setup_seeds(train_config.seed)
    lora_fields = {f.name for f in fields(LoraConfig)}
    peft_options = {k: v for k, v in kwargs.items() if k in lora_fields or k.lower().startswith("loraconfig.")}
    return train_config, dataset_config, device, peft_options


def _setup(train_config: TrainConfig, dataset_config: Any, device: Any, peft_options: dict) -> tuple:
    """(model, tokenizer, train loader, eval loader, optimizer, scheduler): train()'s arguments before the config."""
    model, tokenizer = load_model_and_tokenizer(train_config, dataset_config, device, peft_options)
    train_loader, eval_loader, longest = setup_dataloaders(train_config, dataset_config, tokenizer)
    logger.info("finetune: %d training batches, the longest example %d tokens", len(train_loader), longest)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train_config.lr, weight_decay=train_config.weight_decay)
    scheduler = StepLR(optimizer, step_size=1, gamma=train_config.gamma)
    return model, tokenizer, train_loader, eval_loader, optimizer, scheduler


def cli(argv: list[str] | None = None) -> None:
    from QEfficient.cloud._cli import cli_warnings, fail

    cli_warnings()
    args = get_finetune_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft reading transformers' old name
        try:
            logging.basicConfig(level=log_level(args.log_level), format="%(message)s")
            options = _options(**vars(args))
        except USER_ERRORS as err:
            fail(str(err))
        results = _finetune(options, fail)
    print(f"train loss {float(results['last_epoch_train_loss']):.4f}, metric {float(results['last_epoch_train_metric']):.4f}")
    if "last_epoch_eval_loss" in results:
        print(f"eval loss {float(results['last_epoch_eval_loss']):.4f}, metric {float(results['last_epoch_eval_metric']):.4f}")
    if "metrics_filename" in results:
        print(f"metrics: {results['metrics_filename']}")


if __name__ == "__main__":
    cli()
