"""The files of an exported graph, as an artifact's key and its build see them: the ``.onnx`` file and the external-data
files it names, each with its sha256. The key holds the digests, not the path: another graph written over the same path
is another artifact, and a cache moved elsewhere keeps its artifacts.

An export's cache entry (export/onnx_export.py) supplies the digests its manifest recorded, once the entry is verified
(by size and mtime; a file changed since is hashed again); a graph elsewhere (``compile(onnx_path=...)``) is read for the files it names and
they are hashed (memoized by inode, size and mtime: once per file).
"""

from __future__ import annotations

import json
from pathlib import Path

from QEfficient.utils.cache import MANIFEST, file_digest, is_complete, verify_entry


def graph_files(onnx_path: Path) -> dict[str, str]:
    """{file name: sha256} of ``onnx_path`` and the external-data files beside it that it names; a ValueError for a
    cache entry's graph whose files changed after the entry was written."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file '{onnx_path}' does not exist; call export() or pass onnx_path=None.")
    recorded = _recorded_digests(onnx_path)
    if recorded is not None:
        return recorded
    return {name: file_digest(onnx_path.parent / name) for name in [onnx_path.name, *_external_data_names(onnx_path)]}


def _recorded_digests(onnx_path: Path) -> dict[str, str] | None:
    """The digests an export entry's manifest holds for the graph and its data files (every file of the entry but its
    JSON records and other graphs), or None for a folder that is not a complete entry; a ValueError naming the file for
    an entry whose files changed after it was written."""
    folder = onnx_path.parent
    if not is_complete(folder) or not (folder / MANIFEST).is_file():
        return None
    problem = verify_entry(folder)  # (by size and mtime; a file changed since is hashed again)
    if problem is not None:  # a cache entry changed after it was written: not compiled as if it were the export
        raise ValueError(
            f"{problem.message()} To compile a graph you edited, copy the .onnx file and its data files (not the entry's "
            "records) into a new folder and pass that path."
        )
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if onnx_path.name not in files:
        return None
    names = [onnx_path.name] + [n for n in files if _is_data_file(n) and n != onnx_path.name]
    try:
        if any((folder / n).stat().st_size != int(files[n]["size"]) for n in names):
            return None
        return {n: str(files[n]["sha256"]) for n in names}
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _is_data_file(name: str) -> bool:
    """A file of an export entry that a graph may name as external data (not a record, another graph or a nested
    artifact's file)."""
    return "/" not in name and not name.startswith(".") and Path(name).suffix not in (".json", ".onnx")


def _external_data_names(onnx_path: Path) -> list[str]:
    """The external-data files the graph names (its tensors' ``location``), each beside it."""
    import onnx  # not at run time

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf's decode errors have no common class
        raise ValueError(f"'{onnx_path}' is not an ONNX model ({type(err).__name__}: {err}); pass the .onnx file export() wrote.") from None
    names: set[str] = set()
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            names.update(e.value for e in tensor.external_data if e.key == "location")
    missing = sorted(n for n in names if not (onnx_path.parent / n).is_file())
    if missing:
        raise FileNotFoundError(f"'{onnx_path}' names external data files that are not beside it: {', '.join(missing)}.")
    return sorted(names)


def _tensors(graph):
    """Every tensor of ``graph`` and of its subgraphs: initializers and attribute values."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)
