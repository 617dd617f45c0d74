"""The model-level face of speculative decoding (see generation/speculative.py for the loop).

Three ways to draft for a target compiled with ``qaic_config={"speculative_model_type": "target"}``
and ``compile(num_speculative_tokens=K)``:

* ``generate(..., prompt_lookup_num_tokens=K)``: n-gram lookup in the row's own tokens;
* ``generate(..., assistant_model=draft, num_assistant_tokens=K)``: a compiled draft QEFF model;
* ``compile(..., speculative_draft="mxfp6")``: the same graph with 8-bit MatMul weights drafts for
  the fp32 one (self-speculation); generate() then uses it unless told otherwise.

Greedy only: the output is plain greedy decoding's, token for token.
"""

from __future__ import annotations

import time
import warnings

from QEfficient.compile.ort_cpu import read_artifact
from QEfficient.generation.continuous_batching import Request
from QEfficient.generation.exec_kv import continuous_result, load_prompts, print_perf, right_padding
from QEfficient.generation.lora_generation import LoraSpeculativeGeneration, check_tables
from QEfficient.generation.metrics import CloudAI100ExecInfo
from QEfficient.generation.sampling import SamplingParams
from QEfficient.generation.speculative import (
    DraftLength,
    ModelDrafter,
    PromptLookupDrafter,
    SpeculativeGeneration,
    SpeculativeUnsupportedError,
)
from QEfficient.generation.speculative_batching import SpeculativeBatchingEngine
from QEfficient.generation.text_generation import TextGeneration, eos_token_ids
from QEfficient.runtime.ort_session import open_kv_session, turn_taking_spin
from QEfficient.utils.checks import check_generation_len, check_positive

SPECULATIVE_KWARGS = (
    "prompt_lookup_num_tokens",
    "max_matching_ngram_size",
    "min_matching_ngram_size",
    "assistant_model",
    "num_assistant_tokens",
    "num_assistant_tokens_schedule",
)
SPECULATIVE_DRAFTS = ("mxfp6", "gguf")
# None: speculative_spin() decides when a session opens; True / False / "run" force a policy.
SESSION_SPIN: bool | str | None = None


def speculative_spin() -> bool | str:
    """SESSION_SPIN, or the runtime's choice for sessions that take turns (turn_taking_spin)."""
    return turn_taking_spin() if SESSION_SPIN is None else SESSION_SPIN


def check_speculative_type(qaic_config: dict | None) -> bool:
    """True for QEfficient's target form; other speculative kinds are refused with what to do."""
    kind = (qaic_config or {}).get("speculative_model_type")
    if kind is None:
        return False
    if kind != "target":
        raise NotImplementedError(
            f"qaic_config speculative_model_type={kind!r} is not supported; use 'target' (a draft-verified target model)."
        )
    return True


def check_speculative_compile(is_target: bool, num_speculative_tokens: int | None, speculative_draft: str | None) -> None:
    if not is_target:
        if num_speculative_tokens is not None or speculative_draft is not None:
            raise TypeError(
                "num_speculative_tokens / speculative_draft need a speculative target: load the model with "
                "from_pretrained(..., qaic_config={'speculative_model_type': 'target'})."
            )
        return
    if num_speculative_tokens is None:
        raise TypeError("A speculative target model needs compile(num_speculative_tokens=K): the tokens drafted per step.")
    check_positive(num_speculative_tokens=num_speculative_tokens)
    if speculative_draft is not None and speculative_draft not in SPECULATIVE_DRAFTS:
        raise ValueError(f"speculative_draft must be one of {SPECULATIVE_DRAFTS} (or None), got {speculative_draft!r}.")


def _compile_param(qpc_path, key: str):
    return read_artifact(qpc_path)["compile_params"].get(key)


