"""Examples -> batches: QEfficient's ``get_dataloader`` (padding batches, no example dropped)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformers import DataCollatorForSeq2Seq

from QEfficient.finetune.configs.dataset_config import IGNORE_INDEX
from QEfficient.finetune.configs.training import TrainConfig
from QEfficient.finetune.dataset.dataset_config import DATALOADER_COLLATE_FUNC, DATASET_PREPROC


def get_preprocessed_dataset(tokenizer: Any, dataset_config: Any, split: str = "train", context_length: int | None = None) -> Any:
    name = dataset_config.dataset
    if name not in DATASET_PREPROC:
        raise ValueError(f"Dataset {name!r} is not supported: choose one of {sorted(DATASET_PREPROC)}.")
    split_name = dataset_config.train_split if split == "train" else dataset_config.test_split
    return DATASET_PREPROC[name](dataset_config, tokenizer, split_name, context_length)


def padded_to_batches(dataset: Any, batch_size: int) -> list:
    """The examples, then copies of the first one with every label -100 (they add nothing to the loss) up to a
    whole number of batches: the loader drops no example (QEfficient's ``padding_dataset``)."""
    rows = [dataset[i] for i in range(len(dataset))]
    if not rows:
        return rows
    dummy = copy.deepcopy(dict(rows[0]))
    dummy["labels"] = [IGNORE_INDEX] * len(dummy["labels"])
    return rows + [copy.deepcopy(dummy) for _ in range(-len(rows) % batch_size)]


def get_dataloader(tokenizer: Any, dataset_config: Any, train_config: TrainConfig, split: str = "train") -> torch.utils.data.DataLoader:
    dataset = get_preprocessed_dataset(tokenizer, dataset_config, split, train_config.context_length)
    batch_size = train_config.train_batch_size if split == "train" else train_config.val_batch_size
    rows = padded_to_batches(dataset, batch_size)
    if not rows:
        raise ValueError(f"The {split} split of {dataset_config.dataset} has no examples.")
    collate = DATALOADER_COLLATE_FUNC.get(dataset_config.dataset, lambda *_: None)(tokenizer, dataset_config)
    return torch.utils.data.DataLoader(
        rows,
        batch_size=batch_size,
        drop_last=True,
        collate_fn=collate or DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX),
        num_workers=train_config.num_workers_dataloader,
        pin_memory=str(train_config.device).startswith("cuda"),
    )


def get_longest_seq_length(data: Any) -> tuple[int, int]:
    """The longest example's length and index."""
    lengths = [len(d["input_ids"]) for d in data]
    longest = max(lengths)
    return longest, lengths.index(longest)
