"""python -m QEfficient.cloud.serve: an OpenAI-compatible server with continuous batching.

    python -m QEfficient.cloud.serve [--model_name M] [--gguf_file F] [--qpc_path ARTIFACT] [--host 127.0.0.1] [--port 8000]
        [--prefill_seq_len 32] [--ctx_len 512] [--full_batch_size 4] [--num_cores N] [--max_queue 64]
        [--mxfp6_matmul] [--mxint8_kv_cache] [--api-key KEY] [--max_body_bytes 4194304]
        [--lora NAME=PATH [NAME=PATH ...]] [--prompt_lookup_num_tokens K | --draft_model PATH --num_speculative_tokens K]
        [--img_size N] [--max_num_images N] [--chat_template FILE_OR_TEMPLATE] [--task auto|generate|embed|score]
        [--hf_overrides JSON]

With no --model_name it serves the default model, SmolLM2-135M-Instruct. A vision-language model takes
images in chat messages ("image_url" parts: base64 data: URLs, or http(s) URLs the server fetches). An encoder
(a sentence-transformers folder such as all-MiniLM-L6-v2) is served for embeddings: POST /v1/embeddings; an encoder's
sequence classifier (a cross-encoder reranker) or a decoder's (Qwen2ForSequenceClassification) for vLLM's POST /score,
/rerank and /classify; --hf_overrides '{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token":
["no", "yes"], "is_original_qwen3_reranker": true}' scores a causal LM by two of its tokens' logits, as vLLM serves
Qwen3-Reranker; its other keys change the model's config before it is loaded, as vLLM applies them. --qpc_path serves
an artifact that compile() built with continuous batching, or an encoder's artifact
(embeddings or scores), without loading torch or the model (a vision-language model's language artifact, or its one
graph's: without its weights, torch imported). --mxfp6 and --mxint8 are accepted for --mxfp6_matmul and
--mxint8_kv_cache. The API key can also come from $QEFF_API_KEY. Each --lora adapter (a folder saved by peft) is a model
id of its own in /v1/models; a request's "model" picks it, as vLLM does (pip install "QEfficient[lora]").
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from dataclasses import replace
from pathlib import Path

from QEfficient.cloud._cli import add_argument, fail, resolve_model_name, setup_logging, step
from QEfficient.utils.checks import check_positive
from QEfficient.utils.extras import MissingExtraError, require_extra

# serving/tools.TOOL_CALL_PARSERS, named here: the command line parses without the serve extra
TOOL_CALL_PARSERS = (
    "hermes",
    "llama3_json",
    "pythonic",
    "mistral",
    "llama4_json",
    "llama4_pythonic",
    "longcat",
    "deepseek_v3",
    "deepseek_v31",
    "kimi_k2",
    "internlm",
    "jamba",
    "granite",
    "granite4",
    "phi4_mini_json",
    "olmo3",
    "lfm2",
    "qwen3_coder",
    "glm45",
    "qwen3_xml",
    "seed_oss",
    "glm47",
    "mimo",
    "step3p5",
    "poolside_v1",
    "ling3",
    "minimax_m2",
    "deepseek_v32",
    "deepseek_v4",
    "step3",
    "gemma4",
    "functiongemma",
    "ernie45",
    "hunyuan_a13b",
    "nemotron_json",
    "minimax",
    "qwen2_5_coder",
    "apertus",
    "xlam",
    "hy_v3",
    "hy_v4",
    "gigachat3",
    "plamo3",
    "dots",
    "kimi_k3",
    "openai",
)

# serving/reasoning.REASONING_PARSERS, named here for the same reason
REASONING_PARSERS = (
    "deepseek_r1",
    "deepseek_v3",
    "holo2",
    "qwen3",
    "glm45",
    "glm47",
    "kimi_k2",
    "minimax_m2",
    "minimax_m2_append_think",
    "step3",
    "seed_oss",
    "mistral",
    "granite",
    "openai_gptoss",
    "mimo",
    "olmo3",
    "poolside_v1",
    "deepseek_v4",
    "gemma4",
    "solar_open2",
    "ling3",
    "nemotron_v3",
    "step3p5",
    "hunyuan_a13b",
    "ernie45",
    "hy_v3",
    "hy_v4",
    "minimax_m3",
    "plamo3",
    "kimi_k3",
)

API_KEY_ENV = "QEFF_API_KEY"


def build_server(
    model_name: str,
    gguf_file: str | None,
    prefill_seq_len: int,
    ctx_len: int,
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
):
    """(app, runner): the model compiled for continuous batching, its engine running, the FastAPI app
    (``app.state.qpc_path``: the artifact it serves). ``prompt_lookup_num_tokens=K``: greedy requests
    decode speculatively, verifying up to K prompt-lookup drafts a step (same tokens, fewer steps);
    ``draft_model`` + ``num_speculative_tokens=K``: the same with a draft model's K tokens.
    ``lora``: adapter name -> PEFT adapter folder, each served as its own model id. ``img_size`` and
    ``max_num_images`` (the most images per request; a cross-attention model's image slots) are for vision-language models.
    ``chat_template``: a Jinja template for chat requests instead of the model's own. ``task``: "embed" serves an
    encoder's embeddings (/v1/embeddings), "score" a classifier's /score, /rerank and /classify, "generate"
    generation, "auto" (default) tells them apart from the model. ``hf_overrides``: vLLM's, changes to the model's config
    made before it is loaded, or the keys that score a causal LM by some of its tokens' logits
    (serving/tasks.CLASSIFIER_OVERRIDES). ``tool_call_parser``: the model's tool-call syntax (serving/tool_parsers.py), which lets chat
    requests leave tool_choice "auto" (serving/tools.py); ``reasoning_parser``: the syntax of its thinking, which chat answers
    return apart as ``reasoning`` (serving/reasoning.py)."""
    if not gguf_file and _is_retriever(model_name):
        raise ValueError(
            f"'{model_name}' is a late-interaction retriever (ColPali): its per-token embeddings are not served over HTTP here; "
            "run it in Python with QEFFAutoModelForRetrieval."
        )
    if not gguf_file and _is_text_to_speech(model_name):  # VITS: /v1/audio/speech, one request at a time
        from QEfficient.serving.tts_app import open_tts_app

        given = {"lora": lora, "draft_model": draft_model, "prompt_lookup_num_tokens": prompt_lookup_num_tokens}
        given |= {"tool_call_parser": tool_call_parser, "reasoning_parser": reasoning_parser, "chat_template": chat_template}
        given |= {"img_size": img_size, "max_num_images": max_num_images, "mxint8_kv_cache": mxint8_kv_cache or None}
        given |= {"hf_overrides": hf_overrides or None, "task": None if task == "auto" else task}
        named = [f"--{name}" for name, value in given.items() if value is not None]
        if named:
            raise ValueError(f"'{model_name}' is a text-to-speech model (/v1/audio/speech): {', '.join(named)} do not apply.")
        return open_tts_app(model_name, num_cores, mxfp6_matmul, api_key, max_body_bytes)
    pooling = _pooling_task(model_name, gguf_file, task, hf_overrides)
    if pooling is not None:
        generation_options = {
            "lora": lora,
            "prompt_lookup_num_tokens": prompt_lookup_num_tokens,
            "draft_model": draft_model,
            "img_size": img_size,
            "max_num_images": max_num_images,
            "chat_template": chat_template,
            "tool_call_parser": tool_call_parser,
            "reasoning_parser": reasoning_parser,
            "mxint8_kv_cache": mxint8_kv_cache or None,
        }
        options = (ctx_len, num_cores, mxfp6_matmul, api_key, max_body_bytes)
        return _pooling_server(pooling, model_name, options, generation_options, hf_overrides)
    if (tool_call_parser or reasoning_parser) is not None and not gguf_file and _is_speech(model_name):
        raise ValueError(f"'{model_name}' is not served for chat here: leave --tool_call_parser and --reasoning_parser out.")
    if not gguf_file and _is_speech(model_name):
        from QEfficient.serving.speech_app import open_speech_app

        return open_speech_app(model_name, ctx_len, num_cores, api_key, max_body_bytes, hf_overrides)
    if not gguf_file and _transcribes_in_one_pass(model_name):  # transcribed in one pass, one request at a time
        from QEfficient.serving.ctc_app import open_ctc_app

        given = {"lora": lora, "draft_model": draft_model, "prompt_lookup_num_tokens": prompt_lookup_num_tokens}
        given |= {"tool_call_parser": tool_call_parser, "reasoning_parser": reasoning_parser, "chat_template": chat_template}
        given |= {"img_size": img_size, "max_num_images": max_num_images, "mxint8_kv_cache": mxint8_kv_cache or None}
        named = [f"--{name}" for name, value in given.items() if value is not None]
        if named:
            raise ValueError(f"'{model_name}' is a one-pass speech model (/v1/audio/transcriptions): {', '.join(named)} do not apply.")
        return open_ctc_app(model_name, num_cores, mxfp6_matmul, api_key, max_body_bytes, hf_overrides)
    if not gguf_file and (_is_seq2seq(model_name) or _is_vision_seq2seq(model_name)):  # encoder-decoders: one request at a time
        from QEfficient.serving.seq2seq_app import open_seq2seq_app
        from QEfficient.serving.vision_seq2seq_app import open_vision_seq2seq_app

        given = {"lora": lora, "draft_model": draft_model, "prompt_lookup_num_tokens": prompt_lookup_num_tokens}
        given |= {"tool_call_parser": tool_call_parser, "reasoning_parser": reasoning_parser, "chat_template": chat_template}
        given |= {"img_size": img_size, "max_num_images": max_num_images, "num_speculative_tokens": num_speculative_tokens}
        given |= {"mxint8_kv_cache": mxint8_kv_cache or None}
        named = [f"--{name}" for name, value in given.items() if value is not None]
        if named:
            raise ValueError(
                f"'{model_name}' is an encoder-decoder, served one request at a time: {', '.join(named)} do not apply; leave them out."
            )
        open_app = open_vision_seq2seq_app if _is_vision_seq2seq(model_name) else open_seq2seq_app
        return open_app(model_name, ctx_len, num_cores, mxfp6_matmul, api_key, max_body_bytes, hf_overrides)
    if not gguf_file and _is_vision_language(model_name):  # compiled and opened in one go: the model is loaded once
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


def _pooling_task(model_name: str, gguf_file: str | None, task: str, hf_overrides: dict | None = None) -> str | None:
    from QEfficient.serving.tasks import pooling_task

    return pooling_task(model_name, gguf_file, task, hf_overrides)


_POOLING_ROUTES = {"embed": "embeddings (/v1/embeddings)", "score": "scores (/score, /rerank, /classify)"}


def _pooling_server(task, model_name, options: tuple, generation_options: dict, hf_overrides: dict | None):
    """An encoder's /v1/embeddings server (``task`` "embed") or a classifier's score server ("score"), with ``options``
    (ctx_len, num_cores, mxfp6_matmul, api_key, max_body_bytes); the options that only mean something for generation
    are refused."""
    given = [f"--{name}" for name, value in generation_options.items() if value is not None]
    if given:
        raise ValueError(f"'{model_name}' is served for {_POOLING_ROUTES[task]}: {', '.join(given)} do not apply; leave them out.")
    media = _media_classifier(model_name) if task == "score" else None
    if media is not None:
        from QEfficient.serving.classify_media_app import AUDIO, IMAGES, open_classify_media_app
        from QEfficient.serving.tasks import split_hf_overrides

        if split_hf_overrides(hf_overrides)[0]:
            raise ValueError(f"'{model_name}' classifies {media}: --hf_overrides' classifier keys are for a causal LM; leave them out.")

        _ctx_len, num_cores, mxfp6_matmul, api_key, max_body_bytes = options
        modality = AUDIO if media == "audio" else IMAGES
        return open_classify_media_app(model_name, modality, num_cores, mxfp6_matmul, api_key, max_body_bytes, hf_overrides)
    if task == "score":
        from QEfficient.serving.scores_app import open_scores_app

        return open_scores_app(model_name, *options, hf_overrides=hf_overrides)
    from QEfficient.serving.embeddings_app import open_embeddings_app

    return open_embeddings_app(model_name, *options, hf_overrides=hf_overrides)


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


def _transcribes_in_one_pass(model_name: str) -> bool:
    """A one-pass transcriber: a CTC model or a transducer (serving/ctc_app.py)."""
    from QEfficient import QEFFAutoModelForCTC, QEFFAutoModelForRNNT, QEFFAutoModelForTDT
    from QEfficient.cloud.infer import _speech_class

    return _speech_class(model_name, None) in (QEFFAutoModelForCTC, QEFFAutoModelForRNNT, QEFFAutoModelForTDT)


def _is_retriever(model_name: str) -> bool:
    from QEfficient.serving.tasks import is_retriever

    return is_retriever(model_name)


def _is_text_to_speech(model_name: str) -> bool:
    from QEfficient.serving.tasks import is_text_to_speech

    return is_text_to_speech(model_name)


def _is_speech(model_name: str) -> bool:
    from QEfficient.cloud.infer import _is_speech as is_speech

    return is_speech(model_name, None)


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """What to tell the user when the server answers beyond this machine without a key."""
    if api_key:
        return None
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        local = False
    if local:
        return None
    return (
        f"the server listens on {host} without an API key: anyone who can reach this port can use it. "
        f"Pass --api-key KEY (or set ${API_KEY_ENV}), or --host 127.0.0.1."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m QEfficient.cloud.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_argument(p, "model_name", default=None)
    add_argument(p, "gguf_file", default=None)
    add_argument(
        p,
        "qpc_path",
        default=None,
        help="serve an artifact compile() built (continuous batching): starts without the model (a decoder's or an encoder's "
        "without torch; a vision-language model's language or one-graph artifact without its weights); its shapes win",
    )
    add_argument(p, "host", default="127.0.0.1")
    add_argument(p, "port", type=int, default=8000)
    add_argument(p, "prefill_seq_len", type=int, default=32)
    add_argument(p, "ctx_len", type=int, default=512)
    add_argument(p, "full_batch_size", type=int, default=4)
    add_argument(p, "num_cores", type=int, default=16)
    add_argument(p, "max_queue", type=int, default=64, help="requests waiting for a slot before the server answers 429")
    # QEfficient's spellings (cli_examples.sh) and this server's short ones
    for name, short, help_text in (
        ("mxfp6_matmul", "mxfp6", "8-bit MatMul weights: about 2x faster decode"),
        ("mxint8_kv_cache", "mxint8", "float16 KV cache: half the cache memory"),
    ):
        p.add_argument(f"--{name}", f"--{name.replace('_', '-')}", f"--{short}", dest=name, action="store_true", help=help_text)
    add_argument(
        p, "api_key", default=os.environ.get(API_KEY_ENV), help=f"clients must send 'Authorization: Bearer KEY' (default: ${API_KEY_ENV})"
    )
    add_argument(
        p,
        "max_body_bytes",
        type=int,
        default=None,
        help="largest request body accepted (default 4 MiB, 32 MiB for a vision-language model's images); larger gets 413",
    )
    add_argument(
        p,
        "prompt_lookup_num_tokens",
        type=int,
        default=None,
        help="speculative decoding: verify up to K prompt-lookup drafts per step (greedy requests; same tokens)",
    )
    add_argument(
        p,
        "lora",
        nargs="+",
        type=lora_module,
        default=None,
        metavar="NAME=PATH",
        help="LoRA adapters (folders saved by peft), each served as the model id NAME",
    )
    add_argument(p, "img_size", type=int, default=None, help="vision-language models: the image size to compile for")
    add_argument(
        p,
        "max_num_images",
        type=int,
        default=None,
        help="vision-language models: the most images per request (default 16; 1 for Mllama and IDEFICS: their image slots)",
    )
    add_argument(
        p,
        "chat_template",
        type=chat_template_text,
        default=None,
        help="a Jinja chat template (a file, or the template itself) for chat requests, instead of the model's own",
    )
    add_argument(
        p,
        "task",
        choices=("auto", "generate", "embed", "score"),
        default="auto",
        help="embed: an encoder's embeddings (/v1/embeddings); score: a classifier's /score, /rerank, /classify; auto: a "
        "sentence-transformers folder or a base encoder is embed, a sequence classifier is score (an image or audio "
        "classifier: /classify of images or audio)",
    )
    add_argument(
        p,
        "hf_overrides",
        type=hf_overrides_json,
        default=None,
        help="vLLM's: changes to the model's config before it is loaded ('{\"max_position_embeddings\": 4096}'; a "
        "sub-config such as text_config is merged), or the keys that score a causal LM by some of its tokens' logits, e.g. "
        'Qwen3-Reranker: \'{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["no", "yes"], '
        '"is_original_qwen3_reranker": true}\'',
    )
    p.add_argument(
        "--enable_auto_tool_choice",
        "--enable-auto-tool-choice",
        action="store_true",
        help='chat requests with tools may leave tool_choice "auto": the model\'s own tool calls are parsed (--tool_call_parser)',
    )
    add_argument(p, "tool_call_parser", choices=TOOL_CALL_PARSERS, default=None, help="the model's tool-call syntax (vLLM's names)")
    add_argument(
        p,
        "reasoning_parser",
        choices=REASONING_PARSERS,
        default=None,
        help="the syntax of the model's thinking, returned apart from chat answers as 'reasoning' (vLLM's names)",
    )
    add_argument(p, "draft_model", default=None, help="speculative decoding: a smaller model with the same tokenizer drafts")
    add_argument(p, "num_speculative_tokens", type=int, default=None, help="tokens the --draft_model drafts per step (K)")
    ray = p.add_argument_group('Ray Serve (pip install "QEfficient[ray]")')
    ray.add_argument("--ray", action="store_true", help="serve with Ray Serve: replicas, autoscaling, retries")
    add_argument(ray, "ray_address", default=None, help="Ray cluster to join (default: start a local one)")
    add_argument(ray, "num_replicas", type=int, default=1, help="engine replicas (the initial count when autoscaling)")
    add_argument(ray, "cores_per_replica", type=int, default=1, help="CPUs (ONNX Runtime threads) of each replica")
    add_argument(ray, "min_replicas", type=int, default=None, help="autoscale down to this many")
    add_argument(ray, "max_replicas", type=int, default=None, help="autoscale up to this many")
    add_argument(ray, "target_ongoing_requests", type=float, default=None, help="autoscaling target per replica (default: full_batch_size)")
    add_argument(
        ray,
        "ship_artifact",
        choices=("auto", "on", "off"),
        default="auto",
        help="send the compiled model to replicas through Ray's object store (auto: when the cluster has several nodes)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.max_body_bytes is not None and args.max_body_bytes < 1:
        p.error("--max_body_bytes must be a positive number of bytes")
    if (args.draft_model is None) != (args.num_speculative_tokens is None):
        p.error("--draft_model and --num_speculative_tokens K go together")
    if args.enable_auto_tool_choice != (args.tool_call_parser is not None):
        p.error("--enable_auto_tool_choice and --tool_call_parser NAME go together (as vLLM's flags)")
    if args.lora is not None:
        names = [name for name, _ in args.lora]
        if len(set(names)) != len(names):
            p.error(f"--lora names must differ, got {names}")
        args.lora = dict(args.lora)
    return args


def hf_overrides_json(value: str) -> dict:
    """``--hf_overrides``: a JSON object (vLLM's flag); which keys it may hold is checked with the model."""
    import json

    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): give an object such as '{{\"use_pad_token\": false}}'") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {value!r:.80}")
    return parsed