def speculative_generate(
    model,
    tokenizer,
    prompts,
    generation_len: int | None,
    stream: bool,
    sampling: SamplingParams,
    prompts_txt_file_path: str | None = None,
    prompt_lookup_num_tokens: int | None = None,
    max_matching_ngram_size: int | None = None,
    assistant_model=None,
    num_assistant_tokens: int | None = None,
    min_matching_ngram_size: int | None = None,
    num_assistant_tokens_schedule: str = "heuristic",
    lora_tables: dict | None = None,
    prompt_to_lora_id_mapping: list[int] | None = None,
) -> CloudAI100ExecInfo:
    """Greedy speculative generation with ``model``'s target session (already open as model.qpc_session).

    Prompt lookup matches n-grams of ``max_matching_ngram_size`` (default 2) down to
    ``min_matching_ngram_size`` tokens (default 2, or the max where less: single-token matches mostly draft wrong tokens);
    a draft model proposes ``num_assistant_tokens`` (default: the compiled num_speculative_tokens)
    in its first round, then as ``num_assistant_tokens_schedule`` says ("heuristic", transformers'
    schedule: +2 after a round that kept every draft, -1 otherwise, up to num_speculative_tokens;
    or "constant"). A LoRA target (``lora_tables``)
    runs prompt i with adapter row ``prompt_to_lora_id_mapping[i]``, drafting by prompt lookup."""
    if not model.is_speculative_target:
        raise SpeculativeUnsupportedError(
            "Speculative decoding needs a target model: from_pretrained(..., qaic_config={'speculative_model_type': 'target'}) "
            "and compile(num_speculative_tokens=K)."
        )
    if not sampling.plain_greedy:
        raise SpeculativeUnsupportedError(
            "Speculative decoding here is greedy only: drop temperature/do_sample/repetition_penalty (and any other penalty or bias)."
        )
    if prompt_lookup_num_tokens is not None and assistant_model is not None:
        raise ValueError("Pass prompt_lookup_num_tokens or assistant_model, not both.")
    if num_assistant_tokens_schedule not in DraftLength.SCHEDULES:  # (checked whichever way the drafts come)
        raise ValueError(f"num_assistant_tokens_schedule must be one of {DraftLength.SCHEDULES}, got {num_assistant_tokens_schedule!r}.")
    _warn_unread_options(
        prompt_lookup_num_tokens, num_assistant_tokens, num_assistant_tokens_schedule, max_matching_ngram_size, min_matching_ngram_size
    )
    ngrams = _ngram_sizes(max_matching_ngram_size, min_matching_ngram_size)
    spin, schedule = speculative_spin(), num_assistant_tokens_schedule
    session = model.qpc_session = _open(model, model.qpc_path, "kv", spin=spin)
    generation_len = check_generation_len(generation_len)
    budget = _compile_param(model.qpc_path, "num_speculative_tokens")
    prefill_len = _compile_param(model.qpc_path, "prefill_seq_len")
    tokenizer = right_padding(tokenizer)
    eos = eos_token_ids(tokenizer, model.model.hf.generation_config)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if lora_tables is not None and (model.continuous_batching or prompt_lookup_num_tokens is None):
        raise NotImplementedError(
            "With LoRA adapters, speculative decoding drafts by prompt lookup (prompt_lookup_num_tokens=K), in static batching."
        )
    if model.continuous_batching:
        if prompt_lookup_num_tokens is not None:
            k, drafter = _check_k("prompt_lookup_num_tokens", prompt_lookup_num_tokens, budget), None
        else:
            k, drafter = _model_drafter(model, session, assistant_model, num_assistant_tokens, budget, pad, schedule, spin)
        lookup = PromptLookupDrafter(k, *ngrams)
        engine = SpeculativeBatchingEngine(session, prefill_len, eos, pad, k, drafter=drafter or lookup)
        prompts = load_prompts(prompts, prompts_txt_file_path)
        requests = [
            Request(t, generation_len or session.ctx_len) for t in TextGeneration(session, tokenizer, prefill_len, eos).tokenize(prompts)
        ]
        start = time.perf_counter()
        engine.run_all(requests)
        info = continuous_result(requests, engine, start, time.perf_counter(), tokenizer, pad, prompts)
        info.speculative_stats = {**engine.stats, "acceptance_rate": engine.acceptance_rate, "num_speculative_tokens": k}
        print_perf(info)
        return info
    if prompt_lookup_num_tokens is not None:
        k = _check_k("prompt_lookup_num_tokens", prompt_lookup_num_tokens, budget)
        drafter = PromptLookupDrafter(k, *ngrams)
    else:
        k, drafter = _model_drafter(model, session, assistant_model, num_assistant_tokens, budget, pad, schedule, spin)
    if lora_tables is not None:
        tables = check_tables(read_artifact(model.qpc_path), lora_tables)
        ids = prompt_to_lora_id_mapping
        if ids is None:
            ids = [0] * len(load_prompts(prompts, prompts_txt_file_path))
        generator = LoraSpeculativeGeneration(session, tokenizer, prefill_len, eos, drafter, k, tables, ids)
    else:
        generator = SpeculativeGeneration(session, tokenizer, prefill_len, eos, drafter, k)
    info = generator.generate(load_prompts(prompts, prompts_txt_file_path), generation_len=generation_len, stream=stream)
    info.speculative_stats = {**generator.stats, "acceptance_rate": generator.acceptance_rate, "num_speculative_tokens": k}
    print_perf(info)
    return info


