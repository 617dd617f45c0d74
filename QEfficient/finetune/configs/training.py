"""QEfficient's ``TrainConfig``: every field and default of its fine-tuning configuration."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum, StrEnum


class Device(StrEnum):
    QAIC = "qaic"  # no Cloud AI 100 here: trains on the CPU
    CPU = "cpu"
    CUDA = "cuda"


class Task_Mode(StrEnum):  # noqa: N801 (QEfficient's name)
    GENERATION = "generation"
    SEQ_CLASSIFICATION = "seq_classification"


class Peft_Method(StrEnum):  # noqa: N801
    LORA = "lora"


class Batching_Strategy(StrEnum):  # noqa: N801
    PADDING = "padding"
    PACKING = "packing"


def enum_names(enum_cls: type[Enum]) -> list[str]:
    return [member.value for member in enum_cls]


@dataclass
class TrainConfig:
    """The fields of QEfficient's TrainConfig, with its defaults (``device="qaic"`` trains on the CPU here)."""

    model_name: str = "meta-llama/Llama-3.2-1B"
    tokenizer_name: str | None = None  # None: model_name's tokenizer
    run_validation: bool = True
    train_batch_size: int = 1
    val_batch_size: int = 1
    context_length: int | None = None  # pad or truncate every example to this many tokens
    gradient_accumulation_steps: int = 4
    gradient_checkpointing: bool = False
    use_autocast: bool = True  # float16 autocast on CUDA; the CPU trains in float32
    grad_scaler: bool = True
    num_epochs: int = 1
    max_train_step: int = 0  # 0: no limit
    max_eval_step: int = 0
    device: str = Device.QAIC.value
    num_workers_dataloader: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.0
    gamma: float = 0.85  # the learning rate is multiplied by gamma after each epoch
    seed: int = 42
    dataset: str = "alpaca_dataset"
    task_mode: str = Task_Mode.GENERATION.value
    use_peft: bool = True
    peft_method: str = Peft_Method.LORA.value
    peft_config_file: str | None = None
    from_peft_checkpoint: str | None = None  # resume from this adapter (its folder name tells the epoch and step)
    output_dir: str = "training_results"
    save_model: bool = True
    save_metrics: bool = True
    intermediate_step_save: int = 1000
    batching_strategy: str = Batching_Strategy.PADDING.value
    convergence_counter: int = 5  # stop once the loss stayed <= convergence_loss for this many steps
    convergence_loss: float = 1e-4
    use_profiler: bool = False
    enable_pp: bool = False
    num_pp_stages: int = 1
    enable_ddp: bool = False
    enable_sorting_for_ddp: bool = True
    opByOpVerifier: bool = False  # noqa: N815
    dump_logs: bool = True
    log_level: str | int = logging.INFO
