"""python -m QEfficient.cloud.serve: an OpenAI-compatible server with continuous batching.

    python -m QEfficient.cloud.serve [--model_name M] [--gguf_file F] [--qpc_path ARTIFACT] [--host 127.0.0.1] [--port 8000]
        [--prefill_seq_len 32] [--ctx_len 512] [--full_batch_size 4] [--num_cores N] [--max_queue 64]
        [--mxfp6_matmul] [--mxint8_kv_cache] [--api-key KEY] [--max_body_bytes 4194304]
        [--lora NAME=PATH [NAME=PATH ...]] [--prompt_lookup_num_tokens K | --draft_model PATH --num_speculative_tokens K]
        [--img_size N] [--max_num_images N] [--chat_template FILE_OR_TEMPLATE] [--task auto|generate|embed|score]
        [--hf_overrides JSON] [--pooler_config JSON]

With no --model_name it serves the default model, SmolLM2-135M-Instruct. A vision-language model takes
images in chat messages ("image_url" parts: base64 data: URLs, or http(s) URLs the server fetches). An encoder
(a sentence-transformers folder such as all-MiniLM-L6-v2) is served for embeddings: POST /v1/embeddings; an encoder's
sequence classifier (a cross-encoder reranker) or a decoder's (Qwen2ForSequenceClassification) for vLLM's POST /score,
/rerank and /classify; --hf_overrides '{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token":
["no", "yes"], "is_original_qwen3_reranker": true}' scores a causal LM by two of its tokens' logits, as vLLM serves
Qwen3-Reranker; its other keys change the model's config before it is loaded, as vLLM applies them. A late-interaction
document retriever (ColPali, ColQwen2, ColModernVBert) is served as vLLM serves ColPali: POST /pooling for each query's
or page's per-token embeddings, /score and /rerank for MaxSim scores (--max_num_images: the most pages a request); so is a
ColBERT text retriever. BGE-M3 with --hf_overrides '{"architectures": ["BgeM3EmbeddingModel"]}' is served as vLLM
serves it, for the task of --pooler_config '{"task": ...}': "embed" (the default) its dense vectors, "token_embed" its
multi-vector ones (/pooling, /score, /rerank), "token_classify" its sparse weights per token (/pooling); an embedding
model's --pooler_config '{"pooling_type": "MEAN", "use_activation": true, "dimensions": 256}' sets its pooling, norm and
(a Matryoshka model's) width. A SPLADE folder
(sentence-transformers' SparseEncoder) with --hf_overrides '{"architectures": ["BertSpladeSparseEmbeddingModel"]}' is
served as vLLM serves it: each input's vocabulary-sized vector on /v1/embeddings. --qpc_path serves
an artifact that compile() built with continuous batching, or an encoder's artifact
(embeddings or scores), without loading torch or the model (a vision-language model's language artifact, or its one
graph's, a page retriever's or CLIP-style model's text artifact, a classifier of images or audio, a VITS model's:
without its weights, torch imported). --mxfp6 and --mxint8 are accepted for --mxfp6_matmul and
--mxint8_kv_cache. The API key can also come from $QEFF_API_KEY. Each --lora adapter (a folder saved by peft) is a model
id of its own in /v1/models; a request's "model" picks it, as vLLM does (pip install "QEfficient[lora]").
"""

# This module is serve's command line (its docstring above is the --help text): the options, the names of the tool-call
# and reasoning parsers, the checks of --chat_template, --hf_overrides and --lora, and the warning for an exposed server.

from __future__ import annotations

import argparse
import ipaddress
import os
from pathlib import Path

from QEfficient.cloud._cli import add_argument
from QEfficient.utils.checks import check_positive
from QEfficient.utils.constants import DEFAULT_SERVER_CTX_LEN

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


