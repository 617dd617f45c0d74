"""Run a compiled artifact: QEfficient's ``cloud_ai_100_exec_kv``, on ONNX Runtime."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from QEfficient.compile.ort_cpu import read_artifact
from QEfficient.generation.continuous_batching import ContinuousBatchingEngine, Request
from QEfficient.generation.lora_generation import LORA_ID, LoraBatchingEngine, LoraTextGeneration, check_tables, is_lora_artifact
from QEfficient.generation.metrics import CloudAI100ExecInfo, PerfMetrics
from QEfficient.generation.sampling import SamplingParams, check_allowed_tokens, seeded_apart
from QEfficient.generation.text_generation import TextGeneration, eos_token_ids, warn_past_context
from QEfficient.runtime.ort_session import KVCacheSession, open_kv_session
from QEfficient.utils.checks import check_generation_len


def open_session(qpc_path: str | Path, num_cores: int | None = None) -> KVCacheSession:
    """An ONNX Runtime session over the artifact, sized as compiled (batch, ctx_len)."""
    return open_kv_session(qpc_path, num_cores)


def load_prompts(prompt: list[str] | str | None, prompts_txt_file_path: str | None = None) -> list[str]:
    if prompts_txt_file_path:
        if prompt is not None:  # (QEfficient warns too)
            warnings.warn("Both prompts and prompts_txt_file_path were given: the file's prompts are used.", stacklevel=3)
        path = Path(prompts_txt_file_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"prompts_txt_file_path '{path}' " + ("is a folder, not a file." if path.is_dir() else "does not exist.")
            )
        try:
            text = path.read_text(encoding="utf-8-sig")  # (a byte-order mark, as Notepad writes, is not text)
        except UnicodeDecodeError as err:
            raise ValueError(f"prompts_txt_file_path '{path}' is not UTF-8 text ({err.reason} at byte {err.start}).") from None
        prompts = [line.strip() for line in text.splitlines() if line.strip()]  # (stripped, as QEfficient reads them)
        if not prompts:
            raise ValueError(f"prompts_txt_file_path '{path}' holds no prompts: write one per line.")
        return prompts
    if prompt is None:
        raise ValueError("Pass prompts (a string, a list, or 'a|b' on the command line) or prompts_txt_file_path.")
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if not prompts:  # (continuous batching would fail in the tokenizer)
        raise ValueError("No prompts given: pass at least one prompt string.")
    return prompts


def print_perf(info: CloudAI100ExecInfo) -> None:
    print("\n===== Performance Stats =====")
    if info.batch_size > 1:
        print("Batch Performance :")
    print(repr(info))
    print("=============================")


def right_padding(tokenizer, quiet: bool = False):
    """Generation pads on the right, with EOS as the pad token when the tokenizer has none; a warning says so where the
    caller's tokenizer changed (``quiet``: one this library loaded, which the caller never sees)."""
    if tokenizer is None or isinstance(tokenizer, (str, Path)):
        raise TypeError(
            f"generate() takes the model's tokenizer object, got {tokenizer!r}: pass AutoTokenizer.from_pretrained(<the model's folder>)."
        )
    changed = []  # (as QEfficient does, the caller's tokenizer is changed, and a warning says so)
    if getattr(tokenizer, "padding_side", "right") != "right":
        tokenizer.padding_side = "right"
        changed.append("padding_side='right'")
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        changed.append(f"pad_token={tokenizer.eos_token!r} (its EOS)")
    if changed and not quiet:
        warnings.warn(f"Generation set the tokenizer's {' and '.join(changed)}: it pads prompts on the right.", stacklevel=3)
    return tokenizer


