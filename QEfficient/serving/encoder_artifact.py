"""An encoder's compiled artifact served without torch or the model's folder (``serve --qpc_path``): what the
embeddings (SPLADE's too), scores, ColBERT and BGE-M3 servers use of a QEFFAutoModel, read from the artifact (an image or
audio classifier's /classify: serving/classify_media_app.py, whose processors import torch).

compile() keeps in the artifact the run-time tokenizer, the model's config and its sentence-transformers modules
(``model_files``: pooling, Dense weights, normalization); the graph runs through generation/encoder_run.py and
pooling, Dense and normalization in numpy (models/sentence_transformers.py), as for the model itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from QEfficient.compile.ort_cpu import read_artifact, resolve_companion
from QEfficient.export.graph_names import (
    ATTENTION_MASK,
    DUAL_ENCODER_KIND,
    GLOBAL_ATTENTION_MASK,
    IMAGE_ENCODER_KIND,
    LOGITS,
    VIDEO_CLASSIFIER_KIND,
)
from QEfficient.export.task_graph_specs import RETRIEVAL_KIND, TEXT_TO_WAVEFORM_KIND
from QEfficient.generation.encoder_run import encoder_inputs, global_attention_mask, run_encoder
from QEfficient.loading.sentence_transformers_files import sentence_bert_config, warn_chat_formatting
from QEfficient.models.sentence_encoding import encode_sentences
from QEfficient.models.sentence_inputs import SentenceInputs
from QEfficient.models.sentence_transformers import (
    MODEL_FILES_SUBDIR,
    SERVING_CONFIG,
    EmbeddingHead,
    check_sentence_transformers_folder,
    l2_normalized,
    sentence_transformers_normalizes,
    served_input_limit,
)
from QEfficient.runtime.ort_session import open_artifact_session
from QEfficient.runtime.tokenizer import check_call_arguments, has_runtime_tokenizer, load_tokenizer
from QEfficient.serving.app import DEFAULT_MAX_BODY_BYTES
from QEfficient.serving.protocol import artifact_model_names
from QEfficient.serving.runner import NoRunner
from QEfficient.serving.score_template import saved_score_template
from QEfficient.utils.checks import served_length


def classifies_media(qconfig: dict) -> bool:
    """Whether the artifact is an image or audio classifier's, served for /classify with the processor it keeps."""
    return bool(qconfig.get("image_classifier") or qconfig.get("audio_classifier"))


