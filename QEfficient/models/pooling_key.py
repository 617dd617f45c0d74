"""What an export's cache key holds of a ``pooling`` argument: a name as it is, a module's class, layers and weights, a
function's code (its bytecode, constants, defaults, the values it closes over and the module-level names it loads, the
code of the helpers of its own module too). Two functions of one name but other code (two lambdas; a function or a
constant edited between runs) are two graphs; the same code gives the same key in every process. Functions of other
modules (torch's, a library's) are keyed by name: their code comes with the installed packages."""

from __future__ import annotations

import dis
import functools
import types
from typing import Any

from QEfficient.utils.cache import fingerprint_state_dict, hash_dict

_GLOBAL_LOADS = {"LOAD_GLOBAL", "LOAD_NAME"}


def pooling_key(pooling: Any) -> str | None:
    """The key of ``pooling``: None, a name, a module (ColBERT's projection), a function or another callable."""
    if pooling is None or isinstance(pooling, str):
        return pooling
    return _Keyer(getattr(pooling, "__module__", None)).value(pooling)


def _named(value: Any) -> str:
    return f"{getattr(value, '__module__', None)}.{getattr(value, '__qualname__', getattr(value, '__name__', type(value).__name__))}"


def _global_loads(code: types.CodeType) -> set[str]:
    """The global names a code object (and the code nested in it) loads: not its attributes' names."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in _GLOBAL_LOADS}
    return names.union(*(_global_loads(c) for c in code.co_consts if isinstance(c, types.CodeType)))


class _Keyer:
    """One key's walk: functions of ``module`` (the pooling function's) are keyed by their code and what it loads, each
    once (``done``); a value reached again while it is being keyed (recursion, a container holding itself) by name."""

    def __init__(self, module: str | None) -> None:
        self.module = module
        self.done: dict[int, tuple[Any, str]] = {}  # (the value, held so that its id is not reused meanwhile; its key)
        self.keying: set[int] = set()

    def value(self, value: Any) -> str:
        if id(value) in self.done:
            return self.done[id(value)][1]
        if id(value) in self.keying:
            return _named(value)
        self.keying.add(id(value))
        try:
            key = self._key(value)
        finally:
            self.keying.discard(id(value))
        self.done[id(value)] = (value, key)
        return key

    def _key(self, value: Any) -> str:
        if isinstance(value, (type, types.ModuleType, types.BuiltinFunctionType)) or type(value).__name__ == "ufunc":
            return _named(value)  # a class (torch.Tensor, an nn.Module subclass), a module, torch's or numpy's functions
        if isinstance(value, types.CodeType):
            return hash_dict({"code": self._code(value)})
        if hasattr(value, "state_dict") and callable(value.state_dict):  # a module: its layers and weights
            return f"{_named(type(value))}:{value!r}:{fingerprint_state_dict(value.state_dict())}"
        if hasattr(value, "detach") and hasattr(value, "shape"):  # a tensor
            return fingerprint_state_dict({"tensor": value.detach()})
        if hasattr(value, "tobytes") and hasattr(value, "dtype") and hasattr(value, "shape"):  # a numpy array: every byte
            return hash_dict({"dtype": str(value.dtype), "shape": list(value.shape), "bytes": value.tobytes().hex()})
        if isinstance(value, types.FunctionType):
            return self._function(value)
        if isinstance(value, types.MethodType):
            return f"{self.value(value.__func__)}@{self.value(value.__self__)}"
        if isinstance(value, functools.partial):
            return f"partial({self.value(value.func)}, {self.value(value.args)}, {self.value(value.keywords)})"
        if isinstance(value, (list, tuple)):
            return f"{type(value).__name__}[{', '.join(self.value(v) for v in value)}]"
        if isinstance(value, dict):
            items = sorted(value.items(), key=lambda kv: repr(kv[0]))
            return "{" + ", ".join(f"{self.value(k)}: {self.value(v)}" for k, v in items) + "}"
        if isinstance(value, (set, frozenset)):
            return f"{type(value).__name__}{sorted(self.value(v) for v in value)}"
        shown = repr(value)
        if " at 0x" in shown:  # an object that shows its address: its class (the same in every process)
            return _named(type(value))
        return f"{_named(type(value))}:{shown}" if callable(value) else shown

    def _function(self, function: types.FunctionType) -> str:
        if function.__module__ != self.module:  # another module's (a library's): its code comes with the package
            return _named(function)
        closure = [self.value(cell.cell_contents) for cell in function.__closure__ or ()]
        defaults = [self.value(function.__defaults__ or ()), self.value(function.__kwdefaults__ or {})]
        names = sorted(n for n in _global_loads(function.__code__) if n in function.__globals__)
        loaded = {n: self.value(function.__globals__[n]) for n in names}
        parts = {"code": self._code(function.__code__), "defaults": defaults, "closure": closure, "globals": loaded}
        return f"{_named(function)}:{hash_dict(parts)}"

    def _code(self, code: types.CodeType) -> list:
        """A code object's bytecode, names and constants (nested functions' code too)."""
        return [code.co_code.hex(), list(code.co_names), list(code.co_varnames), [self.value(c) for c in code.co_consts]]
