"""Generation over a LoRA graph: the adapter tables are bound once, each row's adapter id per batch
(static batching) or per slot (continuous batching: set when a request is admitted).

Torch-free: the tables are numpy arrays (built by QEfficient/peft, or read from an .npz by a server).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from QEfficient.export.graph_names import LORA_IDS, lora_table_names
from QEfficient.generation.continuous_batching import ContinuousBatchingEngine, Request
from QEfficient.generation.speculative import SpeculativeGeneration
from QEfficient.generation.text_generation import TextGeneration

LORA_ID = "lora_id"  # Request.extra key: the request's row of the adapter tables (0: no adapter)


def is_lora_artifact(qconfig: dict) -> bool:
    return "lora_table_shapes" in qconfig


def check_tables(qconfig: dict, tables: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The tables to bind: ``tables`` checked against the artifact, or all-zero ones (every row the
    base model) when none are given (a LoRA artifact run by the plain entry points)."""
    shapes, rank = qconfig["lora_table_shapes"], qconfig["max_lora_rank"]
    if tables is None:
        tables = {}
        for module, (layers, fan_in, fan_out) in shapes.items():
            a, b = lora_table_names(module)
            tables[a] = np.zeros((layers, 1, fan_in, rank), np.float32)
            tables[b] = np.zeros((layers, 1, rank, fan_out), np.float32)
        return tables
    for module, (_, fan_in, fan_out) in shapes.items():
        a, b = lora_table_names(module)
        if a not in tables or b not in tables:
            raise ValueError(f"The adapter tables lack the '{module}' tables this artifact was compiled with.")
        if tables[a].shape[2:] != (fan_in, rank) or tables[b].shape[2:] != (rank, fan_out):
            raise ValueError(f"The '{module}' adapter tables have rank {tables[a].shape[3]}; this artifact takes max_lora_rank={rank}.")
    return tables


def load_tables(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def check_ids(ids: list[int], tables: dict[str, np.ndarray]) -> np.ndarray:
    rows = next(iter(tables.values())).shape[1]
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= rows):
        raise ValueError(f"LoRA ids must lie in [0, {rows}) (0: no adapter), got {sorted(set(ids.tolist()))}.")
    return ids


class LoraRows:
    """Mixed into a TextGeneration: prompt i runs with adapter row ``lora_ids[i]`` (the tables bound once)."""

    def bind_lora(self, tables: dict[str, np.ndarray], lora_ids) -> None:
        self.lora_ids = check_ids(lora_ids, tables)
        self.session.bind_inputs(**tables)

    def generate_batch(self, prompts, generation_len, streamer=None, token_lists=None, first_index: int = 0):
        ids = self.lora_ids[first_index : first_index + self.batch_size]
        ids = np.concatenate([ids, np.full(self.batch_size - len(ids), ids[-1] if len(ids) else 0, np.int64)])  # as the prompts are padded
        self.session.bind_inputs(**{LORA_IDS: ids[:, None]})
        return super().generate_batch(prompts, generation_len, streamer, token_lists, first_index)


class LoraTextGeneration(LoraRows, TextGeneration):
    """TextGeneration whose prompt i runs with adapter row ``lora_ids[i]``."""

    def __init__(self, session, tokenizer, prefill_seq_len: int, eos_ids, sampling, tables: dict[str, np.ndarray], lora_ids) -> None:
        super().__init__(session, tokenizer, prefill_seq_len, eos_ids, sampling)
        self.bind_lora(tables, lora_ids)


class LoraSpeculativeGeneration(LoraRows, SpeculativeGeneration):
    """Speculative generation (prompt lookup) over a LoRA target graph, prompt i with adapter ``lora_ids[i]``."""

    def __init__(self, session, tokenizer, prefill_seq_len: int, eos_ids, drafter, num_tokens: int, tables, lora_ids) -> None:
        super().__init__(session, tokenizer, prefill_seq_len, eos_ids, drafter, num_tokens)
        self.bind_lora(tables, lora_ids)


class LoraBatchingEngine(ContinuousBatchingEngine):
    """Continuous batching over a LoRA graph; a request's adapter is ``request.extra["lora_id"]``."""

    supports_beams = False

    def __init__(self, session, prefill_seq_len: int, eos_ids, pad_id: int, tables: dict[str, np.ndarray]) -> None:
        super().__init__(session, prefill_seq_len, eos_ids, pad_id)
        self.tables = tables
        self.slot_ids = np.zeros((session.batch_size, 1), dtype=np.int64)
        self.num_adapters = next(iter(tables.values())).shape[1] - 1
        session.bind_inputs(**tables)
        self._slot_target = None
        self._slot_tables_bound = False

    def submit(self, request: Request) -> None:
        check_ids([request.extra.get(LORA_ID, 0)], self.tables)
        super().submit(request)

    def _prefill_request(self, slot: int, request: Request) -> np.ndarray:
        lora = int(request.extra.get(LORA_ID, 0))
        target = self.session.slot(slot)
        if not self._slot_tables_bound:  # the batch-1 binding is shared by every slot: the tables once
            target.bind_inputs(**self.tables)
            self._slot_tables_bound = True
        target.bind_inputs(**{LORA_IDS: np.array([[lora]], dtype=np.int64)})
        self._slot_target = target  # keeps the bound id alive
        self.slot_ids[slot, 0] = lora
        return self._prefill_row(target, request)

    def _before_decode(self) -> None:
        self.session.bind_inputs(**{LORA_IDS: self.slot_ids})
