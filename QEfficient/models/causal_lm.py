"""QEFFAutoModelForCausalLM: the public face of the pipeline load -> transform -> export -> compile -> run -> generate."""

from __future__ import annotations

import copy
import inspect
import logging
import os
import warnings
from functools import partial
from pathlib import Path

import torch
from transformers import PreTrainedModel

from QEfficient.compile.fusion import FUSION_VERSION, fuse_by_default, fused_decoder_rewrite
from QEfficient.compile.ort_cpu import read_artifact, warn_ignored_options, warn_once, warn_qaic_config
from QEfficient.compile.smooth_int8 import INT8_PROJECTIONS
from QEfficient.compile.weight_compression import compress_matmul_weights
from QEfficient.export.graph_specs import DecoderGraphSpec
from QEfficient.export.onnx_export import WeightsOffloadedError, export_speculative_onnx
from QEfficient.generation.beam_search import BeamSettings, beam_settings
from QEfficient.generation.causal_beams import BeamTextGeneration, causal_rules, unapplied
from QEfficient.generation.exec_kv import load_prompts, print_perf, right_padding
from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.generation.sampling import SamplingParams, with_checkpoint_warpers
from QEfficient.generation.text_generation import eos_token_ids
from QEfficient.generation.text_generation_inference import cloud_ai_100_exec_kv
from QEfficient.loading.hf_loader import check_causal_lm_config, load_causal_lm
from QEfficient.models.base import QEFFBaseModel, check_context_limit, check_recurrent_chunk, recurrent_state_manifest
from QEfficient.models.speculative import SPECULATIVE_KWARGS, check_speculative_compile, check_speculative_type, speculative_generate
from QEfficient.runtime.devices import current_device
from QEfficient.runtime.ort_session import KVCacheSession, open_kv_session
from QEfficient.runtime.tokenizer import tokenizer_digest
from QEfficient.transform.speculative import QEffSpeculativeCausalLM
from QEfficient.transform.static_kv import QEffCausalLM
from QEfficient.utils.checks import check_flags, check_positive
from QEfficient.utils.extras import require_extra
from QEfficient.utils.memory import release_freed_memory

logger = logging.getLogger(__name__)

_KV_DTYPES = {torch.float32: "float32", torch.float16: "float16"}
_TORCH_KV_DTYPES = {name: dtype for dtype, name in _KV_DTYPES.items()}

# Accepted for QEfficient compatibility; the ONNX Runtime CPU backend does not act on them yet.
_CPU_PENDING = {
    "num_devices": "num_devices > 1 has no meaning on the ONNX Runtime CPU backend; one session is used",
    "full_batch_size": "full_batch_size is only used with continuous_batching=True (from_pretrained); it is ignored",
}

# qaic_config keys acted on here: the sampler ones (include_sampler + generate(sampling_params=...)
# sample on the host; max_top_k_ids only caps top_k on the device) and guided decoding's switch,
# which generate() refuses when it is on.
_QAIC_CONFIG_HONOURED = {"include_sampler", "max_top_k_ids", "return_pdfs", "include_guided_decoding", "speculative_model_type"}


def _check_loading_options(continuous_batching, qaic_config) -> None:
    check_flags(continuous_batching=continuous_batching)
    if qaic_config is not None and not isinstance(qaic_config, dict):
        raise ValueError(f"qaic_config must be a dict of QEfficient's options (or None), got {qaic_config!r}.")


