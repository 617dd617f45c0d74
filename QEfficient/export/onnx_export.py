"""ONNX export of the retained-state module, cached under QEFF_HOME.

One graph serves prefill and decode: batch, sequence and context lengths are dynamic axes, and
compile() records the concrete shapes as specializations.

Exporter choice (measured on SmolLM2-135M, 2 cores): the TorchScript exporter takes 11-16 s a
graph, the dynamo exporter 53-80 s. TorchScript is the default (QEfficient's default too,
``dynamo=False``); the wrapper feeds the LM head a 2-D tensor so the exported ``Gemm`` reads the
tied embedding matrix directly and the weight is stored once.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from QEfficient.export.shape_folding import fold_reshape_shapes
from QEfficient.utils.cache import build_entry, hash_dict, verify_entry
from QEfficient.utils.extras import require_extra
from QEfficient.utils.memory import release_freed_memory
from QEfficient.utils.onnx_files import save_with_external_weights

logger = logging.getLogger(__name__)

# Bump when the exported graph changes for the same inputs (it invalidates every cached export).
GRAPH_VERSION = 7
OPSET = 17


@dataclass(frozen=True)
class KVGraphIO:
    """Names of the retained-state graph's inputs and outputs."""

    num_layers: int

    @property
    def past_names(self) -> list[str]:
        return [f"past_{kind}.{i}" for i in range(self.num_layers) for kind in ("key", "value")]

    @property
    def input_names(self) -> list[str]:
        return ["input_ids", "position_ids", *self.past_names]

    @property
    def output_names(self) -> list[str]:
        return ["logits", *[f"{n}_RetainedState" for n in self.past_names]]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {
            "input_ids": {0: "batch_size", 1: "seq_len"},
            "position_ids": {0: "batch_size", 1: "seq_len"},
            "logits": {0: "batch_size"},
        }
        for n in self.past_names:
            axes[n] = {0: "batch_size", 2: "ctx_len"}
            axes[f"{n}_RetainedState"] = {0: "batch_size", 2: "ctx_len"}
        return axes


def example_inputs(qeff_module, kv_dtype: torch.dtype | None = None, batch_size: int = 2, seq_len: int = 4, ctx_len: int = 16) -> tuple:
    """Trace-time inputs; no dimension is 1, so no exporter specialises a dynamic axis on it."""
    ids = torch.zeros(batch_size, seq_len, dtype=torch.int64)
    pos = torch.arange(seq_len, dtype=torch.int64)[None].repeat(batch_size, 1)
    pos[1, -1] = -1  # exercise the padding path while tracing
    dtype = kv_dtype or next(qeff_module.parameters()).dtype
    past = [torch.zeros(qeff_module.kv_shape(batch_size, ctx_len), dtype=dtype) for _ in range(2 * qeff_module.num_layers)]
    return (ids, pos, *past)


def export_onnx(qeff_module, out_dir: Path, model_name: str, dynamo: bool = False, kv_dtype: torch.dtype | None = None) -> Path:
    """Export ``qeff_module`` (a QEffCausalLM) to ``out_dir/<model_name>.onnx``; returns the path."""
    if dynamo:
        require_extra("dynamo", "export(dynamo=True)")
    io = KVGraphIO(qeff_module.num_layers)
    onnx_path = out_dir / f"{model_name}.onnx"
    args = example_inputs(qeff_module, kv_dtype)
    qeff_module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        if dynamo:
            batch = torch.export.Dim("batch_size", min=1)
            seq = torch.export.Dim("seq_len", min=1)
            ctx = torch.export.Dim("ctx_len", min=2)
            shapes = ({0: batch, 1: seq}, {0: batch, 1: seq}, tuple({0: batch, 2: ctx} for _ in io.past_names))
            torch.onnx.export(
                qeff_module,
                args,
                str(onnx_path),
                input_names=io.input_names,
                output_names=io.output_names,
                dynamic_shapes=shapes,
                dynamo=True,
                opset_version=18,
                external_data=True,
            )
        else:
            torchscript_export(qeff_module, args, onnx_path, io.input_names, io.output_names, io.dynamic_axes())
    return onnx_path


