"""Reading exported graphs back with their weights."""

from __future__ import annotations

from pathlib import Path

import onnx


def save_with_external_weights(model: onnx.ModelProto, onnx_path: Path) -> Path:
    """Save with the weights in ``<name>.onnx.data`` beside the graph: ONNX Runtime maps external
    data from the file instead of copying it out of the protobuf, so a session holds one copy of the
    weights; it also lifts protobuf's 2 GB limit."""
    onnx.save_model(
        model,
        str(onnx_path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{onnx_path.name}.data",
        size_threshold=1024,
    )
    (onnx_path.parent / f"{onnx_path.name}.data").chmod(0o644)  # onnx writes it private; the cache is readable
    return onnx_path


def load_graph_and_weights(path: Path) -> onnx.ModelProto:
    """onnx.load, reading external data ourselves: the export's weight file is hard-linked into
    every uncompressed artifact, and onnx refuses to read a file with several links."""
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
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
