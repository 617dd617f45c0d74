"""python -m QEfficient.cloud.serve: an OpenAI-compatible server with continuous batching.

Which server a model gets (a decoder's, a vision-language model's, an encoder's embeddings or scores, a document
retriever's, speech, text to speech), built from the command line that serve_args.py parses (its options and what they mean are there,
and in --help).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from QEfficient.cloud._cli import fail, resolve_model_name, setup_logging, step
from QEfficient.cloud.serve_args import COMPILE_OPTIONS, exposure_warning, parse_args, requested_ctx_len
from QEfficient.utils.checks import check_positive
from QEfficient.utils.constants import DEFAULT_SERVER_CTX_LEN
from QEfficient.utils.extras import MissingExtraError, require_extra


def build_server(
    model_name: str,
    gguf_file: str | None,
    prefill_seq_len: int,
    ctx_len: int | None,
    full_batch_size: int,
    num_cores: int,
    max_queue: int = 64,
    mxfp6_matmul: bool = False,
    mxint8_kv_cache: bool = False,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
    prompt_lookup_num_tokens: int | None = None,
    lora: dict[str, str] | None = None,
    draft_model: str | None = None,
    num_speculative_tokens: int | None = None,
    img_size: int | None = None,
    max_num_images: int | None = None,
    chat_template: str | None = None,
    task: str = "auto",
    hf_overrides: dict | None = None,
    tool_call_parser: str | None = None,
    reasoning_parser: str | None = None,
    pooler_task: str | None = None,
    pooler_defaults: dict | None = None,
    batching_given: dict | None = None,
):
    """(app, runner): the model compiled for continuous batching, its engine running, the FastAPI app
    (``app.state.qpc_path``: the artifact it serves). ``ctx_len`` None is 512 (an encoder's inputs: within the model's
    limits, which a given ``ctx_len`` may not pass). ``prompt_lookup_num_tokens=K``: greedy requests
    decode speculatively, verifying up to K prompt-lookup drafts a step (same tokens, fewer steps);
    ``draft_model`` + ``num_speculative_tokens=K``: the same with a draft model's K tokens.
    ``lora``: adapter name -> PEFT adapter folder, each served as its own model id. ``img_size`` and
    ``max_num_images`` (the most images per request; a cross-attention model's image slots) are for vision-language models;
    a document retriever (ColPali & co: /pooling, /score, /rerank) takes ``max_num_images`` as its most pages a request.
    ``chat_template``: a Jinja template for chat requests instead of the model's own. ``task``: "embed" serves an
    encoder's embeddings (/v1/embeddings), "score" a classifier's /score, /rerank and /classify, "generate"
    generation, "auto" (default) tells them apart from the model. ``hf_overrides``: vLLM's, changes to the model's config
    made before it is loaded, or the keys that score a causal LM by some of its tokens' logits
    (serving/tasks.CLASSIFIER_OVERRIDES). ``tool_call_parser``: the model's tool-call syntax (serving/tool_parsers.py), which lets chat
    requests leave tool_choice "auto" (serving/tools.py); ``reasoning_parser``: the syntax of its thinking, which chat answers
    return apart as ``reasoning`` (serving/reasoning.py). ``pooler_task``: vLLM's ``--pooler_config`` task ("embed", "classify",
    or BGE-M3's "token_embed" and "token_classify" with ``hf_overrides`` naming BgeM3EmbeddingModel, as vLLM takes them:
    serving/tasks.resolve_pooler_task); ``pooler_defaults``: its other fields, an embedding model's defaults (pooling,
    use_activation, dimensions: serve_args.pooler_defaults). ``batching_given``: the decoders' batching options the
    command line gave (prefill_seq_len, full_batch_size), refused by the servers that do not batch."""
    # an encoder's input limit: None is its default within the model's, more than the model's is refused (served_length)
    input_limit, ctx_len = ctx_len, DEFAULT_SERVER_CTX_LEN if ctx_len is None else ctx_len
    # the options of generation, which the models served one request at a time refuse (given: not None)
    generation_options = {"lora": lora, "draft_model": draft_model, "prompt_lookup_num_tokens": prompt_lookup_num_tokens}
    generation_options |= {"num_speculative_tokens": num_speculative_tokens, "mxint8_kv_cache": mxint8_kv_cache or None}
    generation_options |= {"tool_call_parser": tool_call_parser, "reasoning_parser": reasoning_parser, "chat_template": chat_template}
    generation_options |= batching_given or {}  # (--prefill_seq_len, --full_batch_size: given, not their defaults)
    media_options = {"img_size": img_size, "max_num_images": max_num_images}
    bge_m3_task, task, hf_overrides = _resolve_pooler_task(model_name, gguf_file, pooler_task, task, hf_overrides)
    kind, served_as = _server_kind(model_name, gguf_file, task, hf_overrides, bge_m3_task)
    if pooler_defaults is not None and not _serves_dense_embeddings(model_name, gguf_file, task, hf_overrides, bge_m3_task):
        raise ValueError(
            f"--pooler_config's {', '.join(pooler_defaults)} set an embedding model's vectors (/v1/embeddings); '{model_name}' "
            "is served otherwise: leave them out."
        )
    if kind == "bge_m3":  # BGE-M3's multi-vector or sparse outputs, as vLLM's BgeM3EmbeddingModel
        from QEfficient.serving.bge_m3_app import open_bge_m3_app

        _refuse_options(model_name, served_as, **generation_options, **media_options)
        return open_bge_m3_app(model_name, bge_m3_task, input_limit, num_cores, mxfp6_matmul, api_key, max_body_bytes)
    if kind == "retriever":  # ColPali & co: vLLM's /pooling, /score and /rerank (MaxSim)
        from QEfficient.serving.retrieval_app import open_retrieval_app

        _refuse_options(
            model_name,
            served_as,
            **generation_options,
            img_size=img_size,
            hf_overrides=hf_overrides or None,
            task=None if task in ("auto", "embed") else task,
        )
        return open_retrieval_app(model_name, input_limit, num_cores, mxfp6_matmul, api_key, max_body_bytes, max_num_images)  # pages
    if kind == "colbert":  # ColBERT: the same routes over text
        from QEfficient.serving.colbert_app import open_colbert_app

        _refuse_options(
            model_name,
            served_as,
            **generation_options,
            **media_options,
            hf_overrides=hf_overrides or None,
            task=None if task in ("auto", "embed") else task,
        )
        return open_colbert_app(model_name, input_limit, num_cores, mxfp6_matmul, api_key, max_body_bytes)
    if kind == "splade":  # SPLADE's vectors, as vLLM serves them
        from QEfficient.serving.embeddings_app import open_splade_embeddings_app
        from QEfficient.serving.tasks import SPLADE_ARCHITECTURE, refuse_inference_free

        refuse_inference_free(model_name)
        if (hf_overrides or {}) != {"architectures": [SPLADE_ARCHITECTURE]} or pooler_task not in (None, "embed"):
            raise ValueError(  # refused before its weights are read
                f"'{model_name}' is a sparse encoder (sentence-transformers' SparseEncoder, SPLADE): serve it as vLLM does, "
                f'with --hf_overrides \'{{"architectures": ["{SPLADE_ARCHITECTURE}"]}}\' alone (its vectors on /v1/embeddings), '
                "or run it with QEFFSparseEncoder.encode."
            )
        task_given = None if task in ("auto", "embed") else task
        _refuse_options(model_name, served_as, **generation_options, **media_options, task=task_given)
        return open_splade_embeddings_app(model_name, input_limit, num_cores, mxfp6_matmul, api_key, max_body_bytes)
    if kind == "tts":  # VITS: /v1/audio/speech, one request at a time
        from QEfficient.serving.tts_app import open_tts_app

        _refuse_options(
            model_name,
            served_as,
            **generation_options,
            **media_options,
            hf_overrides=hf_overrides or None,
            task=None if task == "auto" else task,
            ctx_len=input_limit,
        )
        return open_tts_app(model_name, num_cores, mxfp6_matmul, api_key, max_body_bytes)
    if kind == "pooling":
        pooling = _pooling_task(model_name, gguf_file, task, hf_overrides)
        _refuse_options(model_name, served_as, **generation_options, **media_options)
        options = (input_limit, num_cores, mxfp6_matmul, api_key, max_body_bytes)
        return _pooling_server(pooling, model_name, options, hf_overrides, pooler_defaults)
    if kind == "speech":
        from QEfficient.serving.speech_app import open_speech_app

        _refuse_options(model_name, served_as, **generation_options, **media_options)
        return open_speech_app(model_name, input_limit, num_cores, api_key, max_body_bytes, hf_overrides)
    if kind == "transcriber":  # transcribed greedily, one request at a time
        from QEfficient.serving.transcriber_app import open_transcriber_app

        _refuse_options(model_name, served_as, **generation_options, **media_options)
        return open_transcriber_app(model_name, num_cores, mxfp6_matmul, api_key, max_body_bytes, hf_overrides, input_limit)
    if kind == "seq2seq":  # encoder-decoders: one request at a time
        from QEfficient.serving.seq2seq_app import open_seq2seq_app
        from QEfficient.serving.vision_seq2seq_app import open_vision_seq2seq_app

        _refuse_options(model_name, served_as, **generation_options, **media_options)
        open_app = open_vision_seq2seq_app if _is_vision_seq2seq(model_name) else open_seq2seq_app
        return open_app(model_name, ctx_len, num_cores, mxfp6_matmul, api_key, max_body_bytes, hf_overrides)
    if kind == "vision_language":  # compiled and opened in one go: the model is loaded once
        from QEfficient.serving import vision_language

        speculative = prompt_lookup_num_tokens is not None or draft_model is not None
        options = vision_language.compile_options(
            prefill_seq_len,
            ctx_len,
            full_batch_size,
            num_cores,
            mxfp6_matmul,
            mxint8_kv_cache,
            img_size,
            max_num_images,
            lora=bool(lora),
            speculative=speculative,
        )
        return vision_language.open_vision_language_app(
            model_name, options, max_queue, api_key, max_body_bytes, chat_template, hf_overrides, tool_call_parser, reasoning_parser
        )
    from QEfficient.serving.artifact import compile_for_serving, open_app

    artifact = compile_for_serving(
        model_name,
        gguf_file,
        prefill_seq_len,
        ctx_len,
        full_batch_size,
        num_cores,
        mxfp6_matmul,
        mxint8_kv_cache,
        prompt_lookup_num_tokens=prompt_lookup_num_tokens,
        lora=lora,
        draft_model=draft_model,
        num_speculative_tokens=num_speculative_tokens,
        img_size=img_size,
        max_num_images=max_num_images,
        hf_overrides=hf_overrides,
    )
    artifact = replace(artifact, chat_template=chat_template, tool_call_parser=tool_call_parser, reasoning_parser=reasoning_parser)
    return open_app(artifact, num_cores, max_queue, api_key, max_body_bytes)


def _resolve_pooler_task(model_name: str, gguf_file: str | None, pooler_task: str | None, task: str, hf_overrides: dict | None):
    from QEfficient.serving.tasks import resolve_pooler_task

    return resolve_pooler_task(model_name, gguf_file, pooler_task, task, hf_overrides)


def _pooling_task(model_name: str, gguf_file: str | None, task: str, hf_overrides: dict | None = None) -> str | None:
    from QEfficient.serving.tasks import pooling_task

    return pooling_task(model_name, gguf_file, task, hf_overrides)


_POOLING_ROUTES = {"embed": "embeddings (/v1/embeddings, /score, /rerank)", "score": "scores (/score, /rerank, /classify)"}


def _serves_dense_embeddings(model_name: str, gguf_file: str | None, task: str, hf_overrides: dict | None, bge_m3_task) -> bool:
    """Whether the server is an embedding model's /v1/embeddings (not a retriever's, SPLADE's or BGE-M3's other tasks)."""
    if bge_m3_task is not None or (not gguf_file and _reads_images(model_name)):  # BGE-M3's token tasks; CLIP's towers
        return False
    if not gguf_file and (
        _is_retriever(model_name) or _is_colbert(model_name) or _is_sparse_encoder(model_name) or _names_splade(hf_overrides)
    ):
        return False
    return _pooling_task(model_name, gguf_file, task, hf_overrides) == "embed"


def _pooling_server(task, model_name, options: tuple, hf_overrides: dict | None, pooler_defaults: dict | None = None):
    """An encoder's /v1/embeddings server (``task`` "embed", with ``pooler_defaults``) or a classifier's score server
    ("score"), with ``options`` (ctx_len, num_cores, mxfp6_matmul, api_key, max_body_bytes)."""
    media = _media_classifier(model_name) if task == "score" else None
    if media is not None:
        from QEfficient.serving.classify_media_app import AUDIO, IMAGES, open_classify_media_app
        from QEfficient.serving.tasks import split_hf_overrides

        if split_hf_overrides(hf_overrides)[0]:
            raise ValueError(f"'{model_name}' classifies {media}: --hf_overrides' classifier keys are for a causal LM; leave them out.")

        ctx_len, num_cores, mxfp6_matmul, api_key, max_body_bytes = options
        _refuse_options(model_name, f"a classifier of {media} (/classify)", ctx_len=ctx_len)
        modality = AUDIO if media == "audio" else IMAGES
        return open_classify_media_app(model_name, modality, num_cores, mxfp6_matmul, api_key, max_body_bytes, hf_overrides)
    if task == "score":
        from QEfficient.serving.scores_app import open_scores_app

        return open_scores_app(model_name, *options, hf_overrides=hf_overrides)
    from QEfficient.serving.embeddings_app import open_embeddings_app

    return open_embeddings_app(model_name, *options, hf_overrides=hf_overrides, pooler=pooler_defaults)


def _media_classifier(model_name: str) -> str | None:
    from QEfficient.serving.tasks import media_classifier

    return media_classifier(model_name)


def _is_vision_language(model_name: str) -> bool:
    from QEfficient.serving.artifact import _is_vision_language as is_vision_language

    return is_vision_language(model_name)


def _is_seq2seq(model_name: str) -> bool:
    from QEfficient.cloud.infer import _is_seq2seq as is_seq2seq

    return is_seq2seq(model_name, None)


def _is_vision_seq2seq(model_name: str) -> bool:
    from QEfficient.cloud.infer import _is_vision_seq2seq as is_vision_seq2seq

    return is_vision_seq2seq(model_name, None)


def _is_transcriber(model_name: str) -> bool:
    """A CTC model, a transducer or a speech encoder-decoder other than Whisper, served by serving/transcriber_app.py."""
    from QEfficient import QEFFAutoModelForCTC, QEFFAutoModelForRNNT, QEFFAutoModelForSpeechEncoderDecoder, QEFFAutoModelForTDT
    from QEfficient.cloud.infer import _speech_class

    served = (QEFFAutoModelForCTC, QEFFAutoModelForRNNT, QEFFAutoModelForTDT, QEFFAutoModelForSpeechEncoderDecoder)
    return _speech_class(model_name, None) in served


def _is_retriever(model_name: str) -> bool:
    from QEfficient.serving.tasks import is_retriever

    return is_retriever(model_name)


def _is_colbert(model_name: str) -> bool:
    from QEfficient.serving.tasks import is_colbert

    return is_colbert(model_name)


def _names_splade(hf_overrides: dict | None) -> bool:
    from QEfficient.serving.tasks import names_splade

    return names_splade(hf_overrides)


def _is_sparse_encoder(model_name: str) -> bool:
    from QEfficient.serving.tasks import is_sparse_encoder

    return is_sparse_encoder(model_name)


def _reads_images(model_name: str) -> bool:
    from QEfficient.serving.tasks import reads_images

    return reads_images(model_name)


def _is_text_to_speech(model_name: str) -> bool:
    from QEfficient.serving.tasks import is_text_to_speech

    return is_text_to_speech(model_name)


def _is_speech(model_name: str) -> bool:
    from QEfficient.cloud.infer import _is_speech as is_speech

    return is_speech(model_name, None)


def _server_kind(model_name: str, gguf_file: str | None, task: str, hf_overrides: dict | None, bge_m3_task: str | None) -> tuple[str, str]:
    """Which server ``build_server`` opens for the model (its branch) and what it serves, in words, for the start log."""
    folder = None if gguf_file else model_name  # a GGUF file is a decoder's
    if bge_m3_task is not None:
        return "bge_m3", f"BGE-M3 served for '{bge_m3_task}' (/pooling)"
    if folder and _is_retriever(folder):
        return "retriever", "a late-interaction retriever (/pooling, /score, /rerank)"
    if folder and _is_colbert(folder):
        return "colbert", "a ColBERT retriever (/pooling, /score, /rerank)"
    if folder and (_is_sparse_encoder(folder) or _names_splade(hf_overrides)):
        return "splade", "a SPLADE sparse encoder (/v1/embeddings)"
    if folder and _is_text_to_speech(folder):
        return "tts", "a text-to-speech model (/v1/audio/speech)"
    pooling = _pooling_task(model_name, gguf_file, task, hf_overrides)
    if pooling is not None:
        media = _media_classifier(model_name) if pooling == "score" else None
        if media:
            return "pooling", f"a classifier of {media} (/classify)"
        if pooling == "embed" and folder and _reads_images(folder):  # CLIP's and SigLIP's two towers
            return "pooling", "served for text and image embeddings (/v1/embeddings)"
        return "pooling", f"served for {_POOLING_ROUTES[pooling]}"
    if folder and _is_speech(folder):
        return "speech", "a Whisper speech model (/v1/audio/transcriptions, /v1/audio/translations)"
    if folder and _is_transcriber(folder):
        return "transcriber", "a speech recognition model (/v1/audio/transcriptions)"
    if folder and (_is_seq2seq(folder) or _is_vision_seq2seq(folder)):
        return "seq2seq", "an encoder-decoder, served one request at a time"
    if folder and _is_vision_language(folder):
        return "vision_language", "a vision-language model, with continuous batching"
    return "decoder", "continuous batching"


def build_from_args(args: argparse.Namespace):
    """(app, runner) as the command line asks."""
    # bad numbers fail now, not after the model is loaded, exported and compiled (the counts every server has: parse_args)
    check_positive(**{name: getattr(args, name) for name in ("img_size", "max_num_images") if getattr(args, name) is not None})
    if args.qpc_path:
        from QEfficient.compile.ort_cpu import read_artifact
        from QEfficient.serving.artifact import open_app
        from QEfficient.serving.encoder_artifact import is_encoder_artifact, open_compiled_encoder_app, serves_pages

        qconfig = read_artifact(Path(args.qpc_path))
        pooler_task = check_artifact_options(args, qconfig)
        names = (args.model_name,) if args.model_name else ()
        if is_encoder_artifact(qconfig):  # an embeddings (SPLADE's too), scores, ColBERT, BGE-M3, /classify or pages' server
            pages = serves_pages(qconfig)
            refuse_generation_options(args, takes_pages=pages)
            with step(f"Opening the encoder artifact {args.qpc_path}"):
                options = (args.num_cores, args.api_key, args.max_body_bytes, pooler_task or args.task)
                server_options = {"ctx_len": requested_ctx_len(args)} | ({"max_pages": args.max_num_images} if pages else {})
                pooler = getattr(args, "pooler_defaults", None)
                return open_compiled_encoder_app(args.qpc_path, names, *options, pooler=pooler, server_options=server_options)
        if getattr(args, "pooler_defaults", None) is not None:
            raise ValueError(
                f"--pooler_config's {', '.join(args.pooler_defaults)} set an encoder's embeddings; '{args.qpc_path}' is a decoder's."
            )
        with step(f"Opening the artifact {args.qpc_path}"):
            artifact = decoder_artifact_from_args(args, args.num_cores)
            return open_app(artifact, args.num_cores, args.max_queue, args.api_key, args.max_body_bytes)
    model_name, gguf_file = resolve_model_name(args.model_name, args.gguf_file)
    if getattr(args, "draft_model", None):  # a missing draft fails now, not after the target is compiled
        resolve_model_name(args.draft_model, None)
    pooler_task = getattr(args, "pooler_task", None)
    bge_m3_task, task, hf_overrides = _resolve_pooler_task(model_name, gguf_file, pooler_task, args.task, args.hf_overrides)
    kind, served_as = _server_kind(model_name, gguf_file, task, hf_overrides, bge_m3_task)
    purpose = f"{served_as} ({args.full_batch_size} slots)" if kind in ("decoder", "vision_language") else served_as
    with step(f"Loading and compiling {model_name}: {purpose}"):
        return build_server_from_args(args, model_name, gguf_file, args.num_cores, args.task)


def decoder_artifact_from_args(args: argparse.Namespace, num_cores: int):
    """The ``ServingArtifact`` of the decoder's (or vision-language model's) artifact ``--qpc_path`` names, with the
    command line's run-time options; options that a compiled artifact fixes are refused (Ray's replicas open it too)."""
    from QEfficient.serving.artifact import artifact_from_qpc

    if args.task in _POOLING_ROUTES:
        raise ValueError(
            f"'{args.qpc_path}' is a decoder's artifact; a server of {_POOLING_ROUTES[args.task]} starts from an encoder's "
            "(QEFFAutoModel or a sequence classifier, compiled) or from the model (--model_name)."
        )
    if args.img_size is not None:
        raise ValueError("--img_size is compiled into a vision-language model's artifact; leave it out with --qpc_path.")
    given = [f"--{n}" for n in ("lora", "draft_model") if getattr(args, n)]
    if given:
        raise ValueError(f"{' and '.join(given)} are compiled with the model: serve it with --model_name, or leave them out.")
    names = (args.model_name,) if args.model_name else ()
    artifact = artifact_from_qpc(args.qpc_path, names, num_cores, args.prompt_lookup_num_tokens)
    artifact = replace(
        artifact, chat_template=args.chat_template, tool_call_parser=args.tool_call_parser, reasoning_parser=args.reasoning_parser
    )
    if args.max_num_images is not None:  # the most images a request may hold
        if artifact.vision_language is None:
            raise ValueError("--max_num_images is for a vision-language model's artifact; leave it out.")
        artifact = replace(artifact, vision_language={**artifact.vision_language, "max_num_images": args.max_num_images})
    return artifact


def refuse_generation_options(args: argparse.Namespace, takes_pages: bool = False) -> None:
    """Generation's options (and --task generate) with an encoder's ``--qpc_path``, refused: it is served for embeddings
    or scores; so are a vision-language model's (an image classifier's image size is compiled in its artifact), but for
    --max_num_images where the artifact is a page retriever's (``takes_pages``: its pages a request)."""
    options = ("chat_template", "lora", "prompt_lookup_num_tokens", "draft_model", "tool_call_parser", "reasoning_parser")
    given = [f"--{n}" for n in options if getattr(args, n, None)]
    media = ("img_size",) if takes_pages else ("img_size", "max_num_images")
    given += [f"--{n}" for n in media if getattr(args, n, None) is not None]
    if getattr(args, "task", "auto") == "generate" or given:
        what = ", ".join(given) or "--task generate"
        raise ValueError(
            f"'{args.qpc_path}' is an encoder's artifact (embeddings, scores, pages, speech), served as it was compiled: "
            f"{what} {'does' if len(given) < 2 else 'do'} not apply."
        )


