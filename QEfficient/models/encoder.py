"""QEFFAutoModel (embeddings, any transformers encoder) and QEFFAutoModelForSequenceClassification."""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTextEncoding,
    PreTrainedModel,
)

from QEfficient.compile.ort_cpu import read_artifact, warn_ignored_options, warn_once
from QEfficient.compile.weight_compression import quantize_dynamic_int8
from QEfficient.export.graph_names import (
    ATTENTION_MASK,
    BBOX,
    GLOBAL_ATTENTION_MASK,
    LOGITS,
    PIXEL_VALUES,
    TOKEN_TYPE_IDS,
    XPATH_TAGS_SEQ,
)
from QEfficient.export.graph_specs import EncoderGraphSpec
from QEfficient.export.onnx_export import export_encoder_onnx
from QEfficient.generation.encoder_run import encoder_inputs, global_attention_mask, global_attention_rule, run_encoder
from QEfficient.loading.colbert import is_colbert_folder
from QEfficient.loading.hf_loader import causal_lm_class, load_config, load_pretrained, retrieval_class_name
from QEfficient.loading.model_path import resolve_model_path
from QEfficient.loading.sparse_encoder import is_sparse_encoder_folder
from QEfficient.models.base import QEFFBaseModel, check_context_limit, check_recurrent_chunk
from QEfficient.models.ctc import QEFFAutoModelForAudioFeatureExtraction, is_speech_encoder
from QEfficient.models.image_encoder import QEFFAutoModelForImageFeatureExtraction
from QEfficient.models.page_inputs import layout_inputs, xpath_inputs
from QEfficient.models.pooling_key import pooling_key
from QEfficient.models.sentence_encoding import encode_sentences
from QEfficient.models.sentence_inputs import SentenceInputs
from QEfficient.models.sentence_transformers import (
    MODEL_FILES_FORMAT,
    MODEL_FILES_SUBDIR,
    EmbeddingHead,
    copy_serving_files,
    serving_config_values,
    serving_files,
)
from QEfficient.runtime.ort_session import open_artifact_session
from QEfficient.runtime.tokenizer import tokenizer_digest
from QEfficient.transform.dual_encoder import is_dual_encoder
from QEfficient.transform.encoder import UNSUPPORTED_TEXT_ENCODING, PoolingFn, QEffEncoder, causal_lm_type, resolve_pooling
from QEfficient.transform.image_encoder import reads_pixels
from QEfficient.utils.arrays import as_numpy
from QEfficient.utils.cache import file_digest, hash_dict
from QEfficient.utils.checks import check_positive
from QEfficient.utils.onnx_files import graph_input_names

logger = logging.getLogger(__name__)


# types whose transformers AutoModel class is already the task's model, and the class that runs it
WHOLE_MODELS = {
    **dict.fromkeys(("sam", "sam2", "sam_hq"), ("QEfficient.models.mask_generation", "QEFFAutoModelForMaskGeneration")),  # segmenters
    "vits": ("QEfficient.models.text_to_speech", "QEFFAutoModelForTextToWaveform"),  # VitsModel: text to speech
}


