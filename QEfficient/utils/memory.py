"""Give memory back to the operating system after the big one-off steps: freed heap, and the page
cache a freshly written weight table sits in."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

# sync_file_range(2): wait for earlier writes of the range, start its write-back, wait for that
SYNC_RANGE_AND_WAIT = 1 | 2 | 4

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


def evict_from_page_cache(path: Path, spans: Iterable[tuple[int, int]]) -> int:
    """Write ``path``'s bytes in ``spans`` (offset, length) to disk and drop them from the page cache
    (Linux; elsewhere nothing happens). Returns the bytes dropped.

    Why: pages a process writes stay cached in large folios (2 MB on recent kernels), and a fault in a
    memory mapping of the file maps the whole folio. An embedding table ONNX Runtime maps from a
    freshly written artifact then costs the process up to 2 MB of resident memory per row a ``Gather``
    reads instead of a few kB; read back from disk, the pages come in readahead-sized folios."""
    if not sys.platform.startswith("linux") or not hasattr(os, "posix_fadvise"):
        return 0
    try:
        sync_range = ctypes.CDLL(None, use_errno=True).sync_file_range
        fd = os.open(path, os.O_RDONLY)
    except (OSError, AttributeError):
        return 0
    sync_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    dropped = 0
    try:
        for offset, length in spans:
            if sync_range(fd, offset, length, SYNC_RANGE_AND_WAIT) != 0:  # dirty pages cannot be dropped
                logger.debug("sync_file_range(%s) failed: errno %d", path, ctypes.get_errno())
                continue
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
            dropped += length
    except OSError as err:  # best effort: the file is complete either way
        logger.debug("could not drop %s from the page cache: %s", path, err)
    finally:
        os.close(fd)
    return dropped
