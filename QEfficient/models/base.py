"""QEFFBaseModel: the lifecycle every model kind shares.

load (transformers) -> hash (config + weights fingerprint) -> export (one cached ONNX entry per
graph, see export/onnx_export.py) -> artifact (compile/ort_cpu.py) -> session (runtime/, one per
artifact, reused across generate() calls). A model kind adds its graph specs (export/*graph_specs.py),
its compile arguments and its generation loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from transformers import PreTrainedModel

from QEfficient.compile.ort_cpu import artifact_fingerprint, build_artifact, checked_companion, read_artifact, warn_ignored_options
from QEfficient.compile.weight_compression import quantize_dynamic_int8
from QEfficient.export.graph_names import recurrent_state_names
from QEfficient.export.onnx_export import cached_export, torchscript_export
from QEfficient.loading.hf_loader import load_pretrained
from QEfficient.runtime.devices import current_device
from QEfficient.runtime.ort_session import open_artifact_session
from QEfficient.utils.cache import fingerprint_state_dict, qeff_home
from QEfficient.utils.checks import check_positive


def check_recurrent_chunk(lm, prefill_seq_len: int, option: str = "prefill_seq_len") -> None:
    """Refuse a prefill chunk longer than the recurrent layers of ``lm`` (a QEffCausalLM) scan exactly in one step;
    ``option`` names the compile argument that sets the chunk."""
    limits = [layer.max_chunk for layer in lm.recurrent_layers if layer.max_chunk]
    if limits and prefill_seq_len > min(limits):
        raise ValueError(
            f"{option} ({prefill_seq_len}) exceeds {min(limits)}, the longest chunk this model's recurrent "
            f"(delta rule) layers prefill exactly in one graph step: compile with {option} <= {min(limits)}."
        )


def check_context_limit(lm, ctx_len: int, option: str = "ctx_len") -> None:
    """Refuse a ``ctx_len`` past the longest context the graph of ``lm`` (a QEffCausalLM) reproduces its model at."""
    limit = lm.adapter.context_limit(lm.config)
    if limit and limit[0] == 0:  # a configuration the graph does not reproduce at any length
        raise ValueError(f"This model's configuration is not supported: {limit[1]}.")
    if limit and ctx_len > limit[0]:
        raise ValueError(f"{option} ({ctx_len}) exceeds {limit[0]}: {limit[1]}. Compile with {option} <= {limit[0]}.")


def recurrent_state_manifest(lm, rows: int, state_dtype: str) -> dict[str, Any]:
    """The manifest entries of the recurrent states of ``lm`` (a QEffCausalLM; none for a transformer): each
    state's [rows, ...] shape, for the runtime to allocate and bind in place, and their dtype."""
    if not lm.state_shapes:
        return {}
    names = recurrent_state_names(lm.state_layers)
    return {"states": {n: [rows, *shape] for n, shape in zip(names, lm.state_shapes)}, "state_dtype": state_dtype}


# position tables whose first position follows the padding index (RoBERTa's: positions start at pad_token_id + 1)
OFFSET_POSITION_TYPES = frozenset(
    {"roberta", "xlm-roberta", "camembert", "roberta-prelayernorm", "xmod", "data2vec-text", "longformer", "altclip_text_model"}
)


def usable_positions(config) -> int | None:
    """The positions ``config``'s table serves (its max_position_embeddings, less RoBERTa's offset), or None."""
    max_pos = getattr(config, "max_position_embeddings", None)
    if max_pos and getattr(config, "model_type", None) in OFFSET_POSITION_TYPES:
        max_pos -= (getattr(config, "pad_token_id", None) or 0) + 1
    return max_pos


def longrope_short_positions(config) -> int | None:
    """The positions a longrope rotary embedding (Phi-3's, Phi-3.5's, Phi-4-mini's) reads with its short factors
    (original_max_position_embeddings), or None for another rotary embedding."""
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    if not isinstance(rope, dict) or (rope.get("rope_type") or rope.get("type")) != "longrope":
        return None
    return rope.get("original_max_position_embeddings") or getattr(config, "original_max_position_embeddings", None)