def chat_template_text(value: str) -> str:
    """``--chat_template``: a file's text, or the template itself (as vLLM's --chat-template); checked now, not at the
    first request."""
    import jinja2
    from transformers.utils.chat_template_utils import _compile_jinja_template  # what renders it later, its extensions too

    path = Path(value)
    looks_like_template = any(mark in value for mark in ("{{", "{%"))
    if not looks_like_template:
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise argparse.ArgumentTypeError(f"'{value}' is neither a readable file nor a Jinja template ({err})") from None
    try:
        _compile_jinja_template(value)
    except jinja2.TemplateSyntaxError as err:
        raise argparse.ArgumentTypeError(f"the chat template is not valid Jinja: {err} (line {err.lineno})") from None
    failure = _sample_render_failure(value)
    if failure is not None:
        raise argparse.ArgumentTypeError(f"the chat template fails on a one-message conversation ({failure}); fix it or leave it out")
    return value


def _sample_render_failure(template: str) -> str | None:
    """Why ``template`` cannot render one user message, with string content or with a list of text parts (a
    vision-language template's form), or None when one of the two renders."""
    from transformers.utils.chat_template_utils import render_jinja_template

    failures = []
    for content in ("Hello", [{"type": "text", "text": "Hello"}]):
        try:
            render_jinja_template(
                conversations=[[{"role": "user", "content": content}]], chat_template=template, add_generation_prompt=True
            )
            return None
        except Exception as err:  # the template's own raise_exception, undefined names, type errors
            failures.append(f"{type(err).__name__}: {err}")
    return failures[0]


