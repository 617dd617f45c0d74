"""One parse of a GGUF file's metadata for all of transformers' reads of it during a conversion.

transformers (5.x) opens a fresh ``gguf.GGUFReader`` for the config, for the weights and for the
tokenizer's config; each one walks every element of the vocabulary arrays in Python (most of a
conversion's time for Gemma-3's 262k tokens), and it builds gguf's table of tensor names
(``get_tensor_name_map``: every name of every layer) again for each of the model's submodules,
hundreds of times (docs/performance.md). Within :func:`gguf_parsed_once` those reads share one reader
and one table, and the reader builds the arrays' fields in bulk. A reader only reads a memory map and
the tables are only looked up, so none of this changes a result (tests/test_cache.py compares the
fields with gguf's own reader's).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

_GGUF_SWAP = threading.Lock()


@contextlib.contextmanager
def gguf_parsed_once(path: Path) -> Iterator[None]:
    """Within the block, this thread's reads of the GGUF file ``path`` share one parse; other paths,
    other arguments and other threads get their own."""
    import gguf
    import numpy as np
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    target, owner, readers, name_maps = os.path.realpath(path), threading.get_ident(), [], {}
    with _GGUF_SWAP:
        original_reader, original_name_map = gguf.GGUFReader, gguf.get_tensor_name_map
        original_parse = gguf_utils._gguf_parse_value
        parsed: dict[int, tuple] = {}  # id of a field element -> (the element, its types, transformers' value of it)

        class BulkReader(original_reader):
            """gguf's reader over a plain ndarray view of its memory map, building arrays of scalars and
            of strings in bulk.

            Every field value is a slice of ``data``, and ``np.memmap`` runs Python code for each slice;
            and gguf's reader reads an array element by element, through several numpy calls each. The
            fields here hold the same parts (one view per element, of the same dtype), indices and types."""

            @property
            def data(self) -> np.ndarray:
                return self._plain_data

            @data.setter
            def data(self, mapped: np.ndarray) -> None:
                self._plain_data = mapped.view(np.ndarray)

            def _get_field_parts(self, orig_offs: int, raw_type: int):
                if gguf.GGUFValueType(raw_type) != gguf.GGUFValueType.ARRAY:
                    return super()._get_field_parts(orig_offs, raw_type)
                raw_itype = self._get(orig_offs, np.uint32)
                alen = self._get(orig_offs + 4, np.uint64)
                count, itype = int(alen[0]), gguf.GGUFValueType(int(raw_itype[0]))
                offs = orig_offs + 12
                parts: list[np.ndarray] = [raw_itype, alen]
                if count == 0 or itype == gguf.GGUFValueType.ARRAY:  # nested arrays: gguf's own walk
                    return super()._get_field_parts(orig_offs, raw_type)
                types = [gguf.GGUFValueType.ARRAY, itype]
                nptype = self.gguf_scalar_to_np.get(itype)
                if nptype is not None:
                    values = self._get(offs, nptype, count)
                    elements = list(values.reshape(count, 1))  # (1,)-shaped views, as gguf's _get returns
                    parsed.update((id(e), (e, tuple(types), v)) for e, v in zip(elements, values.tolist()))
                    return 12 + int(values.nbytes), parts + elements, list(range(2, 2 + count)), types
                if itype != gguf.GGUFValueType.STRING:
                    return super()._get_field_parts(orig_offs, raw_type)
                length_type = self._get(offs, np.uint64).dtype  # the file's byte order
                byteorder = "big" if length_type.str[0] == ">" else "little"
                data, raw = self.data, memoryview(self.data)
                for _ in range(count):
                    n = int.from_bytes(raw[offs : offs + 8], byteorder)
                    text = data[offs + 8 : offs + 8 + n]
                    parts += (data[offs : offs + 8].view(length_type), text)
                    with contextlib.suppress(UnicodeDecodeError):  # transformers' parse raises it, when it gets there
                        parsed[id(text)] = (text, tuple(types), bytes(raw[offs + 8 : offs + 8 + n]).decode())
                    offs += 8 + n
                return offs - orig_offs, parts, list(range(3, 2 + 2 * count, 2)), types

        class SameChecks(type):
            """isinstance and issubclass against the stand-in answer as against gguf's own class."""

            def __instancecheck__(cls, obj: object) -> bool:
                return isinstance(obj, original_reader)

            def __subclasscheck__(cls, sub: type) -> bool:
                return issubclass(sub, original_reader)

        class SharedReader(original_reader, metaclass=SameChecks):
            """Stands in for ``gguf.GGUFReader`` within the block, for every thread: a class, so code on
            other threads that checks or subclasses it still can."""

            def __new__(cls, path: str | os.PathLike, *args, **kwargs):  # gguf's own parameter names
                if cls is not SharedReader:  # a subclass someone made of gguf.GGUFReader: built as usual
                    return super().__new__(cls)
                if args or kwargs or threading.get_ident() != owner or os.path.realpath(path) != target:
                    return original_reader(path, *args, **kwargs)
                if not readers:
                    readers.append(BulkReader(path))
                return readers[0]  # not a SharedReader: Python does not run __init__ on it again

        def name_map(arch, n_blocks):
            if threading.get_ident() != owner:
                return original_name_map(arch, n_blocks)
            if (arch, n_blocks) not in name_maps:
                name_maps[arch, n_blocks] = original_name_map(arch, n_blocks)
            return name_maps[arch, n_blocks]

        def parse_value(value, data_type):
            """transformers' value of one field element, parsed once per element of the shared reader: each
            of its reads parses every element again (seconds for a 262k-token vocabulary)."""
            if threading.get_ident() != owner:
                return original_parse(value, data_type)
            key = tuple(data_type) if isinstance(data_type, list) else data_type
            hit = parsed.get(id(value))
            if hit is not None and hit[0] is value and hit[1] == key:  # the entry holds the element: its id stays its own
                return hit[2]
            result = original_parse(value, data_type)
            parsed[id(value)] = (value, key, result)
            return result

        gguf.GGUFReader, gguf.get_tensor_name_map = SharedReader, name_map
        gguf_utils._gguf_parse_value = parse_value
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = original_reader, original_name_map
            gguf_utils._gguf_parse_value = original_parse
