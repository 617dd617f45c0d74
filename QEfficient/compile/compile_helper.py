"""QEfficient's legacy ``QEfficient.compile(onnx_path, qpc_path, num_cores, ...)``: build the runtime
artifact from an exported decoder graph alone, without the model object.

The cache geometry (layers, KV heads, head size, vocabulary, KV dtype) is read from the graph's
inputs and outputs. The artifact is built as ``<qpc_path>/qpc-<hash>`` (cached like any other) and
``<qpc_path>/qpcs`` points to it: QEfficient's documented path for ``execute --qpc_path``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import onnx

from QEfficient.compile.ort_cpu import build_artifact, warn_ignored_options, warn_once
from QEfficient.compile.weight_compression import compress_matmul_weights
from QEfficient.export.graph_names import CONV_STATE, INPUT_IDS, LOGITS, SSM_STATE, past_names, recurrent_state_names
from QEfficient.export.graph_specs import decoder_specializations
from QEfficient.utils.checks import check_positive

_ONNX_KV_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}


def _static_dim(value_info, axis: int, what: str) -> int:
    dim = value_info.type.tensor_type.shape.dim[axis]
    if not dim.HasField("dim_value"):
        raise ValueError(f"{what}: axis {axis} of '{value_info.name}' is not a fixed size in the graph.")
    return int(dim.dim_value)


def empty_inputs(onnx_path: Path) -> dict[str, list]:
    """{input: [numpy dtype name, dims]} of a graph's inputs holding nothing (every dynamic dim 0): what a runtime
    that never opens the graph (a vision graph compile(skip_vision=True) leaves out) feeds for "no image"."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    return {
        i.name: [
            onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name,
            [d.dim_value if d.HasField("dim_value") else 0 for d in i.type.tensor_type.shape.dim],
        ]
        for i in model.graph.input
    }


def graph_geometry(onnx_path: Path) -> dict[str, Any]:
    """num_layers, KV heads, head size, KV dtype and vocabulary size of a retained-state decoder graph."""
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except OSError:
        raise
    except Exception as err:  # protobuf's DecodeError, onnx's parse error: not an ONNX file
        raise ValueError(f"'{onnx_path}' is not an ONNX file ({type(err).__name__}): pass the .onnx that export wrote.") from None
    inputs = {i.name: i for i in model.graph.input}
    outputs = {o.name: o for o in model.graph.output}
    num_layers = sum(1 for name in inputs if name.startswith(past_names(1)[0][:-1]))  # "past_key."
    past = past_names(num_layers)[0::2]
    # recurrent (state-space, hybrid) layers: conv_state.i, and ssm_state.i where the layer has a scan
    n_state_layers = sum(1 for name in inputs if name.startswith(f"{CONV_STATE}."))
    states = recurrent_state_names([f"{SSM_STATE}.{i}" in inputs for i in range(n_state_layers)])
    if not (past or states) or any(p not in inputs for p in past + states) or LOGITS not in outputs or INPUT_IDS not in inputs:
        raise ValueError(
            f"'{onnx_path}' is not a decoder graph exported by QEfficient (expected inputs input_ids, position_ids, "
            "past_key.N / past_value.N and an output logits). Export it with QEfficient.export(...) or "
            "`python -m QEfficient.cloud.export`."
        )
    state_shapes = {name: [_static_dim(inputs[name], axis, str(onnx_path)) for axis in range(1, _rank(inputs[name]))] for name in states}
    state_dtype = _ONNX_KV_DTYPES.get(inputs[states[0]].type.tensor_type.elem_type, "float32") if states else None
    if not past:  # a pure state-space model: no KV cache
        geometry = {"num_layers": 0, "n_kv": 1, "head_dim": 1, "kv_dtype": state_dtype, "state_dtype": state_dtype}
        return {**geometry, "vocab_size": _static_dim(outputs[LOGITS], 2, str(onnx_path)), "state_shapes": state_shapes}
    key = inputs[past[0]]
    elem = key.type.tensor_type.elem_type
    if elem not in _ONNX_KV_DTYPES:
        raise ValueError(f"'{onnx_path}': KV cache type {onnx.TensorProto.DataType.Name(elem)} is not supported (float32 or float16).")
    return {
        "num_layers": len(past),
        "n_kv": _static_dim(key, 1, str(onnx_path)),
        "head_dim": _static_dim(key, 3, str(onnx_path)),
        "kv_dtype": _ONNX_KV_DTYPES[elem],
        "vocab_size": _static_dim(outputs[LOGITS], 2, str(onnx_path)),
        "state_shapes": state_shapes,
        "state_dtype": state_dtype,
    }


def _rank(value_info) -> int:
    return len(value_info.type.tensor_type.shape.dim)