# the shapes compile() fixes, and their defaults here; with the quantization flags, the options an artifact fixes
COMPILE_DEFAULTS = {"prefill_seq_len": 32, "ctx_len": DEFAULT_SERVER_CTX_LEN, "full_batch_size": 4}
COMPILE_OPTIONS = (*COMPILE_DEFAULTS, "mxfp6_matmul", "mxint8_kv_cache")


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
        "without torch; a vision-language model's language or one-graph artifact, a page retriever's or CLIP-style model's "
        "text artifact or a VITS model's without its weights); its shapes win",
    )
    add_argument(p, "host", default="127.0.0.1")
    add_argument(p, "port", type=int, default=8000)
    # (None until parsed, so that one given with --qpc_path is told from its default: args.given_options)
    add_argument(p, "prefill_seq_len", type=int, default=None, help=f"default {COMPILE_DEFAULTS['prefill_seq_len']}")
    add_argument(
        p,
        "ctx_len",
        type=int,
        default=None,
        help=f"default {DEFAULT_SERVER_CTX_LEN}; with --qpc_path the artifact's (an encoder's may be given a lower input limit)",
    )
    add_argument(p, "full_batch_size", type=int, default=None, help=f"default {COMPILE_DEFAULTS['full_batch_size']}")
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
        help="vision-language models: the most images per request (default 16; 1 for Mllama and IDEFICS: their image slots); "
        "retrievers: the most pages per request (default 16)",
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
        help="embed: an encoder's embeddings (/v1/embeddings; /score, /rerank by cosine); score: a classifier's /score, "
        "/rerank, /classify; auto: a sentence-transformers folder or a base encoder is embed, a sequence classifier is "
        "score (an image or audio classifier: /classify of images or audio)",
    )
    add_argument(
        p,
        "hf_overrides",
        type=hf_overrides_json,
        default=None,
        help="vLLM's: changes to the model's config before it is loaded ('{\"max_position_embeddings\": 4096}'; a "
        "sub-config such as text_config is merged), or the keys that score a causal LM by some of its tokens' logits, e.g. "
        'Qwen3-Reranker: \'{"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["no", "yes"], '
        "\"is_original_qwen3_reranker\": true}'; or vLLM's architecture that serves BGE-M3's heads (BgeM3EmbeddingModel) or a "
        "SPLADE model's vectors (BertSpladeSparseEmbeddingModel)",
    )
    add_argument(
        p,
        "pooler_config",
        type=pooler_config_json,
        default=None,
        help='vLLM\'s: the pooling task a server answers, \'{"task": "embed"}\' (or "classify", "token_embed", '
        '"token_classify"); BGE-M3 with --hf_overrides \'{"architectures": ["BgeM3EmbeddingModel"]}\' serves its '
        'multi-vector ("token_embed") or sparse ("token_classify") outputs; an embedding model\'s defaults: "pooling_type" '
        '(CLS, MEAN or LAST), "use_activation" (the L2 norm), "dimensions" (a Matryoshka model\'s width)',
    )
    p.add_argument("--pooler_config.task", "--pooler-config.task", dest="pooler_task", metavar="TASK", help="--pooler_config's task alone")
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
    args.given_options = frozenset(n for n in COMPILE_OPTIONS if getattr(args, n) is not None and getattr(args, n) is not False)
    for name, default in COMPILE_DEFAULTS.items():
        setattr(args, name, default if getattr(args, name) is None else getattr(args, name))
    if args.max_body_bytes is not None and args.max_body_bytes < 1:
        p.error("--max_body_bytes must be a positive number of bytes")
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be from 0 to 65535, got {args.port}")
    try:
        counts = ("num_cores", "max_queue", "full_batch_size", "prefill_seq_len", "ctx_len")
        check_positive(**{name: getattr(args, name) for name in counts})
        given = ("prompt_lookup_num_tokens", "num_speculative_tokens")  # (None: not speculating)
        check_positive(**{name: getattr(args, name) for name in given if getattr(args, name, None) is not None})
    except ValueError as err:
        p.error(f"--{err}")
    if (args.draft_model is None) != (args.num_speculative_tokens is None):
        p.error("--draft_model and --num_speculative_tokens K go together")
    if args.enable_auto_tool_choice != (args.tool_call_parser is not None):
        p.error("--enable_auto_tool_choice and --tool_call_parser NAME go together (as vLLM's flags)")
    if args.pooler_config is not None and args.pooler_task is not None:
        p.error("give the pooling task once: --pooler_config '{\"task\": ...}' or --pooler_config.task")
    if args.pooler_config is not None:
        args.pooler_task = args.pooler_config.get("task")
    args.pooler_defaults = pooler_defaults(args.pooler_config)
    if args.lora is not None:
        names = [name for name, _ in args.lora]
        if len(set(names)) != len(names):
            p.error(f"--lora names must differ, got {names}")
        args.lora = dict(args.lora)
    return args