def is_encoder_artifact(qconfig: dict) -> bool:
    """Whether an artifact's qconfig is one a server takes besides a decoder's: a text encoder's (QEFFAutoModel or a
    sequence classifier), an image or audio classifier's, a page retriever's or contrastive model's text artifact, or a
    VITS model's; another image or audio model's is refused, saying so, as are other task graphs."""
    if classifies_media(qconfig) or serves_pages(qconfig) or embeds_texts_and_images(qconfig) or speaks(qconfig):
        return True
    if str(qconfig.get("kind", "")).startswith(RETRIEVAL_KIND):
        raise ValueError(
            f"'{qconfig.get('model_name')}': a page retriever is served from its text artifact (compile()'s text_qpc_path), "
            "which names its vision artifact and keeps the processor; this is its vision graph, or a text artifact compiled "
            "by an older version, without its processor: compile it again, or serve the model's folder."
        )
    if "audio_reads" in qconfig:  # a speech recognizer's, an audio encoder's, a frame classifier's (models/ctc.py)
        raise ValueError(
            f"'{qconfig.get('model_name')}' is an audio model's artifact that no server here takes (speech recognition, "
            "features, frames' labels; of the audio models only classifiers' artifacts are served): serve the model's "
            "folder (serve --model_name), or run it from Python."
        )
    if qconfig.get("kind") == IMAGE_ENCODER_KIND:
        raise ValueError(
            f"'{qconfig.get('model_name')}' is an image model's artifact that no server here takes (an image encoder's "
            "features, a detector's or a segmenter's outputs), or an image classifier's compiled by an older version, "
            "without its image processor: compile a classifier's again, or run it from Python "
            "(QEFFAutoModelForImageFeatureExtraction and the task classes)."
        )
    if qconfig.get("multiple_choice"):
        name = qconfig.get("model_name")
        raise ValueError(f"'{name}' is a multiple-choice head's artifact, which no server here takes. Run it from Python.")
    if qconfig.get("layout"):
        raise ValueError(
            f"'{qconfig.get('model_name')}' is a document model's artifact (LayoutLM, LiLT, Bros, LayoutLMv3): it reads each "
            "token's box, which no server here takes. Run it from Python."
        )
    if qconfig.get("markup"):
        raise ValueError(
            f"'{qconfig.get('model_name')}' is a web-page model's artifact (MarkupLM): it reads each token's XPath, which no "
            "server here takes. Run it from Python."
        )
    if qconfig.get("kind") == VIDEO_CLASSIFIER_KIND:
        raise ValueError(f"'{qconfig.get('model_name')}' is a video classifier's artifact: no server here takes video. Run it from Python.")
    if str(qconfig.get("kind", "")).startswith(DUAL_ENCODER_KIND):
        raise ValueError(
            f"'{qconfig.get('model_name')}': a contrastive image-text model (CLIP, SigLIP) is served from its text artifact "
            "(compile()'s text_qpc_path), which names its image artifact and keeps the processor; this is its image tower, "
            "or a text artifact compiled by an older version: compile it again, or serve the model's folder."
        )
    kind = qconfig.get("kind")
    if kind and "output_name" in qconfig and "kv_shape" not in qconfig:  # a task model's graph (SAM's, a matcher's, ...)
        raise ValueError(
            f"'{qconfig.get('model_name')}' is an artifact of a {kind} graph, which no server here takes from an artifact: "
            "run it from Python (or serve the model's folder, where its kind is served)."
        )
    return "output_name" in qconfig and "kv_shape" not in qconfig


def serves_pages(qconfig: dict) -> bool:
    """Whether an artifact is a page retriever's text graph (ColPali's) that names its vision artifact and keeps its
    processor: a server answers /pooling, /score and /rerank on it (serving/retrieval_app.py)."""
    return qconfig.get("kind") == f"{RETRIEVAL_KIND}-text" and bool(qconfig.get("vision_artifact"))


def embeds_texts_and_images(qconfig: dict) -> bool:
    """Whether an artifact is a contrastive image-text model's text tower (CLIP's, SigLIP's) that names its image
    artifact and keeps its processor: a server answers /v1/embeddings of texts and images on it."""
    return qconfig.get("kind") == f"{DUAL_ENCODER_KIND}-text" and bool(qconfig.get("image_artifact"))


def speaks(qconfig: dict) -> bool:
    """Whether an artifact is a text-to-speech model's (VITS) that keeps its tokenizer: a server answers
    /v1/audio/speech on it (serving/tts_app.py)."""
    return qconfig.get("kind") == TEXT_TO_WAVEFORM_KIND and bool(qconfig.get("keeps_processor"))


def companion_artifact(qpc_path, qconfig: dict) -> Path | None:
    """The second artifact a two-graph model's text artifact ``qpc_path`` names (a page retriever's vision graph, a
    contrastive model's image tower), which a server opens beside it; None for a model of one graph."""
    key = "vision_artifact" if serves_pages(qconfig) else "image_artifact" if embeds_texts_and_images(qconfig) else None
    return None if key is None else resolve_companion(Path(qpc_path), qconfig[key], qconfig.get(f"{key}_digest"))


def check_kept_processor(qpc_path, qconfig: dict) -> None:
    """The processor (a VITS model's tokenizer) a page retriever's, a contrastive model's or a VITS model's artifact
    keeps, loaded and checked as its server does: Ray's driver checks it before any replica starts."""
    folder, name = Path(qpc_path) / MODEL_FILES_SUBDIR, str(qpc_path)
    if serves_pages(qconfig):
        from QEfficient.serving.retrieval_app import retrieval_processor

        retrieval_processor(folder, name)
    elif embeds_texts_and_images(qconfig):
        from QEfficient.serving.dual_embeddings_app import dual_processor

        dual_processor(folder, name)
    elif speaks(qconfig):
        from QEfficient.serving.tts_app import tts_tokenizer

        tts_tokenizer(folder, name)


