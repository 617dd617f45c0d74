"""What a server needs to start from a compiled model, split from the compile itself.

``compile_for_serving`` runs once (the CLI, or a Ray driver) and returns a small, picklable
``ServingArtifact``; ``open_app`` turns it into a running engine and its FastAPI app. Ray Serve
replicas call only ``open_app``, so they reuse the artifact from the shared QEFF_HOME instead of
each exporting and compiling the model again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from QEfficient.runtime.tokenizer import TOKENIZER_SUBDIR, artifact_tokenizer, has_runtime_tokenizer, load_tokenizer
from QEfficient.serving.protocol import artifact_model_names


@dataclass(frozen=True)
class ServingArtifact:
    qpc_path: str  # the compiled artifact (graph + qconfig)
    tokenizer_dir: str  # where the tokenizer (and its chat template) is saved
    model_id: str  # the name /v1/models reports
    served_names: tuple[str, ...]  # other names a request's ``model`` may use
    eos_token_ids: tuple[int, ...]
    prefill_seq_len: int
    ctx_len: int
    num_cores: int = 1
    prompt_lookup_num_tokens: int | None = None  # speculative decoding with prompt-lookup drafts
    lora_tables: str | None = None  # the LoRA adapter tables (.npz) of a LoRA artifact
    lora_adapters: tuple[str, ...] = ()  # their names, in table order (row i + 1)
    draft_qpc_path: str | None = None  # speculative decoding with a draft model's artifact
    num_speculative_tokens: int | None = None  # the draft's tokens per step
    # a vision-language model: {"vision_qpc_path": ...}, the vision artifact beside qpc_path (its language artifact;
    # None where qpc_path is one graph), served without the model's weights (serving/vision_language.py)
    vision_language: dict | None = None
    chat_template: str | None = None  # a template to use instead of the model's own (serve --chat_template)
    tool_call_parser: str | None = None  # the model's tool-call syntax, for tool_choice "auto" (serving/tools.py)
    reasoning_parser: str | None = None  # the syntax of the model's thinking, split from chat answers (serving/reasoning.py)


def compile_for_serving(
    model_name: str,
    gguf_file: str | None,
    prefill_seq_len: int,
    ctx_len: int,
    full_batch_size: int,
    num_cores: int,
    mxfp6_matmul: bool = False,
    mxint8_kv_cache: bool = False,
    prompt_lookup_num_tokens: int | None = None,
    lora: dict[str, str] | None = None,
    draft_model: str | None = None,
    num_speculative_tokens: int | None = None,
    img_size: int | None = None,
    max_num_images: int | None = None,
    hf_overrides: dict | None = None,
) -> ServingArtifact:
    """Load, export and compile ``model_name`` for continuous batching (cached under QEFF_HOME), its config changed by
    ``hf_overrides`` (vLLM's) when given.

    ``lora``: adapter name -> PEFT adapter folder, each served as a model id of its own.
    ``draft_model`` with ``num_speculative_tokens=K``: greedy requests decode speculatively, a
    smaller model (same tokenizer) drafting K tokens a step. ``img_size`` and ``max_num_images`` are a
    vision-language model's (QEFFAutoModelForImageTextToText.compile's).
    """
    from transformers import AutoTokenizer

    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.generation.text_generation import eos_token_ids
    from QEfficient.utils.tokenizer import tokenizer_folder

    if lora and (prompt_lookup_num_tokens is not None or draft_model is not None):
        raise ValueError("LoRA adapters (--lora) do not combine with speculative decoding yet; serve them without it.")
    if prompt_lookup_num_tokens is not None and draft_model is not None:
        raise ValueError("Use prompt lookup or a draft model for speculative decoding, not both.")
    if (draft_model is None) != (num_speculative_tokens is None):
        raise ValueError("A draft model needs num_speculative_tokens=K (and K needs a draft model; prompt lookup has its own option).")
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    if hf_overrides:
        kwargs["hf_overrides"] = hf_overrides
    speculative = {}
    budget = prompt_lookup_num_tokens if prompt_lookup_num_tokens is not None else num_speculative_tokens
    if budget is not None:  # a target graph: logits for every position it verifies
        kwargs["qaic_config"] = {"speculative_model_type": "target"}
        speculative["num_speculative_tokens"] = budget
    vision_language = not gguf_file and _is_vision_language(model_name)
    if (img_size is not None or max_num_images is not None) and not vision_language:
        raise ValueError("--img_size and --max_num_images are for vision-language models; leave them out for this model.")
    if vision_language:
        from QEfficient.serving import vision_language as vl

        options = vl.compile_options(
            prefill_seq_len,
            ctx_len,
            full_batch_size,
            num_cores,
            mxfp6_matmul,
            mxint8_kv_cache,
            img_size,
            max_num_images,
            lora=bool(lora),
            speculative=budget is not None,
        )
        return vl.compile_vision_language(model_name, options, hf_overrides)
    model_class = QEFFAutoModelForCausalLM
    if lora:
        from QEfficient.peft import QEffAutoLoraModelForCausalLM as model_class
    model = model_class.from_pretrained(model_name, continuous_batching=True, **kwargs)
    for name, path in (lora or {}).items():
        if name in (model_name, model.model_name):
            raise ValueError(f"The LoRA adapter name '{name}' is the base model's own name; give it another.")
        model.load_adapter(path, name)
    compile_options = dict(
        prefill_seq_len=prefill_seq_len,
        ctx_len=ctx_len,
        full_batch_size=full_batch_size,
        num_cores=num_cores,
        mxfp6_matmul=mxfp6_matmul,
        mxint8_kv_cache=mxint8_kv_cache,
    )
    tokenizer_folder(model.local_model_dir)  # a folder without a tokenizer is named before the compile, not after
    qpc = model.compile(**compile_options, **speculative)
    tokenizer = AutoTokenizer.from_pretrained(model.local_model_dir)
    eos = eos_token_ids(tokenizer, model.model.hf.generation_config)
    extra = {}
    if lora:
        extra = {"lora_tables": str(_save_lora_tables(model, qpc)), "lora_adapters": tuple(model.adapters)}
    if draft_model is not None:
        draft = QEFFAutoModelForCausalLM.from_pretrained(draft_model, continuous_batching=True)
        if int(draft.config.vocab_size) != int(model.config.vocab_size):
            raise ValueError(
                f"The draft model's vocabulary ({draft.config.vocab_size}) differs from the model's ({model.config.vocab_size}); "
                "a draft must share the model's tokenizer."
            )
        extra = {"draft_qpc_path": str(draft.compile(**compile_options)), "num_speculative_tokens": num_speculative_tokens}
    return ServingArtifact(
        qpc_path=str(qpc),
        tokenizer_dir=str(qpc / TOKENIZER_SUBDIR) if has_runtime_tokenizer(qpc) else str(model.local_model_dir),
        model_id=model.model_name,
        served_names=(model_name,),
        eos_token_ids=tuple(sorted(eos)),
        prefill_seq_len=prefill_seq_len,
        ctx_len=ctx_len,
        num_cores=num_cores,
        prompt_lookup_num_tokens=prompt_lookup_num_tokens,
        **extra,
    )


def _is_vision_language(model_name: str) -> bool:
    from QEfficient import QEFFAutoModelForImageTextToText
    from QEfficient.base.common import QEFFCommonLoader

    try:
        return QEFFCommonLoader.model_class(model_name, None) is QEFFAutoModelForImageTextToText
    except (OSError, ValueError, NotImplementedError):  # unknown configs: the causal-LM class reports those
        return False


def _save_lora_tables(model, qpc) -> Path:
    """The adapter tables beside the artifact's cache, named by the artifact and the adapters' sources."""
    from QEfficient.peft.adapters import save_tables
    from QEfficient.utils.cache import hash_dict, qeff_home

    key = hash_dict({"qpc": str(qpc), "adapters": [(n, str(Path(a.source).resolve())) for n, a in model.adapters.items()]})
    folder = qeff_home() / "lora_tables"
    folder.mkdir(parents=True, exist_ok=True)
    return save_tables(model.adapter_tables(), folder / f"{key}.npz")


def artifact_from_qpc(
    qpc_path: str, served_names: tuple[str, ...] = (), num_cores: int | None = None, prompt_lookup_num_tokens: int | None = None
) -> ServingArtifact:
    """A ``ServingArtifact`` for an artifact compile() already built (``serve --qpc_path``): everything is
    read from the artifact, so the server starts without torch, transformers' model code or the model.

    Raises ValueError when the artifact was not compiled for continuous batching or holds no tokenizer.
    """
    from QEfficient.compile.ort_cpu import read_artifact

    qconfig = read_artifact(Path(qpc_path))
    if qconfig.get("kind") == "vision" or "img_size" in qconfig.get("compile_params", {}):
        from QEfficient.serving.vision_language import vision_language_artifact

        return vision_language_artifact(qpc_path, served_names, num_cores, prompt_lookup_num_tokens)
    if not qconfig.get("continuous_batching"):
        raise ValueError(
            f"'{qpc_path}' was compiled without continuous batching; the server needs it. Compile with "
            "from_pretrained(..., continuous_batching=True) and compile(full_batch_size=N), or serve --model_name."
        )
    if not has_runtime_tokenizer(qpc_path):
        raise ValueError(
            f"'{qpc_path}' holds no tokenizer (an artifact QEfficient.compile built from an ONNX file, or one of an older "
            "version): serve the model's folder (--model_name FOLDER), which compiles an artifact that keeps it."
        )
    tokenizer = load_tokenizer(qpc_path)
    eos = qconfig.get("eos_token_id")
    eos_ids = tokenizer.generation_eos_token_ids or ([eos] if isinstance(eos, int) else eos) or [tokenizer.eos_token_id]
    params = qconfig["compile_params"]
    if prompt_lookup_num_tokens is not None and params.get("num_speculative_tokens") != prompt_lookup_num_tokens:
        raise ValueError(
            f"--prompt_lookup_num_tokens {prompt_lookup_num_tokens} needs an artifact compiled with num_speculative_tokens="
            f"{prompt_lookup_num_tokens}; this one has {params.get('num_speculative_tokens')}."
        )
    names = artifact_model_names(qconfig.get("model_name") or Path(qpc_path).name, served_names)  # --model_name: its id
    return ServingArtifact(
        qpc_path=str(qpc_path),
        tokenizer_dir=str(Path(qpc_path) / TOKENIZER_SUBDIR),
        model_id=names[0],
        served_names=tuple(names[1:]),
        eos_token_ids=tuple(sorted({int(i) for i in eos_ids if i is not None})),
        prefill_seq_len=params["prefill_seq_len"],
        ctx_len=params["ctx_len"],
        num_cores=num_cores or qconfig.get("num_cores") or 1,
        prompt_lookup_num_tokens=prompt_lookup_num_tokens,
    )


def open_app(
    artifact: ServingArtifact,
    num_cores: int | None = None,
    max_queue: int = 64,
    api_key: str | None = None,
    max_body_bytes: int | None = None,
):
    """(app, runner): an ONNX Runtime session with ``num_cores`` intra-op threads (default: as
    compiled), the engine running on its thread, and the OpenAI app over it."""
    from QEfficient.generation.continuous_batching import ContinuousBatchingEngine
    from QEfficient.generation.exec_kv import right_padding
    from QEfficient.runtime.ort_session import open_kv_session, turn_taking_spin
    from QEfficient.serving.app import create_app
    from QEfficient.serving.runner import EngineRunner

    if artifact.vision_language is not None:  # its two artifacts, without the model's weights
        from QEfficient.serving.vision_language import open_vision_language_artifact_app

        return open_vision_language_artifact_app(artifact, num_cores, max_queue, api_key, max_body_bytes)
    tokenizer = right_padding(artifact_tokenizer(artifact.qpc_path, artifact.tokenizer_dir), quiet=True)
    # with a draft model the two sessions take turns on the same cores (turn_taking_spin)
    spin = True if artifact.draft_qpc_path is None else turn_taking_spin()
    session = open_kv_session(artifact.qpc_path, num_cores or artifact.num_cores, spin=spin)
    engine_args = (session, artifact.prefill_seq_len, set(artifact.eos_token_ids), tokenizer.pad_token_id or 0)
    if artifact.lora_tables is not None:
        from QEfficient.generation.lora_generation import LoraBatchingEngine, load_tables

        engine = LoraBatchingEngine(*engine_args, load_tables(artifact.lora_tables))
    elif artifact.draft_qpc_path is not None:
        engine = _draft_engine(artifact, engine_args, num_cores or artifact.num_cores, tokenizer.pad_token_id or 0)
    elif artifact.prompt_lookup_num_tokens is None:
        engine = ContinuousBatchingEngine(*engine_args)
    else:
        from QEfficient.generation.speculative_batching import SpeculativeBatchingEngine

        engine = SpeculativeBatchingEngine(*engine_args, artifact.prompt_lookup_num_tokens)
    runner = EngineRunner(engine, max_queue=max_queue).start()
    limits = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
    app = create_app(
        runner,
        tokenizer,
        artifact.model_id,
        artifact.ctx_len,
        served_names=list(artifact.served_names),
        api_key=api_key,
        adapters=list(artifact.lora_adapters),
        chat_template=artifact.chat_template,
        tool_call_parser=artifact.tool_call_parser,
        reasoning_parser=artifact.reasoning_parser,
        **limits,
    )
    app.state.qpc_path = artifact.qpc_path
    return app, runner


def _draft_engine(artifact: ServingArtifact, engine_args: tuple, num_cores: int, pad: int):
    """Speculative continuous batching with a draft model's artifact drafting K tokens a step."""
    from QEfficient.generation.speculative import ModelDrafter
    from QEfficient.generation.speculative_batching import SpeculativeBatchingEngine
    from QEfficient.runtime.ort_session import open_kv_session, turn_taking_spin

    draft = open_kv_session(artifact.draft_qpc_path, num_cores, spin=turn_taking_spin())
    k = artifact.num_speculative_tokens
    return SpeculativeBatchingEngine(*engine_args, k, drafter=ModelDrafter(draft, artifact.prefill_seq_len, k, pad))