def hf_overrides_json(value: str) -> dict:
    """``--hf_overrides``: a JSON object (vLLM's flag); which keys it may hold is checked with the model."""
    return _json_object(value, '{"use_pad_token": false}')


def requested_ctx_len(args: argparse.Namespace) -> int | None:
    """--ctx_len as the command line gave it (None: not given, the server's default within the model's limit)."""
    return args.ctx_len if "ctx_len" in getattr(args, "given_options", ()) else None


# --pooler_config's pooling types of one vector per input (vLLM's SequencePoolingType) -> this library's pooling names
SEQUENCE_POOLING = {"CLS": "cls", "MEAN": "mean", "LAST": "lasttoken"}
POOLER_CONFIG_KEYS = ("task", "pooling_type", "seq_pooling_type", "use_activation", "dimensions")


def pooler_config_json(value: str) -> dict:
    """``--pooler_config``: a JSON object (vLLM's flag) of which this server takes ``task`` and, for an embedding model,
    the defaults of its vectors: ``pooling_type`` (or ``seq_pooling_type``) CLS, MEAN or LAST, ``use_activation`` (the L2
    norm) and ``dimensions`` (a Matryoshka model's width); vLLM's other fields are refused."""
    parsed = {k: v for k, v in _json_object(value, '{"task": "embed"}').items() if v is not None}  # null: vLLM's default
    if "normalize" in parsed:
        raise argparse.ArgumentTypeError("'normalize' was removed from vLLM's pooler config; use 'use_activation' instead")
    others = sorted(set(parsed) - set(POOLER_CONFIG_KEYS))
    if others:
        raise argparse.ArgumentTypeError(f"takes {', '.join(POOLER_CONFIG_KEYS)} here, not {others}")
    if "pooling_type" in parsed and "seq_pooling_type" in parsed:
        raise argparse.ArgumentTypeError("give 'pooling_type' or 'seq_pooling_type', not both (as vLLM)")
    kind = parsed.get("pooling_type", parsed.get("seq_pooling_type"))
    if kind is not None and kind not in SEQUENCE_POOLING:
        token_types = " (ALL and STEP pool per token: a late-interaction retriever's, which pools as it was trained)"
        raise argparse.ArgumentTypeError(
            f"pooling type {kind!r} is not one of {list(SEQUENCE_POOLING)}{token_types if kind in ('ALL', 'STEP') else ''}"
        )
    if not isinstance(parsed.get("use_activation", False), bool):
        raise argparse.ArgumentTypeError(f"'use_activation' must be true or false, got {parsed['use_activation']!r}")
    dimensions = parsed.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise argparse.ArgumentTypeError(f"'dimensions' must be a positive number of dimensions, got {dimensions!r}")
    return parsed


def pooler_defaults(pooler_config: dict | None) -> dict | None:
    """``--pooler_config``'s defaults of an embedding model's vectors, as create_embeddings_app takes them
    ("pooling_type": this library's pooling name, "use_activation", "dimensions"); None where it sets none."""
    config = pooler_config or {}
    kind = config.get("pooling_type", config.get("seq_pooling_type"))
    defaults = {
        "pooling_type": SEQUENCE_POOLING.get(kind),
        "use_activation": config.get("use_activation"),
        "dimensions": config.get("dimensions"),
    }
    return {k: v for k, v in defaults.items() if v is not None} or None


def _json_object(value: str, example: str) -> dict:
    import json

    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): give an object such as '{example}'") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{example}', got {value!r:.80}")
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
