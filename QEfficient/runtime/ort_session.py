"""Stage 5: an ONNX Runtime session over a retained-state graph, with the KV cache kept in place.

Two things keep a step's cost down to what the sequence needs:

* **In place.** Each ``past_*`` tensor is one buffer bound both as the graph input and as its
  ``*_RetainedState`` output. Nothing reads the input after the graph's scatter, so the scatter
  writes into the buffer it reads from and no step copies or re-feeds the cache (ONNX Runtime's
  CPU scatter kernels skip their input copy when source and destination coincide;
  tests/test_runtime.py guards that the result stays exact).
* **Window.** The graph's cache length is a dynamic axis, and attention covers every slot it is
  given. So the session binds only a prefix of ``W`` slots, ``W`` the smallest rung of a ladder
  (128, 256, 512, ... up to ``ctx_len``) that holds every position of the step. Each buffer is
  laid out for the current ``W`` (``[B, H, W, D]`` contiguous at the start of a ``ctx_len``-sized
  allocation); growing to the next rung moves the rows once, in place. A step at position 150
  costs the same whether ``ctx_len`` is 256 or 4096.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from QEfficient.compile.ort_cpu import ARTIFACT_GRAPH, read_artifact, warn_once
from QEfficient.export.graph_names import INPUT_IDS, LANGUAGE_SIDE_INPUTS, LOGITS, POSITION_IDS, past_names, retained
from QEfficient.runtime.cpu_features import X64_QUANT_PRECISION, int8_pair_sums_saturate
from QEfficient.runtime.devices import CPU, Device, current_device
from QEfficient.runtime.kv_storage import DeviceKVStorage, HostKVStorage, KVStorage, bind_in_place
from QEfficient.runtime.resident_memory import reclaiming_mapped_pages, release_mapped_pages, return_freed_heap

logger = logging.getLogger(__name__)

FIRST_WINDOW = 128


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


SPIN_WITHIN_RUN = "run"


def session_options(num_cores: int, spin: bool | str = True) -> ort.SessionOptions:
    """``spin=False`` for a session that runs once and then waits (a vision encoder): its idle threads
    must not spin on the cores the language session needs next. ``spin="run"`` (SPIN_WITHIN_RUN):
    threads spin between the operators of a run and stop when it returns, for sessions that take
    turns (a speculative draft and its target)."""
    opts = ort.SessionOptions()
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spin == SPIN_WITHIN_RUN:
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    opts.intra_op_num_threads = max(1, min(int(num_cores), available_cores()))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if int8_pair_sums_saturate():  # int8 GEMMs by ONNX Runtime's exact uint8 kernel (cpu_features.py)
        opts.add_session_config_entry(X64_QUANT_PRECISION, "1")
    return opts


def turn_taking_spin() -> bool | str:
    """``spin`` for sessions that take turns on the same cores (a speculative draft and its target):
    neither may spin while the other runs, so threads spin between a run's operators, as a plain
    session's do, and stop when it returns (SPIN_WITHIN_RUN). On oversubscribed cores (1-minute load
    average above 1.5x the cores this process may use) spinning only takes time from threads that
    have work, so they do not spin at all (measured in docs/performance.md)."""
    try:
        busy = os.getloadavg()[0] > 1.5 * available_cores()
    except (AttributeError, OSError):  # no load average on this platform
        busy = False
    return False if busy else SPIN_WITHIN_RUN


class GraphLoadError(OSError):
    """ONNX Runtime could not open a graph file (missing, truncated or not ONNX)."""


def open_inference_session(onnx_path: str | os.PathLike, options: ort.SessionOptions, device: Device | None = None) -> ort.InferenceSession:
    """``ort.InferenceSession`` on ``device`` (None: ``QEFF_DEVICE``, runtime/devices.py) whose failure to read the
    file says which file and what to do."""
    path = Path(onnx_path)
    if not path.is_file():
        raise GraphLoadError(f"The ONNX graph {path} does not exist. Compile the model again (model.compile(...)).")
    data_file = path.parent / f"{path.name}.data"
    providers = (device or current_device()).providers()
    try:
        with reclaiming_mapped_pages(data_file):  # what pre-packing reads, while it reads it
            session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # ORT raises its own pybind types (InvalidProtobuf, Fail, NoSuchFile, ...)
        raise GraphLoadError(
            f"ONNX Runtime could not load {path}: the graph or its external weights are damaged or incomplete ({err}). "
            f"If it was built by QEfficient, delete its folder (rm -rf '{path.parent}') and compile again."
        ) from err
    release_mapped_pages(data_file)  # what is left: a tied LM head's codes stay mapped for the embedding
    return_freed_heap()
    if providers[0] != CPU.providers()[0] and session.get_providers()[0] == CPU.providers()[0]:
        logger.warning("ONNX Runtime opened %s on the CPU: its CUDA provider failed (see its message above).", path)
    return session


def open_artifact_session(qpc_path: str | os.PathLike, num_cores: int, spin: bool = True) -> ort.InferenceSession:
    """A plain session over a compiled artifact's graph (encoders, vision graphs)."""
    return open_inference_session(Path(qpc_path) / ARTIFACT_GRAPH, session_options(num_cores, spin=spin))