def companion_record(other_path: Path, compile_dir, text_onnx: Path) -> tuple[str, str]:
    """How a two-graph model's text artifact names its other graph's artifact: the path relative to the text artifact
    (built in ``compile_dir``, else beside its graph), so a cache moved whole keeps the pair, and that artifact's
    fingerprint (compile/ort_cpu.py), which goes into the text artifact's key and is checked when the pair is opened."""
    home = (Path(compile_dir).expanduser() if compile_dir else Path(text_onnx).parent).resolve()
    return os.path.join("..", os.path.relpath(Path(other_path).resolve(), home)), artifact_fingerprint(other_path)


def _version(tensor) -> int:
    """torch's count of a tensor's in-place changes; -1 for an inference tensor, which keeps none."""
    try:
        return tensor._version
    except RuntimeError:
        return -1


@dataclass(frozen=True)
class GraphArtifact:
    """One graph of a model of several, to build: its role (compile() keeps it as ``qpc_paths[f"{role}_qpc_path"]``),
    its ONNX file, its manifest entries (kind, output_name, ...), compile params and specializations, the rewrite its
    MatMuls take (int8 GEMMs) or None, and what writes the files a server reads from it besides the graph, or None."""

    role: str
    onnx_path: Path
    manifest: dict
    params: dict
    specializations: dict
    rewrite: Callable | None = None
    extra_files: Callable[[Path], object] | None = None