def check_input_limit(qpc_path, qconfig: dict, ctx_len: int | None, model_limits: bool = True) -> None:
    """--ctx_len with an encoder's artifact, checked before it opens (by Ray's driver too): a VITS model's and a classifier
    of images or audio take none; another's may not pass its compiled length and the model's limits (a page retriever's:
    its language model's positions; ``model_limits`` False: the first refusal only, where the server opening it checks
    the rest)."""
    if ctx_len is None:
        return
    if speaks(qconfig) or classifies_media(qconfig):
        reads = "text to speak" if speaks(qconfig) else "images or audio"
        raise ValueError(f"'{qpc_path}' reads {reads} as compiled: --ctx_len does not apply.")
    if not model_limits:
        return
    compiled = qconfig.get("compile_params", {}).get("seq_len")
    if serves_pages(qconfig):  # the language model's positions, from the config the artifact keeps
        kept = Path(qpc_path) / MODEL_FILES_SUBDIR / "config.json"
        text = json.loads(kept.read_text()).get("vlm_config", {}).get("text_config", {}) if kept.is_file() else {}
        served_length(text.get("max_position_embeddings"), ctx_len, str(qpc_path), "language model's positions")
    elif embeds_texts_and_images(qconfig):
        served_length(int(max(compiled) if isinstance(compiled, list) else compiled), ctx_len, str(qpc_path), "compiled length")
    elif compiled and not serves_pages(qconfig) and (Path(qpc_path) / MODEL_FILES_SUBDIR / SERVING_CONFIG).is_file():
        artifact_input_limit(qpc_path, qconfig, ctx_len)


def artifact_input_limit(qpc_path, qconfig: dict, ctx_len: int | None, config=None, tokenizer=None) -> int:
    """The longest input an encoder's artifact serves: ``ctx_len`` (None: all it takes) within its compiled length and
    the model's limits (models/sentence_transformers.input_limits); one given past them is refused, naming the limit."""
    config, tokenizer = config or serving_config(qpc_path), tokenizer or load_tokenizer(qpc_path)
    compiled = int(max(qconfig["compile_params"]["seq_len"]))
    return served_input_limit(Path(qpc_path) / MODEL_FILES_SUBDIR, config, tokenizer, ctx_len, str(qpc_path), compiled)


def check_servable(qpc_path: str | Path, qconfig: dict | None = None) -> None:
    """Refuse an encoder's artifact without what a server reads from it (its config and run-time tokenizer, a SPLADE
    model's pooling; an image or audio classifier's config and processor), and one whose graph ends in own heads no server
    here takes from an artifact (SERVED_HEADS) or that vLLM does not serve (an inference-free SPLADE model's, one pooled
    otherwise than vLLM pools: check_vllm_splade).
    ``qconfig``: the artifact's, where the caller has read it already."""
    qpc_path = Path(qpc_path)
    qconfig = read_artifact(qpc_path) if qconfig is None else qconfig
    if serves_pages(qconfig) or embeds_texts_and_images(qconfig) or speaks(qconfig):  # the processor and config kept
        if not (qpc_path / MODEL_FILES_SUBDIR / "config.json").is_file():
            raise ValueError(f"'{qpc_path}' holds no processor for a server: compile it again from the model's folder.")
        return
    if classifies_media(qconfig):  # its config and processor, not a tokenizer
        files = qpc_path / MODEL_FILES_SUBDIR
        if not (files / SERVING_CONFIG).is_file() or not (files / "preprocessor_config.json").is_file():
            kind = "feature extractor" if qconfig.get("audio_classifier") else "image processor"
            raise ValueError(
                f"'{qpc_path}' holds no {kind} for a server (compiled from a model without a folder, or a folder without "
                f"preprocessor_config.json): save the {kind} to the model's folder and compile it again."
            )
        return
    if qconfig.get("late_interaction") and not qconfig.get("own_heads"):  # a ColBERT's, compiled by an older version
        raise ValueError(f"'{qpc_path}' is a ColBERT artifact compiled by an older version: compile it again from the model's folder.")
    family = qconfig.get("own_heads")
    if family and family not in SERVED_HEADS:
        raise ValueError(
            f"'{qpc_path}' is a {family} model's artifact, ending in its own heads: it is not served on its own; serve "
            "--model_name with its folder where the README says such a model is served, or run it from Python."
        )
    if family == "SPLADE":  # its pooling, recorded at compile time, within what vLLM serves
        from QEfficient.serving.embeddings_app import check_vllm_splade

        if "heads" not in qconfig:
            raise ValueError(f"'{qpc_path}' is a SPLADE artifact compiled by an older version: compile it again from the model's folder.")
        if qconfig["heads"]["inference_free"]:
            raise ValueError(
                f"'{qpc_path}' is an inference-free SparseEncoder's artifact (its queries are weighed without the model), which "
                "vLLM does not serve, nor does QEfficient: run it with QEFFSparseEncoder.encode_query and encode_document."
            )
        check_vllm_splade(str(qpc_path), qconfig["heads"])
    if not (qpc_path / MODEL_FILES_SUBDIR / SERVING_CONFIG).is_file() or not has_runtime_tokenizer(qpc_path):
        raise ValueError(
            f"'{qpc_path}' holds no config or tokenizer for a server (compiled by an older version, from a model "
            "without a folder, or one without a fast tokenizer): compile it again from the model's folder (a fast "
            "tokenizer is needed), or serve --model_name without --ray."
        )


