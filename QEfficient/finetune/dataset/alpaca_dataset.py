"""Stanford Alpaca instructions from a local JSON file (QEfficient's ``alpaca_dataset``)."""

from __future__ import annotations

import json
from pathlib import Path

from QEfficient.finetune.configs.dataset_config import IGNORE_INDEX

PROMPT_DICT = {
    "prompt_input": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
    ),
    "prompt_no_input": (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Response:"
    ),
}
ALPACA_URL = "https://raw.githubusercontent.com/tatsu-lab/stanford_alpaca/refs/heads/main/alpaca_data.json"


def read_alpaca(path: str | Path) -> list[dict]:
    try:
        records = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"The alpaca dataset is read from {path} (relative to the working folder) and it is not there: "
            f"download it with `wget -c {ALPACA_URL} -P dataset/`, or use --dataset custom_dataset."
        ) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a JSON list of alpaca records: {err}") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) and "instruction" in r and "output" in r for r in records):
        raise ValueError(f"{path} must hold a JSON list of objects with 'instruction', 'output' and optionally 'input'.")
    return records


def encode_example(tokenizer, record: dict, context_length: int | None) -> dict:
    """The prompt and the response as one sequence, ending with EOS; only the response's tokens are labels.
    With ``context_length`` every example is truncated or padded (label -100, attention 0) to that length."""
    template = PROMPT_DICT["prompt_input" if record.get("input") else "prompt_no_input"]
    prompt = template.format_map({"input": "", **record})
    prompt_len = len(tokenizer.encode(prompt))
    input_ids = tokenizer.encode(prompt + record["output"]) + [tokenizer.eos_token_id]
    labels = [IGNORE_INDEX] * min(prompt_len, len(input_ids)) + input_ids[prompt_len:]
    attention = [1] * len(input_ids)
    if context_length is not None:
        input_ids, labels, attention = input_ids[:context_length], labels[:context_length], attention[:context_length]
        pad = context_length - len(input_ids)
        input_ids += [tokenizer.pad_token_id] * pad
        labels += [IGNORE_INDEX] * pad
        attention += [0] * pad
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


class InstructionDataset:
    """QEfficient's split: the first 5 % of the records (at least one) evaluate, the rest train."""

    def __init__(self, dataset_config, tokenizer, partition: str = "train", context_length: int | None = None):
        records = read_alpaca(dataset_config.data_path)
        n_eval = max(1, len(records) // 20)
        self.records = records[n_eval:] if partition == "train" else records[:n_eval]
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return encode_example(self.tokenizer, self.records[index], self.context_length)
