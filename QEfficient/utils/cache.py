"""The on-disk cache under QEFF_HOME: hashing, atomic directory entries, integrity and locking.

Every cache entry is a directory whose name ends in a hash of everything that changes its
content. An entry is built in a temporary sibling directory and renamed into place only once
complete, so an interrupted build never leaves a half-written entry behind. A manifest of its
files (size, mtime, sha256) is checked on every use, so a damaged entry is rebuilt or reported
instead of being run; a file lock beside the entry makes a second process wait for the first
one's build and reuse it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"
LOCK_SUFFIX = ".lock"


def qeff_home() -> Path:
    """Root of all caches: $QEFF_HOME, else $XDG_CACHE_HOME/qeff_models, else ~/.cache/qeff_models."""
    if os.environ.get("QEFF_HOME"):
        home = Path(os.environ["QEFF_HOME"]).expanduser().absolute()  # artifacts' paths stay valid after a chdir
        if home.is_file():
            raise ValueError(f"QEFF_HOME={os.environ['QEFF_HOME']} is a file: point it at a folder (created if missing).")
        return home
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "qeff_models"


def _hasher(name: str, **kwargs: Any) -> Any:
    """``hashlib.new(name)``, imported at first use: hashlib loads OpenSSL's libcrypto (~4 MB resident), which
    a run-time process that only reads entries it can trust by size and mtime never needs."""
    import hashlib

    return hashlib.new(name, **kwargs)


def hash_dict(params: dict[str, Any], length: int = 16) -> str:
    """Stable short hash of a JSON-serialisable mapping."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return _hasher("sha256", data=blob.encode()).hexdigest()[:length]


@functools.cache
def source_digest(package_root: str, skip: tuple[str, ...] = ()) -> str:
    """Hash of the Python sources under ``package_root`` (folders named in ``skip`` left out): in a cache
    key, it makes a changed exporter or rewrite build new entries instead of reusing graphs it no longer
    writes (GRAPH_VERSION alone relies on someone remembering to bump it)."""
    root = Path(package_root)
    h = _hasher("sha256")
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] not in skip:
            h.update(rel.as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def fingerprint_state_dict(state_dict: dict[str, Any]) -> str:
    """Hash of every tensor's name, dtype, shape and bytes.

    Hashing the full bytes costs about a second per GB; it is what makes the export cache safe
    for two models that share a config but not their weights.
    """
    h = _hasher("sha256")  # the file digests' hash: OpenSSL runs it on the CPU's SHA instructions
    seen: dict[int, str] = {}
    for name in sorted(state_dict):
        t = state_dict[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        ptr = t.data_ptr()
        if ptr in seen:  # tied weights: hash the alias, not the bytes again
            h.update(f"=>{seen[ptr]}".encode())
            continue
        seen[ptr] = name
        h.update(t.detach().contiguous().view(-1).view(_byte_dtype()).numpy())  # the tensor's own buffer: no copy
    return h.hexdigest()[:32]


def _byte_dtype():
    import torch

    return torch.uint8


def is_complete(entry: Path) -> bool:
    return (entry / COMPLETE_MARKER).is_file()


# ---------------------------------------------------------------------------------------------
# Integrity: every entry carries a manifest of its files' sizes, mtimes and sha256 digests.
#
# Hashing on every load would cost too much (sha256 reads ~1.4 GB/s on one core here: 0.4 s for
# SmolLM2's 540 MB .onnx.data, and a start-up verifies three entries), so a load compares size
# and mtime, as make and git do, and hashes a file in full only when its mtime differs from the
# one recorded, or when the file was written less than RACY_NS before the manifest (a write in
# the same timestamp tick would keep the mtime; git calls these entries "racily clean"). A file
# that hashes clean gets its new mtime recorded, so the full hash runs once after each change.
# Bytes changed with the mtime put back are not seen on this fast path; QEFF_VERIFY_CACHE=full
# hashes every file on every load.
# ---------------------------------------------------------------------------------------------

MANIFEST = ".manifest.json"
RACY_NS = 2_000_000_000  # the coarsest common mtime granularity (FAT: 2 s)
_NOT_CONTENT = {COMPLETE_MARKER, MANIFEST, ".pid"}
# (dev, inode, size, mtime_ns) -> sha256 of files hashed, or verified, past their racy window
_digests: dict[tuple[int, int, int, int], str] = {}


class CacheEntryDamagedError(OSError):
    """A cache entry's files changed after it was written and it cannot be rebuilt here."""


@dataclass(frozen=True)
class EntryProblem:
    """Why ``entry`` cannot be reused: not built (``damaged`` False) or built and then changed."""

    entry: Path
    reason: str
    damaged: bool

    def describe(self) -> str:
        return f"The cache entry {self.entry} is damaged: {self.reason}."

    def message(self) -> str:
        """The error for a damaged entry that cannot be rebuilt where it was found."""
        return f"{self.describe()} Delete it (rm -rf '{self.entry}') and build it again."


def file_digest(path: Path, memo: bool = True) -> str:
    """sha256 of the file's bytes (``memo``: reuse the digest of the same inode, size and mtime)."""
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if memo and key in _digests:
        return _digests[key]
    settled = st.st_mtime_ns + RACY_NS <= time.time_ns()
    h, buf = _hasher("sha256"), bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    digest = h.hexdigest()
    if settled:  # a later write gets a different mtime, so the key is a safe memo
        _digests[key] = digest
    return digest


def _content_files(entry: Path) -> list[Path]:
    return sorted(p for p in entry.rglob("*") if p.is_file() and p.name not in _NOT_CONTENT and not p.name.endswith(LOCK_SUFFIX))


def write_manifest(entry: Path) -> None:
    """Record the size, mtime and sha256 of every file of a freshly built entry."""
    files = {}
    for path in _content_files(entry):
        st = path.stat()
        files[path.relative_to(entry).as_posix()] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_digest(path)}
    (entry / MANIFEST).write_text(json.dumps({"format": 1, "written_ns": time.time_ns(), "files": files}, indent=1))


def verify_entry(entry: Path) -> EntryProblem | None:
    """None when ``entry`` is complete and every file is as written; else what is wrong, naming the file."""
    entry = Path(entry)
    if not is_complete(entry):
        return EntryProblem(entry, "it is not built" if not entry.exists() else f"its {COMPLETE_MARKER} marker is missing", False)
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        written, files = int(manifest["written_ns"]), dict(manifest["files"])
        checks = [(rel, int(rec["size"]), int(rec["mtime_ns"]), str(rec["sha256"])) for rel, rec in files.items()]
    except FileNotFoundError:
        return EntryProblem(entry, f"{entry / MANIFEST} is missing (an entry built by an older version, or edited)", True)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return EntryProblem(entry, f"{entry / MANIFEST} is not a valid manifest ({err})", True)
    full = os.environ.get("QEFF_VERIFY_CACHE", "").lower() == "full"
    rehashed = False
    for rel, size, mtime_ns, digest in checks:
        path = entry / rel
        try:
            st = path.stat()
        except OSError:
            return EntryProblem(entry, f"{path} is missing", True)
        if st.st_size != size:
            return EntryProblem(entry, f"{path} has {st.st_size} bytes, {size} were written (truncated or overwritten)", True)
        if not full and st.st_mtime_ns == mtime_ns and mtime_ns + RACY_NS <= written:
            # as trusted as this check: a hard link of the file into a new artifact is not hashed again
            _digests.setdefault((st.st_dev, st.st_ino, size, mtime_ns), digest)
            continue
        if file_digest(path, memo=not full) != digest:
            return EntryProblem(entry, f"{path} changed after it was written (sha256 mismatch)", True)
        files[rel]["mtime_ns"] = st.st_mtime_ns
        rehashed = True
    if rehashed:
        _rewrite_manifest(entry, {**manifest, "written_ns": time.time_ns(), "files": files})
    return None


def _rewrite_manifest(entry: Path, manifest: dict[str, Any]) -> None:
    """Record the verified mtimes (best effort: a read-only cache is verified in full each time)."""
    tmp = entry / f"{MANIFEST}.{os.getpid()}"
    try:
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, entry / MANIFEST)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


