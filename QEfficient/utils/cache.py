"""The on-disk cache under QEFF_HOME: hashing and atomic directory entries.

Every cache entry is a directory whose name ends in a hash of everything that changes its
content. An entry is built in a temporary sibling directory and renamed into place only once
complete, so an interrupted build never leaves a half-written entry behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

COMPLETE_MARKER = ".complete"


def qeff_home() -> Path:
    """Root of all caches: $QEFF_HOME, else $XDG_CACHE_HOME/qeff_models, else ~/.cache/qeff_models."""
    if os.environ.get("QEFF_HOME"):
        return Path(os.environ["QEFF_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "qeff_models"


def hash_dict(params: dict[str, Any], length: int = 16) -> str:
    """Stable short hash of a JSON-serialisable mapping."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def fingerprint_state_dict(state_dict: dict[str, Any]) -> str:
    """Hash of every tensor's name, dtype, shape and bytes.

    Hashing the full bytes costs about a second per GB; it is what makes the export cache safe
    for two models that share a config but not their weights.
    """
    h = hashlib.blake2b(digest_size=16)
    seen: dict[int, str] = {}
    for name in sorted(state_dict):
        t = state_dict[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        ptr = t.data_ptr()
        if ptr in seen:  # tied weights: hash the alias, not the bytes again
            h.update(f"=>{seen[ptr]}".encode())
            continue
        seen[ptr] = name
        h.update(t.detach().contiguous().view(-1).view(_byte_dtype()).numpy().tobytes())
    return h.hexdigest()


def _byte_dtype():
    import torch

    return torch.uint8


def is_complete(entry: Path) -> bool:
    return (entry / COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temp dir next to ``final``; on success mark it complete and rename it to ``final``.

    On any exception (KeyboardInterrupt included) the temp dir is removed. A process killed
    outright leaves only a ``.tmp-*`` sibling, which is never mistaken for an entry and is swept
    by the next build of the same entry.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a cache entry is readable like any other folder
    try:
        (tmp / ".pid").write_text(str(os.getpid()))
        yield tmp
        (tmp / ".pid").unlink()
        (tmp / COMPLETE_MARKER).write_text("")
        if final.exists():  # a concurrent builder won, or a stale incomplete entry: replace it
            if is_complete(final):
                shutil.rmtree(tmp, ignore_errors=True)
                return
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sweep_stale_temps(final: Path) -> None:
    """Remove temp dirs left by builds of ``final`` whose process no longer runs."""
    for stale in final.parent.glob(f".tmp-{final.name}-*"):
        pid_file = stale / ".pid"
        if pid_file.is_file():
            try:
                os.kill(int(pid_file.read_text()), 0)
                continue  # the builder is alive
            except PermissionError:
                continue  # alive, and another user's
            except (ValueError, OSError):
                pass
        shutil.rmtree(stale, ignore_errors=True)
