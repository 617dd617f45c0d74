"""``--dataset`` name -> the function that builds its examples (QEfficient's ``DATASET_PREPROC``)."""

from __future__ import annotations

from QEfficient.finetune.dataset.alpaca_dataset import InstructionDataset as get_alpaca_dataset
from QEfficient.finetune.dataset.custom_dataset import get_custom_dataset, get_data_collator
from QEfficient.finetune.dataset.hub_datasets import get_grammar_dataset, get_gsm8k_dataset, get_imdb_dataset

DATASET_PREPROC = {
    "alpaca_dataset": get_alpaca_dataset,
    "grammar_dataset": get_grammar_dataset,
    "gsm8k_dataset": get_gsm8k_dataset,
    "custom_dataset": get_custom_dataset,
    "imdb_dataset": get_imdb_dataset,
}
DATALOADER_COLLATE_FUNC = {"custom_dataset": get_data_collator}
