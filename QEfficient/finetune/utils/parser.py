"""QEfficient's ``python -m QEfficient.cloud.finetune`` options (both spellings, --a_b and --a-b)."""

from __future__ import annotations

import argparse
from dataclasses import fields

from QEfficient.finetune.configs.dataset_config import DATASET_CONFIGS
from QEfficient.finetune.configs.training import Batching_Strategy, Peft_Method, Task_Mode, TrainConfig, enum_names
from QEfficient.utils.cli_args import add_argument

HELP = {
    "model_name": "the model to fine-tune: a folder or a hub id in the local Hugging Face cache",
    "tokenizer_name": "its tokenizer, if not the model's",
    "context_length": "truncate or pad every example to this many tokens",
    "device": "qaic (QEfficient's default: the CPU here), cpu, cuda or cuda:N",
    "dataset": "alpaca_dataset reads ./dataset/alpaca_data.json; custom_dataset needs --custom_dataset_config",
    "from_peft_checkpoint": "continue training this saved adapter (its epoch_E/step_S or complete_epoch_E folder)",
    "output_dir": "adapters and metrics go to <output_dir>_node_rank_0/",
    "peft_config_file": "a YAML or JSON file of LoRA options (r, lora_alpha, target_modules, ...)",
    "max_train_step": "stop after this many batches in all (0: no limit)",
    "max_eval_step": "evaluate at most this many batches (0: all)",
    "gamma": "multiply the learning rate by gamma after each epoch",
}
CHOICES = {
    "dataset": sorted(DATASET_CONFIGS),
    "task_mode": enum_names(Task_Mode),
    "peft_method": enum_names(Peft_Method),
    "batching_strategy": enum_names(Batching_Strategy),
}


def str2bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    if text.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if text.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def get_finetune_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m QEfficient.cloud.finetune",
        description="Fine-tune a Hugging Face model with LoRA (PyTorch and peft; the CPU stands in for Cloud AI 100).",
    )
    add_argument(parser, "custom_dataset_config", default=None, help="the custom dataset's JSON / YAML config (preproc_file, splits, ...)")
    for field in fields(TrainConfig):
        kwargs: dict = {"default": field.default, "help": HELP.get(field.name)}
        if field.type in ("bool", bool):
            kwargs.update(type=str2bool, nargs="?", const=True)
        elif field.default is None or field.type in ("str", "str | None"):
            kwargs["type"] = int if field.name == "context_length" else str
        elif field.name != "log_level":
            kwargs["type"] = type(field.default)
        if field.name in CHOICES:
            kwargs["choices"] = CHOICES[field.name]
        if field.name == "opByOpVerifier":
            kwargs["help"] = argparse.SUPPRESS  # a Cloud AI 100 debugging tool, hidden as in QEfficient
        # QEfficient's own spelling of one flag: --enable_sorting-for-ddp
        aliases = ("enable_sorting-for-ddp",) if field.name == "enable_sorting_for_ddp" else ()
        add_argument(parser, field.name, *aliases, **kwargs)
    for name, kind in (("lora_r", int), ("lora_alpha", int), ("lora_dropout", float)):
        add_argument(parser, name, type=kind, default=argparse.SUPPRESS, help=f"LoRA's {name.removeprefix('lora_')}")
    return parser