def check_artifact_options(args: argparse.Namespace, qconfig: dict) -> str | None:
    """The command line's options checked against the artifact ``--qpc_path`` names (by the single server and Ray's
    driver): what compile() fixed (--hf_overrides, the shapes, the quantization) is refused where it differs from the
    artifact's, not ignored; returns --pooler_config's task (``artifact_pooler_task``)."""
    if args.hf_overrides:
        raise ValueError("--hf_overrides applies when a model is compiled; an artifact keeps what it was compiled with: leave it out.")
    refuse_other_shapes(args, qconfig)
    return artifact_pooler_task(args, qconfig)


def refuse_other_shapes(args: argparse.Namespace, qconfig: dict) -> None:
    """A ValueError naming the compile options given (args.given_options) that the artifact was not compiled with: a
    decoder's shapes and quantization; an encoder's take none of them but --ctx_len, a limit its server checks."""
    from QEfficient.serving.encoder_artifact import check_input_limit, is_encoder_artifact

    encoder, params = is_encoder_artifact(qconfig), qconfig.get("compile_params", {})
    if encoder:
        check_input_limit(args.qpc_path, qconfig, requested_ctx_len(args))
    given = [n for n in COMPILE_OPTIONS if n in getattr(args, "given_options", ()) and not (encoder and n == "ctx_len")]
    foreign = [f"--{n}" for n in given if encoder and n in ("prefill_seq_len", "full_batch_size", "mxint8_kv_cache")]
    if foreign:
        raise ValueError(
            f"'{args.qpc_path}' is an encoder's artifact (embeddings, scores, pages, speech), served as it was compiled: "
            f"{', '.join(foreign)} {'does' if len(foreign) < 2 else 'do'} not apply; leave {'it' if len(foreign) < 2 else 'them'} out."
        )
    # (a key the artifact lacks, or None: not this kind of artifact, which the server opening it refuses, saying why)
    given = [n for n in given if n in params and (params[n] is not None or n.startswith("mx"))]
    differ = [n for n in given if (bool(params.get(n)) if n.startswith("mx") else params.get(n)) != getattr(args, n)]
    if differ:
        compiled = ", ".join(f"{n}={params.get(n)}" for n in differ)
        raise ValueError(
            f"'{args.qpc_path}' was compiled with {compiled}, which it keeps: leave {', '.join(f'--{n}' for n in differ)} out, or "
            "serve the model (--model_name) to compile it with yours."
        )


