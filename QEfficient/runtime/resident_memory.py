"""Give back memory a run-time process no longer uses: the resident pages of a session's
memory-mapped weight file once the session is built, and heap memory freed by loading.

ONNX Runtime maps page-aligned external initializers from the ``.data`` file (private, copy on write).
Building the session reads some of them in full (pre-packing a tied LM head's weights, which the
embedding ``Gather`` also reads), and those pages stay resident although afterwards only a few rows
of the table are read per token. ``madvise(MADV_DONTNEED)`` on the mappings of that file
drops them; a page read later is mapped again from the page cache. Only mappings without a single
written (anonymous, copy-on-write) page are advised, so nothing written is ever dropped. Figures
in docs/performance.md.

Loading frees memory too (parsing ``tokenizer.json``, the initializers a session copied and
pre-packed), which glibc keeps in its heap; ``malloc_trim`` hands the free pages back (SmolLM2's
tokenizer: 14 MB).
"""

from __future__ import annotations

import ctypes
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

MADV_DONTNEED = 4  # Linux


def _mappings(smaps: list[str]) -> list[tuple[str, str, int]]:
    """(address range, path, anonymous kB) of each mapping in /proc/self/smaps."""
    out: list[tuple[str, str, int]] = []
    for line in smaps:
        fields = line.split(maxsplit=5)  # a mapping's header: address perms offset dev inode [path]
        if len(fields) >= 5 and "-" in fields[0] and not fields[0].endswith(":"):
            out.append((fields[0], fields[5] if len(fields) > 5 else "", 0))
        elif line.startswith("Anonymous:") and out:
            out[-1] = (*out[-1][:2], int(line.split()[1]))
    return out


def release_mapped_pages(data_file: str | Path) -> int:
    """madvise(MADV_DONTNEED) on this process's unwritten mappings of ``data_file``; returns the bytes
    advised (0 off Linux or when nothing is mapped)."""
    if not sys.platform.startswith("linux"):
        return 0
    target = str(Path(data_file).resolve())
    try:
        smaps = Path("/proc/self/smaps").read_text().splitlines()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    advised = 0
    for addresses, path, anonymous_kb in _mappings(smaps):
        if path != target or anonymous_kb:
            continue
        start, end = (int(x, 16) for x in addresses.split("-"))
        if libc.madvise(start, end - start, MADV_DONTNEED) == 0:
            advised += end - start
        else:
            logger.debug("madvise(%s) failed: errno %d", addresses, ctypes.get_errno())
    return advised


def return_freed_heap() -> None:
    """glibc's malloc_trim(0): free heap pages go back to the system (nothing elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        pass
