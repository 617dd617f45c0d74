"""Reading exported graphs back with their weights."""

from __future__ import annotations

from pathlib import Path

import onnx


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
