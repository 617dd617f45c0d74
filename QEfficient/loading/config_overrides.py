"""vLLM's ``hf_overrides``: changes to a model's transformers config made before its weights are loaded
(``from_pretrained(..., hf_overrides=...)``, ``serve --hf_overrides``).

As vLLM applies them: a key naming a sub-config (``text_config``, ``vision_config``) is merged into it key by key,
any other key replaces the value. The config is then built again from its dictionary, so that transformers' own
``__init__`` reads the new values (a ``rope_scaling`` becomes transformers 5's ``rope_parameters``, as when the
folder's config.json holds it); a smaller ``num_hidden_layers`` keeps the first of the ``layer_types``. A function of
the config (vLLM's other form) is called with it instead.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from transformers import PretrainedConfig

logger = logging.getLogger(__name__)

HfOverrides = dict[str, Any] | Callable[[PretrainedConfig], PretrainedConfig]
# keys that vLLM's server, and so the servers here, read from a config (no model does): set without a warning
SERVING_KEYS = frozenset({"is_matryoshka", "matryoshka_dimensions"})


def apply_hf_overrides(config: PretrainedConfig, overrides: HfOverrides) -> PretrainedConfig:
    """A new config: ``config`` with ``overrides`` applied (``config`` itself is left as it is)."""
    if callable(overrides):
        changed = overrides(config)
        if not isinstance(changed, PretrainedConfig):
            raise TypeError(f"hf_overrides, given as a function, must return the config; it returned {type(changed).__name__}.")
        return changed
    if not isinstance(overrides, dict):
        raise ValueError(f"hf_overrides must be a mapping of config keys to values (or a function of the config), got {overrides!r:.80}.")
    unknown: list[str] = []
    overrides = copy.deepcopy(overrides)  # transformers fills nested values in (rope_theta): never the caller's dicts
    data = _merged(config, config.to_dict(), overrides, "", unknown)
    if unknown:
        logger.warning(
            "hf_overrides: the %s config has no %s; set anyway, as vLLM does (the model may not read it).",
            config.model_type,
            ", ".join(repr(k) for k in unknown),
        )
    return type(config).from_dict(data)


def _merged(config: PretrainedConfig, data: dict, overrides: dict, where: str, unknown: list[str]) -> dict:
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise ValueError(f"hf_overrides: config keys are strings, got {key!r}.")
        if key == "model_type" and value != config.model_type:
            raise ValueError(
                f"hf_overrides: model_type cannot change ({config.model_type!r} to {value!r}): the architecture is chosen "
                "from the folder's config. Point the model at a folder of that type instead."
            )
        current = getattr(config, key, None)
        if isinstance(current, PretrainedConfig) and isinstance(value, dict):
            data[key] = _merged(current, dict(data.get(key) or current.to_dict()), value, f"{where}{key}.", unknown)
            continue
        if key not in data and not hasattr(config, key) and key not in SERVING_KEYS:
            unknown.append(where + key)
        data[key] = value
    layers, kinds = overrides.get("num_hidden_layers"), data.get("layer_types")
    if "layer_types" not in overrides and isinstance(layers, int) and isinstance(kinds, list) and len(kinds) > layers:
        data["layer_types"] = kinds[:layers]  # fewer layers: the first ones, as transformers' checkpoints load them
    return data


@contextmanager
def weights_fit(overrides: HfOverrides | None) -> Iterator[None]:
    """Loading the weights into a model built from an overridden config: a weight whose shape the overrides changed
    (transformers' size-mismatch error) is a ValueError that names them and says what to do."""
    try:
        yield
    except RuntimeError as err:
        if overrides is None or "mismatched" not in str(err):
            raise
        keys = ", ".join(overrides) if isinstance(overrides, dict) else "a function"
        raise ValueError(
            f"The checkpoint's weights do not fit the config as hf_overrides changed it ({keys}): some weight has another "
            "shape now. Override only keys that change no weight's shape (the layers kept, rope_scaling, window sizes)."
        ) from err
