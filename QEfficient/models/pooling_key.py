"""What an export's cache key holds of a ``pooling`` argument: a name as it is, a module's class, layers and weights, a
function's code (its bytecode, constants, defaults and the values it closes over). Two functions of one name but other
code (two lambdas; a function edited between runs) are two graphs."""

from __future__ import annotations

import types
from typing import Any

from QEfficient.utils.cache import fingerprint_state_dict, hash_dict


def pooling_key(pooling: Any) -> str | None:
    """The key of ``pooling``: None, a name, a module (ColBERT's projection) or a function."""
    if pooling is None or isinstance(pooling, str):
        return pooling
    kind = type(pooling)
    if hasattr(pooling, "state_dict") and callable(pooling.state_dict):  # its layers (activations have no weights) and weights
        return f"{kind.__module__}.{kind.__qualname__}:{pooling!r}:{fingerprint_state_dict(pooling.state_dict())}"
    code = getattr(pooling, "__code__", None)
    if code is None:  # another callable object: its class and what it shows of itself
        return f"{kind.__module__}.{kind.__qualname__}:{pooling!r}"
    closure = [_value(cell.cell_contents) for cell in pooling.__closure__ or ()]
    defaults = [_value(pooling.__defaults__), _value(pooling.__kwdefaults__)]
    parts = {"code": _code(code), "defaults": defaults, "closure": closure}
    return f"{pooling.__module__}.{pooling.__qualname__}:{hash_dict(parts)}"


def _code(code: types.CodeType) -> list:
    """A code object's bytecode, names and constants (nested functions' code too)."""
    consts = [_code(c) if isinstance(c, types.CodeType) else _value(c) for c in code.co_consts]
    return [code.co_code.hex(), list(code.co_names), list(code.co_varnames), consts]


def _value(value: Any) -> str:
    """A constant, default or closed-over value as the key holds it: tensors and modules by their weights."""
    if hasattr(value, "state_dict") and callable(value.state_dict):
        return pooling_key(value) or ""
    if hasattr(value, "detach") and hasattr(value, "shape"):  # a tensor
        return fingerprint_state_dict({"tensor": value.detach()})
    if isinstance(value, types.FunctionType):
        return pooling_key(value) or ""
    return repr(value)
