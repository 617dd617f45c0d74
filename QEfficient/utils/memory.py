"""Give freed heap memory back to the operating system after the big one-off steps."""

from __future__ import annotations

import ctypes
import gc


def release_freed_memory() -> None:
    """Export and compression parse and copy whole models; afterwards glibc keeps the freed
    arenas mapped unless asked, and the process would look (and be, for the OS) that much larger."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