# the own heads whose artifacts are served alone: ColBERT's routes (colbert_app.py), BGE-M3's token tasks (bge_m3_app.py),
# SPLADE's vectors (embeddings_app.py)
SERVED_HEADS = ("ColBERT", "BGE-M3", "SPLADE")


def is_colbert_artifact(qconfig: dict) -> bool:
    """Whether the artifact is a ColBERT retriever's (QEFFColBERTModel's: one vector per token), served by the
    late-interaction routes."""
    return qconfig.get("own_heads") == "ColBERT"


class CompiledEncoder:
    """``generate(inputs)`` and ``embed(inputs, normalize)`` of a compiled encoder, with its ``config``, tokenizer and
    ``local_model_dir`` (the artifact's copy of the folder's files)."""

    def __init__(self, qpc_path: str | Path, num_cores: int) -> None:
        self.qpc_path = Path(qpc_path)
        self.qconfig = read_artifact(self.qpc_path)
        self.local_model_dir = self.qpc_path / MODEL_FILES_SUBDIR
        check_servable(self.qpc_path, self.qconfig)
        self.config = serving_config(self.qpc_path)
        self.model_name = self.qconfig.get("model_name") or self.qpc_path.name
        self.tokenizer = load_tokenizer(self.qpc_path)
        self.session = open_artifact_session(self.qpc_path, num_cores)
        self.output_name = self.qconfig["output_name"]
        self._head: EmbeddingHead | None = None
        self._inputs: SentenceInputs | None = None  # encode()'s tokenization, read at first use

    @property
    def max_input_tokens(self) -> int:
        """The longest compiled length."""
        return int(max(self.qconfig["compile_params"]["seq_len"]))

    @property
    def graph_pooled(self) -> bool:
        """Whether the graph gives one vector per input: compiled with pooling inside (QEFFAutoModel's ``pooling=``), or a
        model whose output is its embedding (DPR's)."""
        return bool(self.qconfig.get("pooled"))

    @property
    def reads_padding(self) -> bool:
        """Whether the outputs read padding columns (FNet's every column, ConvBERT's and Nystromformer's neighbours): the
        servers batch texts of one length."""
        return bool(self.qconfig.get("reads_padding"))

    def generate(self, inputs) -> dict[str, np.ndarray]:
        ids, mask, types = encoder_inputs(inputs, getattr(self.config, "vocab_size", None))
        default, given = self.qconfig.get("global_attention"), inputs.get(GLOBAL_ATTENTION_MASK)  # a Longformer's
        if default is None and given is not None:
            raise ValueError(f"global_attention_mask is Longformer's; {self.model_name} takes none.")
        global_mask = None if default is None else global_attention_mask(default["rule"], ids, given, default["sep_token_id"])
        params, token_types = self.qconfig["compile_params"], bool(self.qconfig.get("token_types"))
        out = run_encoder(self.session, params, token_types, ids, mask, types, global_mask, self.reads_padding)
        return {self.output_name: out}

    @property
    def decoder_architecture(self) -> bool:
        """Whether the model is a decoder's base model (QEFFAutoModel.decoder_architecture, recorded at compile time)."""
        return bool(self.qconfig.get("decoder", self.qconfig.get("causal")))

    def embed(self, inputs, normalize: bool = True, prompt_length: int = 0, pooling: list[str] | None = None) -> np.ndarray:
        """As QEFFAutoModel.embed: the folder's pooling (or ``pooling``, unless the graph pooled; leaving out each row's
        first ``prompt_length`` tokens where the folder's does), Dense modules and normalization; a SPLADE model's
        vectors as QEFFSparseEncoder.embed gives them (the graph pools)."""
        family = self.qconfig.get("own_heads")
        if family == "SPLADE":
            out = np.asarray(self.generate(inputs)[self.output_name], np.float32)
            return l2_normalized(out) if normalize else out
        self._refuse_own_heads()
        out = self.generate(inputs)[self.output_name]
        if self._head is None:
            pooled = self.qconfig.get("pooled", out.ndim == 2)
            self._head = EmbeddingHead(self.local_model_dir, pooled, bool(self.qconfig.get("causal")))
        return self._head(out, np.asarray(inputs[ATTENTION_MASK]), normalize, prompt_length, pooling)

    def encode(self, sentences: list[str] | str, **options) -> np.ndarray:
        """QEFFAutoModel.encode from the artifact alone, with its options (normalize, batch_size, prompt_name, prompt,
        truncate_dim, task): the folder's prompts, tokenization (through the artifact's tokenizer), pooling, Dense
        modules, Matryoshka cut and normalization, as sentence-transformers encodes."""
        if self.output_name == LOGITS:
            raise ValueError(f"'{self.qpc_path}' is a classifier's artifact: it gives scores, not embeddings.")
        self._refuse_own_heads()  # (SPLADE's encode is QEFFSparseEncoder's, from the folder)

        def embed(enc: dict[str, np.ndarray], prompt_length: int) -> np.ndarray:
            return self.embed(enc, normalize=False, prompt_length=prompt_length)

        return encode_sentences(self.local_model_dir, self._sentence_inputs, embed, sentences, self.graph_pooled, **options)

    def _refuse_own_heads(self) -> None:
        family = self.qconfig.get("own_heads")
        if family:
            raise ValueError(f"'{self.qpc_path}' is a {family} model's artifact, ending in its own heads: not pooled embeddings.")

    def _sentence_inputs(self) -> SentenceInputs:
        if self._inputs is None:
            self._inputs = artifact_sentence_inputs(self.qpc_path, self.tokenizer, self.config, self.max_input_tokens)
        return self._inputs


