"""What an export's cache key holds of a ``pooling`` argument: a name as it is, a module's class, layers and weights, a
function's code (its bytecode, constants, defaults, the values it closes over and the module-level names it reads, a
helper function's code too). Two functions of one name but other
code (two lambdas; a function edited between runs) are two graphs; the same code gives the same key in every process."""

from __future__ import annotations

import functools
import types
from typing import Any

from QEfficient.utils.cache import fingerprint_state_dict, hash_dict


def pooling_key(pooling: Any) -> str | None:
    """The key of ``pooling``: None, a name, a module (ColBERT's projection), a function or another callable."""
    if pooling is None or isinstance(pooling, str):
        return pooling
    return _value(pooling)


def _code(code: types.CodeType) -> list:
    """A code object's bytecode, names and constants (nested functions' code too)."""
    return [code.co_code.hex(), list(code.co_names), list(code.co_varnames), [_value(c) for c in code.co_consts]]


_keying: set[int] = set()  # the functions being keyed now (a recursive one is keyed by name where it reaches itself)


def _names(code: types.CodeType) -> set[str]:
    """The global (and attribute) names a code object and the code nested in it read."""
    return set(code.co_names).union(*(_names(c) for c in code.co_consts if isinstance(c, types.CodeType)))


def _named(value: Any) -> str:
    return f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', getattr(value, '__name__', type(value).__name__))}"


def _value(value: Any) -> str:
    """``value`` as the key holds it, the same in every process: modules and tensors by their weights, functions by their
    code, builtins, classes and modules by name, containers by their items (sets sorted)."""
    if isinstance(value, types.CodeType):
        return hash_dict({"code": _code(value)})
    if hasattr(value, "state_dict") and callable(value.state_dict):  # its layers (activations have no weights) and weights
        return f"{_named(type(value))}:{value!r}:{fingerprint_state_dict(value.state_dict())}"
    if hasattr(value, "detach") and hasattr(value, "shape"):  # a tensor
        return fingerprint_state_dict({"tensor": value.detach()})
    if isinstance(value, types.FunctionType):
        if id(value) in _keying:  # a function that reaches itself (recursion): its name
            return _named(value)
        _keying.add(id(value))
        try:
            closure = [_value(cell.cell_contents) for cell in value.__closure__ or ()]
            defaults = [_value(value.__defaults__ or ()), _value(value.__kwdefaults__ or {})]
            # the module-level names its code reads (constants, helpers and their own code): a changed one is another graph
            names = sorted({n for n in _names(value.__code__) if n in value.__globals__})
            used = {n: _value(value.__globals__[n]) for n in names}
            parts = {"code": _code(value.__code__), "defaults": defaults, "closure": closure, "globals": used}
        finally:
            _keying.discard(id(value))
        return f"{_named(value)}:{hash_dict(parts)}"
    if isinstance(value, types.MethodType):
        return f"{_value(value.__func__)}@{_value(value.__self__)}"
    if isinstance(value, functools.partial):
        return f"partial({_value(value.func)}, {_value(value.args)}, {_value(value.keywords)})"
    if isinstance(value, (types.BuiltinFunctionType, types.ModuleType, type)) or type(value).__name__ == "ufunc":
        return _named(value)  # (torch's and numpy's functions, a module, a class)
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{', '.join(_value(v) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_value(k)}: {_value(v)}" for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))) + "}"
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}{sorted(_value(v) for v in value)}"
    if callable(value):  # another callable object (operator.itemgetter(0)): its class and what it shows of itself
        return f"{_named(type(value))}:{value!r}"
    return repr(value)
