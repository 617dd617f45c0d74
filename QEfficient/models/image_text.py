"""QEFFAutoModelForImageTextToText: vision-language generation.

``kv_offload=True``: a vision graph and a language graph, two artifacts. ``kv_offload=False``:
one graph that runs its vision branch when the first prefill chunk brings pixels (see
export/one_graph.py). Architectures: the table in transform/vision_adapters.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, GenerationConfig, PreTrainedModel

from QEfficient.compile.compile_helper import empty_inputs
from QEfficient.compile.ort_cpu import checked_companion, read_artifact, warn_ignored_options, warn_once, warn_qaic_config
from QEfficient.compile.weight_compression import compress_matmul_weights
from QEfficient.export.graph_names import INPUT_FEATURES, INPUT_VALUES, PIXEL_VALUES
from QEfficient.export.graph_specs import DecoderGraphSpec, VisionGraphSpec
from QEfficient.export.one_graph import combine_vision_language
from QEfficient.export.onnx_export import export_image_text_decoder_onnx, export_vision_onnx
from QEfficient.generation.continuous_batching import Request
from QEfficient.generation.exec_kv import continuous_result, print_perf, right_padding
from QEfficient.generation.image_text_batching import ImageTextBatchingEngine
from QEfficient.generation.image_text_generation import ImagePrefill, ImageTextGeneration, PromptRope, prepare_images, prompt_rope
from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.generation.mrope import MultimodalRope, PromptLengthRope
from QEfficient.generation.sampling import SamplingParams, check_allowed_tokens, seeded_apart
from QEfficient.generation.text_generation import eos_token_ids
from QEfficient.generation.text_generation_inference import resolve_sampling
from QEfficient.loading.config_overrides import weights_fit
from QEfficient.loading.hf_loader import image_text_class, resolve_model_path, with_hf_overrides, with_load_defaults
from QEfficient.models.base import QEFFBaseModel, check_context_limit, check_recurrent_chunk, companion_record, recurrent_state_manifest
from QEfficient.models.image_text_view import ModelView, check_img_size, holds_an_image
from QEfficient.models.processor_files import save_whole_processor, whole_processor_key
from QEfficient.models.sentence_transformers import MODEL_FILES_SUBDIR  # the processor's files and config in the artifact
from QEfficient.runtime.ort_session import no_image_inputs, open_artifact_session, open_kv_session
from QEfficient.transform.image_text import QEffImageTextDecoder, QEffVisionEncoder
from QEfficient.transform.vision_adapters import VisionLanguageAdapter, get_vision_adapter
from QEfficient.utils.checks import check_generation_len, check_positive

# qaic_config keys acted on: the sampler's (generate(sampling_params=...) samples on the host)
_QAIC_CONFIG_HONOURED = {"include_sampler", "max_top_k_ids", "return_pdfs", "include_guided_decoding"}


logger = logging.getLogger(__name__)

# Granite Speech's: transformers' generate turns its LoRA adapter off for prompts without audio; the graph holds it on
AUDIO_ONLY_LORA = (
    "A prompt without audio runs with the checkpoint's LoRA adapter on, which transformers turns off for text alone: its "
    "answer is not transformers'. Send the prompt with audio, or load the model without its adapter for text."
)


def _finite(vision: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The vision graph's inputs, refused where a float one holds NaN or infinity: NaN would also reach the cache rows
    the next call reads past its own length."""
    for name, value in vision.items():
        if not name.startswith("_") and isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"{name} hold NaN or infinity: pass the processor's output for real images (or audio).")
    return vision