def _saved_config(name_or_path, kwargs: dict):
    """The config of a folder (or cached hub id), or None for a GGUF file."""
    folder, gguf_file = resolve_model_path(name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
    return None if gguf_file else load_config(folder)


def _saved_dpr_class(config):
    """A DPR checkpoint's own class (its question or passage encoder; transformers' AutoModel loads every DPR
    checkpoint as a question encoder, a passage encoder's weights then unread), or None for other models."""
    import transformers

    if config is None or config.model_type != "dpr":
        return None
    saved = next((a for a in config.architectures or [] if a.startswith("DPR")), "DPRQuestionEncoder")
    if saved == "DPRReader":
        raise NotImplementedError(
            "DPRReader scores passages for a question (span and relevance logits), which is not run here; its question "
            "and passage encoders are (QEFFAutoModel)."
        )
    return getattr(transformers, saved)


class _QEFFEncoderBase(QEFFBaseModel):
    _hf_auto = AutoModel
    _output_name = "output"
    own_heads: str | None = None  # the family whose own heads end the graph (models/headed_encoder.py): not an embedding server's
    # what a server on the artifact alone reads of those heads (the folder's files it does not keep): SPLADE's pooling
    heads_settings: dict | None = None

    def __init__(self, model: PreTrainedModel, pooling: str | PoolingFn | None = None, **kwargs) -> None:
        super().__init__(model, kwargs.pop("pretrained_model_name_or_path", None), pooling=pooling_key(pooling))
        self.pooling_fn = resolve_pooling(pooling)
        self.pooling = pooling
        self.model = QEffEncoder(model.eval(), self.pooling_fn)
        self.qpc_session: Any = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; other keyword arguments go to transformers."""
        pooling = kwargs.pop("pooling", None)
        if cls is QEFFAutoModel:  # an inference-free SparseEncoder's folder may hold no config of its own: its model's is in a subfolder
            folder, gguf_file = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))
            if not gguf_file and is_sparse_encoder_folder(folder):
                from QEfficient.models.sparse_encoder import QEFFSparseEncoder  # sentence-transformers' SparseEncoder (SPLADE)

                return QEFFSparseEncoder.from_pretrained(pretrained_model_name_or_path, *args, pooling=pooling, **kwargs)
        config = _saved_config(pretrained_model_name_or_path, kwargs) if cls is QEFFAutoModel else None
        folder = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))[0] if config else None
        if is_colbert_folder(folder):
            from QEfficient.models.colbert import QEFFColBERTModel  # one vector per token: ColBERT's own class

            return QEFFColBERTModel.from_pretrained(pretrained_model_name_or_path, *args, pooling=pooling, **kwargs)
        if config is not None and retrieval_class_name(config.model_type):  # ColPali: transformers' AutoModel does not load it
            if pooling is not None:
                raise ValueError(f"'{config.model_type}' gives one embedding per token (late interaction): load it without pooling.")
            from QEfficient.models.retrieval import QEFFAutoModelForRetrieval

            return QEFFAutoModelForRetrieval.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if config is not None and config.model_type == "sam2_video":  # AutoModel gives the video tracker
            raise NotImplementedError(
                "SAM 2's checkpoints load in transformers' AutoModel as its video tracker, which is not run here; its image "
                "model is: QEFFAutoModelForMaskGeneration.from_pretrained(...)."
            )
        auto = _saved_dpr_class(config)
        model, folder = load_pretrained(auto or cls._hf_auto, pretrained_model_name_or_path, *args, owner=cls.__name__, **kwargs)
        # a model that reads pixels (ViT, DINOv2, ...): QEfficient's QEFFAutoModel takes any AutoModel
        kind = QEFFAutoModelForImageFeatureExtraction if cls is QEFFAutoModel and reads_pixels(model) else cls
        if cls is QEFFAutoModel and is_speech_encoder(model):  # an audio encoder (Wav2Vec2Model, HubertModel, Wav2Vec2BertModel, ...)
            if pooling is not None:
                raise ValueError("An audio encoder's hidden states are per frame here: load it without pooling.")
            obj = QEFFAutoModelForAudioFeatureExtraction(model, pretrained_model_name_or_path=str(pretrained_model_name_or_path))
            obj.local_model_dir = folder
            return obj
        if cls is QEFFAutoModel and model.config.model_type in WHOLE_MODELS:  # transformers' AutoModel is the task's model
            if pooling is not None:
                raise ValueError(f"{type(model).__name__} is not an encoder with hidden states to pool: load it without pooling.")
            module, name = WHOLE_MODELS[model.config.model_type]
            obj = getattr(importlib.import_module(module), name)(model, pretrained_model_name_or_path=str(pretrained_model_name_or_path))
            obj.local_model_dir = folder
            return obj
        if cls is QEFFAutoModel and is_dual_encoder(model):  # CLIP, SigLIP, ...: two towers, text and image
            from QEfficient.models.dual_encoder import QEFFAutoModelForZeroShotImageClassification

            if pooling is not None:
                raise ValueError(f"{type(model).__name__}'s towers pool as the model does: load it without pooling.")
            kind = QEFFAutoModelForZeroShotImageClassification
            obj = kind(model, pretrained_model_name_or_path=str(pretrained_model_name_or_path))
            obj.local_model_dir = folder
            return obj
        obj = kind(model, pooling=pooling, pretrained_model_name_or_path=str(pretrained_model_name_or_path))
        obj.local_model_dir = folder
        return obj

    @property
    def hf_model(self) -> PreTrainedModel:
        return self.model.hf

    @property
    def config(self):
        return self.model.config

    def export(self, export_dir: str | os.PathLike | None = None, **kwargs) -> Path:
        """Export to ONNX (cached under QEFF_HOME); returns the .onnx path."""
        name = self.model_name.replace("/", "_")
        self.onnx_path = self._export_graph(
            self.model,
            name,
            export_dir,
            export_fn=lambda tmp: export_encoder_onnx(self.model, tmp, name, self._output_name),
            hash_extra=self._graph_inputs_extra(),
        )
        return self.onnx_path

    def _graph_inputs_extra(self) -> dict | None:
        """What the graph reads beyond ids, mask and token types (its export's cache key)."""
        extra = {"global_attention": True} if self.model.global_attention else {}
        if self.model.layout:
            extra |= {"layout": True, "image_size": self.model.image_size}
        if self.model.xpath_depth:
            extra["xpath_depth"] = self.model.xpath_depth
        return extra or None

    def compile(
        self,
        onnx_path: str | os.PathLike | None = None,
        compile_dir: str | os.PathLike | None = None,
        *,
        seq_len: int | list[int] = 32,
        batch_size: int = 1,
        num_devices: int = 1,
        num_cores: int = 16,
        mxfp6_matmul: bool = False,
        **compiler_options,
    ) -> Path:
        """Export if needed, then build the artifact; ``seq_len`` may be a list of lengths."""
        lengths = sorted({seq_len} if isinstance(seq_len, int) else set(seq_len))
        if not lengths or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in lengths):
            raise ValueError(f"seq_len must be a positive integer or a list of them, got {seq_len!r}.")
        lengths = self.model.graph_lengths(lengths)  # a Longformer's: multiples of its window
        self._check_max_positions("seq_len", lengths[-1])
        if self.model.static_kv is not None:  # a decoder run through the causal-LM graph: one prefill step of seq_len
            check_recurrent_chunk(self.model.static_kv.lm, lengths[-1], "seq_len")
            check_context_limit(self.model.static_kv.lm, lengths[-1], "seq_len")
        check_positive(batch_size=batch_size, num_cores=num_cores)
        if num_devices > 1:
            warn_once("enc_num_devices", "num_devices > 1 has no meaning on the ONNX Runtime CPU backend; one session is used")
        warn_ignored_options("compile()", compiler_options)
        # a graph given by path may predate token types as an input; this export has them where the model does
        token_types = TOKEN_TYPE_IDS in graph_input_names(Path(onnx_path)) if onnx_path else self.model.token_types
        onnx_path = Path(onnx_path) if onnx_path else self.export()
        page_inputs = ((BBOX, self.model.layout), (PIXEL_VALUES, self.model.image_size), (XPATH_TAGS_SEQ, self.model.xpath_depth))
        missing = [n for n, needed in page_inputs if needed]
        missing = [n for n in missing if n not in graph_input_names(onnx_path)]
        if missing:
            raise ValueError(f"{onnx_path} predates {' and '.join(missing)} as graph inputs: compile without onnx_path.")
        if self.model.global_attention and GLOBAL_ATTENTION_MASK not in graph_input_names(onnx_path):
            raise ValueError(f"{onnx_path} predates Longformer's global attention mask as an input: compile without onnx_path.")
        specs = EncoderGraphSpec(self._output_name).specializations(lengths, batch_size)
        params = {"backend": "onnxruntime-cpu", "seq_len": lengths, "batch_size": batch_size, "mxfp6_matmul": mxfp6_matmul}
        # the folder's files the artifact keeps for a server (serving_files): a changed config or Dense module is a new artifact
        folder = self.local_model_dir
        params["model_files"] = {str(f): file_digest(folder / f) for f in serving_files(folder)} | {"format": MODEL_FILES_FORMAT}
        params["serving_config"] = hash_dict(serving_config_values(self.config))
        if folder is not None and (folder / "tokenizer.json").is_file():  # the artifact holds it: a changed one is a new artifact
            params["tokenizer"] = tokenizer_digest(folder)
        manifest = {"model_name": self.model_name, "output_name": self._output_name, "num_cores": num_cores}
        manifest["token_types"] = token_types
        if self.model.multiple_choice:  # one score per row, grouped by the host: no server here takes it
            manifest["multiple_choice"] = True
        if self.model.layout:  # a document model's boxes (and page images): no server here sends them
            manifest["layout"] = True
        if self.model.xpath_depth:  # a web page's XPaths: no server here sends them either
            manifest["markup"] = True
        if self.reads_padding:  # run at the input's own width (FNet's Fourier mixing, ConvBERT's convolutions)
            manifest["reads_padding"] = True
        if self.model.global_attention:  # what the host marks global when given no mask (and a server, which takes none)
            manifest["global_attention"] = self._global_attention
        # for a server on the artifact
        manifest |= {"pooled": self.graph_pooled, "causal": self.model.causal, "decoder": self.decoder_architecture}
        if self.own_heads:  # not pooled embeddings: a server on the artifact serves its family's routes, or refuses it
            manifest["own_heads"] = self.own_heads
        if self.heads_settings is not None:  # (in the key too: an artifact cached without them is built again)
            manifest["heads"] = params["heads"] = self.heads_settings
        self.qpc_path = self._build_artifact(
            onnx_path,
            compile_dir,
            manifest,
            params,
            specs,
            rewrite=quantize_dynamic_int8 if mxfp6_matmul else None,
            extra_files=self._save_serving_files,
        )
        self._num_cores = num_cores
        return self.qpc_path

    def _save_serving_files(self, artifact_dir: Path) -> None:
        """The tokenizer, config and sentence-transformers modules, into the artifact: a server then starts from it
        (``serve --qpc_path``) without torch or the model's folder. A model without a folder saves none."""
        if self.local_model_dir is None:
            return
        from QEfficient.models.artifact_tokenizer import copy_runtime_tokenizer

        copy_runtime_tokenizer(self.local_model_dir, None, artifact_dir)
        copy_serving_files(self.local_model_dir, artifact_dir / MODEL_FILES_SUBDIR, self.config)

    def _encoder_session(self) -> tuple[Any, dict]:
        if self.qpc_path is None:
            raise TypeError("Please run compile() before generate(), or pass runtime_ai100=False to run PyTorch.")
        qconfig = read_artifact(self.qpc_path)
        self.qpc_session = None  # released first if the artifact changed
        self.qpc_session = self._session(
            "encoder", (str(self.qpc_path), self._num_cores), lambda: open_artifact_session(self.qpc_path, self._num_cores)
        )
        return self.qpc_session, qconfig

    @property
    def graph_pooled(self) -> bool:
        """Whether the graph pools (``pooling=``, or a model whose output is its embedding: DPR's), so the folder's pooling is
        not run after it."""
        return self.pooling_fn is not None or self.model.embedding_head

    @property
    def decoder_architecture(self) -> bool:
        """Whether the model is a decoder's base model (causal attention, or a causal LM's architecture made bidirectional:
        EmbeddingGemma), which vLLM pools at its last token by default."""
        return bool(self.model.causal) or causal_lm_type(self.config)

    @property
    def reads_padding(self) -> bool:
        """Whether the outputs read padding columns (FNet's every column, ConvBERT's and Nystromformer's neighbours): the
        servers batch texts of one length."""
        return self.model.reads_padding

    @property
    def _global_attention(self) -> dict:
        """A Longformer's default global attention: its head's rule, and the separator its QA head counts."""
        return {"rule": global_attention_rule(type(self.hf_model).__name__), "sep_token_id": self.config.sep_token_id}

    def generate(
        self,
        inputs,
        device_ids: list[int] | None = None,
        runtime_ai100: bool = True,
        write_io: bool = False,
        dtype: torch.dtype | None = torch.float32,
    ) -> dict[str, np.ndarray]:
        """Run ``inputs`` (a tokenizer's output: input_ids and attention_mask; a Longformer's may add
        global_attention_mask, else its head's default, as transformers'); returns {output name: array} in ``dtype``."""
        if write_io:
            warn_once("enc_write_io", "generate(write_io=True): dumping Cloud AI 100 input/output buffers is not supported.")
        out_dtype = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}.get(dtype or torch.float32)
        if out_dtype is None:
            raise ValueError(f"generate(dtype={dtype}): outputs can be torch.float32, torch.float16 or torch.float64.")
        return {self._output_name: self._run(inputs, runtime_ai100).astype(out_dtype, copy=False)}

    def _run(self, inputs, runtime_ai100: bool) -> np.ndarray:
        named = {name: as_numpy(value) for name, value in inputs.items()} if hasattr(inputs, "items") else inputs
        ids, mask, types = encoder_inputs(named, getattr(self.config, "vocab_size", None))
        type_count = getattr(self.config, "type_vocab_size", None) if self.model.token_types else None
        if type_count and (types.min() < 0 or types.max() >= type_count):  # past the token-type table (or silently wrong)
            raise ValueError(f"token_type_ids must be from 0 to {type_count - 1} for this model: pass its tokenizer's.")
        given = inputs.get(GLOBAL_ATTENTION_MASK)
        if given is not None and not self.model.global_attention:
            raise ValueError(f"global_attention_mask is Longformer's; {self.config.model_type} takes none.")
        global_mask = None
        if self.model.global_attention:
            default = self._global_attention
            global_mask = global_attention_mask(default["rule"], ids, None if given is None else as_numpy(given), default["sep_token_id"])
        bbox, pixels = layout_inputs(self.model, inputs, ids)
        token_inputs = ({BBOX: bbox} if bbox is not None else {}) | xpath_inputs(self.model, inputs, ids)
        if not runtime_ai100:
            named = {"token_type_ids": torch.from_numpy(types)} if self.model.token_types else {}
            if global_mask is not None:
                named["global_attention_mask"] = torch.from_numpy(global_mask)
            named |= {name: torch.from_numpy(v) for name, v in token_inputs.items()}
            named |= {PIXEL_VALUES: torch.from_numpy(pixels)} if pixels is not None else {}
            with torch.no_grad():
                out = self.model(torch.from_numpy(ids), torch.from_numpy(mask), **named)
            return out.numpy()
        session, qconfig = self._encoder_session()
        params, token_types = qconfig["compile_params"], bool(qconfig.get("token_types"))
        reads_padding = bool(qconfig.get("reads_padding"))
        return run_encoder(session, params, token_types, ids, mask, types, global_mask, reads_padding, token_inputs, pixels)


