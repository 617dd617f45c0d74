"""Reading one field of a request body: a number within bounds, a boolean; anything else a 400 that names it."""

from __future__ import annotations

import math

from QEfficient.serving.errors import APIError


def number(body: dict, name: str, kind: type, default, low=None, high=None, low_open: bool = False):
    """``body[name]`` as an int (kind=int) or float within [low, high] ((low, high] with low_open); null -> default."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise APIError(400, f"'{name}' must be {'an integer' if kind is int else 'a number'}, got {value!r}.", name)
    if (
        not (isinstance(value, int) or math.isfinite(value))
        or (low is not None and (value <= low if low_open else value < low))
        or (high is not None and value > high)
    ):
        bounds = f"{'(' if low_open else '['}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise APIError(400, f"'{name}' is out of range: {value} (allowed: {bounds}).", name)
    return kind(value)


def boolean(body: dict, name: str, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise APIError(400, f"'{name}' must be true or false, got {value!r}.", name)
    return value
