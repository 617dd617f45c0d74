"""QEfficient's ``QEfficient.finetune.utils.helper`` names its scripts and tests import: the option enums and the
process's place in a distributed run (one process here: rank 0 of 1)."""

from __future__ import annotations

import os

from QEfficient.finetune.configs.training import Batching_Strategy, Device, Peft_Method, Task_Mode, enum_names

__all__ = ["Batching_Strategy", "Device", "Peft_Method", "Task_Mode", "enum_names", "get_rank", "get_local_rank", "get_world_size"]


def get_rank() -> int:
    return int(os.getenv("RANK", 0))


def get_local_rank() -> int:
    return int(os.getenv("LOCAL_RANK", 0))


def get_world_size() -> int:
    return int(os.getenv("WORLD_SIZE", 1))


def is_rank_zero() -> bool:
    return get_rank() == 0
