"""Scratch folders for the benchmark scripts (random-weight models, their exports and artifacts: gigabytes for the
larger shapes), removed when the script exits, so that repeated runs do not fill the disk."""

from __future__ import annotations

import atexit
import shutil
import tempfile


def scratch_dir(prefix: str = "qeff-bench-") -> str:
    """A new folder under the system's temporary directory, removed at exit."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
