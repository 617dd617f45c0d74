"""QEfficient's datasets that come from the Hugging Face hub (gsm8k, imdb) or a CSV file (grammar), read with the
``datasets`` library (``pip install "QEfficient[finetune]"``)."""

from __future__ import annotations

from itertools import chain
from pathlib import Path
from typing import Any

from QEfficient.finetune.configs.dataset_config import IGNORE_INDEX
from QEfficient.utils.extras import require_extra

GSM8K_INSTRUCTION = """### Instruction: Solve the math question using a basic calculator.
Calculator can be invoked using the format: <<expression=answer>>.
"expression" can be one of the 4 arithmetic operations, and "answer" will be filled in for you.
Example: <<20+30=50>>

### Question: {question}

### Answer: """
GRAMMAR_FOLDER = "datasets_grammar"  # relative to the working folder, as QEfficient's


def load(name: str, *args: Any, **kwargs: Any) -> Any:
    require_extra("finetune", f"the {name} dataset")
    import datasets

    try:
        return datasets.load_dataset(name, *args, **kwargs)
    except Exception as err:  # noqa: BLE001 (datasets raises many kinds; all mean "not readable here")
        raise RuntimeError(
            f"Could not load the dataset {name!r} ({type(err).__name__}: {err}). It is read from the Hugging Face hub or "
            "its local cache; on a machine without the hub, use --dataset custom_dataset with your own data."
        ) from err


def pad_row(row: dict, tokenizer: Any, context_length: int | None) -> dict:
    """Truncated or padded (label -100, attention 0) to ``context_length`` when it is set."""
    ids, labels = row["input_ids"], row["labels"]
    attention = [1] * len(ids)
    if context_length is None:
        return {"input_ids": ids, "attention_mask": attention, "labels": labels}
    pad = max(0, context_length - len(ids))
    return {
        "input_ids": ids[:context_length] + [tokenizer.pad_token_id] * pad,
        "attention_mask": attention[:context_length] + [0] * pad,
        "labels": labels[:context_length] + [IGNORE_INDEX] * pad,
    }


def gsm8k_row(row: dict, tokenizer: Any) -> dict:
    """The question as the prompt, the worked answer as labels, except what the calculator fills in
    (``<<expression=answer>>``: the answer part is masked, as QEfficient's)."""
    first = lambda texts: {tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in texts}  # noqa: E731
    starts, equals, ends = first(["<<", " <<"]), first(["=", " ="]), first([">>"])
    question = tokenizer((tokenizer.bos_token or "") + GSM8K_INSTRUCTION.format(**row), add_special_tokens=False)["input_ids"]
    answer = tokenizer(row["answer"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    labels, mode = list(answer), 0
    for i, token in enumerate(answer):
        if mode == 0 and token in starts:
            mode = 1
        elif mode == 1 and token in equals:
            mode = 2
        elif mode == 2:
            labels[i] = IGNORE_INDEX
            mode = 0 if token in ends else 2
    return {"input_ids": question + answer, "labels": [IGNORE_INDEX] * len(question) + labels}


def get_gsm8k_dataset(dataset_config: Any, tokenizer: Any, split: str, context_length: int | None = None) -> list[dict]:
    rows = load("openai/gsm8k", "main", split=split)
    return [pad_row(gsm8k_row(row, tokenizer), tokenizer, context_length) for row in rows]


def get_grammar_dataset(dataset_config: Any, tokenizer: Any, split: str, context_length: int | None = None) -> list[dict]:
    """``datasets_grammar/grammar_train.csv`` (columns input, target) for training, ``grammar_validation.csv`` for
    validation when it exists, else the training file (QEfficient's reads the training file for both)."""
    folder = Path.cwd() / GRAMMAR_FOLDER
    path = folder / ("grammar_train.csv" if split == "train" else "grammar_validation.csv")
    if not path.is_file():
        path = folder / "grammar_train.csv"
    if not path.is_file():
        raise FileNotFoundError(f"The grammar dataset is read from {path}: make it with llama-cookbook's grammar_dataset_process notebook.")
    rows = load("csv", data_files={"train": [str(path)]}, delimiter=",")["train"]
    out = []
    for row in rows:
        prompt = tokenizer.encode(
            (tokenizer.bos_token or "") + f"Correct this to standard English: {row['input']}\n---\nCorrected: ", add_special_tokens=False
        )
        target = tokenizer.encode(row["target"] + tokenizer.eos_token, add_special_tokens=False)
        out.append(pad_row({"input_ids": prompt + target, "labels": [IGNORE_INDEX] * len(prompt) + target}, tokenizer, context_length))
    return out


def get_imdb_dataset(dataset_config: Any, tokenizer: Any, split: str, context_length: int | None = None) -> list[dict]:
    """Film reviews labelled 0 / 1 for ``task_mode="seq_classification"``; the test split keeps 500 of each label."""
    rows = load("stanfordnlp/imdb", split=split)
    if split == "test":
        rows = rows.select(chain(range(0, 500), range(12500, 13000)))
    rows = rows.shuffle(seed=42)
    out = []
    for row in rows:
        data = tokenizer(row["text"], truncation=True, max_length=context_length or tokenizer.model_max_length)
        out.append({"input_ids": data["input_ids"], "attention_mask": data["attention_mask"], "labels": [row["label"]]})
    return out