def lora_module(text: str) -> tuple[str, str]:
    """``--lora NAME=PATH`` (vLLM's --lora-modules form)."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (an adapter name and its folder), got '{text}'")
    return name, path


def build_from_args(args: argparse.Namespace):
    """(app, runner) as the command line asks."""
    if args.qpc_path:
        if args.hf_overrides:
            raise ValueError("--hf_overrides applies when a model is compiled; an artifact keeps what it was compiled with: leave it out.")
        from QEfficient.compile.ort_cpu import read_artifact
        from QEfficient.serving.artifact import open_app
        from QEfficient.serving.encoder_artifact import is_encoder_artifact, open_compiled_encoder_app

        names = (args.model_name,) if args.model_name else ()
        if is_encoder_artifact(read_artifact(Path(args.qpc_path))):  # an embeddings or scores server, as compiled
            options = ("chat_template", "lora", "prompt_lookup_num_tokens", "draft_model", "tool_call_parser", "reasoning_parser")
            given = [f"--{n}" for n in options if getattr(args, n)]
            if args.task == "generate" or given:
                raise ValueError(
                    f"'{args.qpc_path}' is an encoder's artifact, served for embeddings or scores: "
                    f"{', '.join(given) or '--task generate'} do not apply."
                )
            with step(f"Opening the encoder artifact {args.qpc_path}"):
                return open_compiled_encoder_app(args.qpc_path, names, args.num_cores, args.api_key, args.max_body_bytes, args.task)
        with step(f"Opening the artifact {args.qpc_path}"):
            artifact = decoder_artifact_from_args(args, args.num_cores)
            return open_app(artifact, args.num_cores, args.max_queue, args.api_key, args.max_body_bytes)
    model_name, gguf_file = resolve_model_name(args.model_name, args.gguf_file)
    # bad numbers fail now, not after the model is loaded, exported and compiled
    check_positive(
        prefill_seq_len=args.prefill_seq_len, ctx_len=args.ctx_len, full_batch_size=args.full_batch_size, num_cores=args.num_cores
    )
    check_positive(**{name: getattr(args, name) for name in ("img_size", "max_num_images") if getattr(args, name) is not None})
    pooling = _pooling_task(model_name, gguf_file, args.task, args.hf_overrides)
    purpose = _POOLING_ROUTES[pooling] if pooling else f"continuous batching ({args.full_batch_size} slots)"
    with step(f"Loading and compiling {model_name} for {purpose}"):
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


def build_server_from_args(args: argparse.Namespace, model_name: str, gguf_file: str | None, num_cores: int, task: str):
    """``build_server`` with the command line's options (Ray's driver compiles an encoder's artifact through it too)."""
    return build_server(
        model_name,
        gguf_file,
        args.prefill_seq_len,
        args.ctx_len,
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
        fail(str(err))
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
        fail(str(err))


if __name__ == "__main__":
    main()