class QEFFAutoModelForCausalLM(QEFFBaseModel):
    """A transformers causal LM in retained-state form, exported to ONNX and run by ONNX Runtime.

    >>> model = QEFFAutoModelForCausalLM.from_pretrained("path/to/model")
    >>> model.compile(prefill_seq_len=32, ctx_len=256)
    >>> info = model.generate(tokenizer=tok, prompts=["My name is"])
    """

    def __init__(self, model: PreTrainedModel, continuous_batching: bool = False, qaic_config: dict | None = None, **kwargs) -> None:
        name = type(model).__name__
        if not (name.endswith("ForCausalLM") or name.endswith("LMHeadModel")):
            raise TypeError(
                f"{name} is not a causal language model (expected a *ForCausalLM or *LMHeadModel class). "
                "Use QEFFAutoModel for encoders and QEFFAutoModelForImageTextToText for image-text models."
            )
        check_causal_lm_config(model.config)
        _check_loading_options(continuous_batching, qaic_config)
        warn_qaic_config(qaic_config, _QAIC_CONFIG_HONOURED)
        model.config.use_cache = True
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None), transformers_class=name)
        self.qaic_config = qaic_config
        self.is_speculative_target = check_speculative_type(qaic_config)
        self.model = self._wrap(model.eval())
        self.continuous_batching = continuous_batching
        self.draft_qpc_path: Path | None = None  # compile(speculative_draft=...): the compressed self-draft
        self.qpc_session: KVCacheSession | None = None
        self._weights_offloaded = False
        self._source: tuple | None = None

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        continuous_batching: bool = False,
        qaic_config: dict | None = None,
        *args,
        **kwargs,
    ) -> QEFFAutoModelForCausalLM:
        """Load a local folder, a .gguf file (or folder + ``gguf_file=``), or a hub id from the local HF cache.

        Other keyword arguments go to transformers' ``from_pretrained``.
        """
        if kwargs.pop("full_batch_size", None) is not None:  # (QEfficient's deprecated spelling: warned of there too)
            warnings.warn(
                "from_pretrained(full_batch_size=...) is deprecated (as in QEfficient): it means continuous_batching=True; "
                "give the slot count to compile(full_batch_size=N).",
                stacklevel=2,
            )
            continuous_batching = True
        _check_loading_options(continuous_batching, qaic_config)  # before the weights are read
        kwargs.pop("attn_implementation", None)  # the static-KV attention is always used
        kwargs.pop("kv_offload", None)  # QEfficient's: it takes and drops it (it means something for image-text models)
        # QEfficient's Cloud AI 100 loading switches (rotary table length, layer-wise export, proxy models)
        cloud_only = {k: kwargs.pop(k) for k in ("max_seq_len_cached", "layerwise", "enable_proxy") if k in kwargs}
        warn_ignored_options("from_pretrained()", cloud_only)
        model, folder = load_causal_lm(pretrained_model_name_or_path, *args, **kwargs)
        source = Path(pretrained_model_name_or_path) / kwargs["gguf_file"] if kwargs.get("gguf_file") else pretrained_model_name_or_path
        obj = cls(model, continuous_batching=continuous_batching, qaic_config=qaic_config, pretrained_model_name_or_path=str(source))
        obj.local_model_dir = folder
        obj._source = (pretrained_model_name_or_path, kwargs)  # to reload released weights for another export
        return obj

    def _wrap(self, model: PreTrainedModel) -> QEffCausalLM:
        return QEffSpeculativeCausalLM(model) if self.is_speculative_target else QEffCausalLM(model)

    def _export_options(self, name: str, kv_dtype) -> dict:
        """A speculative target exports its own graph (logits for every position), cached apart."""
        if not self.is_speculative_target:
            return {"kv_dtype": kv_dtype}
        return {
            "export_fn": lambda tmp: export_speculative_onnx(self.model, tmp, name, kv_dtype),
            "hash_extra": {"speculative_model_type": "target", "kv_cache_dtype": str(kv_dtype)},
        }

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    @property
    def config(self):
        return self.model.config

    @property
    def model_name(self) -> str:
        name = super().model_name
        return Path(name).stem if name.endswith(".gguf") else name

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> Path:
        """Export the retained-state graph to ONNX (cached under QEFF_HOME); returns the .onnx path.

        ``offload_pt_weights=True`` (the default, as in QEfficient) releases the PyTorch weights once
        the graph exists, so the process holds one copy of the weights (ONNX Runtime's); pass False
        to keep ``self.model`` runnable.
        """
        dynamo = bool(kwargs.pop("dynamo", False))
        offload = bool(kwargs.pop("offload_pt_weights", True))
        kv_dtype = _TORCH_KV_DTYPES[kwargs.pop("kv_cache_dtype", None) or _KV_DTYPES.get(self.model.lm_head.weight.dtype, "float32")]
        warn_ignored_options("export()", kwargs)
        name = self.model_name.replace("/", "_")
        try:
            self.onnx_path = self._export_graph(
                self.model,
                name,
                export_dir,
                dynamo=dynamo,
                weights_available=not self._weights_offloaded,
                **self._export_options(name, kv_dtype),
            )
        except WeightsOffloadedError as err:
            if self._source is None:
                raise WeightsOffloadedError(
                    f"{err} The PyTorch weights were released after the first export (offload_pt_weights=True): "
                    "load the model again, or pass offload_pt_weights=False to export()/compile() to keep them."
                ) from None
            logger.info("Reloading the weights from %s for a new export", self._source[0])
            model, _ = load_causal_lm(self._source[0], **self._source[1])
            self.model = self._wrap(model)
            self._weights_offloaded = False
            self.onnx_path = self._export_graph(self.model, name, export_dir, dynamo=dynamo, **self._export_options(name, kv_dtype))
        if offload and not self._weights_offloaded:
            freed = sum(t.numel() * t.element_size() for t in self.model.hf.state_dict().values())
            self.model.hf.to("meta")  # frees the tensors; shapes and dtypes stay for compile()
            self._weights_offloaded = True
            release_freed_memory(freed)
        return self.onnx_path

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        prefill_seq_len: int = 32,
        ctx_len: int = 128,
        batch_size: int = 1,
        full_batch_size: int | None = None,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        mxint8_kv_cache: bool = False,
        offload_pt_weights: bool = True,
        gguf_weights: bool = False,
        num_speculative_tokens: int | None = None,
        speculative_draft: str | None = None,
        fuse: bool | None = None,
        **compiler_options,
    ) -> Path:
        """Export if needed, then build (or reuse) the artifact for the ONNX Runtime CPU backend.

        ``gguf_weights=True`` (a model loaded from a .gguf file) runs the MatMuls and the embedding
        on the file's own quantized blocks, exactly (compile/gguf_weights.py); with
        ``mxfp6_matmul=True`` too, weights the file does not quantize go to 8-bit.

        A speculative target (``qaic_config={"speculative_model_type": "target"}``) needs
        ``num_speculative_tokens=K``; ``speculative_draft="mxfp6"`` also builds the same graph with
        8-bit MatMul weights as its draft (self-speculation: generate() then drafts with it).

        ``fuse`` rewrites each layer into ONNX Runtime's fused operators (compile/fusion.py); None
        (the default) fuses every architecture the sweep proved (docs/architectures.md) when the artifact is built
        for the CPU; for a GPU (``QEFF_DEVICE``, runtime/devices.py) it keeps the plain graph.
        """
        check_flags(
            mxfp6_matmul=mxfp6_matmul, mxint8_kv_cache=mxint8_kv_cache, offload_pt_weights=offload_pt_weights, gguf_weights=gguf_weights
        )
        if fuse is not None:
            check_flags(fuse=fuse)
        gguf_path = self._gguf_path() if gguf_weights else None
        check_positive(prefill_seq_len=prefill_seq_len, ctx_len=ctx_len, batch_size=batch_size, num_cores=num_cores)
        check_speculative_compile(self.is_speculative_target, num_speculative_tokens, speculative_draft)
        check_recurrent_chunk(self.model, prefill_seq_len)
        if self.is_speculative_target and self.model.state_shapes:
            raise ValueError(
                f"{self.model_architecture} keeps recurrent (Mamba-style) state, which a rejected draft token cannot be taken back "
                "from: speculative decoding needs a transformer target. Load it without qaic_config={'speculative_model_type': 'target'}."
            )
        if self.continuous_batching:
            if full_batch_size is None:
                raise TypeError("continuous_batching=True needs compile(full_batch_size=N): the number of KV-cache slots.")
            check_positive(full_batch_size=full_batch_size)
        if prefill_seq_len > ctx_len:
            raise ValueError(f"prefill_seq_len ({prefill_seq_len}) must not exceed ctx_len ({ctx_len}).")
        self._check_max_positions("ctx_len", ctx_len)
        check_context_limit(self.model, ctx_len)
        draft_gguf = self._gguf_path() if speculative_draft == "gguf" else gguf_path
        for key, value in {
            "num_devices": num_devices > 1,
            "full_batch_size": full_batch_size is not None and not self.continuous_batching,
        }.items():
            if value:
                warn_once(key, _CPU_PENDING[key])
        warn_ignored_options("compile()", compiler_options, tuple(inspect.signature(self.compile).parameters))

        kv_dtype = _KV_DTYPES.get(self.model.lm_head.weight.dtype)
        if kv_dtype is None:
            raise ValueError(
                f"Weights in {self.model.lm_head.weight.dtype} cannot run on the ONNX Runtime CPU backend; "
                "load the model with dtype=torch.float32 (the default of from_pretrained)."
            )
        state_dtype = kv_dtype  # recurrent states keep the compute dtype, whatever the KV cache is stored as
        if mxint8_kv_cache:
            # Cloud AI 100 stores the cache as MXINT8. ONNX Runtime's CPU kernels have no block-scaled
            # int8 attention, so the cache is stored as float16: half the bytes, the arithmetic
            # still in float32 (the graph widens what it reads).
            kv_dtype = "float16"
        onnx_path = Path(onnx_path) if onnx_path else self.export(offload_pt_weights=offload_pt_weights, kv_cache_dtype=kv_dtype)
        if not onnx_path.is_file():
            raise FileNotFoundError(f"ONNX file '{onnx_path}' does not exist; call export() or pass onnx_path=None.")
        n_layers, n_kv, head_dim = self.model.adapter.kv_geometry(self.config)
        params = {
            "backend": "onnxruntime-cpu",
            "prefill_seq_len": prefill_seq_len,
            "ctx_len": ctx_len,
            "batch_size": batch_size,
            "full_batch_size": full_batch_size if self.continuous_batching else None,
            "mxfp6_matmul": mxfp6_matmul,
            "mxint8_kv_cache": mxint8_kv_cache,
        }  # (num_devices and the compiler's options change nothing here: warned of above, not in the key)
        if gguf_path is not None:  # only then: existing artifacts keep their hashes
            params["gguf_weights"] = str(gguf_path.resolve())
        device = current_device()
        if device.is_cuda:  # only then: CPU artifacts keep their hashes
            params["backend"] = "onnxruntime-cuda"
        # The fused operators are the CPU provider's: CUDA's GroupQueryAttention has no float32 kernel.
        if (fuse_by_default(self.config) and not device.is_cuda) if fuse is None else fuse:
            params["fused_graph"] = FUSION_VERSION
            if mxfp6_matmul and gguf_path is None:
                params["int8_projections"] = INT8_PROJECTIONS
        if self.is_speculative_target:
            params["num_speculative_tokens"] = num_speculative_tokens
        if self._tokenizer_folder() is not None:  # the artifact holds the tokenizer: a changed one is a new artifact
            params["tokenizer"] = tokenizer_digest(self._tokenizer_folder())
        params["eos_token_id"] = self.model.hf.generation_config.eos_token_id  # recorded (execute stops at it): keyed
        manifest = {
            "num_layers": n_layers,
            "kv_shape": [full_batch_size if self.continuous_batching else batch_size, n_kv, ctx_len, head_dim],
            "continuous_batching": self.continuous_batching,
            "kv_dtype": kv_dtype,
            "vocab_size": self.model.vocab_size,
            "num_cores": num_cores,
            "model_name": self.model_name,
            "architecture": self.model_architecture,
            "pretrained_model_name_or_path": self.pretrained_model_name_or_path,
            "eos_token_id": self.model.hf.generation_config.eos_token_id,
            "local_model_dir": str(self.local_model_dir) if self.local_model_dir else None,
        }
        if self.is_speculative_target:
            manifest |= {"speculative_model_type": "target", "num_speculative_tokens": num_speculative_tokens}
        manifest |= recurrent_state_manifest(self.model, manifest["kv_shape"][0], state_dtype)
        manifest |= self._artifact_extra()
        params |= self._artifact_extra()
        self.qpc_path = self._build_artifact(
            onnx_path,
            compile_dir,
            manifest,
            params,
            DecoderGraphSpec.specializations(prefill_seq_len, ctx_len, batch_size, full_batch_size if self.continuous_batching else None),
            rewrite=(
                partial(fused_decoder_rewrite, ctx_len=ctx_len, mxfp6_matmul=mxfp6_matmul, gguf_path=gguf_path)
                if "fused_graph" in params
                else self._weight_rewrite(gguf_path, mxfp6_matmul)
            ),
            extra_files=self._save_runtime_tokenizer,
        )
        self.draft_qpc_path = None
        if speculative_draft is not None:
            # The draft is built like a plain compile of the same graph (fused when the target is), with
            # 8-bit weights ("mxfp6") or the GGUF file's own blocks ("gguf"); "draft" keys its artifact.
            draft_params = {**params, "mxfp6_matmul": mxfp6_matmul or speculative_draft == "mxfp6", "draft": speculative_draft}
            if draft_gguf is not None:
                draft_params["gguf_weights"] = str(draft_gguf.resolve())
                draft_params.pop("int8_projections", None)
            elif "fused_graph" in draft_params:
                draft_params["int8_projections"] = INT8_PROJECTIONS
            self.draft_qpc_path = self._build_artifact(
                onnx_path,
                compile_dir,
                manifest,
                draft_params,
                DecoderGraphSpec.specializations(
                    prefill_seq_len, ctx_len, batch_size, full_batch_size if self.continuous_batching else None
                ),
                rewrite=(
                    partial(fused_decoder_rewrite, ctx_len=ctx_len, mxfp6_matmul=True, gguf_path=draft_gguf)
                    if "fused_graph" in draft_params
                    else self._weight_rewrite(draft_gguf, draft_params["mxfp6_matmul"])
                ),
            )
        self._num_cores = num_cores
        return self.qpc_path

    def _artifact_extra(self) -> dict:
        """What a subclass's graph adds to the artifact's manifest and hash (LoRA: its adapter tables' shapes)."""
        return {}

    def _tokenizer_folder(self) -> Path | None:
        from QEfficient.utils.tokenizer import TokenizerNotFoundError, tokenizer_folder

        try:
            return tokenizer_folder(self.local_model_dir) if self.local_model_dir else None
        except TokenizerNotFoundError:
            return None

    def _save_runtime_tokenizer(self, artifact_dir: Path) -> None:
        """The tokenizer and EOS ids, into the artifact: generating from it then needs neither torch nor
        the model's folder (QEfficient/runtime/tokenizer.py). A folder without a tokenizer saves none."""
        from QEfficient.models.artifact_tokenizer import copy_runtime_tokenizer

        folder = self._tokenizer_folder()
        if folder is None:
            logger.info("No tokenizer next to the model: the artifact holds none (pass one to generate()).")
            return
        copy_runtime_tokenizer(folder, self.model.hf.generation_config, artifact_dir)

    @staticmethod
    def _weight_rewrite(gguf_path: Path | None, mxfp6_matmul: bool):
        """The compile-time rewrite of the graph's weights: the GGUF file's own blocks, 8-bit blocks, or none."""
        if gguf_path is None:
            return compress_matmul_weights if mxfp6_matmul else None
        from QEfficient.compile.gguf_weights import gguf_weights_rewrite  # needs the gguf package (an extra)

        return partial(gguf_weights_rewrite, gguf_path=gguf_path, mxfp6_matmul=mxfp6_matmul)

    def _gguf_path(self) -> Path:
        source = Path(self.pretrained_model_name_or_path or "")
        if source.suffix != ".gguf" or not source.is_file():
            raise ValueError(
                "compile(gguf_weights=True) runs a GGUF file's own quantized blocks, but this model was not loaded from a "
                f".gguf file ({self.pretrained_model_name_or_path!r}). Load it with from_pretrained('path/model.gguf') or "
                "from_pretrained(folder, gguf_file=...), or use mxfp6_matmul=True for 8-bit weights."
            )
        require_extra("gguf", "compile(gguf_weights=True)")
        return source

    def _beams(self, kwargs: dict) -> tuple[BeamSettings | None, int | None]:
        """transformers' beam search where the call asks for it (``num_beams``, ``length_penalty``, ``early_stopping``);
        a checkpoint whose generation config asks for beams is warned about once, since generate() decodes greedily
        (as QEfficient's does) unless num_beams is passed. Returns the settings (None: no beams) and min_new_tokens."""
        num_beams = kwargs.pop("num_beams", None)
        options = {k: v for k in ("length_penalty", "early_stopping", "num_return_sequences") if (v := kwargs.pop(k, None)) is not None}
        hf = getattr(getattr(self, "model", None), "hf", None)
        config = getattr(hf, "generation_config", None)
        asked = getattr(config, "num_beams", None) or 1
        if num_beams is None and asked > 1:
            warn_once(
                f"checkpoint-num-beams:{self.model_name}",
                f"{self.model_name}'s generation config asks for num_beams={asked}; generate() decodes greedily (as "
                f"QEfficient's does) unless you pass num_beams={asked}, so its text can differ from transformers' generate().",
            )
        if num_beams in (None, 1):
            if options:
                raise ValueError(f"{sorted(options)} apply to beam search: pass num_beams > 1 too.")
            return None, None
        settings = beam_settings(
            config, num_beams, options.get("length_penalty"), options.get("early_stopping"), options.get("num_return_sequences")
        )
        return settings, kwargs.pop("min_new_tokens", None)

    def _beam_generate(self, tokenizer, prompts, prompts_txt_file_path, generation_len, stream, beams, min_new_tokens, sampling, kwargs):
        """transformers' beam search over a session of batch_size x num_beams cache rows; ``kwargs``: generation-config
        fields for this call (as transformers' generate takes them)."""
        from_config = [k for k in ("include_sampler", "include_guided_decoding") if kwargs.pop(k, False)]
        if from_config:
            raise ValueError(
                f"Beam search reads the model's logits; this model runs {from_config} (qaic_config): load it without them for num_beams."
            )
        if any(kwargs.pop(k, None) is not None for k in ("lora_tables", "prompt_to_lora_id_mapping")):
            raise NotImplementedError("Beam search does not run LoRA adapters here: generate with num_beams=1 (greedy or sampled).")
        given = [k for k in ("sampling_params",) if kwargs.pop(k, None) is not None]
        if sampling.sampling or given or sampling.top_k or sampling.top_p is not None:
            raise ValueError(
                f"Beam search here is not sampled: leave out {given or ['temperature / do_sample / top_k / top_p']} with num_beams."
            )
        config = copy.deepcopy(self.model.hf.generation_config)
        if sampling.repetition_penalty is not None:
            config.repetition_penalty = sampling.repetition_penalty
        for name in BEAM_CONFIG_FIELDS & set(kwargs):
            setattr(config, name, kwargs.pop(name))
        if kwargs:
            raise TypeError(f"generate() with num_beams got unexpected keyword arguments {sorted(kwargs)}.")
        skipped = unapplied(config)
        if skipped:
            warn_once(
                f"beam-unapplied:{skipped}", f"beam search here does not apply the generation config's {skipped}; transformers' would."
            )
        qconfig = read_artifact(Path(self.qpc_path))
        if qconfig.get("continuous_batching"):
            raise NotImplementedError("Beam search runs on a static batch: compile without continuous batching (full_batch_size).")
        rows = qconfig["kv_shape"][0] * beams.num_beams
        self.qpc_session = self._session(
            "kv", (str(self.qpc_path), self._num_cores, rows), lambda: open_kv_session(self.qpc_path, self._num_cores, rows=rows)
        )
        tokenizer = right_padding(tokenizer)
        eos = eos_token_ids(tokenizer, config)
        generator = BeamTextGeneration(
            self.qpc_session,
            tokenizer,
            qconfig["compile_params"]["prefill_seq_len"],
            eos,
            beams,
            *causal_rules(config, eos, tokenizer.pad_token_id or 0, min_new_tokens),
        )
        info = generator.generate(load_prompts(prompts, prompts_txt_file_path), generation_len=generation_len, stream=stream)
        print_perf(info)
        return info

    def generate(
        self,
        tokenizer,
        prompts: list[str] | str | None = None,
        device_id: list[int] | None = None,
        runtime_ai100: bool = True,
        generation_len: int | None = None,
        stream: bool = True,
        prompts_txt_file_path: str | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        seed: int | None = None,
        do_sample: bool | None = None,
        **kwargs,
    ) -> CloudAI100ExecInfo:
        """Chunked prefill, then decode until EOS, ``generation_len`` or the end of ``ctx_len``.

        Greedy by default; ``temperature`` > 0 (or ``do_sample=True``) samples, with ``top_k``,
        ``top_p`` and ``repetition_penalty`` applied as transformers does (the checkpoint's temperature, top_k and top_p
        where the call leaves them out; top_k 50 where it names none), reproducibly for a ``seed``.
        ``num_beams`` > 1 (with ``length_penalty``, ``early_stopping``, ``min_new_tokens``) runs transformers' beam
        search with the checkpoint's logits processors: each prompt's best sequence (``num_return_sequences`` best, in
        turn), transformers' tokens.
        """
        check_flags(stream=stream)  # (a string such as "False" would read as True)
        sampling = SamplingParams(temperature, top_k, top_p, repetition_penalty, seed, do_sample)
        sampling = with_checkpoint_warpers(sampling, getattr(self.model.hf, "generation_config", None))
        beams, min_new_tokens = self._beams(kwargs)
        speculation = {k: kwargs.pop(k) for k in SPECULATIVE_KWARGS if k in kwargs}
        if kwargs.pop("write_io", False):
            warn_once("write_io", "generate(write_io=True): dumping Cloud AI 100 input/output buffers is not supported; nothing written.")
        for switch in ("include_sampler", "include_guided_decoding"):  # generate()'s, else from_pretrained's qaic_config
            if kwargs.get(switch) is None:
                kwargs[switch] = bool((self.qaic_config or {}).get(switch))
        if not runtime_ai100:
            raise NotImplementedError("runtime_ai100=False (PyTorch generation) is not supported; use transformers' generate().")
        if self.qpc_path is None:
            raise TypeError("Please run compile() before generate().")
        self.qpc_session = None  # released first if the artifact changed: one copy of the weights at a time
        if beams is not None:
            if speculation or self.draft_qpc_path is not None:
                raise ValueError("Beam search and speculative decoding do not combine: leave out one of them.")
            options = (generation_len, stream, beams, min_new_tokens, sampling, kwargs)
            return self._beam_generate(tokenizer, prompts, prompts_txt_file_path, *options)
        if speculation or self.draft_qpc_path is not None:  # opens its own sessions
            if kwargs.get("sampling_params") is not None or kwargs["include_guided_decoding"]:
                raise ValueError(
                    "Speculative decoding here is greedy (or samples with temperature=...): sampling_params and "
                    "include_guided_decoding (token_bitmasks) do not apply to it; generate without speculation to use them."
                )
            speculation |= {k: kwargs[k] for k in ("lora_tables", "prompt_to_lora_id_mapping") if kwargs.get(k) is not None}
            return speculative_generate(self, tokenizer, prompts, generation_len, stream, sampling, prompts_txt_file_path, **speculation)
        self.qpc_session = self._session(
            "kv", (str(self.qpc_path), self._num_cores), lambda: open_kv_session(self.qpc_path, self._num_cores)
        )
        return cloud_ai_100_exec_kv(
            tokenizer,
            self.qpc_path,
            prompt=prompts,
            prompts_txt_file_path=prompts_txt_file_path,
            device_id=device_id,
            generation_len=generation_len,
            stream=stream,
            session=self.qpc_session,
            generation_config=self.model.hf.generation_config,
            sampling=sampling,
            **kwargs,  # QEfficient's: sampling_params, include_sampler, iteration, automation, ...
        )


# generation-config fields a generate(num_beams=...) call may set, as transformers' generate(**kwargs) takes them
BEAM_CONFIG_FIELDS = {
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "min_length",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_eos_token_id",
}

__all__ = ["QEFFAutoModelForCausalLM"]