class QEFFAutoModel(_QEFFEncoderBase):
    """Any transformers encoder (``AutoModel``), optionally with pooling inside the graph.

    >>> model = QEFFAutoModel.from_pretrained("path/to/model", pooling="mean")
    >>> model.compile(num_cores=16)
    >>> model.generate(tokenizer("My name is", return_tensors="pt"))  # {"output": array}
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, pooling: str | PoolingFn | None = None, *args, **kwargs):
        """A local folder or a hub id in the local HF cache; ``pooling`` (second, as in QEfficient) is
        "mean", "avg", "cls", "max", a callable or None; other keyword arguments go to transformers."""
        return super().from_pretrained(pretrained_model_name_or_path, *args, pooling=pooling, **kwargs)

    _head: EmbeddingHead | None = None  # pooling, Dense and normalization after the graph, read at first use
    _inputs: tuple[Any, int | None, SentenceInputs] | None = None  # the last tokenizer's, its artifact's length, what encode() made

    def encode(
        self,
        sentences: list[str] | str,
        tokenizer,
        normalize: bool | None = None,
        batch_size: int = 32,
        prompt_name: str | None = None,
        prompt: str | None = None,
        truncate_dim: int | None = None,
        task: str | None = None,
    ) -> np.ndarray:
        """Sentence embeddings as sentence-transformers' ``encode`` computes them: each sentence after the prompt
        (``prompt``, else the folder's prompt named ``prompt_name``, else its default one), tokenized as its Transformer
        module tokenizes (as sent, lowercased where the folder's ``do_lower_case`` says so, truncated at its
        ``max_seq_length``; or, for a folder whose Transformer takes chat messages, rendered through the chat template
        with the prompt as a system message and ``task`` for a template that reads one: sentence_inputs.py), in batches
        of ``batch_size`` longest first, then the model's pooling, the folder's Dense modules and its Normalize module
        where it has one. A Matryoshka model's shorter vectors with ``truncate_dim`` (by default the folder's, saved
        from sentence-transformers 5.4 on): the first ``truncate_dim`` dimensions. ``normalize`` is
        sentence-transformers' ``normalize_embeddings``: True normalizes the vectors last (after the cut), False leaves
        them as the folder's modules give them; None (the default) is False for a sentence-transformers folder
        (whatever ``pooling=`` says) and True for any other (a plain checkpoint loaded with ``pooling=``), as the
        embeddings server. Vectors [N, D] for a list of
        N texts, one vector [D] for a string (as sentence-transformers)."""
        if not callable(tokenizer):
            raise ValueError(
                f"encode(sentences, tokenizer) takes the model's tokenizer (AutoTokenizer.from_pretrained), not {tokenizer!r:.40}."
            )
        return encode_sentences(
            self.local_model_dir,
            lambda: self._sentence_inputs(tokenizer),
            lambda enc, prompt_length: self.embed(enc, normalize=False, prompt_length=prompt_length),
            sentences,
            self.pooling_fn is not None,  # (a model whose output is its embedding, DPR's, pools regardless: as before)
            normalize,
            batch_size,
            prompt_name,
            prompt,
            truncate_dim,
            task,
        )

    def _sentence_inputs(self, tokenizer) -> SentenceInputs:
        """How the folder tokenizes texts with ``tokenizer``, read once per tokenizer and artifact."""
        compiled = max(read_artifact(self.qpc_path)["compile_params"]["seq_len"]) if self.qpc_path else None
        cached = self._inputs
        if cached is None or cached[0] is not tokenizer or cached[1] != compiled:
            cached = self._inputs = (tokenizer, compiled, SentenceInputs.read(self.local_model_dir, tokenizer, self.model.config, compiled))
        return cached[2]

    def encode_query(self, sentences: list[str] | str, tokenizer, **options) -> np.ndarray:
        """``encode`` for queries, as sentence-transformers 6's encode_query: the folder's "query" prompt (none where it
        saves none, not the default prompt) unless another is given, the task "query" for a chat template that reads one
        and the folder's query_length."""
        return self._encode_for("query", sentences, tokenizer, options)

    def encode_document(self, sentences: list[str] | str, tokenizer, **options) -> np.ndarray:
        """``encode`` for documents, as sentence-transformers 6's encode_document: the folder's "document" prompt (none
        where it saves none) unless another is given, the task "document" and the folder's document_length."""
        return self._encode_for("document", sentences, tokenizer, options)

    def _encode_for(self, task: str, sentences: list[str] | str, tokenizer, options: dict) -> np.ndarray:
        if options.get("prompt_name") is None and options.get("prompt") is None:
            options["prompt_name"] = task  # the folder's, else none (sentence_transformers_prompt)
        return self.encode(sentences, tokenizer, task=task, **options)

    def embed(self, inputs, normalize: bool = True, prompt_length: int = 0, pooling: list[str] | None = None) -> np.ndarray:
        """Pooled embeddings [B, D] of tokenized ``inputs`` (input_ids and attention_mask, padded): the model's
        pooling (the graph's, else the sentence-transformers folder's, else a decoder's last token or an encoder's
        mean; the folder's leaves out the first ``prompt_length`` tokens), the folder's Dense projections, then L2
        norm if ``normalize``; ``pooling`` names other poolings than the folder's (ignored where the graph pools)."""
        if self._head is None:  # first use: read (and check) what sentence-transformers runs after the encoder
            self._head = EmbeddingHead(self.local_model_dir, self.graph_pooled, self.model.causal)
        out = self.generate(inputs, runtime_ai100=self.qpc_path is not None)["output"]
        return self._head(out, as_numpy(inputs[ATTENTION_MASK]), normalize, prompt_length, pooling)