def cloud_ai_100_exec_kv(
    tokenizer,
    qpc_path: str | Path,
    prompt: list[str] | str | None = None,
    prompts_txt_file_path: str | None = None,
    device_id: list[int] | None = None,
    generation_len: int | None = None,
    stream: bool = True,
    num_cores: int | None = None,
    session: KVCacheSession | None = None,
    generation_config=None,
    sampling: SamplingParams | None = None,
    lora_tables: dict | None = None,
    prompt_to_lora_id_mapping: list[int] | None = None,
    **kwargs,
) -> CloudAI100ExecInfo:
    """Generation with an artifact built by ``compile()`` (greedy unless ``sampling`` says otherwise);
    prints the performance stats. A LoRA artifact runs prompt i with adapter row
    ``prompt_to_lora_id_mapping[i]`` of ``lora_tables`` (default: no adapter)."""
    prompts = load_prompts(prompt, prompts_txt_file_path)
    qconfig = read_artifact(Path(qpc_path))
    lora = None
    if prompt_to_lora_id_mapping is not None and not is_lora_artifact(qconfig):
        raise ValueError(f"prompt_to_lora_id_mapping needs a LoRA artifact (QEffAutoLoraModelForCausalLM); {qpc_path} has no adapters.")
    if is_lora_artifact(qconfig):
        ids = prompt_to_lora_id_mapping if prompt_to_lora_id_mapping is not None else [0] * len(prompts)
        if len(ids) != len(prompts):
            raise ValueError(f"prompt_to_lora_id_mapping has {len(ids)} ids for {len(prompts)} prompts; give one per prompt.")
        if lora_tables is None and any(ids):
            raise ValueError(
                f"prompt_to_lora_id_mapping names adapter rows {sorted(set(ids) - {0})}, but no adapter tables were given: this "
                "backend keeps the adapters outside the compiled artifact. Call QEffAutoLoraModelForCausalLM.generate(tokenizer, "
                "prompts, prompt_to_adapter_mapping=[names]), or pass lora_tables=model.adapter_tables() here."
            )
        lora = (check_tables(qconfig, lora_tables), list(ids))
    session = session or open_session(qpc_path, num_cores)
    if generation_config is None and qconfig.get("eos_token_id") is not None:
        generation_config = SimpleNamespace(eos_token_id=qconfig["eos_token_id"])  # as recorded at compile time
    eos = eos_token_ids(tokenizer, generation_config)
    if qconfig.get("continuous_batching"):
        info = generate_continuous(
            session,
            right_padding(tokenizer),
            qconfig["compile_params"]["prefill_seq_len"],
            eos,
            prompts,
            generation_len,
            stream,
            sampling or SamplingParams(),
            lora,
        )
    elif lora is not None:
        prefill_len = qconfig["compile_params"]["prefill_seq_len"]
        generator = LoraTextGeneration(session, right_padding(tokenizer), prefill_len, eos, sampling, *lora)
        info = generator.generate(prompts, generation_len=generation_len, stream=stream)
    else:
        generator = TextGeneration(session, right_padding(tokenizer), qconfig["compile_params"]["prefill_seq_len"], eos, sampling)
        info = generator.generate(prompts, generation_len=generation_len, stream=stream)
    print_perf(info)
    return info


def generate_continuous(
    session,
    tokenizer,
    prefill_seq_len: int,
    eos,
    prompts: list[str],
    generation_len: int | None,
    stream: bool,
    sampling: SamplingParams,
    lora: tuple | None = None,
) -> CloudAI100ExecInfo:
    """All prompts through the continuous-batching engine; results in prompt order (flat, as QEfficient).
    ``lora``: (adapter tables, one adapter row per prompt) for a LoRA artifact."""
    generation_len = check_generation_len(generation_len)
    check_allowed_tokens(sampling, session.batch_size, session.logits.shape()[-1])
    tokens = TextGeneration(session, tokenizer, prefill_seq_len, eos).tokenize(prompts)
    warn_past_context(generation_len, session.ctx_len, tokens, stacklevel=5)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if lora is None:
        engine = ContinuousBatchingEngine(session, prefill_seq_len, eos, pad)
    else:
        engine = LoraBatchingEngine(session, prefill_seq_len, eos, pad, lora[0])

    def show(request: Request) -> None:  # streaming at request granularity: each completion as it finishes
        print(
            f"\nPrompt : {prompts[index[id(request)]]}\nCompletion : {tokenizer.decode(request.output, skip_special_tokens=True)}",
            flush=True,
        )

    requests = [
        Request(t, generation_len or session.ctx_len, seeded_apart(sampling, i), on_done=show if stream else None)
        for i, t in enumerate(tokens)
    ]
    for request, lora_id in zip(requests, lora[1] if lora is not None else []):
        request.extra[LORA_ID] = int(lora_id)
    index = {id(r): i for i, r in enumerate(requests)}
    start = time.perf_counter()
    engine.run_all(requests)
    return continuous_result(requests, engine, start, time.perf_counter(), tokenizer, pad, prompts)


def continuous_result(requests, engine, start: float, end: float, tokenizer, pad: int, prompts=None) -> CloudAI100ExecInfo:
    """The result object of a continuous-batching run: completions flat, in prompt order (as QEfficient).
    A request that failed raises its own error here (the others ran to their end)."""
    failed = next((r for r in requests if r.error is not None), None)
    if failed is not None:
        raise failed.error
    ttft = float(np.mean([r.first_token_time - start for r in requests]))
    new_tokens = sum(len(r.output) for r in requests)
    width = max(len(r.output) for r in requests)
    ids = [np.array(r.output + [pad] * (width - len(r.output)), dtype=np.int64) for r in requests]
    metrics = PerfMetrics(
        prefill_time=ttft,
        decode_perf=(new_tokens - len(requests)) / engine.decode_time if engine.decode_time else 0.0,
        total_perf=new_tokens / (end - start),
        total_time=end - start,
    )
    texts = [tokenizer.decode(r.output, skip_special_tokens=True) for r in requests]
    return CloudAI100ExecInfo(batch_size=1, generated_texts=texts, generated_ids=ids, perf_metrics=metrics, prompts=prompts or [])
