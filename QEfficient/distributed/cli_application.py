"""The Ray Serve application ``serve --ray`` builds from its arguments (ray_serve.py holds the deployments): a model
folder compiled by the driver, or an artifact compiled before (``--qpc_path``), for a decoder, a vision-language model
or an encoder (embeddings, scores, ColBERT, BGE-M3's token tasks, SPLADE, image and audio classifiers, page
retrievers, contrastive image-text models, VITS), each refused or checked here as the single-process server does, once,
before any replica starts."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from QEfficient.distributed.ray_serve import ReplicaOptions, build_application, build_encoder_application
from QEfficient.export.graph_names import LOGITS


def application_from_args(args):
    """The application the CLI's parsed arguments describe (compiles the model first, then ships
    it into the object store when ``args.ship_artifact`` says so)."""
    from QEfficient.cloud._cli import resolve_model_name
    from QEfficient.distributed.shipping import ship, should_ship
    from QEfficient.serving.artifact import compile_for_serving
    from QEfficient.serving.tasks import is_sparse_encoder, names_splade, pooling_task, reads_images, resolve_pooler_task
    from QEfficient.utils.checks import check_positive

    # (the counts every server has: parse_args) bad numbers fail before anything is compiled, as the single server's
    check_positive(**{name: getattr(args, name) for name in ("img_size", "max_num_images") if getattr(args, name, None) is not None})
    options = ReplicaOptions(
        num_replicas=args.num_replicas,
        cores_per_replica=args.cores_per_replica,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        target_ongoing_requests=args.target_ongoing_requests,
        full_batch_size=args.full_batch_size,
        max_queue=args.max_queue,
    )
    if getattr(args, "qpc_path", None):  # --model_name is then a name requests may use
        return _artifact_application(args, options)
    model_name, gguf_file = resolve_model_name(args.model_name, args.gguf_file)
    pooler, task = getattr(args, "pooler_task", None), getattr(args, "task", "auto")
    bge_m3_task, task, hf_overrides = resolve_pooler_task(model_name, gguf_file, pooler, task, getattr(args, "hf_overrides", None))
    if bge_m3_task is not None:  # compiled here (as the single server compiles it), each replica serves the artifact's task
        return _encoder_replicas(_compile_encoder(model_name, task, args), bge_m3_task, options, [model_name], args)
    if names_splade(hf_overrides) or (gguf_file is None and is_sparse_encoder(model_name)):  # the single server's refusals
        return _encoder_replicas(_compile_encoder(model_name, task, args), "embed", options, [model_name], args)
    # what the rest compiles and serves (build_server_from_args resolves no pooler task twice)
    args = argparse.Namespace(**{**vars(args), "task": task, "hf_overrides": hf_overrides, "pooler_task": None})
    pooling = pooling_task(model_name, gguf_file, task, hf_overrides)
    if pooling == "embed" and reads_images(model_name):  # CLIP's kind: compiled here, each replica serves its two artifacts
        return _encoder_replicas(_compile_encoder(model_name, "embed", args), "embed", options, [model_name], args)
    if gguf_file is None:
        from QEfficient.serving.tasks import is_colbert, is_retriever, is_text_to_speech

        if is_text_to_speech(model_name):  # VITS: compiled here, each replica serves its artifact (/v1/audio/speech)
            return _encoder_replicas(_compile_encoder(model_name, task, args), "auto", options, [model_name], args)
        if is_retriever(model_name):  # compiled here (its options checked there), each replica serves its two artifacts
            return _encoder_replicas(_compile_encoder(model_name, task, args), "embed", options, [model_name], args)
        if is_colbert(model_name):  # compiled here (another --task refused there), each replica serves its artifact's routes
            pooling = "embed" if task in ("auto", "embed") else task
    if pooling is not None:  # an encoder: compiled here, each replica serves the artifact (one request at a time)
        qpc_path = _compile_encoder(model_name, pooling, args)  # (--pooler_config's defaults checked there, as by the server)
        return _encoder_replicas(qpc_path, pooling, options, [model_name], args, getattr(args, "pooler_defaults", None))
    if getattr(args, "pooler_defaults", None) is not None:  # (an encoder's server took them above)
        raise ValueError(
            f"--pooler_config's {', '.join(args.pooler_defaults)} set an embedding model's vectors; '{model_name}' is served otherwise."
        )
    artifact = compile_for_serving(
        model_name,
        gguf_file,
        args.prefill_seq_len,
        args.ctx_len,
        args.full_batch_size,
        args.cores_per_replica,
        args.mxfp6_matmul,
        args.mxint8_kv_cache,
        prompt_lookup_num_tokens=args.prompt_lookup_num_tokens,  # the replicas' engines speculate too
        lora=getattr(args, "lora", None),
        draft_model=getattr(args, "draft_model", None),
        num_speculative_tokens=getattr(args, "num_speculative_tokens", None),
        img_size=getattr(args, "img_size", None),
        max_num_images=getattr(args, "max_num_images", None),
        hf_overrides=getattr(args, "hf_overrides", None),
    )
    parsers = {name: getattr(args, name, None) for name in ("tool_call_parser", "reasoning_parser")}
    artifact = replace(artifact, chat_template=getattr(args, "chat_template", None), **parsers)
    shipment = None
    if should_ship(args.ship_artifact):
        if artifact.vision_language is not None:  # the language artifact holds the processor; the vision graph goes too
            shipment = ship(artifact.qpc_path, None, artifact.vision_language["vision_qpc_path"])
        else:
            shipment = ship(artifact.qpc_path, artifact.tokenizer_dir)
    return build_application(artifact, options, args.api_key, args.max_body_bytes, shipment)


def _artifact_application(args, options: ReplicaOptions):
    """``--ray --qpc_path``: each replica serves the artifact, as ``serve --qpc_path`` does (without the model's folder):
    an encoder's embeddings or scores (an image or audio classifier's /classify), or a decoder's (or vision-language model's)
    generation."""
    from QEfficient.cloud.serve import check_artifact_options, decoder_artifact_from_args, refuse_generation_options
    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.distributed.shipping import ship, should_ship
    from QEfficient.serving.encoder_artifact import (
        check_kept_processor,
        check_servable,
        classifies_media,
        embeds_texts_and_images,
        is_encoder_artifact,
        serves_pages,
        speaks,
    )
    from QEfficient.serving.tasks import TASKS

    qconfig = read_artifact(Path(args.qpc_path))
    pooler_task = check_artifact_options(args, qconfig)  # a BGE-M3 artifact's token task; other tasks and shapes refused
    if not is_encoder_artifact(qconfig):
        if getattr(args, "pooler_defaults", None) is not None:
            raise ValueError(
                f"--pooler_config's {', '.join(args.pooler_defaults)} set an encoder's embeddings; '{args.qpc_path}' is a decoder's."
            )
        artifact = decoder_artifact_from_args(args, args.cores_per_replica)
        # autoscaling's default target: the artifact's slots
        options = replace(options, full_batch_size=qconfig["compile_params"].get("full_batch_size") or options.full_batch_size)
        shipment = None
        if should_ship(args.ship_artifact):  # the artifact holds its tokenizer (a vision-language model's: its processor)
            vision = (artifact.vision_language or {}).get("vision_qpc_path")
            shipment = ship(artifact.qpc_path, None, vision)
        return build_application(artifact, options, args.api_key, args.max_body_bytes, shipment)
    refuse_generation_options(args, takes_pages=serves_pages(qconfig))
    check_servable(args.qpc_path, qconfig)
    if classifies_media(qconfig):  # its processor checked here, not in every replica
        from QEfficient.serving.classify_media_app import artifact_processor

        artifact_processor(args.qpc_path, qconfig)
    if serves_pages(qconfig) or embeds_texts_and_images(qconfig) or speaks(qconfig):  # likewise
        if getattr(args, "pooler_defaults", None) is not None:
            raise ValueError(
                f"'{args.qpc_path}' keeps its own processor and outputs: --pooler_config's {', '.join(args.pooler_defaults)} do not apply."
            )
        check_kept_processor(args.qpc_path, qconfig)
    family = qconfig.get("own_heads")
    if getattr(args, "pooler_defaults", None) is not None and family:  # (refused here, not in each replica)
        raise ValueError(
            f"'{args.qpc_path}' is a {family} model's artifact: --pooler_config's {', '.join(args.pooler_defaults)} set pooled "
            "embeddings; leave them out."
        )
    names = [args.model_name] if args.model_name else []
    if family == "BGE-M3":  # one of its token tasks, named as vLLM names them (artifact_pooler_task)
        return _encoder_replicas(args.qpc_path, pooler_task, options, names, args)
    task = "score" if qconfig["output_name"] == LOGITS else "auto" if speaks(qconfig) else "embed"
    if args.task not in (TASKS[0], task):
        raise ValueError(f"'{args.qpc_path}' was compiled for --task {task}, not {args.task}: leave --task out.")
    pooler = getattr(args, "pooler_defaults", None)
    if pooler is not None and task != "embed":
        raise ValueError(
            f"'{args.qpc_path}' is a classifier's artifact: --pooler_config's {', '.join(pooler)} set embeddings; leave them out."
        )
    return _encoder_replicas(args.qpc_path, task, options, names, args, pooler)


def _encoder_replicas(qpc_path: str, task: str, options: ReplicaOptions, names: list[str], args, pooler: dict | None = None):
    """``build_encoder_application`` for an encoder's artifact: shipped as ``args.ship_artifact`` says, one request at a
    time per replica (its autoscaling target)."""
    from QEfficient.cloud.serve_args import requested_ctx_len
    from QEfficient.compile.ort_cpu import read_artifact
    from QEfficient.distributed.shipping import ship, should_ship
    from QEfficient.serving.classify_media_app import MAX_REQUEST_AUDIO_BYTES
    from QEfficient.serving.encoder_artifact import companion_artifact, embeds_texts_and_images, serves_pages, speaks
    from QEfficient.serving.tts_app import DEFAULT_MAX_TTS_BYTES
    from QEfficient.serving.vision_language import DEFAULT_MAX_BODY_BYTES as IMAGES_MAX_BODY_BYTES

    qconfig = read_artifact(Path(qpc_path))  # requests of images or audio: the single server's limit
    if not getattr(args, "qpc_path", None):  # compiled from a folder: its name as given is accepted, the id stays the model's
        names = [qconfig.get("model_name") or Path(qpc_path).name, *names]
    media = {"image_classifier": IMAGES_MAX_BODY_BYTES, "audio_classifier": MAX_REQUEST_AUDIO_BYTES}
    limit = args.max_body_bytes or next((limit for flag, limit in media.items() if qconfig.get(flag)), None)
    if embeds_texts_and_images(qconfig) or speaks(qconfig):
        limit = args.max_body_bytes or (IMAGES_MAX_BODY_BYTES if embeds_texts_and_images(qconfig) else DEFAULT_MAX_TTS_BYTES)
    # a page retriever: the single server's query and page limits; it and a contrastive model: their second artifact too
    pages = serves_pages(qconfig)
    server_options = {"ctx_len": requested_ctx_len(args)} | ({"max_pages": getattr(args, "max_num_images", None)} if pages else {})
    shipment = ship(qpc_path, None, companion_artifact(qpc_path, qconfig)) if should_ship(args.ship_artifact) else None
    options = replace(options, full_batch_size=1)
    return build_encoder_application(str(qpc_path), task, options, names, args.api_key, limit, shipment, pooler, server_options)


def _compile_encoder(model_name: str, task: str, args) -> str:
    """The encoder's artifact, compiled as the single-process server compiles it (the same checks and refusals)."""
    from QEfficient.cloud.serve import build_server_from_args

    app, runner = build_server_from_args(args, model_name, None, args.cores_per_replica, task)
    runner.stop()
    from QEfficient.serving.encoder_artifact import check_servable

    check_servable(app.state.qpc_path)  # what a replica needs (a fast tokenizer): refused here, not in every replica
    return str(app.state.qpc_path)