class _QEFFLogitsEncoder(_QEFFEncoderBase):
    """A head's logits, returned as torch tensors (as QEfficient's classifier returns them)."""

    _output_name = LOGITS

    def generate(self, inputs, device_ids: list[int] | None = None, runtime_ai100: bool = True, **kwargs) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(value) for name, value in super().generate(inputs, device_ids, runtime_ai100, **kwargs).items()}


class QEFFAutoModelForSequenceClassification(_QEFFLogitsEncoder):
    """Sequence classifiers (BERT, RoBERTa, DeBERTa-v2, ...); generate() returns {"logits": torch.Tensor}, as in QEfficient."""

    _hf_auto = AutoModelForSequenceClassification

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *args,
        classifier_from_token: list[str] | None = None,
        method: str | None = None,
        **kwargs,
    ):
        """A sequence classifier's folder; or, given ``classifier_from_token`` and ``method`` (vLLM's hf_overrides
        names), a causal LM scored by those tokens' logits. ``method`` "from_2_way_softmax" (two tokens, one label whose
        sigmoid is the second token's softmax probability against the first: Qwen3-Reranker with ["no", "yes"]) or
        "no_post_processing" (a label per token). Other keyword arguments go to transformers."""
        if (classifier_from_token is None) != (method is None):
            raise ValueError(
                "classifier_from_token= and method= go together: the tokens, and 'from_2_way_softmax' (two tokens, one "
                "label: Qwen3-Reranker's) or 'no_post_processing' (a label per token)."
            )
        if classifier_from_token is None:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

        from QEfficient.transform.lm_as_classifier import lm_as_classifier, token_ids
        from QEfficient.utils.tokenizer import load_hf_tokenizer

        folder = resolve_model_path(pretrained_model_name_or_path, kwargs.get("cache_dir"), kwargs.get("revision"))[0]
        auto = causal_lm_class(load_config(folder))  # Mistral4ForCausalLM: its own class
        causal_lm, folder = load_pretrained(auto, pretrained_model_name_or_path, *args, owner=cls.__name__, **kwargs)
        ids = token_ids(load_hf_tokenizer(folder), classifier_from_token)
        model = lm_as_classifier(causal_lm, ids, method)
        obj = cls(model, pretrained_model_name_or_path=str(pretrained_model_name_or_path))
        obj.local_model_dir = folder
        return obj


class QEFFAutoModelForTextEncoding(QEFFAutoModel):
    """A model's text encoder alone (transformers' ``AutoModelForTextEncoding``: T5's, mT5's and UMT5's encoders, CLIP's
    text tower, BERT-style encoders), as the text encoders of image and audio generators use them: generate() returns
    {"output": the last hidden state [B, S, D]} (pooled with ``pooling=``)."""

    _hf_auto = AutoModelForTextEncoding

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, pooling: str | PoolingFn | None = None, *args, **kwargs):
        """As QEFFAutoModel's; the text-encoding types not run here are refused before any weight is read."""
        config = _saved_config(pretrained_model_name_or_path, kwargs)
        reason = UNSUPPORTED_TEXT_ENCODING.get(config.model_type) if config is not None else None
        if reason is not None:
            raise NotImplementedError(f"'{config.model_type}' is not supported as a text encoder here: {reason}.")
        return super().from_pretrained(pretrained_model_name_or_path, pooling, *args, **kwargs)