def open_kv_session(
    qpc_path: str | os.PathLike,
    num_cores: int | None = None,
    spin: bool | str = True,
    resident: bool | None = None,
    rows: int | None = None,
) -> KVCacheSession:
    """A KVCacheSession over a compiled decoder artifact, sized as compiled (batch, ctx_len); ``spin``
    as in session_options (False for a session that takes turns with another, a speculative draft);
    ``resident`` as in KVCacheSession; ``rows``: cache rows other than the compiled batch's (beam search: batch x
    num_beams; the graph's batch axis is dynamic)."""
    qconfig = read_artifact(Path(qpc_path))
    if "kv_shape" not in qconfig:
        name = qconfig.get("model_name") or qpc_path
        raise ValueError(
            f"'{qpc_path}' is not a causal LM's artifact (it holds no KV cache: {name} is an encoder, a speech or image "
            "model, ...): run it with the class that compiled it, or compile a causal LM (QEFFAutoModelForCausalLM)."
        )
    kv_shape = tuple(qconfig["kv_shape"])
    if rows is not None:
        kv_shape = (rows, *kv_shape[1:])
    if qconfig.get("compile_params", {}).get("fused_graph") and current_device().is_cuda:
        warn_once(
            "fused-on-cuda",
            f"{qpc_path} was compiled for the CPU (fused operators; ONNX Runtime runs its float32 GroupQueryAttention on "
            "the CPU, copying the cache each step): compile the model again with QEFF_DEVICE=cuda for the GPU's graph.",
        )
    # A speculative target graph returns logits for every chunk position (see AllLogitsKVSession).
    kind = AllLogitsKVSession if qconfig.get("speculative_model_type") == "target" else KVCacheSession
    return kind(
        Path(qpc_path) / ARTIFACT_GRAPH,
        batch_size=kv_shape[0],  # the cache rows: batch_size, or full_batch_size with continuous batching
        kv_shape=kv_shape,
        num_layers=qconfig["num_layers"],
        vocab_size=qconfig["vocab_size"],
        num_cores=num_cores or qconfig["num_cores"],
        kv_dtype=qconfig["kv_dtype"],
        spin=spin,
        states=qconfig.get("states"),
        state_dtype=qconfig.get("state_dtype", "float32"),
        resident=resident,
    )


# ONNX Runtime's input type names -> numpy dtypes, for the inputs a graph may take from the host
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


def zero_size_inputs(session: ort.InferenceSession, skip: set[str] = frozenset()) -> dict[str, np.ndarray]:
    """Empty arrays for every input of ``session`` not in ``skip``: each input's dtype and fixed dims, every
    dynamic dim 0 (a vision graph's inputs holding no image)."""
    inputs = [arg for arg in session.get_inputs() if arg.name not in skip]
    unknown = sorted({arg.type for arg in inputs} - set(_ORT_DTYPES))
    if unknown:
        raise TypeError(f"The graph takes inputs of {', '.join(unknown)}, which the host cannot make empty arrays of.")
    return {arg.name: np.zeros([d if isinstance(d, int) else 0 for d in arg.shape], _ORT_DTYPES[arg.type]) for arg in inputs}


def no_image_inputs(language: KVCacheSession, vision: ort.InferenceSession | None) -> dict[str, np.ndarray]:
    """The vision inputs of a vision-language model, holding no image: the vision graph's (two graphs), or the
    one graph's inputs that are not the language side's (its vision branch's, which then does not run)."""
    if vision is not None:
        return zero_size_inputs(vision)
    return zero_size_inputs(language.session, {*LANGUAGE_SIDE_INPUTS, *language.names, *language.states})


def window_ladder(ctx_len: int) -> list[int]:
    rungs, w = [], FIRST_WINDOW
    while w < ctx_len:
        rungs.append(w)
        w *= 2
    return rungs + [ctx_len]


