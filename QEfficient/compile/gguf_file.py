"""A GGUF file's metadata and tensor table, read without visiting each vocabulary entry as an array.

``gguf.GGUFReader`` makes several numpy views per element of every metadata array, seconds of CPU
per open for a large vocabulary (Gemma-3's 262k tokens, scores and types; docs/performance.md).
``compile(gguf_weights=True)`` needs only the tensor table, the tensors' bytes and a few scalar
fields, so this reads the layout (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) with
``struct`` and steps over string arrays by their lengths. Block sizes and type ids come from the
``gguf`` package; tests/test_gguf_blocks.py checks the result against GGUFReader's.
"""

from __future__ import annotations

import os
import struct
from math import prod
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from gguf import GGMLQuantizationType as QType
from gguf import GGUFValueType as VType
from gguf.constants import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC

_SCALAR_FORMATS = {
    VType.UINT8: "B",
    VType.INT8: "b",
    VType.UINT16: "H",
    VType.INT16: "h",
    VType.UINT32: "I",
    VType.INT32: "i",
    VType.FLOAT32: "f",
    VType.BOOL: "?",
    VType.UINT64: "Q",
    VType.INT64: "q",
    VType.FLOAT64: "d",
}
_VERSIONS = (2, 3)  # as GGUFReader; a big-endian file's version reads as 2 << 24 or 3 << 24 here


class _SkippedStrings(NamedTuple):
    count: int


class GGUFTensorInfo(NamedTuple):
    name: str
    qtype: QType
    shape: tuple[int, ...]  # numpy order: rows first, as transformers loads the tensor
    data: np.ndarray  # its bytes, (*shape[:-1], bytes per row) uint8: a read-only view of the mapped file


class GGUFFile:
    """``metadata``: key -> value (numbers, strings, lists of numbers; arrays of strings are left out);
    ``tensors``: name -> GGUFTensorInfo, in file order. The file is memory-mapped, not read."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._blob = blob = np.memmap(self.path, mode="r", dtype=np.uint8)
        if blob.size < 24 or struct.unpack_from("<I", blob, 0)[0] != GGUF_MAGIC:
            raise ValueError(f"{self.path} is not a GGUF file: it does not start with the GGUF magic bytes.")
        version, n_tensors, n_fields = struct.unpack_from("<IQQ", blob, 4)
        if version not in _VERSIONS:
            raise ValueError(f"{self.path} is GGUF version {version}: only little-endian versions 2 and 3 are read.")
        pos = 24
        self.metadata: dict[str, Any] = {}
        for _ in range(n_fields):
            key, pos = self._string(pos)
            (kind,) = struct.unpack_from("<I", blob, pos)
            value, pos = self._value(kind, pos + 4)
            if not isinstance(value, _SkippedStrings):
                self.metadata[key] = value
        table = []
        for _ in range(n_tensors):
            name, pos = self._string(pos)
            (n_dims,) = struct.unpack_from("<I", blob, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", blob, pos + 4)
            kind, offset = struct.unpack_from("<IQ", blob, pos + 4 + 8 * n_dims)
            pos += 16 + 8 * n_dims
            table.append((name, dims, QType(kind), offset))
        align = int(self.metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT))
        start = -(-pos // align) * align
        self.tensors: dict[str, GGUFTensorInfo] = {}
        for name, dims, qtype, offset in table:
            per_block, block_bytes = GGML_QUANT_SIZES[qtype]
            shape = tuple(int(d) for d in reversed(dims))  # ggml lists the fastest-moving dimension first
            size = prod(shape) // per_block * block_bytes
            if start + offset + size > blob.size:
                raise ValueError(f"{self.path} is truncated: tensor {name} ends past the end of the file.")
            data = blob[start + offset : start + offset + size].reshape(*shape[:-1], shape[-1] // per_block * block_bytes)
            self.tensors[name] = GGUFTensorInfo(name, qtype, shape, data)

    def _string(self, pos: int) -> tuple[str, int]:
        (length,) = struct.unpack_from("<Q", self._blob, pos)
        return bytes(self._blob[pos + 8 : pos + 8 + length]).decode("utf-8"), pos + 8 + length

    def _value(self, kind: int, pos: int) -> tuple[Any, int]:
        if kind == VType.STRING:
            return self._string(pos)
        if kind in _SCALAR_FORMATS:
            fmt = "<" + _SCALAR_FORMATS[kind]
            return struct.unpack_from(fmt, self._blob, pos)[0], pos + struct.calcsize(fmt)
        if kind != VType.ARRAY:
            raise ValueError(f"{self.path}: metadata value type {kind} is not a GGUF type.")
        item, count = struct.unpack_from("<IQ", self._blob, pos)
        pos += 12
        if item in _SCALAR_FORMATS:
            fmt = f"<{count}{_SCALAR_FORMATS[item]}"
            return list(struct.unpack_from(fmt, self._blob, pos)), pos + struct.calcsize(fmt)
        if item == VType.STRING:  # a vocabulary or a merge table: stepped over, not decoded
            for _ in range(count):
                pos += 8 + struct.unpack_from("<Q", self._blob, pos)[0]
            return _SkippedStrings(count), pos
        values = []
        for _ in range(count):
            value, pos = self._value(item, pos)
            values.append(value)
        return values, pos