class QEFFBaseModel:
    """Shared state and steps; subclasses set ``hf_model`` (the transformers model they wrap)."""

    def __init__(self, model: PreTrainedModel, pretrained_model_name_or_path: str | None = None, **hash_extra: Any) -> None:
        self.pretrained_model_name_or_path = pretrained_model_name_or_path
        self.local_model_dir: Path | None = None  # the folder with the tokenizer/processor, when loaded from disk
        self.hash_params: dict[str, Any] = {
            "qeff_auto_class": type(self).__name__,
            "config": model.config.to_diff_dict(),
            "weights": None,  # fingerprinted lazily: only an export needs it
            **hash_extra,
        }
        self.onnx_path: Any = None
        self.qpc_path: Path | None = None
        self._num_cores = 16
        self._sessions_by_key: dict[str, tuple[tuple, Any]] = {}

    @classmethod
    def _from_auto(cls, auto_class, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """Load with ``auto_class`` (other keyword arguments go to transformers) and wrap; remembers the folder for the
        processor."""
        model, folder = load_pretrained(auto_class, pretrained_model_name_or_path, *args, owner=cls.__name__, **kwargs)
        obj = cls(model, pretrained_model_name_or_path=str(pretrained_model_name_or_path))
        obj.local_model_dir = folder
        return obj

    @classmethod
    def _from_hf(cls, auto_class, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """Load with transformers' eager attention (the graphs are written out here, not by an attention
        backend) for a kind that has no continuous batching; remembers the folder for the processor."""
        kwargs.pop("attn_implementation", None)
        if kwargs.pop("continuous_batching", False):
            raise NotImplementedError(f"Continuous batching is not supported for {cls.__name__} (nor in QEfficient); load it without.")
        return cls._from_auto(auto_class, pretrained_model_name_or_path, *args, attn_implementation="eager", **kwargs)

    def __repr__(self) -> str:
        """QEfficient's: the class, then the transformers model it wraps (``print(qeff_model)``)."""
        return f"{type(self).__name__}\n{self.hf_model!r}"

    @property
    def hf_model(self) -> PreTrainedModel:
        raise NotImplementedError

    @property
    def model_name(self) -> str:
        source = self.pretrained_model_name_or_path
        name = Path(source.rstrip("/")).name if source else ""
        if source and name in ("", ".", ".."):  # from_pretrained(".") or "..": the folder's own name
            name = Path(source).expanduser().resolve().name
        return name or type(self.hf_model).__name__

    @property
    def model_architecture(self) -> str:
        return (self.config.architectures or [type(self.hf_model).__name__])[0]

    @property
    def config(self):
        return self.hf_model.config

    @property
    def get_model_config(self) -> dict:
        """The HF config as a dict (a property, as in QEfficient)."""
        return self.config.__dict__

    def _check_max_positions(self, name: str, length: int, config=None) -> None:
        """A compiled length the model's position table cannot reach, or that a longrope rotary embedding reads past its
        short factors (longrope_short_positions), is refused up front."""
        config = config or self.config
        max_pos = usable_positions(config)
        if max_pos and length > max_pos:
            table = getattr(config, "max_position_embeddings", None)
            detail = "" if table == max_pos else f" less the {table - max_pos} rows up to the padding index: {max_pos} positions"
            raise ValueError(f"{name} ({length}) exceeds the model's max_position_embeddings ({table}{detail}).")
        short = longrope_short_positions(config)
        if short and length > short:
            # transformers switches every position to the long factors once a call's sequence passes them (the cache
            # keeps keys rotated with the short ones): a compiled graph does not reproduce that switch
            raise ValueError(
                f"{name} ({length}) is past the {short} positions this model's longrope rotary embedding reads with its "
                f"short factors (original_max_position_embeddings); past them transformers switches to the long factors, "
                f"which this library does not reproduce. Compile with {name} <= {short}."
            )

    def _fingerprint_weights(self) -> None:
        """The weights' digest in the export key, again where a tensor was replaced or changed in place since it was
        taken (its storage or torch's version counter moved: ``load_state_dict``, an update under ``no_grad``; a write
        through ``.data`` bumps no counter). Weights released to the meta device keep the digest they had."""
        state = self.hf_model.state_dict()
        if self.hash_params["weights"] is not None and any(t.is_meta for t in state.values()):
            return
        signature = tuple((name, t.data_ptr(), _version(t)) for name, t in state.items())
        if self.hash_params["weights"] is None or signature != getattr(self, "_weights_signature", None):
            self.hash_params["weights"] = fingerprint_state_dict(state)
            self._weights_signature = signature

    def _export_graph(
        self,
        module,
        name: str,
        export_dir: str | os.PathLike | None,
        export_fn: Callable[[Path], Path] | None = None,
        hash_extra: dict | None = None,
        **kwargs: Any,
    ) -> Path:
        """One graph through the export cache (hash: this model's params plus ``hash_extra``). An ``export_dir`` given
        once holds the later exports too (compile() after export(export_dir=...) reuses that graph, as QEfficient does)."""
        if export_dir is not None:
            self._export_dir = Path(export_dir).expanduser().absolute()
        export_dir = getattr(self, "_export_dir", None) if export_dir is None else export_dir
        self._fingerprint_weights()
        params = {**self.hash_params, **(hash_extra or {})}
        return cached_export(module, params, name, self.model_architecture, export_dir, qeff_home(), export_fn=export_fn, **kwargs)

    def _export_encoder_decoder(self, export_dir: str | os.PathLike | None, kind: str, export_encoder, export_decoder) -> list[Path]:
        """A two-graph model's ``self.encoder`` and ``self.decoder`` graphs, each through the export cache (``kind``
        names them in the hash): [encoder, decoder] .onnx paths. ``export_*(module, folder, name)`` writes one."""
        name = self.model_name.replace("/", "_")
        parts = (("encoder", self.encoder, export_encoder), ("decoder", self.decoder, export_decoder))
        return [
            self._export_graph(
                module,
                f"{name}-{part}",
                export_dir,
                export_fn=lambda tmp, module=module, part=part, write=write: write(module, tmp, f"{name}-{part}"),
                hash_extra={"graph": f"{kind}-{part}"},
            )
            for part, module, write in parts
        ]

    @staticmethod
    def _build_artifact(
        onnx_path: Path, compile_dir, manifest: dict, params: dict, specializations: dict, rewrite=None, extra_files=None
    ) -> Path:
        return build_artifact(
            onnx_path,
            Path(compile_dir) if compile_dir else onnx_path.parent,
            manifest,
            params,
            specializations,
            rewrite=rewrite,
            extra_files=extra_files,
        )

    def _export_spec_graph(self, module, spec, args: tuple, graph_name: str, kind: str, export_dir, hash_extra=None) -> Path:
        """``module`` traced on ``args`` with ``spec``'s names and axes into ``graph_name``.onnx, through the export cache
        (``kind``, and ``hash_extra``, in its key)."""
        return self._export_graph(
            module,
            graph_name,
            export_dir,
            export_fn=lambda tmp: torchscript_export(
                module, args, tmp / f"{graph_name}.onnx", list(spec.input_names), spec.output_names, spec.dynamic_axes()
            ),
            hash_extra={"graph": kind, **(hash_extra or {})},
        )

    def _export_one_graph(self, spec, args: tuple, kind: str, export_dir: str | os.PathLike | None, options: dict) -> Path:
        """A one-graph model's export(): ``self.model`` traced on ``args`` with ``spec``'s names and axes, through the
        export cache (``kind`` names the graph in its key); kept as ``onnx_path``."""
        warn_ignored_options("export()", options)
        self.onnx_path = self._export_spec_graph(self.model, spec, args, self.model_name.replace("/", "_"), kind, export_dir)
        return self.onnx_path

    def _compile_graph(
        self,
        onnx_path: str | os.PathLike | None,
        compile_dir: str | os.PathLike | None,
        manifest: dict,
        params: dict,
        specializations: dict,
        *,
        batch_size: int,
        num_devices: int,
        num_cores: int,
        mxfp6_matmul: bool,
        compiler_options: dict,
        export: Callable[[], Path] | None = None,
        extra_files: Callable[[Path], object] | None = None,
    ) -> Path:
        """A one-graph model's compile(): the common options checked, the graph exported unless given (``export``, else
        ``self.export()``), the artifact built (the MatMuls as int8 GEMMs with ``mxfp6_matmul``) and kept as
        ``qpc_path``."""
        if getattr(self, "_without_weights", False):
            raise TypeError("This model was loaded from its artifact, without weights: load it with from_pretrained() to compile it.")
        check_positive(batch_size=batch_size, num_cores=num_cores)
        warn_ignored_options("compile()", {**compiler_options, "num_devices": num_devices > 1})
        onnx_path = Path(onnx_path) if onnx_path else (export or self.export)()
        self.qpc_path = self._build_artifact(
            onnx_path,
            compile_dir,
            {"model_name": self.model_name, "num_cores": num_cores, **manifest},
            {"backend": "onnxruntime-cpu", "batch_size": batch_size, **params, "mxfp6_matmul": mxfp6_matmul},
            specializations,
            rewrite=quantize_dynamic_int8 if mxfp6_matmul else None,
            extra_files=extra_files,
        )
        self._num_cores = num_cores
        return self.qpc_path

    def _check_graphs_compile(self, onnx_path, num_devices: int, compiler_options: dict, **positive: int) -> None:
        """The common checks of a compile() that builds several graphs (it exports them itself)."""
        if onnx_path is not None:
            raise ValueError(f"{type(self).__name__} builds several graphs; call compile() without onnx_path (it exports them).")
        check_positive(**positive)
        warn_ignored_options("compile()", {**compiler_options, "num_devices": num_devices > 1})

    def _check_pytorch_run(self, runtime_ai100: bool) -> None:
        """runtime_ai100=False runs the PyTorch modules: refused, saying why, on a model loaded from its artifacts."""
        if not runtime_ai100 and getattr(self, "_without_weights", False):
            raise TypeError("This model was loaded from its artifacts, without weights: runtime_ai100=False needs from_pretrained().")

    @classmethod
    def _from_kept_files(
        cls, qpc_path, num_cores: int | None, other_path, kind: str, other: str | None, what: str, build: Callable
    ) -> Self:
        """A model from its artifact, which keeps the config and processor (with ``other``, a two-graph model's text
        artifact, which names the ``other`` graph's artifact; ``other_path``: a copy of that elsewhere): ``build(config)``
        makes its modules on the meta device, for their host-side rules; no weights are read, so export and compile are
        refused (``_without_weights``)."""
        import torch
        from transformers import AutoConfig

        from QEfficient.models.sentence_transformers import MODEL_FILES_SUBDIR

        qpc_path = Path(qpc_path)
        qconfig = read_artifact(qpc_path)
        folder, named = qpc_path / MODEL_FILES_SUBDIR, f"{other}_artifact"
        if qconfig.get("kind") != kind or (other and not qconfig.get(named)) or not (folder / "config.json").is_file():
            which = "the text artifact (compile()'s text_qpc_path" if other else "the artifact (compile()'s qpc_path"
            raise ValueError(
                f"'{qpc_path}' is not {which}, which keeps the processor) of {what} compiled by this version: compile it again "
                "from the model's folder."
            )
        config = AutoConfig.from_pretrained(folder)
        with torch.device("meta"):
            hf = build(config)
        obj = cls(hf, pretrained_model_name_or_path=qconfig.get("model_name"))
        obj.local_model_dir, obj._without_weights, obj.qpc_path = folder, True, qpc_path
        if other:
            expected = kind.removesuffix("-text") + f"-{other}"
            other_path = checked_companion(qpc_path, qconfig, other, other_path, expected, what)
            obj.qpc_paths = {"text_qpc_path": qpc_path, f"{other}_qpc_path": other_path}
        obj._num_cores = num_cores or qconfig.get("num_cores") or 1
        return obj

    def _compile_graphs(self, graphs: list[GraphArtifact], compile_dir, num_cores: int, main: str) -> dict[str, Path]:
        """Build each graph's artifact; keeps them as ``qpc_paths`` (QEfficient's return value), the ``main`` role's as
        ``qpc_path``."""
        common, backend = {"model_name": self.model_name, "num_cores": num_cores}, {"backend": "onnxruntime-cpu"}
        self.qpc_paths = {
            f"{graph.role}_qpc_path": self._build_artifact(
                graph.onnx_path,
                compile_dir,
                {**common, **graph.manifest},
                {**backend, **graph.params},
                graph.specializations,
                rewrite=graph.rewrite,
                extra_files=graph.extra_files,
            )
            for graph in graphs
        }
        self.qpc_path = self.qpc_paths[f"{main}_qpc_path"]
        self._num_cores = num_cores
        return self.qpc_paths

    def _session(self, role: str, key: tuple, open_fn: Callable[[], Any]) -> Any:
        """The session for ``role`` opened by ``open_fn`` (runtime/), reused while ``key`` (artifact,
        threads) and the device (``QEFF_DEVICE``) stay the same; the previous one is dropped first, so one
        copy of the weights is held."""
        key = (*key, current_device())
        held = self._sessions_by_key.get(role)
        if held is not None and held[0] == key:
            return held[1]
        self._sessions_by_key.pop(role, None)
        session = open_fn()
        self._sessions_by_key[role] = (key, session)
        return session

    def _graph_session(self, role: str, path: Path | None = None) -> tuple[Any, dict]:
        """(session, compile params) of the artifact ``path``, else the one a model of several graphs keeps as
        ``qpc_paths[f"{role}_qpc_path"]``."""
        paths = getattr(self, "qpc_paths", None)
        path = path or (paths.get(f"{role}_qpc_path") if isinstance(paths, dict) else None)
        if path is None:
            raise TypeError("Please run compile() before generate(), or pass runtime_ai100=False to run PyTorch.")
        # the manifest read once with the session
        return self._session(
            role,
            (str(path), self._num_cores),
            lambda: (open_artifact_session(path, self._num_cores), read_artifact(path)["compile_params"]),
        )

    def _drop_sessions(self) -> None:
        self._sessions_by_key.clear()


class EncoderDecoderModel(QEFFBaseModel):
    """A model of two graphs, ``self.encoder`` and ``self.decoder`` (Whisper, text encoder-decoders): its transformers
    model is ``self.hf``; ``graph_kind`` names its graphs in the export hash, ``export_graphs`` writes them."""

    auto_class: Any  # transformers' auto class that loads it
    graph_kind: str
    export_graphs: tuple[Callable, Callable]  # (encoder, decoder): write(module, folder, name) -> .onnx path

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs) -> Self:
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        return cls._from_hf(cls.auto_class, pretrained_model_name_or_path, *args, **kwargs)

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.hf

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> list[Path]:
        """Export the encoder and decoder graphs (each cached); returns [encoder, decoder] .onnx paths."""
        from QEfficient.compile.ort_cpu import warn_ignored_options

        warn_ignored_options("export()", kwargs)
        self.onnx_path = self._export_encoder_decoder(export_dir, self.graph_kind, *type(self).export_graphs)
        return self.onnx_path

    def _compiled(self, encoder: Path, decoder: Path, num_cores: int) -> dict[str, Path]:
        """Remember the two artifacts compile() built (and its threads); QEfficient's return value."""
        self.qpc_paths = {"encoder_qpc_path": encoder, "decoder_qpc_path": decoder}
        self.qpc_path = decoder
        self._num_cores = num_cores
        return self.qpc_paths