def bind_arrays(io: ort.IOBinding, keep: dict[str, object], inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
    """Bind host arrays as inputs and as outputs (written in place by each run); ``keep`` holds them
    while bound, since ORT reads and writes them at run time."""
    for name, value in inputs.items():
        keep[name] = array = np.ascontiguousarray(value)
        io.bind_cpu_input(name, array)
    for name, value in outputs.items():
        keep[name] = ort_value = ort.OrtValue.ortvalue_from_numpy(value)
        io.bind_ortvalue_output(name, ort_value)


class KVCacheSession:
    """Runs prefill chunks and decode steps of one batch layout (batch_size, ctx_len)."""

    def __init__(
        self,
        onnx_path: Path,
        *,
        batch_size: int,
        kv_shape: tuple[int, int, int, int],
        num_layers: int,
        vocab_size: int,
        num_cores: int = 16,
        kv_dtype: str = "float32",
        device: Device | None = None,
        spin: bool | str = True,
        states: dict[str, list[int]] | None = None,
        state_dtype: str = "float32",
        resident: bool | None = None,
    ) -> None:
        """``device``: where the session runs (None: ``QEFF_DEVICE``, runtime/devices.py). ``resident``: the cache in
        ONNX Runtime's allocations on that device (kv_storage.DeviceKVStorage), the default on a GPU; True on the
        CPU runs the same code there."""
        self.device = device or current_device()
        self.session = open_inference_session(onnx_path, session_options(num_cores, spin), device=self.device)
        if self.session.get_providers()[0] == CPU.providers()[0]:  # also where CUDA failed and ONNX Runtime fell back
            self.device = CPU
        self.vocab_size = vocab_size  # the logits' width (a prompt's ids are checked against it: generation/)
        self.batch_size = batch_size
        self.ctx_len = kv_shape[2]
        self.kv_shape = tuple(kv_shape)
        self.names = past_names(num_layers)
        # One ctx_len-sized allocation per tensor (host pages are only touched as the window reaches them).
        size = int(np.prod(kv_shape))
        if self.device.is_cuda if resident is None else resident:
            self.storage: KVStorage = DeviceKVStorage(len(self.names), size, kv_dtype, self.device.kind, self.device.index)
        else:
            self.storage = HostKVStorage(len(self.names), size, kv_dtype)
        self.ladder = window_ladder(self.ctx_len)
        self.window = 0
        self.io = self.session.io_binding()
        self.logits = ort.OrtValue.ortvalue_from_shape_and_type([batch_size, 1, vocab_size], np.float32)
        self.io.bind_ortvalue_output(LOGITS, self.logits)
        self._inputs: tuple[np.ndarray, np.ndarray] | None = None
        self.slot_io = self.session.io_binding()  # batch-1 runs on one row of the cache (continuous batching)
        self.slot_logits = ort.OrtValue.ortvalue_from_shape_and_type([1, 1, vocab_size], np.float32)
        self.slot_io.bind_ortvalue_output(LOGITS, self.slot_logits)
        self._bound: dict[str, object] = {}  # further bound inputs/outputs: ORT uses them at run time, keep them alive
        self._bind_window(self.ladder[0])
        # Recurrent states (state-space and hybrid models), [rows, ...] each: like the cache, one buffer bound
        # as input and *_RetainedState output; no window (their size does not grow with the sequence). The
        # graph starts a row from zero state when its chunk starts at position 0, so nothing resets them here.
        self.states = {name: np.zeros(shape, dtype=state_dtype) for name, shape in (states or {}).items()}
        self._state_values = {name: ort.OrtValue.ortvalue_from_numpy(array) for name, array in self.states.items()}
        self._bind_states()

    def _bind_states(self) -> None:
        for name, value in self._state_values.items():
            self.io.bind_ortvalue_input(name, value)
            self.io.bind_ortvalue_output(retained(name), value)

    @property
    def cache_bytes(self) -> int:
        """The bytes the KV cache holds, allocated for ctx_len (or more, past it)."""
        return self.storage.nbytes

    def cache_view(self, index: int) -> np.ndarray:
        """The current [B, H, W, D] contents of cache tensor ``index`` (a view on the host; a copy from a device)."""
        b, h, _, d = self.kv_shape
        return self.storage.read(index, b * h * self.window * d).reshape(b, h, self.window, d)

    def _bind_window(self, window: int, keep: bool = False) -> None:
        b, h, _, d = self.kv_shape
        old = self.window
        if b * h * window * d > self.storage.size:  # past ctx_len (see _prepare): larger buffers
            self.storage.grow(b * h * window * d, b * h, old * d if keep else 0, window * d)
        elif keep and old:  # re-lay each [b, h] row from stride `old` to `window`
            self.storage.relay(b * h, old * d, window * d)
        self.window = window
        bind_in_place(self.io, self.storage, self.names, [b, h, window, d])

    @property
    def host_cache(self) -> bool:
        """Whether the cache lives in host memory, where reordering rows copies only the rows that move."""
        return isinstance(self.storage, HostKVStorage)

    def reorder_rows(self, rows: np.ndarray, length: int | None = None) -> None:
        """Beam search: cache row ``r`` continues from row ``rows[r]`` (its first ``length`` slots, else all, copied
        there; recurrent states too)."""
        rows = np.asarray(rows, np.int64)
        if rows.shape != (self.batch_size,) or rows.min() < 0 or rows.max() >= self.batch_size:
            raise ValueError(f"reorder_rows needs one row index in [0, {self.batch_size}) per cache row, got {rows.tolist()}.")
        b, h, _, d = self.kv_shape
        self.storage.take_rows(rows, (b, h, self.window, d), self.window if length is None else min(length, self.window))
        for array in self.states.values():
            array[:] = array[rows]

    def reset(self) -> None:
        """A new set of sequences starts: the cache contents no longer matter."""
        if self.window != self.ladder[0]:
            self._bind_window(self.ladder[0])

    def _prepare(self, input_ids: np.ndarray, position_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        pos = np.ascontiguousarray(position_ids, dtype=np.int64)
        # Padding writes to the window's last slot; keep that slot clear of this step's real tokens.
        need = int(pos.max()) + 1 + int(bool((pos < 0).any()))
        # A fused graph's GroupQueryAttention places each row's chunk, padding included, at the row's first
        # position (1 for an idle row): that must fit too, even past ctx_len at the end of the context.
        valid = pos >= 0
        first = np.where(valid.any(1), np.where(valid, pos, np.iinfo(np.int64).max).min(1), 1)
        need = max(need, int(first.max()) + pos.shape[1])
        if need > self.window:
            self._bind_window(next((w for w in self.ladder if w >= need), need), keep=True)
        self._inputs = (ids, pos)  # keep the arrays alive while ORT reads them
        return ids, pos

    def bind_inputs(self, **inputs: np.ndarray) -> None:
        """Bind further graph inputs (e.g. vision_embeds, image_idx); they stay bound for later runs."""
        bind_arrays(self.io, self._bound, inputs, {})

    def reads(self, name: str) -> bool:
        """Whether the graph has input ``name`` (an exporter drops an input the model never reads)."""
        return any(arg.name == name for arg in self.session.get_inputs())

    def bind_outputs(self, **outputs: np.ndarray) -> None:
        """Bind further graph outputs to caller-owned arrays (written in place by each run)."""
        bind_arrays(self.io, self._bound, {}, outputs)

    def slot(self, slot: int) -> SlotTarget:
        """One cache row as a target of its own (bind_inputs / bind_outputs / run), for prefilling a
        request of a continuous batch."""
        return SlotTarget(self, slot)

    def run(self, input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """One step. input_ids/position_ids int64 [B,S]; returns a view of logits [B,V] (valid until the next run)."""
        ids, pos = self._prepare(input_ids, position_ids)
        if self.device.is_cuda or isinstance(self.storage, DeviceKVStorage):
            # ONNX Runtime copies a bound input to the device of the node that reads it when it is bound, not when
            # it runs: the host states, and the cache wherever a node without a CUDA kernel reads it, would stay
            # as they were. Binding again each step takes their current contents (the cache's own nodes: no copy).
            b, h, _, d = self.kv_shape
            bind_in_place(self.io, self.storage, self.names, [b, h, self.window, d])
            self._bind_states()
        self.io.bind_cpu_input(INPUT_IDS, ids)
        self.io.bind_cpu_input(POSITION_IDS, pos)
        self.session.run_with_iobinding(self.io)
        return self.logits.numpy()[:, 0]

    def run_detached(
        self, input_ids: np.ndarray, position_ids: np.ndarray, output_names: list[str], **inputs: np.ndarray
    ) -> list[np.ndarray]:
        """One run of whole sequences on a zeroed cache of its own (this session's cache and bindings untouched), the
        graph's further inputs given in ``inputs``: the named outputs (Whisper's alignment pass re-reads a window's
        tokens for their cross-attention)."""
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        pos = np.ascontiguousarray(position_ids, dtype=np.int64)
        need = int(pos.max()) + 1 + int(bool((pos < 0).any()))
        window = next((w for w in self.ladder if w >= need), need)
        b, h, _, d = self.kv_shape
        zeros = np.zeros((len(ids), h, window, d), dtype=self.storage.dtype)
        feeds = {INPUT_IDS: ids, POSITION_IDS: pos, **dict.fromkeys(self.names, zeros), **inputs}
        return self.session.run(output_names, feeds)

    def run_slot(self, slot: int, input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """One step of a single sequence ([1,S]) on cache row ``slot``, the others untouched.

        Row ``slot`` of a [B, H, W, D] buffer is one contiguous block, so it is bound as a
        [1, H, W, D] view of the same memory: no copy in or out.
        """
        ids, pos = self._prepare(input_ids, position_ids)
        _, h, _, d = self.kv_shape
        bind_in_place(self.slot_io, self.storage, self.names, [1, h, self.window, d], offset=slot * h * self.window * d)
        for name, array in self.states.items():  # row ``slot`` of a [rows, ...] state is contiguous too
            value = ort.OrtValue.ortvalue_from_numpy(array[slot : slot + 1])
            self.slot_io.bind_ortvalue_input(name, value)
            self.slot_io.bind_ortvalue_output(retained(name), value)
            self._bound[f"slot:{name}"] = value
        self.slot_io.bind_cpu_input(INPUT_IDS, ids)
        self.slot_io.bind_cpu_input(POSITION_IDS, pos)
        self.session.run_with_iobinding(self.slot_io)
        return self.slot_logits.numpy()[:, 0]


class SlotTarget:
    """Runs on one row of a KVCacheSession's cache, with inputs of its own (the row's binding)."""

    def __init__(self, session: KVCacheSession, slot: int) -> None:
        self.session, self.index = session, slot
        self._bound: dict[str, object] = {}

    def bind_inputs(self, **inputs: np.ndarray) -> None:
        bind_arrays(self.session.slot_io, self._bound, inputs, {})

    def bind_outputs(self, **outputs: np.ndarray) -> None:
        bind_arrays(self.session.slot_io, self._bound, {}, outputs)

    def run(self, input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        return self.session.run_slot(self.index, input_ids, position_ids)

    @property
    def every_position(self) -> bool:
        """Whether ``run_all`` is there: the graph scores every position of a chunk (a speculative target's)."""
        return isinstance(self.session, AllLogitsKVSession)

    def run_all(self, input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """A view of logits [1, S, V] for every position (valid until the next run); ``every_position`` sessions only."""
        return self.session.run_slot_all(self.index, input_ids, position_ids)


class AllLogitsKVSession(KVCacheSession):
    """A KVCacheSession over a speculative target graph, whose logits are [B, S, V]: ``run_all``
    returns every position's logits (a verify step); ``run`` and ``run_slot`` keep the parent's
    contract (each row's last real position), so plain generation runs on a target artifact too."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._vocab = self.logits.shape()[-1]
        self._logits_by_shape: dict[tuple[int, int], ort.OrtValue] = {}

    def _logits_for(self, io: ort.IOBinding, rows: int, width: int) -> ort.OrtValue:
        value = self._logits_by_shape.get((rows, width))
        if value is None:
            value = self._logits_by_shape[(rows, width)] = ort.OrtValue.ortvalue_from_shape_and_type([rows, width, self._vocab], np.float32)
        io.bind_ortvalue_output(LOGITS, value)
        return value

    def run_all(self, input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """One step; a view of logits [B, S, V] for every position (valid until the next run)."""
        self.logits = self._logits_for(self.io, *np.shape(input_ids))
        super().run(input_ids, position_ids)
        return self.logits.numpy()

    def run(self, input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        return last_real(self.run_all(input_ids, position_ids), position_ids)

    def run_slot_all(self, slot: int, input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        """One step on cache row ``slot``; a view of logits [1, S, V] for every position (valid until the next run)."""
        self.slot_logits = self._logits_for(self.slot_io, *np.shape(input_ids))
        super().run_slot(slot, input_ids, position_ids)
        return self.slot_logits.numpy()

    def run_slot(self, slot: int, input_ids: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        return last_real(self.run_slot_all(slot, input_ids, position_ids), position_ids)


def last_real(logits: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
    """[B, V]: each row's logits at its last real (largest) position, as the plain graph selects it."""
    return logits[np.arange(logits.shape[0]), np.asarray(position_ids).argmax(axis=1)]