def serving_config(qpc_path: str | Path) -> SimpleNamespace:
    """The model's config values an encoder's artifact keeps (SERVING_CONFIG), as transformers' config gives them."""
    config = json.loads((Path(qpc_path) / MODEL_FILES_SUBDIR / SERVING_CONFIG).read_text())
    if config.get("id2label"):  # JSON keys are strings; transformers gives the labels int keys
        config["id2label"] = {int(k): v for k, v in config["id2label"].items()}
    return SimpleNamespace(**config)


def artifact_sentence_inputs(qpc_path: str | Path, tokenizer=None, config=None, compiled_length: int | None = None) -> SentenceInputs:
    """How QEFFAutoModel.encode tokenizes texts, from an encoder's artifact alone (its copy of the folder's
    sentence-transformers settings, its run-time tokenizer); a folder whose ``processing_kwargs`` name tokenizer arguments
    only transformers' tokenizers take is refused, saying so (``check_servable`` first: the artifact holds the rest)."""
    qpc_path = Path(qpc_path)
    tokenizer = load_tokenizer(qpc_path) if tokenizer is None else tokenizer
    config = serving_config(qpc_path) if config is None else config
    if compiled_length is None:
        compiled_length = int(max(read_artifact(qpc_path)["compile_params"]["seq_len"]))
    inputs = SentenceInputs.read(qpc_path / MODEL_FILES_SUBDIR, tokenizer, config, compiled_length)
    try:
        check_call_arguments(tokenizer, inputs.tokenizer_kwargs, "processing_kwargs in sentence_bert_config.json")
    except ValueError as e:
        raise ValueError(f"{e} Encode with QEFFAutoModel from the model's folder.") from None
    return inputs


