"""Give freed heap memory back to the operating system after the big one-off steps."""

from __future__ import annotations

import ctypes
import gc
from pathlib import Path

# Below this many bytes of weights a full garbage collection is not worth its cost: it walks every
# live Python object (a fraction of a second in a process that imported transformers, more in a long
# one), while the reference cycles an export leaves behind hold little memory for a small model.
GC_WORTHWHILE_BYTES = 64 << 20


def folder_bytes(folder: Path) -> int:
    """Total size of the files directly in ``folder`` (a graph and its external weights)."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


def release_freed_memory(freed_bytes: int | None = None) -> None:
    """Export and compression parse and copy whole models; afterwards glibc keeps the freed
    arenas mapped unless asked, and the process would look (and be, for the OS) that much larger.

    ``freed_bytes``: about how much the step held (the model's weights); a smaller amount than
    GC_WORTHWHILE_BYTES skips the full collection (unknown: collect)."""
    if freed_bytes is None or freed_bytes >= GC_WORTHWHILE_BYTES:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
