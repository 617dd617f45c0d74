"""Give back memory a run-time process no longer uses: the resident pages of a session's
memory-mapped weight file once the session is built, and heap memory freed by loading.

ONNX Runtime maps page-aligned external initializers from the ``.data`` file (private, copy on write).
Building the session reads some of them in full (pre-packing a tied LM head's weights, which the
embedding ``Gather`` also reads), and those pages stay resident although afterwards only a few rows
of the table are read per token. ``madvise(MADV_DONTNEED)`` on the mappings of that file
drops them; a page read later is mapped again from the page cache. Only mappings without a single
written (anonymous, copy-on-write) page are advised, so nothing written is ever dropped.

That comes after the build; the peak comes during it. Pre-packing reads each weight from its
mapping, and ONNX Runtime unmaps the sources only once the whole session is built, so the pages read
pile up on top of the packed copies: a quantized artifact's peak is its session's build. The build
runs in C++ with the GIL released, so a thread reclaims those pages meanwhile, every few
milliseconds, with ``MADV_PAGEOUT``. Unlike ``MADV_DONTNEED`` it never discards data (a written page
goes to swap or stays), which matters here: ONNX Runtime may unmap a range, and the heap reuse it,
between the thread's read of ``/proc/self/maps`` and its call. The clean pages leave the page cache
too, so a later read comes from the disk. Figures in docs/performance.md.

Loading frees memory too (parsing ``tokenizer.json``, the initializers a session copied and
pre-packed), which glibc keeps in its heap; ``malloc_trim`` hands the free pages back (SmolLM2's
tokenizer: 14 MB).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

MADV_DONTNEED = 4  # Linux
MADV_PAGEOUT = 21  # Linux 5.4+
RECLAIM_INTERVAL_S = 0.005
# Smaller weight files are not worth it: the pages reclaimed leave the page cache, so the build reads them again.
RECLAIM_ABOVE = 16 << 20
# Nor, after the build, for release_mapped_pages: fewer resident pages than this to drop, against a read of
# /proc/self/smaps that takes tens of milliseconds in a process with torch loaded.
RELEASE_ABOVE = 16 << 20


def _mappings(maps: list[str]) -> list[tuple[str, str]]:
    """(address range, path) of each mapping in /proc/self/maps."""
    out: list[tuple[str, str]] = []
    for line in maps:
        fields = line.split(maxsplit=5)  # address perms offset dev inode [path]
        if len(fields) >= 5 and "-" in fields[0]:
            out.append((fields[0], fields[5] if len(fields) > 5 else ""))
    return out


def _anonymous_kb_of(smaps: list[str], target: str) -> list[tuple[str, int]]:
    """(address range, anonymous kB) of each mapping of ``target`` in /proc/self/smaps. Only the headers
    that end with the path are split: with torch loaded the file has some 10,000 lines."""
    out: list[tuple[str, int]] = []
    for i, line in enumerate(smaps):
        if not line.endswith(target):
            continue
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5] != target or "-" not in fields[0]:
            continue
        anonymous_kb = 0
        for field in smaps[i + 1 :]:
            if field.startswith("Anonymous:"):
                anonymous_kb = int(field.split()[1])
                break
            if not field.partition(" ")[0].endswith(":"):  # the next mapping's header
                break
        out.append((fields[0], anonymous_kb))
    return out


def release_mapped_pages(data_file: str | Path) -> int:
    """madvise(MADV_DONTNEED) on this process's unwritten mappings of ``data_file``; returns the bytes
    advised (0 off Linux, when nothing is mapped, and for a file under RELEASE_ABOVE bytes)."""
    if not sys.platform.startswith("linux"):
        return 0
    target = str(Path(data_file).resolve())
    try:
        if Path(target).stat().st_size < RELEASE_ABOVE:
            return 0
        # /proc/self/maps first: smaps costs tens of milliseconds in a process with torch loaded, and
        # many sessions (weights inside the .onnx) map nothing of the file
        if not any(path == target for _, path in _mappings(Path("/proc/self/maps").read_text().splitlines())):
            return 0
        smaps = Path("/proc/self/smaps").read_text().splitlines()
        madvise = _madvise()
    except OSError:
        return 0
    advised = 0
    for addresses, anonymous_kb in _anonymous_kb_of(smaps, target):
        if anonymous_kb:
            continue
        start, end = (int(x, 16) for x in addresses.split("-"))
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            advised += end - start
        else:
            logger.debug("madvise(%s) failed: errno %d", addresses, ctypes.get_errno())
    return advised


def _madvise():
    """libc's madvise(addr, length, advice), errno kept for ctypes.get_errno()."""
    madvise = ctypes.CDLL(None, use_errno=True).madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


def _reclaim_until(target: str, stop: threading.Event, interval_s: float, advised: list[int]) -> None:
    madvise = _madvise()
    while not stop.wait(interval_s):
        try:  # /proc/self/maps: the headers of smaps without the per-page counts, so cheaper to read
            ranges = [addresses for addresses, path in _mappings(Path("/proc/self/maps").read_text().splitlines()) if path == target]
        except (OSError, ValueError):  # no /proc, or a line this parser does not know: leave it to the step after
            return
        for addresses in ranges:
            start, end = (int(x, 16) for x in addresses.split("-"))
            if madvise(start, end - start, MADV_PAGEOUT) == 0:
                advised[0] += end - start
            elif ctypes.get_errno() == errno.EINVAL:  # a kernel before 5.4
                return
            # ENOMEM: unmapped since /proc/self/maps was read


@contextlib.contextmanager
def reclaiming_mapped_pages(data_file: str | Path, interval_s: float = RECLAIM_INTERVAL_S) -> Iterator[list[int]]:
    """While the block runs (building an ONNX Runtime session), reclaim the resident pages of this
    process's mappings of ``data_file`` every ``interval_s`` (module docstring: why, and why
    ``MADV_PAGEOUT``). Yields a one-item list that ends up holding the bytes advised, summed over passes
    (0 off Linux, and for a file under RECLAIM_ABOVE bytes)."""
    advised = [0]
    data_file = Path(data_file)
    if not sys.platform.startswith("linux") or not data_file.is_file() or data_file.stat().st_size < RECLAIM_ABOVE:
        yield advised
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=_reclaim_until, args=(str(data_file.resolve()), stop, interval_s, advised), name="qeff-reclaim-pages", daemon=True
    )
    thread.start()
    try:
        yield advised
    finally:
        stop.set()
        thread.join()


def return_freed_heap() -> None:
    """glibc's malloc_trim(0): free heap pages go back to the system (nothing elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        pass
