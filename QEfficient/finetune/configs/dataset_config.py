"""QEfficient's dataset configurations, one class per ``--dataset`` name (its class names)."""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100  # labels the loss skips (transformers' convention)


@dataclass
class grammar_dataset:  # noqa: N801
    dataset: str = "grammar_dataset"
    train_split: str = "train"
    test_split: str = "validation"


@dataclass
class alpaca_dataset:  # noqa: N801
    dataset: str = "alpaca_dataset"
    train_split: str = "train"
    test_split: str = "val"
    data_path: str = "dataset/alpaca_data.json"  # relative to the working folder, as QEfficient's


@dataclass
class gsm8k_dataset:  # noqa: N801
    dataset: str = "gsm8k_dataset"
    train_split: str = "train"
    test_split: str = "test"


@dataclass
class imdb_dataset:  # noqa: N801
    dataset: str = "imdb_dataset"
    train_split: str = "train"
    test_split: str = "test"
    num_labels: int = 2


@dataclass
class custom_dataset:  # noqa: N801
    dataset: str = "custom_dataset"
    train_split: str = "train"
    test_split: str = "validation"


DATASET_CONFIGS = {cls.__name__: cls for cls in (alpaca_dataset, grammar_dataset, gsm8k_dataset, imdb_dataset, custom_dataset)}