def _model_drafter(model, session, assistant_model, num_assistant_tokens: int | None, budget: int, pad: int, schedule: str, spin):
    """(K, ModelDrafter) over ``assistant_model``'s artifact, or the target's own compressed one."""
    if assistant_model is not None:
        if not hasattr(assistant_model, "qpc_path"):
            raise TypeError(
                f"assistant_model must be a compiled QEFFAutoModelForCausalLM (continuous batching as the target's), got "
                f"{type(assistant_model).__name__}: QEFFAutoModelForCausalLM.from_pretrained(draft_folder).compile(...)."
            )
        if assistant_model.qpc_path is None:
            raise TypeError("assistant_model must be a compiled QEFF model: call assistant_model.compile(...) first.")
        draft_path = assistant_model.qpc_path
        draft = _open(assistant_model, draft_path, "kv", spin=spin)
    elif model.draft_qpc_path is not None:
        draft_path = model.draft_qpc_path
        draft = _open(model, draft_path, "draft", spin=spin)
    else:
        raise ValueError("Say how to draft: prompt_lookup_num_tokens=K, assistant_model=draft, or compile(speculative_draft='mxfp6').")
    if draft.batch_size != session.batch_size or draft.ctx_len < session.ctx_len:
        raise ValueError(
            f"The draft artifact has batch size {draft.batch_size} and ctx_len {draft.ctx_len}; the target needs batch size "
            f"{session.batch_size} and ctx_len >= {session.ctx_len}: compile the draft with those "
            "(with continuous batching, the same full_batch_size)."
        )
    if draft.vocab_size > session.vocab_size:  # (a smaller one, a padded vocabulary, drafts ids the target reads)
        raise ValueError(
            f"The draft model's vocabulary ({draft.vocab_size} tokens) is larger than the target's ({session.vocab_size}): it "
            "would draft ids the target has no embedding for. A draft must share the target's tokenizer."
        )
    k = _check_k("num_assistant_tokens", budget if num_assistant_tokens is None else num_assistant_tokens, budget)
    # the heuristic schedule starts at k and may grow up to the compiled budget; "constant" keeps k
    cap = budget if schedule == "heuristic" else k
    return cap, ModelDrafter(draft, _compile_param(draft_path, "prefill_seq_len"), k, pad, schedule, budget=cap)


def _open(model, qpc_path, role: str, spin: bool | str):
    """``model``'s session for ``role``, reused while the artifact, threads and spinning stay the same."""
    cores = model._num_cores
    return model._session(role, (str(qpc_path), cores, spin), lambda: open_kv_session(qpc_path, cores, spin=spin))


def _warn_unread_options(lookup: int | None, num_assistant_tokens, schedule: str, max_ngram, min_ngram) -> None:
    """A warning for the options of the other way of drafting than the one asked for (transformers ignores them too,
    silently)."""
    unread = {"num_assistant_tokens": num_assistant_tokens, "num_assistant_tokens_schedule": None if schedule == "heuristic" else schedule}
    if lookup is None:
        unread = {"max_matching_ngram_size": max_ngram, "min_matching_ngram_size": min_ngram}
    names = [name for name, value in unread.items() if value is not None]
    if names:
        how = "a draft model's or the self-draft's" if lookup is None else "prompt lookup's, which drafts up to prompt_lookup_num_tokens"
        warnings.warn(f"{', '.join(names)} do not apply to {how} drafts: they are not read.", UserWarning, stacklevel=4)


def _ngram_sizes(max_size: int | None, min_size: int | None) -> tuple[int, int]:
    """Prompt lookup's (max, min) n-gram sizes: 2 and 2 (or the max where less) by default; given ones checked."""
    max_size = 2 if max_size is None else max_size
    check_positive(max_matching_ngram_size=max_size)
    min_size = min(2, max_size) if min_size is None else min_size
    check_positive(min_matching_ngram_size=min_size)
    if min_size > max_size:
        raise ValueError(f"min_matching_ngram_size={min_size} is more than max_matching_ngram_size={max_size}.")
    return max_size, min_size


def _check_k(name: str, value, budget: int) -> int:
    check_positive(**{name: value})
    if value > budget:
        raise ValueError(f"{name}={value} exceeds the num_speculative_tokens={budget} the target was compiled for.")
    return value
