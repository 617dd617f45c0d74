"""Compiled artifacts through Ray's object store, for clusters whose nodes share no disk.

The driver compiles once and ``ship``s the artifact folder (graph, external data, qconfig,
specializations) and the tokenizer's files into the object store, in chunks of ``CHUNK_BYTES``
(numpy byte arrays: a replica reads them without a copy). A replica or actor ``receive``s it:

- the driver's own folder is used as is when this node sees it with the same files (shared disk:
  the artifact's manifest is checked, nothing is hashed again);
- else a copy already materialised under this node's ``QEFF_HOME/shipped/`` is reused, once
  ``verify_entry`` finds it intact;
- else the chunks are written into a new cache entry there, each file's sha256 checked against the
  driver's, then renamed into place (``build_entry``: atomic, locked, never half-written).

The chunks belong to the process that shipped them: they stay readable while that driver runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from QEfficient.distributed import require_ray
from QEfficient.utils.cache import MANIFEST, build_entry, file_digest, hash_dict, is_complete, qeff_home, verify_entry

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 << 20
SHIP_MODES = ("auto", "on", "off")
# A tokenizer folder is often the model's folder: its weights are not what a replica needs.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx", ".data", ".h5", ".msgpack", ".ckpt", ".npz")


@dataclass(frozen=True)
class ShippedFolder:
    """A folder's files in the object store: names, sha256 digests and chunk references."""

    name: str  # the folder's name on the driver (qpc-<hash>, or the tokenizer's folder)
    source: str  # its path on the driver: used in place where a node sees the same files
    digests: dict[str, str]  # relative path -> sha256
    chunks: dict[str, list]  # relative path -> ObjectRefs of its bytes, in order

    def local_entry(self) -> Path:
        """Where this node keeps its copy: the name says which files, so a match is a lookup."""
        return qeff_home() / "shipped" / f"{self.name}-{hash_dict(self.digests, 12)}"


@dataclass(frozen=True)
class Shipment:
    """A serving artifact and its tokenizer, as ``ship`` put them in the object store."""

    artifact: ShippedFolder
    tokenizer: ShippedFolder | None  # None: the artifact holds its tokenizer (an encoder's, a vision-language model's)
    vision: ShippedFolder | None = None  # a vision-language model's vision artifact


def should_ship(mode: str) -> bool:
    """``on``: always; ``off``: never; ``auto``: when the Ray cluster has more than one node (one
    node always shares its disk with itself)."""
    if mode not in SHIP_MODES:
        raise ValueError(f"ship_artifact must be one of {', '.join(SHIP_MODES)}, got {mode!r}.")
    if mode != "auto":
        return mode == "on"
    ray = require_ray()
    return sum(1 for node in ray.nodes() if node.get("Alive")) > 1


def ship(qpc_path: str | Path, tokenizer_dir: str | Path | None, vision_qpc_path: str | Path | None = None) -> Shipment:
    """Put the compiled artifact and the tokenizer's files (none for an artifact that holds its own) into the object
    store; with ``vision_qpc_path``, a vision-language model's vision artifact too."""
    qpc_path = Path(qpc_path)
    artifact_files = _artifact_files(qpc_path)
    tokenizer = None
    if tokenizer_dir is not None:
        tokenizer_dir = Path(tokenizer_dir)
        tokenizer_files = sorted(
            p.name for p in tokenizer_dir.iterdir() if p.is_file() and not p.name.startswith(".") and not p.name.endswith(_WEIGHT_SUFFIXES)
        )
        tokenizer = _put_folder(tokenizer_dir, tokenizer_files)
    vision = None if vision_qpc_path is None else _put_folder(Path(vision_qpc_path), _artifact_files(Path(vision_qpc_path)))
    shipment = Shipment(_put_folder(qpc_path, artifact_files), tokenizer, vision)
    logger.info(
        "Shipped %s%s into Ray's object store", qpc_path, " and its tokenizer" if tokenizer else " and its vision graph" if vision else ""
    )
    return shipment


def _artifact_files(qpc_path: Path) -> list[str]:
    problem = verify_entry(qpc_path)
    if problem is not None:
        raise FileNotFoundError(problem.message())
    return sorted(json.loads((qpc_path / MANIFEST).read_text())["files"])


def receive(shipment: Shipment) -> tuple[Path, Path | None]:
    """(artifact folder, tokenizer folder or None) on this node, materialised from the object store if needed."""
    return _local_folder(shipment.artifact), _local_folder(shipment.tokenizer) if shipment.tokenizer else None


def receive_vision(shipment: Shipment) -> Path | None:
    """The vision artifact's folder on this node (as ``receive``), or None when none was shipped."""
    return _local_folder(shipment.vision) if shipment.vision else None


def _put_folder(folder: Path, files: list[str]) -> ShippedFolder:
    ray = require_ray()
    digests: dict[str, str] = {}
    chunks: dict[str, list] = {}
    for rel in files:
        h, refs = hashlib.sha256(), []
        with open(folder / rel, "rb") as f:
            while piece := f.read(CHUNK_BYTES):
                h.update(piece)
                refs.append(ray.put(np.frombuffer(piece, dtype=np.uint8)))
        digests[rel], chunks[rel] = h.hexdigest(), refs
    return ShippedFolder(folder.name, str(folder), digests, chunks)


def _same_files(folder: Path, digests: dict[str, str]) -> bool:
    """Whether ``folder`` holds exactly these files: a cache entry by its verified manifest (no
    hashing), a plain folder (a tokenizer's: small files) by hashing them."""
    if not folder.is_dir():
        return False
    if is_complete(folder):
        if verify_entry(folder) is not None:
            return False
        recorded = json.loads((folder / MANIFEST).read_text())["files"]
        return {rel: rec["sha256"] for rel, rec in recorded.items()} == digests
    try:
        return all(file_digest(folder / rel) == digest for rel, digest in digests.items())
    except OSError:
        return False


def _local_folder(shipped: ShippedFolder) -> Path:
    source = Path(shipped.source)
    if _same_files(source, shipped.digests):
        return source
    entry = shipped.local_entry()
    if build_entry(entry, lambda tmp: _write_files(shipped, tmp)):
        if not _same_files(entry, shipped.digests):  # the name carries the digests: only a hand edit gets here
            raise FileExistsError(f"{entry} holds other files than the shipped {shipped.name}; delete it and start again.")
        logger.info("Reusing %s, received earlier", entry)
    else:
        logger.info("Received %s from the object store into %s", shipped.name, entry)
    return entry


def _write_files(shipped: ShippedFolder, tmp: Path) -> None:
    ray = require_ray()
    for rel, refs in shipped.chunks.items():
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with open(target, "wb") as f:
            for ref in refs:
                piece: Any = ray.get(ref)  # a read-only view of the object store's copy
                h.update(piece)
                f.write(piece)
                del piece
        if h.hexdigest() != shipped.digests[rel]:
            raise OSError(f"{rel} of {shipped.name} arrived damaged (sha256 mismatch); start the replica again.")
