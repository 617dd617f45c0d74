"""Options -> configurations: QEfficient's ``update_config``, ``generate_peft_config``, ``generate_dataset_config``."""

from __future__ import annotations

import json
import warnings
from collections import namedtuple
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from QEfficient.finetune.configs.dataset_config import DATASET_CONFIGS
from QEfficient.finetune.configs.peft_config import LoraConfig
from QEfficient.finetune.configs.training import Peft_Method, Task_Mode, TrainConfig

# options main() takes besides the fields of TrainConfig and LoraConfig
OTHER_OPTIONS = {"custom_dataset_config"}


def update_config(config: Any, **kwargs: Any) -> None:
    """Set each option the config has (``"loraconfig.r"`` names one config's field); others are left to the other
    configs (QEfficient's rule)."""
    if isinstance(config, (tuple, list)):
        for c in config:
            update_config(c, **kwargs)
        return
    for key, value in kwargs.items():
        if hasattr(config, key):
            setattr(config, key, value)
        elif "." in key:
            owner, name = key.split(".", 1)
            if type(config).__name__.lower() == owner.lower():
                if not hasattr(config, name):
                    raise ValueError(f"{type(config).__name__} has no option {name!r}.")
                setattr(config, name, value)


def warn_unknown_options(kwargs: dict) -> None:
    """QEfficient ignores an option no config has; a misspelt one would change nothing, so say so."""
    known = {f.name for cls in (TrainConfig, LoraConfig) for f in fields(cls)} | OTHER_OPTIONS
    unknown = sorted(k for k in kwargs if k not in known and "." not in k)
    if unknown:
        names = ", ".join(unknown)
        warnings.warn(f"finetune: unknown option(s) {names} ignored (python -m QEfficient.cloud.finetune -h lists them).", stacklevel=3)


def load_config_file(config_path: str | Path) -> dict[str, Any]:
    path = Path(config_path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file not found: {path}")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(path.read_text())
    elif path.suffix == ".json":
        data = json.loads(path.read_text())
    else:
        raise ValueError(f"Config file {path} must be .yaml, .yml or .json.")
    if not isinstance(data, dict):
        raise ValueError(f"Config file {path} must hold a mapping of option names to values.")
    return data


def validate_config(config_data: dict[str, Any], config_type: str = Peft_Method.LORA) -> None:
    """A LoRA config file: ``r`` and ``lora_alpha`` integers, ``target_modules`` a list of names; the optional
    fields of their types."""
    if str(getattr(config_type, "value", config_type)).lower() != Peft_Method.LORA.value:
        raise ValueError(f"Unsupported config_type {config_type!r}: only 'lora' is supported.")
    required = {"r": int, "lora_alpha": int, "target_modules": list}
    optional = {"bias": str, "task_type": str, "lora_dropout": float, "inference_mode": bool}
    missing = [name for name in required if name not in config_data]
    if missing:
        raise ValueError(f"The LoRA config misses {missing}: it needs r, lora_alpha and target_modules.")
    for name, kind in {**required, **optional}.items():
        if name in config_data and not isinstance(config_data[name], kind):
            raise ValueError(f"The LoRA config's {name!r} must be {kind.__name__}, got {type(config_data[name]).__name__}.")
    if not all(isinstance(m, str) for m in config_data["target_modules"]):
        raise ValueError("The LoRA config's 'target_modules' must be a list of module names.")


def generate_peft_config(train_config: TrainConfig, **kwargs: Any) -> Any:
    """peft's LoraConfig: from ``peft_config_file``, else QEfficient's defaults with the options given."""
    from peft import LoraConfig as PeftLoraConfig

    if train_config.peft_config_file:
        data = load_config_file(train_config.peft_config_file)
        validate_config(data)
        given = sorted(name for name, value in kwargs.items() if value is not None)
        if given:  # (QEfficient reads the file alone, silently)
            warnings.warn(
                f"{', '.join(given)} given beside peft_config_file: the file's LoRA settings apply; put them in the file.",
                UserWarning,
                stacklevel=3,
            )
        return PeftLoraConfig(**data)
    if train_config.peft_method != Peft_Method.LORA.value:
        raise ValueError(f"peft_method {train_config.peft_method!r} is not supported: only 'lora'.")
    config = LoraConfig()
    if train_config.task_mode == Task_Mode.SEQ_CLASSIFICATION.value:
        config.task_type = "SEQ_CLS"  # peft then trains the classifier beside the adapter
    update_config(config, **kwargs)
    return PeftLoraConfig(**asdict(config))


def generate_dataset_config(dataset_name: str, custom_dataset_config: str | None = None) -> Any:
    """The dataset's configuration; a custom dataset's is its JSON / YAML file over the defaults."""
    if dataset_name not in DATASET_CONFIGS:
        raise ValueError(f"Dataset {dataset_name!r} is not supported: choose one of {sorted(DATASET_CONFIGS)}.")
    config = DATASET_CONFIGS[dataset_name]()
    if dataset_name != "custom_dataset":
        if custom_dataset_config is not None:  # (it would be left unread, the other dataset trained on)
            raise ValueError(
                f"--custom_dataset_config applies with --dataset custom_dataset, not {dataset_name!r}: add --dataset "
                "custom_dataset, or leave it out."
            )
        return config
    if custom_dataset_config is None:
        raise ValueError("--dataset custom_dataset needs its config file: --custom_dataset_config path/to/config.json.")
    values = {**asdict(config), **load_config_file(custom_dataset_config)}
    return namedtuple("custom_dataset", values.keys())(**values)