def open_compiled_encoder_app(
    qpc_path: str,
    served_names,
    num_cores: int,
    api_key: str | None,
    max_body_bytes: int | None,
    task: str = "auto",
    pooler: dict | None = None,
    server_options: dict | None = None,
):
    """(app, runner): the embeddings server for a QEFFAutoModel's artifact, with ``pooler`` (--pooler_config's defaults),
    the scores server for a classifier's, the late-interaction server for a ColBERT's, a BGE-M3's for its token task,
    a SPLADE model's vectors as vLLM serves them, /classify for an image or audio classifier's, the late-interaction server
    over pages for a page retriever's text artifact (``server_options``: ctx_len, max_pages, vision_qpc_path), the
    texts-and-images embeddings server for a contrastive model's text artifact (``server_options``: vision_qpc_path,
    ctx_len) (``task``
    "embed" or "score" must be the artifact's: "embed" for a ColBERT's, a SPLADE model's and a page retriever's;
    "token_embed" or "token_classify" for a BGE-M3's)."""
    from QEfficient.serving.embeddings_app import create_embeddings_app
    from QEfficient.serving.scores_app import check_sequence_classifier, create_scores_app, cross_encoder_activation

    qconfig = read_artifact(Path(qpc_path))
    ctx_len = (server_options or {}).get("ctx_len")
    check_input_limit(qpc_path, qconfig, ctx_len, model_limits=False)  # (each server below checks the limits it reads)
    if serves_pages(qconfig):  # /pooling, /score, /rerank over pages and queries (retrieval_app.py)
        from QEfficient.serving.retrieval_app import open_compiled_retrieval_app

        if task not in ("auto", "embed") or pooler:
            given = f"--task {task}" if task not in ("auto", "embed") else f"--pooler_config's {', '.join(pooler)}"
            raise ValueError(
                f"'{qpc_path}' is a page retriever's artifact, served for /pooling, /score and /rerank: {given} does not apply."
            )
        return open_compiled_retrieval_app(qpc_path, served_names, num_cores, api_key, max_body_bytes, **(server_options or {}))
    if speaks(qconfig):  # /v1/audio/speech (tts_app.py)
        from QEfficient.serving.tts_app import open_compiled_tts_app

        if task != "auto" or pooler:
            given = f"--task {task}" if task != "auto" else f"--pooler_config's {', '.join(pooler)}"
            raise ValueError(f"'{qpc_path}' is a text-to-speech model's artifact, served for /v1/audio/speech: {given} does not apply.")
        return open_compiled_tts_app(qpc_path, served_names, num_cores, api_key, max_body_bytes)
    if embeds_texts_and_images(qconfig):  # /v1/embeddings of texts and images (dual_embeddings_app.py)
        from QEfficient.serving.dual_embeddings_app import open_compiled_dual_embeddings_app

        if task not in ("auto", "embed") or pooler:
            given = f"--task {task}" if task not in ("auto", "embed") else f"--pooler_config's {', '.join(pooler)}"
            raise ValueError(
                f"'{qpc_path}' is a contrastive image-text model's artifact, served for /v1/embeddings: {given} does not apply."
            )
        options = server_options or {}
        vision, ctx_len = options.get("vision_qpc_path"), options.get("ctx_len")
        return open_compiled_dual_embeddings_app(qpc_path, served_names, num_cores, api_key, max_body_bytes, vision, ctx_len)
    if classifies_media(qconfig):  # /classify (classify_media_app.py)
        from QEfficient.serving.classify_media_app import open_compiled_classifier_app

        if task not in ("auto", "score") or pooler:
            given = f"--task {task}" if task not in ("auto", "score") else f"--pooler_config's {', '.join(pooler)}"
            kind = "an audio" if qconfig.get("audio_classifier") else "an image"
            raise ValueError(f"'{qpc_path}' is {kind} classifier's artifact, served for /classify: {given} does not apply.")
        return open_compiled_classifier_app(qpc_path, qconfig, served_names, num_cores, api_key, max_body_bytes)
    model = CompiledEncoder(qpc_path, num_cores)
    compiled_for = "score" if model.output_name == LOGITS else "embed"
    if task not in ("auto", compiled_for) and model.qconfig.get("own_heads") != "BGE-M3":
        raise ValueError(f"'{qpc_path}' was compiled for --task {compiled_for}, not {task}: leave --task out, or compile it for {task}.")
    names = artifact_model_names(model.model_name, served_names)  # --model_name: the model's id, as vLLM's --served-model-name
    model.model_name = names[0]
    options = {"served_names": names[1:], "api_key": api_key, "max_body_bytes": max_body_bytes or DEFAULT_MAX_BODY_BYTES}
    limit = artifact_input_limit(qpc_path, model.qconfig, ctx_len, model.config, model.tokenizer)  # --ctx_len: a lower one
    if model.qconfig.get("own_heads") == "BGE-M3":  # its token tasks, as vLLM's BgeM3EmbeddingModel (bge_m3_app.py)
        from QEfficient.serving.bge_m3_app import create_compiled_bge_m3_app
        from QEfficient.serving.tasks import BGE_M3_TASKS

        if task not in BGE_M3_TASKS or pooler:
            raise ValueError(
                f"'{qpc_path}' is a BGE-M3 artifact: name one of its token tasks with --pooler_config "
                f'\'{{"task": "token_embed"}}\' (or token_classify), and nothing else; its dense vectors are served from '
                "its folder (--model_name, task embed)."
            )
        app = create_compiled_bge_m3_app(model, task, limit, **options)
    elif is_colbert_artifact(model.qconfig):  # vLLM's late-interaction routes, as `serve --model_name` gives a ColBERT folder
        from QEfficient.serving.colbert_app import create_compiled_colbert_app

        if pooler:
            raise ValueError(
                f"'{qpc_path}' is a ColBERT retriever's artifact: --pooler_config's {', '.join(pooler)} set pooled embeddings; "
                "leave them out."
            )
        app = create_compiled_colbert_app(model, limit, **options)
    elif model.qconfig.get("own_heads") == "SPLADE":  # its vocabulary-sized vectors, as vLLM's BertSpladeSparseEmbeddingModel
        # (its pooling checked by CompiledEncoder: check_servable)
        options |= {"width": int(model.config.vocab_size), "lowercase": model.qconfig["heads"]["do_lower_case"], "dense": False}
        app = create_embeddings_app(model, model.tokenizer, model.model_name, limit, False, pooler=pooler, **options)
    elif model.output_name == LOGITS:
        if pooler:
            raise ValueError(
                f"'{qpc_path}' is a classifier's artifact: --pooler_config's {', '.join(pooler)} set embeddings; leave them out."
            )
        check_sequence_classifier(model.config, str(qpc_path))
        template = saved_score_template(model.local_model_dir, model.tokenizer)  # a CrossEncoder scoring chat messages
        if model.config.num_labels == 1:
            cross_encoder_activation(model.config, model.local_model_dir)
        app = create_scores_app(model, model.tokenizer, model.model_name, limit, template=template, **options)
    else:
        check_sentence_transformers_folder(model.local_model_dir)
        warn_chat_formatting(model.local_model_dir)
        normalizes = sentence_transformers_normalizes(model.local_model_dir)
        options["lowercase"] = bool(sentence_bert_config(Path(model.local_model_dir)).get("do_lower_case"))  # as vLLM reads it
        app = create_embeddings_app(model, model.tokenizer, model.model_name, limit, normalizes is not False, pooler=pooler, **options)
    app.state.qpc_path = str(model.qpc_path)
    return app, NoRunner()
