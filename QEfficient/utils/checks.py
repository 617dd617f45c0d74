"""Checks of user-given options that every stage shares; they import nothing heavy, so that a command
line refuses a bad option before it loads torch and transformers."""

from __future__ import annotations

import numbers


def check_positive(**values: int) -> None:
    """Every value a positive int (bools are not counts; a numpy integer is refused, saying to pass an int: it would
    not go into the artifact's JSON)."""
    for name, value in values.items():
        if isinstance(value, numbers.Integral) and not isinstance(value, (int, bool)):
            raise ValueError(f"{name} must be a Python int, got {type(value).__name__} {value}: pass int({name}).")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_flags(**values) -> None:
    """Every value True or False (None where the option's default is None is for the caller to leave out): a string
    such as "no" would otherwise read as True."""
    for name, value in values.items():
        numpy_bool = str(getattr(value, "dtype", "")) == "bool" and getattr(value, "ndim", None) == 0  # (np.bool_)
        if not isinstance(value, bool) and not numpy_bool:
            raise ValueError(f"{name} must be True or False, got {value!r}.")


def check_generation_len(generation_len) -> int | None:
    """None (generate up to ctx_len), or a positive whole number of tokens as an int."""
    if generation_len is None:
        return None
    whole = isinstance(generation_len, numbers.Integral) or (isinstance(generation_len, float) and generation_len.is_integer())
    if isinstance(generation_len, bool) or not whole or generation_len <= 0:
        raise ValueError(
            f"generation_len must be a positive whole number of tokens (or None to generate up to ctx_len), got {generation_len!r}."
        )
    return int(generation_len)


def check_strings(label: str, items, first_index: int = 0) -> None:
    """Every item a str; the first that is not is named by ``label`` and its index (from ``first_index``)."""
    for i, item in enumerate(items, start=first_index):
        if not isinstance(item, str):
            raise TypeError(f"{label} {i} is a {type(item).__name__}, not a string: pass text ({item!r:.60}).")


def served_length(limit: int | None, ctx_len: int | None, name: str, what: str) -> int:
    """The longest input a server takes: ``ctx_len`` (None: its default, 512) within ``limit`` (the model's ``what``); a
    length given past the limit is refused, as vLLM refuses a --max-model-len past the model's."""
    from QEfficient.utils.constants import DEFAULT_SERVER_CTX_LEN

    if ctx_len is not None and limit and ctx_len > limit:
        raise ValueError(
            f"--ctx_len {ctx_len} is more than '{name}' reads ({limit} tokens: its {what}); give at most {limit}, or leave it out."
        )
    return min(n for n in (ctx_len or DEFAULT_SERVER_CTX_LEN, limit) if n)
