"""Checks of user-given options that every stage shares; they import nothing heavy, so that a command
line refuses a bad option before it loads torch and transformers."""

from __future__ import annotations


def check_positive(**values: int) -> None:
    """Every value a positive int (bools are not counts)."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