def artifact_pooler_task(args: argparse.Namespace, qconfig: dict) -> str | None:
    """--pooler_config's task with --qpc_path: a BGE-M3 artifact's token task (token_embed, token_classify), which
    picks its server; any other task (and on any other artifact) is refused, as the artifact keeps what it was compiled
    for."""
    from QEfficient.serving.tasks import BGE_M3_TASKS

    task, bge_m3 = getattr(args, "pooler_task", None), qconfig.get("own_heads") == "BGE-M3"
    if bge_m3 and task not in BGE_M3_TASKS:  # (refused before its session opens)
        raise ValueError(
            f"'{args.qpc_path}' is a BGE-M3 artifact, served for one of its token tasks: --pooler_config "
            '\'{"task": "token_embed"}\' or token_classify; its dense vectors are served from its folder (--model_name).'
        )
    if task is not None and not bge_m3:
        raise ValueError("--pooler_config's task applies when a model is compiled; serve an encoder's artifact with --task embed or score.")
    if task is not None and getattr(args, "task", "auto") != "auto":
        raise ValueError(f"--task {args.task} does not go with --pooler_config's task {task}: leave --task out.")
    return task


def build_server_from_args(args: argparse.Namespace, model_name: str, gguf_file: str | None, num_cores: int, task: str):
    """``build_server`` with the command line's options (Ray's driver compiles an encoder's artifact through it too)."""
    return build_server(
        model_name,
        gguf_file,
        args.prefill_seq_len,
        requested_ctx_len(args),
        args.full_batch_size,
        num_cores,
        args.max_queue,
        mxfp6_matmul=args.mxfp6_matmul,
        mxint8_kv_cache=args.mxint8_kv_cache,
        api_key=args.api_key,
        max_body_bytes=args.max_body_bytes,
        prompt_lookup_num_tokens=args.prompt_lookup_num_tokens,
        lora=args.lora,
        draft_model=args.draft_model,
        num_speculative_tokens=args.num_speculative_tokens,
        img_size=args.img_size,
        max_num_images=args.max_num_images,
        chat_template=args.chat_template,
        task=task,
        hf_overrides=args.hf_overrides,
        tool_call_parser=args.tool_call_parser,
        reasoning_parser=args.reasoning_parser,
        pooler_task=getattr(args, "pooler_task", None),
        pooler_defaults=getattr(args, "pooler_defaults", None),
        batching_given={n: getattr(args, n) for n in ("prefill_seq_len", "full_batch_size") if n in getattr(args, "given_options", ())},
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        require_extra("serve", "python -m QEfficient.cloud.serve")
    except MissingExtraError as err:
        fail(str(err))
    if args.ray:
        return serve_on_ray(args)
    import uvicorn

    warning = exposure_warning(args.host, args.api_key)
    if warning:
        print(f"[QEfficient] warning: {warning}", file=sys.stderr, flush=True)
    try:
        app, runner = build_from_args(args)
    except (OSError, ValueError, TypeError, NotImplementedError) as err:  # a damaged artifact is an OSError
        fail(err)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    finally:
        runner.stop()


def serve_on_ray(args: argparse.Namespace) -> None:
    try:
        from QEfficient.distributed.ray_serve import run_cli
    except ImportError as err:
        fail(str(err))
    warning = exposure_warning(args.host, args.api_key)
    if warning:
        print(f"[QEfficient] warning: {warning}", file=sys.stderr, flush=True)
    try:
        run_cli(args)
    except (OSError, ValueError, TypeError, NotImplementedError) as err:  # a damaged artifact is an OSError
        fail(err)


if __name__ == "__main__":
    main()


def _refuse_options(model_name: str, what: str, **given) -> None:
    """A ValueError naming the command-line options among ``given`` (those not None) that a model served as ``what``
    does not take."""
    named = [f"--{name}" for name, value in given.items() if value is not None]
    if named:
        raise ValueError(f"'{model_name}' is {what}: {', '.join(named)} do not apply; leave them out.")