def torchscript_export(module, args: tuple, onnx_path: Path, input_names: list[str], output_names: list[str], axes: dict) -> Path:
    """The TorchScript exporter with dynamic axes, then shape folding and external weights."""
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings
        torch.onnx.export(
            module,
            args,
            str(onnx_path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    fold_shapes_and_store_weights_outside(onnx_path)
    return onnx_path


def export_encoder_onnx(module, out_dir: Path, model_name: str, output_name: str) -> Path:
    """Export a QEffEncoder: inputs input_ids/attention_mask [batch, seq], one output, dynamic axes."""
    ids = torch.zeros(2, 8, dtype=torch.int64)
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, 5:] = 0
    with torch.no_grad():
        pooled = module.eval()(ids, mask).dim() == 2
    axes = {
        "input_ids": {0: "batch_size", 1: "seq_len"},
        "attention_mask": {0: "batch_size", 1: "seq_len"},
        output_name: {0: "batch_size"} if pooled else {0: "batch_size", 1: "seq_len"},
    }
    return torchscript_export(module, (ids, mask), out_dir / f"{model_name}.onnx", ["input_ids", "attention_mask"], [output_name], axes)


def export_vision_onnx(module, out_dir: Path, model_name: str, img_size: int) -> Path:
    """Export a QEffVisionEncoder: its adapter's vision inputs -> vision_embeds [num_images, tokens, hidden]."""
    example = module.adapter.vision_example(module.hf.config, img_size)
    return torchscript_export(
        module, tuple(example.values()), out_dir / f"{model_name}.onnx", list(example), ["vision_embeds"], module.adapter.vision_axes()
    )


def export_image_text_decoder_onnx(module, out_dir: Path, model_name: str, kv_dtype: torch.dtype | None = None) -> Path:
    """Export a QEffImageTextDecoder: the retained-state graph plus vision_embeds / image_idx (and
    the adapter's extra inputs) in, image_idx_output out."""
    io = KVGraphIO(module.num_layers)
    ids, pos, *past = example_inputs(module, kv_dtype)
    ids[:, 1] = module.image_token_id
    extra = module.vision_adapter.decoder_example(*ids.shape)
    args = (ids, pos, torch.zeros(2, 3, module.config.hidden_size), torch.zeros(2, 1, dtype=torch.int64), *extra.values(), *past)
    axes = {
        **io.dynamic_axes(),
        **module.vision_adapter.decoder_axes(),
        "vision_embeds": {0: "vision_batch", 1: "vision_size"},
        "image_idx": {0: "batch_size"},
        "image_idx_output": {0: "batch_size"},
    }
    inputs = ["input_ids", "position_ids", "vision_embeds", "image_idx", *extra, *io.past_names]
    outputs = ["logits", "image_idx_output", *io.output_names[1:]]
    return torchscript_export(module, args, out_dir / f"{model_name}.onnx", inputs, outputs, axes)


class WeightsOffloadedError(RuntimeError):
    pass


def fold_shapes_and_store_weights_outside(onnx_path: Path) -> None:
    """Fold the traced shape arithmetic (see shape_folding.py), and keep the weights in
    ``<name>.onnx.data`` beside the graph (see save_with_external_weights)."""
    model = onnx.load(str(onnx_path))
    fold_reshape_shapes(model)
    save_with_external_weights(model, onnx_path)


def cached_export(
    qeff_module,
    hash_params: dict,
    model_name: str,
    arch: str,
    export_dir: str | Path | None,
    cache_root: Path,
    dynamo: bool = False,
    weights_available: bool = True,
    kv_dtype: torch.dtype | None = None,
    export_fn: Callable[[Path], Path] | None = None,
) -> Path:
    """Export unless an intact entry for the same hash exists (a damaged one is exported again); the
    entry is written atomically, by one process at a time (see utils/cache.py).

    ``export_fn(tmp_dir)`` writes ``<model_name>.onnx`` for other graph kinds (encoders); the
    default writes the retained-state decoder graph.
    """
    params = {
        **hash_params,
        "graph_version": GRAPH_VERSION,
        "dynamo": dynamo,
        "opset": 18 if dynamo else OPSET,
        "torch": torch.__version__,
        "kv_cache_dtype": str(kv_dtype or next(qeff_module.parameters()).dtype) if export_fn is None else None,
    }
    digest = hash_dict(params)
    base = Path(export_dir) if export_dir is not None else cache_root / arch / model_name
    entry = base.parent / f"{base.name}-{digest}"
    onnx_path = entry / f"{model_name}.onnx"
    problem = verify_entry(entry)
    if problem is None and onnx_path.is_file():
        logger.info("Reusing the exported graph at %s", onnx_path)
        return onnx_path
    if not weights_available:
        what = problem.describe() if problem is not None and problem.damaged else f"No exported graph at {entry}."
        raise WeightsOffloadedError(f"{what} There are no weights to export it from.")

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        if export_fn is not None:
            export_fn(tmp)
        else:
            export_onnx(qeff_module, tmp, model_name, dynamo=dynamo, kv_dtype=kv_dtype)
        release_freed_memory()
        (tmp / "hashed_export_params.json").write_text(json.dumps(params, indent=1, sort_keys=True, default=str))
        logger.info("Exported %s in %.1f s to %s", model_name, time.perf_counter() - start, onnx_path)

    build_entry(entry, build)
    return onnx_path