class QEFFAutoModelForImageTextToText(QEFFBaseModel):
    """>>> model = QEFFAutoModelForImageTextToText.from_pretrained("path/to/llava", kv_offload=True)
    >>> model.compile(prefill_seq_len=128, ctx_len=512, img_size=336)
    >>> model.generate(inputs=processor(images=image, text=prompt, return_tensors="pt"), generation_len=64)
    """

    def __init__(self, model: PreTrainedModel, kv_offload: bool = True, continuous_batching: bool = False, **kwargs) -> None:
        self.adapter = get_vision_adapter(model.config)
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None))
        self.continuous_batching = continuous_batching
        self.kv_offload = kv_offload
        self.hf = model.eval()
        self.vision_model = QEffVisionEncoder(self.hf, self.adapter)
        self.lang_model = QEffImageTextDecoder(self.hf, self.adapter)
        self.qpc_paths: dict[str, Path] | Path | None = None
        self._sessions: tuple | None = None
        self.qaic_config: dict | None = kwargs.pop("qaic_config", None)
        self.prompt_rope = _prompt_rope(self.adapter, model.config)
        self._without_weights = False  # from_artifact: the model's modules on the meta device

    @classmethod
    def from_artifact(
        cls, qpc_path: str | os.PathLike, num_cores: int | None = None, vision_qpc_path: str | os.PathLike | None = None
    ) -> QEFFAutoModelForImageTextToText:
        """The compiled model from its artifact, ``generate()`` and ``serving_engine()`` running its graphs: with
        ``kv_offload=True`` the language artifact (``compile()``'s ``lang_qpc_path``, which names its vision artifact;
        ``vision_qpc_path``: a copy of that elsewhere), with ``kv_offload=False`` the one graph's. No weights are read
        (the model's modules are built on the meta device, for its host-side rules), so export and compile are refused."""
        qpc_path = Path(qpc_path)
        qconfig = read_artifact(qpc_path)
        if qconfig.get("kind") == "vision":
            raise ValueError(f"'{qpc_path}' is the vision graph; pass the language artifact (compile()'s lang_qpc_path).")
        folder = qpc_path / MODEL_FILES_SUBDIR
        if "img_size" not in qconfig.get("compile_params", {}) or not folder.is_dir():
            raise ValueError(
                f"'{qpc_path}' is not the artifact of a vision-language model compiled by this version (the language "
                "artifact, or the one graph's, holds the processor): compile it again, or load the model."
            )
        without_vision = bool(qconfig["compile_params"].get("skip_vision"))  # compile(skip_vision=True): text only
        two_graphs = bool(qconfig.get("vision_artifact")) or without_vision
        if vision_qpc_path is not None and not qconfig.get("vision_artifact"):
            raise ValueError(
                f"'{qpc_path}' is one graph (kv_offload=False), or was compiled with skip_vision=True: it has no vision artifact; "
                "leave vision_qpc_path out."
            )
        vision = None
        if two_graphs and not without_vision:
            vision = checked_companion(qpc_path, qconfig, "vision", vision_qpc_path, "vision", "this vision-language model")
        config = AutoConfig.from_pretrained(folder)
        with torch.device("meta"):
            hf = image_text_class(config).from_config(config)
        if (folder / "generation_config.json").is_file():
            hf.generation_config = GenerationConfig.from_pretrained(folder)
        obj = cls(hf, kv_offload=two_graphs, continuous_batching=bool(qconfig.get("continuous_batching")))
        obj.pretrained_model_name_or_path = qconfig.get("model_name")
        obj.local_model_dir, obj._without_weights = folder, True
        obj.qpc_paths = ({"lang_qpc_path": qpc_path} | ({"vision_qpc_path": vision} if vision else {})) if two_graphs else qpc_path
        obj.img_size, obj._num_cores = qconfig["compile_params"]["img_size"], num_cores or qconfig.get("num_cores") or 1
        return obj

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        kv_offload: bool | None = None,
        continuous_batching: bool = False,
        qaic_config: dict | None = None,
        **kwargs,
    ):
        """``kv_offload=None`` (the default) is the one-graph layout, as QEfficient's code does (its
        docstring says two graphs); ``kv_offload=True`` gives the vision and language graphs."""
        warn_qaic_config(qaic_config, _QAIC_CONFIG_HONOURED)
        kwargs.pop("attn_implementation", None)  # the static-KV attention is always used
        folder, _ = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
        kwargs.setdefault("config", AutoConfig.from_pretrained(folder))
        from QEfficient.models.image_seq2seq import IMAGE_SEQ2SEQ_CLASSES

        encoder_decoder = IMAGE_SEQ2SEQ_CLASSES.get(kwargs["config"].model_type)
        if encoder_decoder is not None:  # an image encoder with a cross-attending decoder (TrOCR, Donut, Pix2Struct, ...)
            return encoder_decoder.from_pretrained(pretrained_model_name_or_path, continuous_batching=continuous_batching, **kwargs)
        overrides = kwargs.get("hf_overrides")
        with_hf_overrides(folder, with_load_defaults(kwargs))  # vLLM's hf_overrides, sub-configs merged
        get_vision_adapter(kwargs["config"])  # an unsupported architecture fails before any weight is read
        with weights_fit(overrides):
            model = image_text_class(kwargs["config"]).from_pretrained(folder, **kwargs)
        obj = cls(
            model,
            kv_offload=bool(kv_offload),
            continuous_batching=continuous_batching,
            pretrained_model_name_or_path=str(pretrained_model_name_or_path),
            qaic_config=qaic_config,
        )
        obj.local_model_dir = folder
        return obj

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.hf

    @property
    def model(self) -> ModelView:
        """QEfficient's ``qeff_model.model``: the transformers model, with QEfficient's ``prepare_inputs_for_generation``."""
        return ModelView(self.hf)

    def _default_ctx_len(self, images: int) -> int:
        """A context for ``images`` images' tokens (where the adapter knows how many one gives; a tiled image counts
        one tile) and 512 of text, in steps of 256, at least 1,024 (QEfficient's for LLaVA), at most the model's
        positions."""
        try:
            image_tokens = self.adapter.most_tokens_per_unit(self.config) * images  # an audio window's, at most
        except NotImplementedError:  # token counts that come with each image's size (Qwen-VL): the floor
            image_tokens = 0
        length = max(1024, -(-(image_tokens + 512) // 256) * 256)
        max_pos = getattr(self.lang_model.config, "max_position_embeddings", None)
        length = min(length, max_pos) if max_pos else length
        logger.info("compile(): ctx_len=%d (none given); pass ctx_len for longer prompts or more images", length)
        return length

    def export(self, export_dir: str | os.PathLike | None = None, img_size: int | None = None, **kwargs) -> list[Path] | Path:
        """Export the graphs (each cached): [vision, language] .onnx paths, or the one graph's path with kv_offload=False.

        ``kv_cache_dtype="float16"`` exports the language graph with a half-width cache (mxint8_kv_cache)."""
        if self._without_weights:
            raise TypeError(
                "This model was loaded from its artifacts, without weights: load it with from_pretrained() to export or compile it."
            )
        default = self.adapter.default_img_size(self.config)  # 0 for some adapters: sizes come with the images
        if img_size is None:
            img_size = default
        elif img_size != default:
            check_img_size(img_size, default)
        kv_dtype = kwargs.get("kv_cache_dtype") or "float32"
        name = self.model_name.replace("/", "_")
        try:
            vision = self._export_graph(
                self.vision_model,
                f"{name}-vision",
                export_dir,
                export_fn=lambda tmp: export_vision_onnx(self.vision_model, tmp, f"{name}-vision", img_size),
                hash_extra={"graph": "vision", "img_size": img_size},
            )
        except (ValueError, RuntimeError, MemoryError) as err:
            if img_size == default:
                raise
            raise ValueError(
                f"The vision graph could not be traced at img_size={img_size} ({type(err).__name__}: {err}). This model's "
                f"own image size is {default}: leave img_size out, or give a size its vision encoder takes."
            ) from err
        lang = self._export_graph(
            self.lang_model,
            f"{name}-language",
            export_dir,
            export_fn=lambda tmp: export_image_text_decoder_onnx(self.lang_model, tmp, f"{name}-language", getattr(torch, kv_dtype)),
            hash_extra={"graph": "language", "kv_dtype": kv_dtype},
        )
        self.onnx_path = [vision, lang]
        if not self.kv_offload:
            self.onnx_path = self._export_graph(
                self.lang_model,
                name,
                export_dir,
                export_fn=lambda tmp: combine_vision_language(vision, lang, tmp / f"{name}.onnx"),
                hash_extra={"graph": "one", "img_size": img_size, "kv_dtype": kv_dtype},
            )
        return self.onnx_path

    def compile(
        self,
        img_size: int | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        prefill_seq_len: int | None = 32,
        ctx_len: int | None = None,
        batch_size: int = 1,
        full_batch_size: int | None = None,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        mxint8_kv_cache: bool = False,
        max_num_images: int = 1,
        **compiler_options,
    ) -> dict[str, Path] | Path:
        """Build the artifacts: {"vision_qpc_path": ..., "lang_qpc_path": ...}, or one path with kv_offload=False.

        ``ctx_len=None`` (QEfficient's default, which picks a length per model): room for ``max_num_images`` images'
        tokens and 512 of text, at least 1,024, within the model's positions. ``prefill_seq_len=None``: chunks of 32
        (a prompt of any length is prefilled chunk by chunk). ``max_num_images``: cross-attention models (Mllama,
        IDEFICS): the most images one prompt may hold (each sequence's retained image slots); other models take any
        number of images per prompt."""
        prefill_seq_len = 32 if prefill_seq_len is None else prefill_seq_len
        if ctx_len is None:
            ctx_len = self._default_ctx_len(max_num_images)
        check_positive(
            prefill_seq_len=prefill_seq_len, ctx_len=ctx_len, batch_size=batch_size, num_cores=num_cores, max_num_images=max_num_images
        )
        if img_size is not None:
            check_img_size(img_size, self.adapter.default_img_size(self.config))
        if prefill_seq_len > ctx_len:
            raise ValueError(f"prefill_seq_len ({prefill_seq_len}) must not exceed ctx_len ({ctx_len}).")
        self._check_max_positions("ctx_len", ctx_len, self.lang_model.config)
        check_recurrent_chunk(self.lang_model.lm, prefill_seq_len)
        check_context_limit(self.lang_model.lm, ctx_len)
        if self.continuous_batching:
            if full_batch_size is None:
                raise TypeError("continuous_batching=True needs compile(full_batch_size=N): the number of KV-cache slots.")
            check_positive(full_batch_size=full_batch_size)
        if not self.continuous_batching and full_batch_size is not None:
            raise TypeError("full_batch_size is for continuous batching: load with from_pretrained(..., continuous_batching=True).")
        rows = full_batch_size if self.continuous_batching else batch_size
        skip_vision, skip_lang = self._graphs_to_skip(compiler_options)
        warn_ignored_options("compile()", {**compiler_options, "num_devices": num_devices > 1})
        img_size = img_size or self.adapter.default_img_size(self.config)
        # as in QEFFAutoModelForCausalLM: an 8-bit block-quantized weight form for mxfp6_matmul, a
        # float16 cache for mxint8_kv_cache (ONNX Runtime's CPU kernels have no MX formats)
        kv_dtype = "float16" if mxint8_kv_cache else "float32"
        rewrite = compress_matmul_weights if mxfp6_matmul else None
        exported = self.export(img_size=img_size, kv_cache_dtype=kv_dtype)
        vision_onnx, lang_onnx = exported if self.kv_offload else (None, exported)
        _, n_kv, head_dim = self.lang_model.lm.adapter.kv_geometry(self.lang_model.config)
        vision = (
            vision_onnx
            and not skip_vision
            and self._build_artifact(
                vision_onnx,
                compile_dir,
                {"kind": "vision"},
                {"img_size": img_size, "batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul},
                VisionGraphSpec.specializations(img_size, batch_size),
                rewrite=rewrite,
            )
        )
        manifest = {
            "num_layers": self.lang_model.num_layers,
            "kv_shape": [rows, n_kv, ctx_len, head_dim],
            "continuous_batching": self.continuous_batching,
            "kv_dtype": kv_dtype,
            "vocab_size": self.lang_model.lm.vocab_size,
            "embedding_rows": self.lang_model.embedding_rows,
            "num_cores": num_cores,
            "model_name": self.model_name,
            "eos_token_id": self.hf.generation_config.eos_token_id,
            # a recurrent/hybrid text model's conv/SSM states, in the compute dtype whatever the cache is stored as
            **recurrent_state_manifest(self.lang_model.lm, rows, str(self.lang_model.lm.lm_head.weight.dtype).removeprefix("torch.")),
        }
        companion = {}
        if vision:  # named relative to the language artifact (a cache moved whole keeps the pair), its fingerprint in the key
            named, companion["vision_artifact"] = companion_record(vision, compile_dir, lang_onnx)
            manifest |= {"vision_artifact": named, "vision_artifact_digest": companion["vision_artifact"]}
        elif skip_vision:  # the vision graph's inputs holding no image, for text prompts (Mllama's masks read them)
            manifest["vision_graph_inputs"] = empty_inputs(vision_onnx)
        self.img_size, self._num_cores, self._sessions = img_size, num_cores, None
        self._drop_sessions()
        if skip_lang:
            self.qpc_paths = {"vision_qpc_path": vision}
            return self.qpc_paths
        lang = self._build_artifact(
            lang_onnx,
            compile_dir,
            manifest,
            {
                **self._model_files_key(),
                "prefill_seq_len": prefill_seq_len,
                "ctx_len": ctx_len,
                "batch_size": batch_size,
                "full_batch_size": full_batch_size,
                "img_size": img_size,
                "mxfp6_matmul": mxfp6_matmul,
                "mxint8_kv_cache": mxint8_kv_cache,
                **({"max_num_images": max_num_images} if self.adapter.cross_attention else {}),
                **({"skip_vision": True} if skip_vision else {}),  # its own artifact: it names no vision graph
                **companion,
            },
            DecoderGraphSpec.specializations(prefill_seq_len, ctx_len, batch_size, full_batch_size),
            rewrite=rewrite,
            extra_files=self._save_model_files,
        )
        self.qpc_paths = (({"vision_qpc_path": vision} if vision else {}) | {"lang_qpc_path": lang}) if self.kv_offload else lang
        return self.qpc_paths

    def _graphs_to_skip(self, compiler_options: dict) -> tuple[bool, bool]:
        """QEfficient's ``skip_vision`` / ``skip_lang`` (taken out of ``compiler_options``): build only the language or
        only the vision graph of ``kv_offload=True``'s two."""
        skip_vision, skip_lang = bool(compiler_options.pop("skip_vision", False)), bool(compiler_options.pop("skip_lang", False))
        if skip_vision and skip_lang:
            raise ValueError("Expected at least one of 'skip_lang' or 'skip_vision' to be False")
        if (skip_vision or skip_lang) and not self.kv_offload:
            warn_once(
                "skip-one-graph",
                "skip_vision / skip_lang choose between the two graphs of kv_offload=True; this model is one graph "
                "(kv_offload=False), which is built whole.",
            )
            return False, False
        return skip_vision, skip_lang

    def _model_files_key(self) -> dict:
        """What the language artifact keeps besides the graph (the processor's files, the generation config), in its
        key: a changed one is a new artifact. The config is in the graph's key already."""
        return whole_processor_key(self.local_model_dir, self.hf.generation_config)

    def _save_model_files(self, artifact_dir: Path) -> None:
        save_whole_processor(self.local_model_dir, artifact_dir, self.config, self.hf.generation_config)

    def generate(
        self,
        inputs=None,
        tokenizer=None,
        processor=None,
        images=None,
        prompts=None,
        generation_len: int | None = None,
        streamer=None,
        device_ids=None,
        runtime_ai100: bool = True,
        stream: bool = True,
        videos=None,
        **kwargs,
    ) -> CloudAI100ExecInfo:
        """Greedy (or sampled) generation for processor outputs, or for ``processor`` + ``images`` + ``prompts``.

        Video (the Qwen-VL family): ``inputs=processor(videos=..., text=...)``, or ``videos=`` (each a list of
        frames) with ``processor`` and ``prompts``; images and videos may share a batch and a prompt."""
        if inputs is not None and not hasattr(inputs, "get"):
            raise ValueError(f"inputs must be the processor's output (input_ids, pixel_values, ...), not a {type(inputs).__name__}.")
        if not self.adapter.takes_videos and (videos is not None or (inputs is not None and inputs.get("pixel_values_videos") is not None)):
            raise NotImplementedError(f"Video input is not supported for {self.config.model_type} yet: pass images.")
        if self.adapter.takes_audio and any(name in kwargs for name in ("audio", "audios")):
            raise ValueError(f"{self.config.model_type} takes its audio through inputs=processor(text=..., audio=...).")
        if self.adapter.takes_audio and (images is not None or videos is not None):
            raise ValueError(
                f"{self.config.model_type} reads audio, not images: pass inputs= its processor's output (input_ids with the "
                "audio tokens, input_features)."
            )
        if self.qpc_paths is None:
            raise TypeError("Please run compile() before generate().")
        if inputs is not None and not any(name in inputs for name in ("input_ids", PIXEL_VALUES, INPUT_FEATURES, "pixel_values_videos")):
            raise ValueError(
                f"inputs must be the processor's output (input_ids, pixel_values, ...), not the keys {sorted(inputs.keys())}: "
                "inputs=processor(images=..., text=...)."
            )
        include_sampler = kwargs.pop("include_sampler", None)
        if include_sampler is None:
            include_sampler = bool((self.qaic_config or {}).get("include_sampler"))
        guided = kwargs.pop("include_guided_decoding", None)
        if guided is None:
            guided = bool((self.qaic_config or {}).get("include_guided_decoding"))
        sampling = resolve_sampling(include_sampler, kwargs.pop("sampling_params", None), guided)
        warn_ignored_options("generate()", {**kwargs, "device_ids": device_ids is not None and len(device_ids) > 1})
        if not runtime_ai100:
            raise NotImplementedError("runtime_ai100=False (PyTorch generation) is not supported; use transformers' generate().")
        generation_len = check_generation_len(generation_len)
        if inputs is None:
            inputs = self._process(processor, images, videos, prompts)
        tokenizer = tokenizer or getattr(processor, "tokenizer", None)
        if tokenizer is None and self.local_model_dir is not None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.local_model_dir)
        if tokenizer is None:
            raise ValueError("Pass the tokenizer or the processor, to decode the output.")
        inputs = self._masked(inputs)  # (the vision inputs of some families read it too)
        token_lists = self.prompt_token_lists(inputs)
        self._open_sessions()
        vision_inputs = self._vision_inputs(inputs, token_lists)
        qconfig = read_artifact(self._lang_path)
        tokenizer = right_padding(tokenizer, quiet=True)  # (the prompts arrive tokenized: a processor's side is moot here)
        eos = eos_token_ids(tokenizer, self.hf.generation_config)
        prefiller = self._prefiller(qconfig, tokenizer)
        if streamer is not None and (self.continuous_batching or self._sessions[0].batch_size > 1):
            warnings.warn(
                "streamer is fed at batch size 1 only (transformers' streamers take one row); this model runs "
                f"{'continuous batching' if self.continuous_batching else f'batches of {self._sessions[0].batch_size}'}: nothing "
                "is streamed. Compile with batch_size=1 to stream, or read the result.",
                stacklevel=2,
            )
        if self.continuous_batching:
            info = self._generate_continuous(token_lists, vision_inputs, tokenizer, eos, prefiller, generation_len, sampling)
        else:
            generator = ImageTextGeneration(
                self._sessions[0], tokenizer, eos, prefiller, vision_session=self._sessions[1], rope=self.prompt_rope, sampling=sampling
            )
            info = generator.generate_images(token_lists, vision_inputs, generation_len, streamer)
        if stream:
            print_perf(info)
        return info

    @property
    def lang_qpc_path(self) -> Path:
        """The artifact of the language graph (with ``kv_offload=False``, of the one graph)."""
        return self._lang_path

    @property
    def _lang_path(self) -> Path:
        if not self.kv_offload:
            return self.qpc_paths
        if "lang_qpc_path" not in self.qpc_paths:
            raise TypeError("compile(skip_lang=True) built only the vision graph: compile without skip_lang to generate text.")
        return self.qpc_paths["lang_qpc_path"]

    def _open_sessions(self) -> None:
        if self._sessions is None:
            vision_path = self.kv_offload and self.qpc_paths.get("vision_qpc_path")
            vision = vision_path and open_artifact_session(vision_path, self._num_cores, spin=False)
            self._sessions = (open_kv_session(self._lang_path, self._num_cores), vision or None)

    def serving_engine(self, tokenizer) -> ImageTextBatchingEngine:
        """A continuous-batching engine over the compiled artifacts, for a server: each request carries the
        ``extra`` that ``request_extra`` made from its processor outputs."""
        if not self.continuous_batching or self.qpc_paths is None:
            raise TypeError("serving_engine() needs from_pretrained(..., continuous_batching=True) and compile(full_batch_size=N).")
        self._open_sessions()
        tokenizer = right_padding(tokenizer, quiet=True)  # (the server's own processor)
        prefiller = self._prefiller(read_artifact(self._lang_path), tokenizer)
        return ImageTextBatchingEngine(self._sessions[0], prefiller, eos_token_ids(tokenizer, self.hf.generation_config), prefiller.pad_id)

    def request_extra(self, prefiller: ImagePrefill, inputs) -> tuple[list[int], dict]:
        """One prompt's tokens and what its prefill needs (``Request.extra``), from the processor's outputs for it:
        the vision graph (two graphs) runs here, so a server can do it off the engine's thread."""
        inputs = self._masked(inputs)
        token_lists = self.prompt_token_lists(inputs)
        if len(token_lists) != 1:
            raise ValueError(f"request_extra() takes the processor's outputs for one prompt, got {len(token_lists)}.")
        return token_lists[0], self._request_extras(prefiller, token_lists, self._vision_inputs(inputs, token_lists))[0]

    def prompt_token_lists(self, inputs) -> list[list[int]]:
        """Each prompt's tokens as the language graph reads them (image tokens included), from the processor's outputs;
        without an attention mask, the padding is told apart as transformers' generate() does (``_padding_mask``)."""
        inputs = self._masked(inputs)
        try:
            return self.adapter.prompt_token_lists(inputs, self.config)
        except KeyError as err:  # pixel_values alone, say
            if not (err.args and isinstance(err.args[0], str) and hasattr(inputs, "keys") and err.args[0] not in inputs):
                raise
            raise ValueError(
                f"inputs hold no {err.args[0]}: pass the processor's whole output for the prompts and their images "
                "(inputs=processor(images=..., text=...))."
            ) from None

    def _masked(self, inputs):
        """The processor's outputs with an attention mask: theirs, or the one transformers derives (_padding_mask)."""
        if hasattr(inputs, "keys") and "attention_mask" not in inputs and "input_ids" in inputs:
            return {**inputs, "attention_mask": self._padding_mask(inputs["input_ids"])}
        return inputs

    def _padding_mask(self, input_ids) -> np.ndarray:
        """transformers' mask for inputs given without one: the pad token's positions left out where the prompts hold it
        and it is not an end token (else every position kept)."""
        ids = np.asarray(input_ids)
        pad, eos = self.hf.generation_config.pad_token_id, self.hf.generation_config.eos_token_id
        ends = set(eos if isinstance(eos, (list, tuple)) else [eos])
        if pad is None or pad in ends or not (ids == pad).any():
            return np.ones_like(ids)
        return (ids != pad).astype(np.int64)

    def _request_extras(self, prefiller: ImagePrefill, token_lists, vision_inputs) -> list[dict]:
        rows_vision, rows_embeds = prepare_images(prefiller, self._sessions[1], token_lists, vision_inputs)
        rope = prompt_rope(self.prompt_rope, token_lists, rows_vision) or [None] * len(token_lists)
        return [{"vision": v, "embeds": e, "rope": r} for v, e, r in zip(rows_vision, rows_embeds, rope)]

    def _vision_inputs(self, inputs, token_lists: list[list[int]]) -> dict[str, np.ndarray]:
        """The adapter's host-side vision inputs. Prompts that hold no image token, where the adapter needs images, get
        the graphs' vision inputs holding zero images: HF runs them without its vision tower."""
        try:
            vision = self.adapter.vision_inputs(inputs, self.img_size, self.config)
        except Exception as err:
            media = (PIXEL_VALUES, INPUT_FEATURES, INPUT_VALUES)  # images, videos (pixel_values_videos); an audio model's audio
            pixels = [v for name, v in inputs.items() if any(m in name for m in media) and v is not None and _given(v)]
            if any(np.isin(tokens, self.lang_model.image_token_id).any() for tokens in token_lists):
                if not pixels and self.adapter.takes_audio:
                    raise ValueError(
                        "The prompts hold audio tokens but no audio was given: pass inputs=processor(text=..., audio=...) "
                        "(its input_features and their mask)."
                    ) from err
                if not pixels:
                    raise ValueError(
                        "The prompts hold image tokens but no images were given: pass images= (one per image placeholder) "
                        "or inputs=processor(images=..., text=...)."
                    ) from err
                raise
            if any(holds_an_image(p) for p in pixels):  # not a processor's all-zero stand-in (IDEFICS): keep its error
                raise
        else:
            return _finite(vision)
        if self.adapter.audio_only_lora and getattr(self.hf, "_hf_peft_config_loaded", False):
            warn_once("audio_only_lora", AUDIO_ONLY_LORA)
        if self.kv_offload and self._sessions[1] is None:  # compile(skip_vision=True): the inputs it recorded
            recorded = read_artifact(self._lang_path).get("vision_graph_inputs") or {}
            return {**{name: np.zeros(dims, dtype) for name, (dtype, dims) in recorded.items()}, "_tokens": np.zeros(0, np.int64)}
        return {**no_image_inputs(*self._sessions), "_tokens": np.zeros(0, np.int64)}

    def _process(self, processor, images, videos, prompts):
        """The processor's outputs for ``prompts`` with their images (one per prompt) and/or videos (frame lists)."""
        if processor is not None and not callable(processor):
            raise ValueError(f"processor must be the model's processor (AutoProcessor.from_pretrained), not {processor!r:.40}.")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if images is not None and not isinstance(images, (list, tuple)) and np.ndim(images) < 4:  # one image: one prompt's
            images = [images]
        if videos is None:
            if processor is not None and images is None and prompts is not None:  # text-only prompts
                return processor(text=list(prompts), return_tensors=self.adapter.processor_tensors, padding=True)
            if processor is None or images is None or prompts is None or len(images) != len(prompts):
                raise ValueError("Pass inputs=processor(...) or processor=, images= and prompts= (an image or a list per prompt).")
            return processor(
                images=self.adapter.processor_images(images),
                text=list(prompts),
                return_tensors=self.adapter.processor_tensors,
                padding=True,
            )
        if processor is None or prompts is None:
            raise ValueError("Pass inputs=processor(...) or processor=, prompts= and videos= (and images=), one per placeholder.")
        media = {"videos": list(videos)}
        if images is not None:
            media["images"] = self.adapter.processor_images(images)
        return processor(**media, text=list(prompts), return_tensors=self.adapter.processor_tensors, padding=True)

    def _prefiller(self, qconfig: dict, tokenizer) -> ImagePrefill:
        return ImagePrefill(
            self.adapter,
            self.lang_model.image_token_id,
            self.lang_model.embedding_width,
            qconfig["compile_params"]["prefill_seq_len"],
            qconfig["kv_shape"][2],
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
            one_graph=not self.kv_offload,
            max_images=qconfig["compile_params"].get("max_num_images", 1),
            no_images={} if self.kv_offload else no_image_inputs(*self._sessions),
            embedding_rows=qconfig.get("embedding_rows"),
        )

    def _generate_continuous(
        self, token_lists, vision_inputs, tokenizer, eos, prefiller: ImagePrefill, generation_len, sampling=None
    ) -> CloudAI100ExecInfo:
        """Every prompt through the continuous-batching engine; results flat, in prompt order."""
        session, vision_session = self._sessions
        check_allowed_tokens(sampling, session.batch_size, session.logits.shape()[-1])
        start = time.perf_counter()
        extras = self._request_extras(prefiller, token_lists, vision_inputs)
        vision_time = time.perf_counter() - start if vision_session is not None and len(vision_inputs["_tokens"]) else None
        engine = ImageTextBatchingEngine(session, prefiller, eos, prefiller.pad_id)
        requests = [
            Request(tokens, generation_len or session.ctx_len, seeded_apart(sampling or SamplingParams(), i), extra=extra)
            for i, (tokens, extra) in enumerate(zip(token_lists, extras))
        ]
        engine.run_all(requests)
        info = continuous_result(requests, engine, start, time.perf_counter(), tokenizer, prefiller.pad_id)
        info.vision_time = vision_time
        return info


def _prompt_rope(adapter: VisionLanguageAdapter, config) -> PromptRope | None:
    """The host-side rotary rule of architectures that have one (their adapter says how positions are
    made: Qwen2-VL's family), from the config alone, so generation keeps no PyTorch model."""
    if (own := adapter.host_rope(config)) is not None:
        return own
    if getattr(adapter, "reference_prompt", False):  # the channel carries each row's prompt length instead
        return PromptLengthRope()
    if type(adapter).prompt_positions is VisionLanguageAdapter.prompt_positions:
        return None
    return MultimodalRope(int(config.image_token_id), int(config.vision_config.spatial_merge_size))


def _given(value) -> bool:
    """Whether a media input holds anything (a ragged list of arrays counts: its own check names it)."""
    try:
        return bool(np.size(value))
    except ValueError:
        return True