# ---------------------------------------------------------------------------------------------
# Building: one builder per entry across processes, atomic rename, rebuild of damaged entries.
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def entry_lock(entry: Path) -> Iterator[None]:
    """Hold an exclusive lock on building ``entry``, shared by all processes (flock on ``.<name>.lock``
    beside it). The holder removes the lock file when done, so no empty file is left behind (a failed
    build leaves nothing at all); a waiter whose file was removed meanwhile locks the new one instead.
    Without fcntl (Windows) or where the file system refuses locks, builds are not serialised; the
    atomic rename still keeps every entry whole."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = entry.parent / f".{entry.name}{LOCK_SUFFIX}"
    lock, made_parent = None, False
    for _ in range(_LOCK_ATTEMPTS):  # bounded: a file system whose inode numbers move would never settle
        made_parent = not entry.parent.exists()
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a")  # noqa: SIM115 - held across the yield below
        except FileNotFoundError:  # another process's failed build removed the folder it had made: again
            continue
        except FileExistsError:  # made by another process and removed again before mkdir could see it: again
            continue
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info("Waiting for another process that is building %s", entry)
                fcntl.flock(handle, fcntl.LOCK_EX)
            locked_here = _same_file(handle, path)
        except OSError as err:  # e.g. ENOLCK on some network file systems
            handle.close()
            logger.debug("No lock for %s (%s); building without one", entry, err)
            break
        except BaseException:  # interrupted while waiting: nothing held
            handle.close()
            raise
        if locked_here:
            lock = handle
            break
        handle.close()  # the previous holder removed this file: lock the one now at the path
    if lock is None:
        yield
        return
    try:
        yield
    finally:
        if _same_file(lock, path):  # still ours (not removed and made anew by someone else)
            with contextlib.suppress(OSError):
                path.unlink()  # while still held: a process waiting on this file then re-opens a new one
        if made_parent and not entry.exists():
            with contextlib.suppress(OSError):  # a failed build leaves no empty folder it made (rmdir keeps a used one)
                entry.parent.rmdir()
        lock.close()


_LOCK_ATTEMPTS = 1000


def _same_file(handle, path: Path) -> bool:
    try:
        opened, named = os.fstat(handle.fileno()), os.stat(path)
    except OSError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def build_entry(entry: Path, build: Callable[[Path], object]) -> bool:
    """Make sure ``entry`` exists intact, calling ``build(tmp_dir)`` if not; True when it was reused.

    The build runs under ``entry_lock``: a second process asking for the same entry waits, then
    reuses what the first one built. A damaged entry is rebuilt, with a warning naming the file.
    """
    entry = Path(entry)
    if verify_entry(entry) is None:
        return True
    with entry_lock(entry):
        problem = verify_entry(entry)
        if problem is None:
            logger.info("Reusing %s, built by another process meanwhile", entry)
            return True
        if problem.damaged:
            warnings.warn(f"{problem.describe()} Rebuilding it.", stacklevel=3)
        with atomic_directory(entry) as tmp:
            build(tmp)
    return False


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temp dir next to ``final``; on success write its manifest, mark it complete and
    rename it to ``final``.

    On any exception (KeyboardInterrupt included) the temp dir is removed. A process killed
    outright leaves only a ``.tmp-*`` sibling, which is never mistaken for an entry and is swept
    by the next build beside it (sweep_stale_temps). Prefer ``build_entry``, which also takes the lock.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a cache entry is readable like any other folder
    try:
        (tmp / ".pid").write_text(f"{socket.gethostname()} {os.getpid()}")  # the builder, while it builds
        yield tmp
        write_manifest(tmp)  # (which skips the .pid file: hashing a large entry takes a while, the builder still alive)
        (tmp / COMPLETE_MARKER).write_text("")
        (tmp / ".pid").unlink()
        if final.exists():
            if verify_entry(final) is None:  # a concurrent builder won (no lock on this platform)
                shutil.rmtree(tmp, ignore_errors=True)
                return
            _replace_entry(final, tmp)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_entry(old: Path, new: Path) -> None:
    """Put ``new`` in the place of the incomplete or damaged ``old``, keeping the complete entries
    nested in it (an export entry holds its compiled artifacts, qpc-*) and their lock files; each
    of those is verified on its own when used."""
    for child in list(old.iterdir()):
        nested = child.is_dir() and is_complete(child)
        lock = child.is_file() and child.name.startswith(".") and child.name.endswith(LOCK_SUFFIX)
        if (nested or lock) and not (new / child.name).exists():
            os.rename(child, new / child.name)
    trash = Path(tempfile.mkdtemp(prefix=f".tmp-{old.name}-", dir=old.parent))  # swept like any stale temp if we die here
    try:
        os.replace(old, trash)
    except OSError:  # renaming onto an existing folder is POSIX-only
        shutil.rmtree(old, ignore_errors=True)
    os.replace(new, old)
    shutil.rmtree(trash, ignore_errors=True)


def sweep_stale_temps(final: Path) -> None:
    """Remove temp dirs left beside ``final`` by builds whose process no longer runs: those whose ``.pid`` file records a
    process of this host that has ended, and those without one (an older version's, or a build killed before it wrote
    its pid) that are ``final``'s own (its builder holds the entry's lock) or a library temp name a minute old. A build
    of another host sharing the cache is left alone."""
    for stale in final.parent.glob(".tmp-*"):
        own = stale.name.startswith(f".tmp-{final.name}-")
        builder = _builder(stale / ".pid")
        if builder is None:
            if own or (_TEMP_NAME.match(stale.name) and _older_than(stale, 60) and _unlocked(stale)):
                shutil.rmtree(stale, ignore_errors=True)
            continue
        host, pid = builder
        # another entry's builder may live in another PID namespace under this host's name: its lock says it is alive
        if host == socket.gethostname() and not _alive(pid) and (own or _unlocked(stale)):
            shutil.rmtree(stale, ignore_errors=True)


_TEMP_NAME = re.compile(r"^\.tmp-.+-[a-z0-9_]{8}$")  # atomic_directory's: mkdtemp's eight characters after the entry's name


def _unlocked(temp: Path) -> bool:
    """Whether no process holds the build lock of the entry a library temp folder was made for (its lock file gone, or
    free); False where locks cannot be taken (nothing is known)."""
    match = _TEMP_NAME.match(temp.name)
    try:
        import fcntl
    except ImportError:
        return False
    if match is None:
        return False
    path = temp.parent / f".{temp.name[len('.tmp-') : -9]}{LOCK_SUFFIX}"
    try:
        handle = open(path)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return True
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: a read-only handle takes it (NFS too)
        except OSError:  # held (BlockingIOError), or no locks here
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _builder(pid_file: Path) -> tuple[str, int] | None:
    """(host, pid) a build's ``.pid`` file records (an older version's: the pid alone, this host), or None."""
    try:
        parts = pid_file.read_text().split()
        return (socket.gethostname(), int(parts[0])) if len(parts) == 1 else (parts[0], int(parts[1]))
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # another user's
    except (OSError, ValueError, OverflowError):
        return False
    return True