def compile(  # noqa: A001 - QEfficient's public name
    onnx_path: str | os.PathLike,
    qpc_path: str | os.PathLike,
    num_cores: int = 16,
    device_group: list[int] | None = None,
    aic_enable_depth_first: bool = False,
    mos: int = -1,
    batch_size: int = 1,
    prompt_len: int = 32,
    ctx_len: int = 128,
    mxfp6: bool = True,
    mxint8: bool = False,
    custom_io_file_path: str | None = None,
    full_batch_size: int | None = None,
    allow_mxint8_mdp_io: bool = False,
    enable_qnn: bool = False,
    qnn_config: str | None = None,
    **kwargs,
) -> str:
    """Build the artifact for ``onnx_path`` under ``qpc_path``; returns ``<qpc_path>/qpcs``.

    As QEfficient's function, ``mxfp6`` defaults to True (8-bit MatMul weights here, see
    docs/performance.md). The KV cache type is fixed by the graph: ``mxint8=True`` needs a graph
    exported with ``mxint8_kv_cache`` (float16 cache); on a float32 graph it warns and keeps float32.
    """
    onnx_path, qpc_path = Path(onnx_path).expanduser(), Path(qpc_path).expanduser()  # (a quoted '~' too)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file '{onnx_path}' does not exist; export the model first (QEfficient.export or cloud.export).")
    if full_batch_size and batch_size != 1:
        raise ValueError("Only either batch_size or full_batch_size should be greater than one")
    check_positive(num_cores=num_cores, batch_size=batch_size, prompt_len=prompt_len, ctx_len=ctx_len)
    if prompt_len > ctx_len:
        raise ValueError(f"prompt_len ({prompt_len}) must not exceed ctx_len ({ctx_len}).")
    link = Path(qpc_path) / "qpcs"
    if link.exists() and not link.is_symlink():  # before anything is built
        raise FileExistsError(f"'{link}' exists and is not a link this function made; remove it or pick another qpc_path.")
    geometry = graph_geometry(onnx_path)
    if mxint8 and geometry["kv_dtype"] == "float32":
        warn_once(
            "legacy-mxint8",
            "mxint8=True: the KV cache type is fixed when the graph is exported, and this graph's cache is float32. "
            "Export with `python -m QEfficient.cloud.export --mxint8_kv_cache` for a float16 cache; compiling with float32.",
        )
    if device_group is not None and len(device_group) > 1:
        warn_once("legacy-devices", "device_group with more than one device has no meaning on the ONNX Runtime CPU backend.")
    if custom_io_file_path:
        warn_once("legacy-custom-io", "custom_io_file_path (Cloud AI 100 custom IO) is ignored: the graph's own types are used.")
    ignored = {
        **kwargs,
        "aic_enable_depth_first": aic_enable_depth_first,
        "mos": mos not in (None, -1, 1) and mos,
        "allow_mxint8_mdp_io": allow_mxint8_mdp_io,
        "enable_qnn": enable_qnn,
        "qnn_config": qnn_config,
    }
    warn_ignored_options("QEfficient.compile()", ignored)

    continuous = full_batch_size is not None
    rows = full_batch_size if continuous else batch_size
    exported = onnx_path.parent / "hashed_export_params.json"
    export_params = json.loads(exported.read_text()) if exported.is_file() else {}
    manifest = {
        "num_layers": geometry["num_layers"],
        "kv_shape": [rows, geometry["n_kv"], ctx_len, geometry["head_dim"]],
        "continuous_batching": continuous,
        "kv_dtype": geometry["kv_dtype"],
        "vocab_size": geometry["vocab_size"],
        "num_cores": num_cores,
        "model_name": onnx_path.stem,
        "architecture": export_params.get("transformers_class"),
        "eos_token_id": None,  # the tokenizer's, as QEfficient's legacy flow
        "local_model_dir": None,
    }
    if geometry["state_shapes"]:  # recurrent states, one row per sequence like the cache
        manifest |= {"states": {n: [rows, *shape] for n, shape in geometry["state_shapes"].items()}, "state_dtype": geometry["state_dtype"]}
    params = {
        "backend": "onnxruntime-cpu",
        "prefill_seq_len": prompt_len,
        "ctx_len": ctx_len,
        "batch_size": batch_size,
        "full_batch_size": full_batch_size,
        "mxfp6_matmul": bool(mxfp6),
        "mxint8_kv_cache": geometry["kv_dtype"] == "float16",
        "compiler_options": sorted(k for k, v in ignored.items() if v),
    }
    qpc_root = Path(qpc_path)
    entry = build_artifact(
        onnx_path,
        qpc_root,
        manifest,
        params,
        decoder_specializations(prompt_len, ctx_len, batch_size, full_batch_size),
        rewrite=compress_matmul_weights if mxfp6 else None,
    )
    tmp_link = qpc_root / f".qpcs-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(entry.name, target_is_directory=True)
    try:
        os.replace(tmp_link, link)  # atomic: a reader sees the old artifact or the new one
    except OSError:
        tmp_link.unlink(missing_ok=True)
        raise
    return str(link)
