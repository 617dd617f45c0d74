"""ONNX export of the retained-state module, cached under QEFF_HOME.

One graph serves prefill and decode: batch, sequence and context lengths are dynamic axes, and
compile() records the concrete shapes as specializations.

Exporter choice (measured on SmolLM2-135M, 2 cores): the TorchScript exporter takes 11-16 s a
graph, the dynamo exporter 53-80 s. TorchScript is the default (QEfficient's default too,
``dynamo=False``); the wrapper feeds the LM head a 2-D tensor so the exported ``Gemm`` reads the
tied embedding matrix directly and the weight is stored once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import onnx
import torch

from QEfficient.export.graph_names import ATTENTION_MASK, CTX_LEN_AXIS, IMAGE_IDX, INPUT_IDS, VISION_EMBEDS
from QEfficient.export.graph_specs import (
    DecoderGraphSpec,
    EncoderGraphSpec,
    ImageTextDecoderGraphSpec,
    SpeculativeDecoderGraphSpec,
    VisionGraphSpec,
)
from QEfficient.export.lean_passes import lean_exporter_passes, name_numbered_values
from QEfficient.export.media_graph_specs import ImageEncoderGraphSpec
from QEfficient.export.retained_outputs import drop_retained_casts, scatter_cache_rows
from QEfficient.export.seq2seq_graph_specs import Seq2SeqDecoderGraphSpec, SpeechDecoderGraphSpec, SpeechEncoderGraphSpec
from QEfficient.export.shape_folding import fold_reshape_shapes, read_only_as_weights
from QEfficient.utils.cache import build_entry, hash_dict, source_digest, verify_entry
from QEfficient.utils.extras import require_extra
from QEfficient.utils.memory import folder_bytes, release_freed_memory
from QEfficient.utils.onnx_files import graph_input_names, save_with_external_weights, weight_stub

logger = logging.getLogger(__name__)

# Bump when the exported graph changes for the same inputs (it invalidates every cached export).
GRAPH_VERSION = 9
# Stages that never change a graph or an artifact: their sources stay out of the cache key.
_RUN_TIME_PACKAGES = ("runtime", "generation", "serving", "cloud", "distributed")
OPSET = 17
# torch.onnx keeps the state of an export in module globals (it asserts that no other export is under
# way), so exports from several threads take turns.
_EXPORT_LOCK = threading.Lock()


# The decoder graph's names (kept under its former name for callers of this module).
KVGraphIO = DecoderGraphSpec


def decoder_spec(qeff_module) -> DecoderGraphSpec:
    """The decoder graph of a QEffCausalLM: its KV layers and, for recurrent/hybrid models, its state layers."""
    return DecoderGraphSpec(qeff_module.num_layers, state_layers=tuple(getattr(qeff_module, "state_layers", ())))


def example_inputs(qeff_module, kv_dtype: torch.dtype | None = None, batch_size: int = 2, seq_len: int = 4, ctx_len: int = 16) -> tuple:
    """Trace-time inputs of the decoder graph (see DecoderGraphSpec.dummy_inputs)."""
    return decoder_spec(qeff_module).dummy_inputs(qeff_module, kv_dtype, batch_size, seq_len, ctx_len)


def export_onnx(qeff_module, out_dir: Path, model_name: str, dynamo: bool = False, kv_dtype: torch.dtype | None = None) -> Path:
    """Export ``qeff_module`` (a QEffCausalLM) to ``out_dir/<model_name>.onnx``; returns the path."""
    if dynamo:
        require_extra("dynamo", "export(dynamo=True)")
    io = decoder_spec(qeff_module)
    onnx_path = out_dir / f"{model_name}.onnx"
    args = io.dummy_inputs(qeff_module, kv_dtype)
    qeff_module.eval()
    if not dynamo:
        torchscript_export(qeff_module, args, onnx_path, io.input_names, io.output_names, io.dynamic_axes())
        return onnx_path
    batch = torch.export.Dim("batch_size", min=1)
    seq = torch.export.Dim("seq_len", min=1)
    ctx = torch.export.Dim(CTX_LEN_AXIS, min=2)
    axes = io.dynamic_axes()  # the KV cache has a ctx_len axis, recurrent states only a batch axis
    retained_shapes = tuple({0: batch, 2: ctx} if 2 in axes[n] else {0: batch} for n in io.past_names)
    shapes = ({0: batch, 1: seq}, {0: batch, 1: seq}, retained_shapes)
    return _dynamo(qeff_module, args, onnx_path, io.input_names, io.output_names, shapes)


def _dynamo(module, args: tuple, onnx_path: Path, input_names: list[str], output_names: list[str], shapes: tuple) -> Path:
    with _EXPORT_LOCK, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dynamo exporter's warnings
        torch.onnx.export(
            module,
            args,
            str(onnx_path),
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=shapes,
            dynamo=True,
            opset_version=18,
            external_data=True,
        )
    return onnx_path


def dynamo_export(module, args: tuple, onnx_path: Path, input_names: list[str], output_names: list[str], what: str) -> Path:
    """The dynamo exporter, the first axis of every input dynamic (a batch), for a module the TorchScript exporter
    fails on; ``what`` names the model in the error that asks for the extra."""
    require_extra("dynamo", what)
    batch = torch.export.Dim("batch_size", min=1)
    return _dynamo(module.eval(), args, onnx_path, input_names, output_names, tuple({0: batch} for _ in args))


_GRAPH_SHAPE_PASS = "_jit_pass_onnx_graph_shape_type_inference"


@contextlib.contextmanager
def _without_graph_shape_pass() -> Iterator[None]:
    """The TorchScript exporter without its whole-graph shape and type pass (entered under _EXPORT_LOCK).

    That pass (run twice per export) copies every weight a node reads into a protobuf to infer the
    node's output, seconds per GB of weights (docs/performance.md); the shapes it would record are
    not kept (shape folding infers its own), the per-node inference during conversion still runs, and
    the exported nodes are the same."""
    original = getattr(torch._C, _GRAPH_SHAPE_PASS, None)
    if original is None:  # another torch: nothing to skip
        yield
        return
    setattr(torch._C, _GRAPH_SHAPE_PASS, lambda *args, **kwargs: None)
    try:
        yield
    finally:
        setattr(torch._C, _GRAPH_SHAPE_PASS, original)


_DEDUPLICATE_PASS = "_jit_pass_onnx_deduplicate_initializers"


@contextlib.contextmanager
def _weights_kept_out(weights: dict[str, torch.Tensor]) -> Iterator[None]:
    """The TorchScript exporter writing its graph without the weights (entered under _EXPORT_LOCK).

    Its last pass before serializing deduplicates the weights (tied ones become one); the weights it
    returns are put into ``weights`` and the exporter gets none, so the graph it writes names them as
    inputs, and fold_shapes_and_store_weights_outside writes them from torch's memory. Serialized, they
    would be copied three to four times over (torch's protobuf, its bytes, torch's own parse of them,
    onnx.load): a transient peak of several times the weights."""
    original = getattr(torch._C, _DEDUPLICATE_PASS, None)
    if original is None:  # another torch: the weights stay in the protobuf
        yield
        return

    def capture(*args, **kwargs):
        weights.update(original(*args, **kwargs))
        return {}

    setattr(torch._C, _DEDUPLICATE_PASS, capture)
    try:
        yield
    finally:
        setattr(torch._C, _DEDUPLICATE_PASS, original)


@contextlib.contextmanager
def _short_rope_frequencies(module) -> Iterator[None]:
    """Longrope rotary embeddings traced with the short factors they were built with, without transformers' frequency
    update (an in-place copy the exporter cannot take): what transformers computes for a sequence within
    original_max_position_embeddings, the longest a compile takes (models/base.py longrope_short_positions)."""
    longrope = [m for m in module.modules() if getattr(m, "rope_type", None) == "longrope" and hasattr(m, "original_inv_freq")]
    for m in longrope:
        m.inv_freq, m.rope_type = m.original_inv_freq, "default"
    try:
        yield
    finally:
        for m in longrope:
            m.rope_type = "longrope"


def torchscript_export(module, args: tuple, onnx_path: Path, input_names: list[str], output_names: list[str], axes: dict) -> Path:
    """The TorchScript exporter with dynamic axes, then shape folding and external weights."""
    module.eval()
    weights: dict[str, torch.Tensor] = {}
    with (
        _EXPORT_LOCK,
        torch.no_grad(),
        warnings.catch_warnings(),
        _without_graph_shape_pass(),
        _weights_kept_out(weights),
        lean_exporter_passes(),
        _short_rope_frequencies(module),
    ):
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
    fold_shapes_and_store_weights_outside(onnx_path, weights)
    return onnx_path


def export_speculative_onnx(qeff_module, out_dir: Path, model_name: str, kv_dtype: torch.dtype | None = None) -> Path:
    """Export a QEffSpeculativeCausalLM: the decoder graph with logits for every chunk position."""
    spec = SpeculativeDecoderGraphSpec(qeff_module.num_layers)
    args = spec.dummy_inputs(qeff_module, kv_dtype)
    return torchscript_export(qeff_module, args, out_dir / f"{model_name}.onnx", spec.input_names, spec.output_names, spec.dynamic_axes())


def export_encoder_onnx(module, out_dir: Path, model_name: str, output_name: str) -> Path:
    """Export a QEffEncoder: inputs input_ids/attention_mask (/token_type_ids, /a Longformer's global_attention_mask)
    [batch, seq], one output, dynamic axes."""
    # a document model's boxes and page image, MarkupLM's XPaths (other encoders, the dual encoders' text towers, have none)
    defaults = (("layout", False), ("image_size", None), ("float_boxes", False), ("xpath_depth", None))
    page = {name: getattr(module, name, default) for name, default in defaults}
    values = EncoderGraphSpec(output_name, token_types=module.token_types, global_attention=module.global_attention, **page).dummy_inputs(
        module.example_length
    )
    # ids and mask by position, the optional inputs by name (the module's keywords are transformers' input names)
    positional, named = (values.pop(INPUT_IDS), values.pop(ATTENTION_MASK)), values
    with torch.no_grad():
        pooled = module.eval()(*positional, **named).dim() == 2
    spec = EncoderGraphSpec(output_name, pooled, module.token_types, module.global_attention, **page)
    args = positional + ((named,) if named else ())
    path = torchscript_export(module, args, out_dir / f"{model_name}.onnx", list(spec.input_names), spec.output_names, spec.dynamic_axes())
    if ATTENTION_MASK not in graph_input_names(path) and not module.unmasked:  # traced away: padding attended to
        raise ValueError(
            f"{type(module.hf).__name__}'s graph does not read the attention mask (its attention was traced without it), so "
            "padded inputs would give other outputs than transformers: this architecture is not supported as an encoder."
        )
    return path


def export_image_encoder_onnx(
    module, out_dir: Path, model_name: str, output_name: str, height: int, width: int, more_outputs: tuple[str, ...] = ()
) -> Path:
    """Export a QEffImageEncoder: pixel_values [batch, channels, height, width] -> its output (and ``more_outputs``: a
    detector's boxes), batch dynamic."""
    spec = ImageEncoderGraphSpec(output_name, more_outputs)
    args = spec.dummy_inputs(module.num_channels, height, width)
    with module.fixed_positions(height, width):  # the position table at this size: a constant of the graph
        path = out_dir / f"{model_name}.onnx"
        return torchscript_export(module, args, path, list(spec.input_names), spec.output_names, spec.dynamic_axes())


def export_vision_onnx(module, out_dir: Path, model_name: str, img_size: int) -> Path:
    """Export a QEffVisionEncoder: its adapter's vision inputs -> vision_embeds [num_images, tokens, hidden]."""
    example = module.adapter.vision_example(module.hf.config, img_size)
    spec = VisionGraphSpec(tuple(example), module.adapter.vision_axes())
    return torchscript_export(
        module,
        tuple(example.values()),
        out_dir / f"{model_name}.onnx",
        list(spec.input_names),
        list(spec.output_names),
        spec.dynamic_axes(),
    )


def export_image_text_decoder_onnx(module, out_dir: Path, model_name: str, kv_dtype: torch.dtype | None = None) -> Path:
    """Export a QEffImageTextDecoder: the retained-state graph plus vision_embeds / image_idx (and
    the adapter's extra inputs) in, image_idx_output out."""
    extra = module.vision_adapter.decoder_example(2, 4)
    spec = ImageTextDecoderGraphSpec(module.num_layers, tuple(extra), state_layers=module.state_layers)
    ids, pos, *past = spec.dummy_inputs(module, kv_dtype)
    ids[:, 1] = module.image_token_id
    embeds = module.vision_adapter.embeds_example(2, module.embedding_width)
    dummies = {VISION_EMBEDS: embeds, IMAGE_IDX: torch.zeros(2, 1, dtype=torch.int64), **extra}
    args = (ids, pos, *dummies.values(), *past)
    axes = {**spec.dynamic_axes(), **module.vision_adapter.decoder_axes()}
    return torchscript_export(module, args, out_dir / f"{model_name}.onnx", spec.input_names, spec.output_names, axes)


def export_speech_encoder_onnx(module, out_dir: Path, model_name: str) -> Path:
    """Export a QEffWhisperEncoder: input_features -> cross_key.i / cross_value.i."""
    spec = SpeechEncoderGraphSpec(module.num_layers)
    args = spec.dummy_inputs(module.config)
    return torchscript_export(module, args, out_dir / f"{model_name}.onnx", list(spec.input_names), spec.output_names, spec.dynamic_axes())


def export_speech_decoder_onnx(module, out_dir: Path, model_name: str, kv_dtype: torch.dtype | None = None) -> Path:
    """Export a QEffWhisperDecoder: the retained-state decoder step reading the cross keys/values."""
    spec = SpeechDecoderGraphSpec(module.num_layers, alignment_heads=module.alignment_heads)
    args = spec.dummy_inputs(module, kv_dtype)
    path = torchscript_export(module, args, out_dir / f"{model_name}.onnx", spec.input_names, spec.output_names, spec.dynamic_axes())
    return _with_row_scatters(path)


def _with_row_scatters(onnx_path: Path) -> Path:
    """The cache scatters of a graph no compile-time fusion reads as ScatterND of whole rows (retained_outputs.py);
    the weights file is left as written."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    if scatter_cache_rows(model):
        onnx.save(model, str(onnx_path))
    return onnx_path


def export_seq2seq_encoder_onnx(module, out_dir: Path, model_name: str) -> Path:
    """Export a QEffSeq2SeqEncoder: its graph spec's inputs (input_ids, attention_mask; LED's global_attention_mask too)
    -> cross_key.i / cross_value.i."""
    spec = module.graph_spec()
    args = module.dummy_inputs()
    return torchscript_export(module, args, out_dir / f"{model_name}.onnx", list(spec.input_names), spec.output_names, spec.dynamic_axes())


def export_seq2seq_decoder_onnx(module, out_dir: Path, model_name: str) -> Path:
    """Export a QEffSeq2SeqDecoder: the retained-state decoder step reading the encoder's mask and cross keys/values."""
    spec = Seq2SeqDecoderGraphSpec(module.num_layers, shared_cross=module.shared_cross)
    args = spec.dummy_inputs(module)
    path = torchscript_export(module, args, out_dir / f"{model_name}.onnx", spec.input_names, spec.output_names, spec.dynamic_axes())
    return _with_row_scatters(path)


def export_vision_seq2seq_encoder_onnx(module, out_dir: Path, model_name: str) -> Path:
    """Export a QEffVisionSeq2SeqEncoder (or another image encoder-decoder's): its graph spec's inputs (pixel_values,
    Pix2Struct's patches, Florence-2's prompt and pixels) -> cross_key.i / cross_value.i."""
    spec = module.graph_spec()
    args = module.dummy_inputs()
    return torchscript_export(module, args, out_dir / f"{model_name}.onnx", list(spec.input_names), spec.output_names, spec.dynamic_axes())


def export_ctc_onnx(module, out_dir: Path, model_name: str) -> Path:
    """Export a QEffCTC: input_values [batch, samples] (or a spectrogram model's input_features and their mask) ->
    logits [batch, frames, vocab]."""
    spec = module.spec
    args = spec.dummy_inputs(module.config)
    return torchscript_export(
        module, args, out_dir / f"{model_name}.onnx", list(spec.input_names), list(spec.output_names), spec.dynamic_axes()
    )


class WeightsOffloadedError(RuntimeError):
    pass


def fold_shapes_and_store_weights_outside(onnx_path: Path, weights: dict[str, torch.Tensor] | None = None) -> None:
    """Fold the traced shape arithmetic (see shape_folding.py), and keep the weights in
    ``<name>.onnx.data`` beside the graph (see save_with_external_weights). ``weights``: the ones the
    exporter left out of the graph (_weights_kept_out), which name them as inputs; they become
    initializers again, written from these tensors' memory."""
    model = onnx.load(str(onnx_path))
    renamed = name_numbered_values(model)  # the names lean_exporter_passes left to the graph
    weights = {renamed.get(name, name): t for name, t in (weights or {}).items()}
    arrays = {name: _as_numpy(t) for name, t in weights.items()}
    if arrays:
        inputs = [i for i in model.graph.input if i.name not in arrays]
        del model.graph.input[:]
        model.graph.input.extend(inputs)
        types = {name: _onnx_type(weights[name], array) for name, array in arrays.items()}
        stubs = read_only_as_weights(model, types)  # what shape inference never reads; the rest with its bytes
        for name, array in arrays.items():
            tensor = weight_stub(name, array, types[name])
            if name not in stubs:
                tensor.raw_data = array.tobytes()
            model.graph.initializer.append(tensor)
    fold_reshape_shapes(model, arrays)
    drop_retained_casts(model)
    save_with_external_weights(model, onnx_path, arrays)


def _as_numpy(tensor: torch.Tensor):
    """The tensor's bytes as a numpy array without a copy where it is contiguous (bfloat16 as uint16)."""
    t = tensor.detach().contiguous()
    return (t.view(torch.uint16) if t.dtype == torch.bfloat16 else t).numpy()


def _onnx_type(tensor: torch.Tensor, array) -> int:
    """The ONNX element type of ``tensor``, given its ``_as_numpy`` array."""
    return onnx.TensorProto.BFLOAT16 if tensor.dtype == torch.bfloat16 else onnx.helper.np_dtype_to_tensor_dtype(array.dtype)


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
        "file_name": model_name,  # the graph's file in the entry: two names over one model are two entries
        "graph_version": GRAPH_VERSION,
        "code": source_digest(str(Path(__file__).resolve().parents[1]), _RUN_TIME_PACKAGES),
        "dynamo": dynamo,
        "opset": 18 if dynamo else OPSET,
        "torch": torch.__version__,
        # (a graph written by export_fn names its own cache's dtype in hash_params, as LoRA's and a speculative target's do)
        "kv_cache_dtype": str(kv_dtype or next(qeff_module.parameters()).dtype) if export_fn is None else hash_params.get("kv_cache_dtype"),
    }
    digest = hash_dict(params)
    if export_dir and Path(export_dir).is_file():
        raise ValueError(f"export_dir '{export_dir}' is a file: name a folder (the graph is written to '<export_dir>-<hash>/').")
    base = Path(export_dir).expanduser().absolute() if export_dir else cache_root / arch / model_name  # "" too, as QEfficient reads it
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
        release_freed_memory(folder_bytes(tmp))
        (tmp / "hashed_export_params.json").write_text(json.dumps(params, indent=1, sort_keys=True, default=str))
        logger.info("Exported %s in %.1f s to %s", model_name, time.perf_counter() - start, onnx_path)

    build_entry(entry, build)
    return onnx_path
