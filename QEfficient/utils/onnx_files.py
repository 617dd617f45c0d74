"""Reading exported graphs back with their weights."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import Message

from QEfficient.utils.memory import evict_from_page_cache

# ONNX Runtime maps an external initializer from the file (instead of reading it into its own memory)
# when its offset is a multiple of the page size; then pages of a table that are never read (embedding
# rows no prompt uses) never become resident. Tensors of ALIGN_ABOVE bytes or more are page aligned,
# as ONNX Runtime's own saver does (its align_threshold).
PAGE = 4096
ALIGN_ABOVE = 1 << 20
EXTERNAL_ABOVE = 1024
# Inputs a kernel reads a few rows of per run (embedding tables): the saved file's cached pages of
# these are dropped (see evict_from_page_cache).
ROW_READ_INPUTS = {"Gather": (0,), "GatherBlockQuantized": (0, 2, 3)}


def _initializers(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """A graph's initializers and those of its subgraphs (If / Loop / Scan bodies)."""
    yield from graph.initializer
    for node in graph.node:
        for sub in _subgraphs(node):
            yield from _initializers(sub)


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        yield from [attr.g] if attr.HasField("g") else list(attr.graphs)


def _row_read_names(graph: onnx.GraphProto) -> set[str]:
    """Names of the tensors some ``Gather``-like node of ``graph`` (or of a subgraph) reads rows of."""
    names: set[str] = set()
    for node in graph.node:
        names.update(node.input[i] for i in ROW_READ_INPUTS.get(node.op_type, ()) if i < len(node.input))
        for sub in _subgraphs(node):
            names |= _row_read_names(sub)
    return names


def weight_stub(name: str, array: np.ndarray, data_type: int) -> onnx.TensorProto:
    """An initializer with ``array``'s name, shape and type but not its bytes: save_with_external_weights
    writes them from the array (given in its ``arrays``), so the protobuf never holds a copy."""
    return onnx.TensorProto(name=name, data_type=data_type, dims=array.shape)


def save_with_external_weights(model: onnx.ModelProto, onnx_path: Path, arrays: Mapping[str, np.ndarray] | None = None) -> Path:
    """Save with the weights in ``<name>.onnx.data`` beside the graph, the large ones page aligned:
    ONNX Runtime maps those from the file instead of copying them out of the protobuf, so a session
    holds one copy of the weights (of a table, only the pages it reads); it also lifts protobuf's 2 GB
    limit. ``model``'s initializers are left pointing at the file. The cached pages of the aligned
    tables a ``Gather`` reads rows of are written out and dropped (evict_from_page_cache).
    ``arrays``: the bytes of the initializers that are stubs (weight_stub), by name."""
    onnx_path = Path(onnx_path)
    arrays = arrays or {}
    data = onnx_path.parent / f"{onnx_path.name}.data"
    row_read, tables = _row_read_names(model.graph), []
    offset = 0
    with open(data, "wb") as f:
        for tensor in _initializers(model.graph):
            stub = tensor.name in arrays and not tensor.HasField("raw_data") and tensor.data_location != onnx.TensorProto.EXTERNAL
            if stub:
                raw = memoryview(arrays[tensor.name].reshape(-1).view(np.uint8))
            else:  # each read of a protobuf bytes field copies it (upb): read it once
                raw = tensor.raw_data if tensor.HasField("raw_data") else b""
            size = len(raw)
            if size < EXTERNAL_ABOVE:
                if stub:
                    tensor.raw_data = bytes(raw)
                continue
            if size >= ALIGN_ABOVE and offset % PAGE:
                f.write(bytes(PAGE - offset % PAGE))
                offset += PAGE - offset % PAGE
            f.write(raw)
            del raw
            if tensor.name in row_read and size >= ALIGN_ABOVE:
                tables.append((offset, size))
            _point_at(tensor, data.name, offset, size)
            offset += size
    evict_from_page_cache(data, tables)
    onnx.save_model(model, str(onnx_path))
    data.chmod(0o644)  # the cache is readable by the group, like the graph
    return onnx_path


class _RawBytesOf(Mapping):
    """The bytes of a graph's ``raw_data`` initializers by name, read one at a time when asked for
    (each read is a copy, freed once written)."""

    def __init__(self, initializers: Iterator[onnx.TensorProto]):
        self._tensors = {t.name: t for t in initializers if t.HasField("raw_data")}

    def __getitem__(self, name: str) -> np.ndarray:
        return np.frombuffer(self._tensors[name].raw_data, np.uint8)

    def __contains__(self, name: object) -> bool:  # Mapping's would read (copy) the bytes
        return name in self._tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


def save_copy_with_external_weights(model: onnx.ModelProto, onnx_path: Path) -> Path:
    """save_with_external_weights for a model that stays as it is (its weights in its protobuf).
    Copying the model would copy every weight, and protobuf keeps the bytes of a cleared field
    until the whole message is freed; so the copy is a shell whose top-level initializers are stubs,
    each written from the model's bytes on its own."""
    shell = onnx.ModelProto()
    _copy_fields(model, shell, skip="graph")
    _copy_fields(model.graph, shell.graph, skip="initializer")
    for tensor in model.graph.initializer:
        _copy_fields(tensor, shell.graph.initializer.add(), skip="raw_data")
    return save_with_external_weights(shell, onnx_path, _RawBytesOf(model.graph.initializer))


def _copy_fields(source: Message, target: Message, skip: str) -> None:
    """Every field set in ``source`` but ``skip``, into ``target``."""
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if isinstance(value, Message):
            getattr(target, field.name).CopyFrom(value)
        elif isinstance(value, (str, bytes, int, float)):
            setattr(target, field.name, value)
        else:  # a repeated field
            getattr(target, field.name).extend(value)


def _point_at(tensor: onnx.TensorProto, location: str, offset: int, size: int) -> None:
    """Make ``tensor`` read its bytes from ``location`` (what onnx's set_external_data records; that one
    refuses a stub, which has no bytes to move)."""
    tensor.ClearField("raw_data")
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(size))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = onnx.TensorProto.EXTERNAL


def load_graph_and_weights(path: Path) -> onnx.ModelProto:
    """onnx.load, reading external data ourselves: the export's weight file is hard-linked into
    every uncompressed artifact, and onnx refuses to read a file with several links."""
    model = onnx.load(str(path), load_external_data=False)
    for tensor in _initializers(model.graph):  # subgraphs' too: save_with_external_weights moves them out as well
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = Path(info["location"])
        if location.is_absolute() or ".." in location.parts:
            raise ValueError(f"external data location {location} must stay beside the graph")
        with open(path.parent / location, "rb") as f:
            f.seek(int(info.get("offset", 0)))
            tensor.raw_data = f.read(int(info["length"])) if "length" in info else f.read()
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    return model


def graph_input_names(path: Path) -> list[str]:
    """The graph's input names (its weights are not read)."""
    return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]


def graph_input_dims(path: Path, name: str) -> list[int | str] | None:
    """Input ``name``'s dimensions as the graph declares them (a number, or the name of a free axis), or None where the
    graph has no such input (its weights are not read)."""
    for graph_input in onnx.load(str(path), load_external_data=False).graph.input:
        if graph_input.name == name:
            return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in graph_input.type.tensor_type.shape.dim]
    return None
