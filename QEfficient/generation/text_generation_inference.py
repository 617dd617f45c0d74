"""QEfficient's ``QEfficient.generation.text_generation_inference``: ``cloud_ai_100_exec_kv`` and
``TextGeneration`` with QEfficient's signatures, over this package's generation code (exec_kv.py,
text_generation.py).

QEfficient's on-device sampler (``include_sampler`` with ``sampling_params``, one ``[batch, 1]`` array
per parameter) is mapped onto the host-side sampler (sampling.py); values it cannot reproduce raise.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from QEfficient.compile.ort_cpu import read_artifact, warn_once
from QEfficient.generation import exec_kv
from QEfficient.generation.exec_kv import load_prompts, open_session, print_perf, right_padding
from QEfficient.generation.metrics import CloudAI100ExecInfo, PerfMetrics
from QEfficient.generation.sampling import RowSampling, SamplingParams
from QEfficient.generation.text_generation import TextGeneration as _SessionGeneration
from QEfficient.generation.text_generation import average_metrics, eos_token_ids

__all__ = [
    "CloudAI100ExecInfo",
    "PerfMetrics",
    "TextGeneration",
    "calculate_latency",
    "cloud_ai_100_exec_kv",
    "fix_prompts",
    "get_compilation_dims",
    "get_input_prompts",
    "print_latency_stats_kv",
    "read_prompts_txt_file",
    "sampling_from_qaic_params",
]

# QEfficient keyword -> why this backend accepts it without acting on it.
_NOT_HONOURED = {
    "write_io_dir": "write_io / write_io_dir (dumping Cloud AI 100 input/output buffers) is not supported; nothing is written",
    "comp_ctx_lengths_prefill": "comp_ctx_lengths (CCL) select Cloud AI 100 graphs; ONNX Runtime's shapes are dynamic: ignored",
    "comp_ctx_lengths_decode": "comp_ctx_lengths (CCL) select Cloud AI 100 graphs; ONNX Runtime's shapes are dynamic: ignored",
    "return_pdfs": "return_pdfs is not supported: no probability distributions are returned, only the sampled tokens",
    "device_id": "device_id has no meaning on the ONNX Runtime CPU backend; the CPU is used",
}


# QEfficient's sampler inputs ([batch, 1] arrays) -> the host sampler's parameters
_ROW_PARAMS = {
    "temperatures": "temperature",
    "top_ks": "top_k",
    "top_ps": "top_p",
    "repetition_penalties": "repetition_penalty",
    "presence_penalties": "presence_penalty",
    "min_ps": "min_p",
}


def sampling_from_qaic_params(sampling_params: dict[str, Any]) -> SamplingParams:
    """QEfficient's ``sampling_params`` (``[batch, 1]`` arrays) as the host sampler's parameters.

    Rows that differ sample each with their own (``RowSampling``: batch row i, or with continuous batching slot i, as
    QEfficient feeds them); ``presence_penalties`` count the generated tokens (as QEfficient's sampler), ``min_ps``
    apply after top-p. ``random_numbers`` seed the sampler, so the same numbers give the same tokens (not Cloud AI 100's
    tokens); where rows differ, each row's numbers seed that row. ``token_bitmasks`` (guided decoding, ``[rows, vocab]``
    bool) restrict each row (batch row, or continuous-batching slot) to the tokens it marks, for every token generated.
    """
    known = {*_ROW_PARAMS, "random_numbers", "token_bitmasks"}
    unknown = set(sampling_params) - known
    if unknown:
        raise ValueError(f"Unknown sampling_params {sorted(unknown)}; QEfficient's keys are {sorted(known)}.")
    columns = {}
    for key in _ROW_PARAMS:
        values = np.asarray(sampling_params[key]).reshape(-1) if sampling_params.get(key) is not None else None
        if values is not None and values.size:
            columns[key] = values
    rows = max((len(values) for values in columns.values()), default=1)
    if any(len(values) not in (1, rows) for values in columns.values()):
        counts = ", ".join(f"{key} {len(values)}" for key, values in columns.items())
        raise ValueError(
            f"sampling_params' arrays have different numbers of rows ({counts}): give every parameter one row per batch "
            "row ([batch, 1]), or one value for all."
        )
    randoms = sampling_params.get("random_numbers")
    randoms = None if randoms is None else np.asarray(randoms)

    def row(i: int, seed: int | None) -> SamplingParams:
        given = {_ROW_PARAMS[key]: values[i if len(values) > 1 else 0].item() for key, values in columns.items()}
        if given.get("top_k") is not None:
            given["top_k"] = int(given["top_k"])
        for neutral_zero in ("presence_penalty", "min_p"):  # 0 is QEfficient's "off"
            given[neutral_zero] = given.get(neutral_zero) or None
        return SamplingParams(**given, seed=seed)

    allowed = _token_bitmasks(sampling_params.get("token_bitmasks"))
    if all(np.all(values == values[0]) for values in columns.values()):
        return replace(row(0, _seed(randoms)), allowed_tokens=allowed)
    own_numbers = randoms is not None and randoms.ndim == 2 and len(randoms) == rows
    # a row with its own numbers draws as they do alone; rows that share numbers draw apart (as a batch's rows do)
    seeds = [_seed(randoms[i]) if own_numbers else _seed(randoms, row=i) for i in range(rows)]
    return RowSampling(rows=tuple(row(i, seeds[i]) for i in range(rows)), allowed_tokens=allowed)


# transformers' and QEfficient's other classes' keywords that generate() names otherwise
_KEYWORD_HINTS = {
    "max_new_tokens": "use generation_len=N",
    "max_length": "use generation_len=N, the number of new tokens",
    "prompt_to_adapter_mapping": "a LoRA model's (QEffAutoLoraModelForCausalLM, QEffAutoPeftModelForCausalLM)",
}


def _seed(random_numbers: np.ndarray | None, row: int | None = None) -> int | None:
    """A seed from QEfficient's ``random_numbers`` (and the ``row`` it seeds): the same numbers, the same tokens."""
    if random_numbers is None:
        return None
    import hashlib  # here only: it loads OpenSSL's libcrypto, which a run-time process otherwise never needs

    digest = hashlib.blake2b(np.ascontiguousarray(random_numbers).tobytes(), digest_size=8)
    if row is not None:
        digest.update(row.to_bytes(4, "little"))
    return int.from_bytes(digest.digest(), "little")


def _token_bitmasks(value: Any) -> np.ndarray | None:
    """QEfficient's ``token_bitmasks`` as a bool ``[rows, vocab]`` array, each row allowing some token."""
    if value is None:
        return None
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    masks = np.asarray(value)
    if masks.ndim == 1:
        masks = masks[None]
    if masks.ndim != 2 or masks.dtype.kind not in "biu" or not np.isin(masks, (0, 1)).all():
        raise ValueError(
            f"sampling_params['token_bitmasks'] must be a [batch, vocab] array of booleans (or 0/1), got {masks.dtype} {masks.shape}."
        )
    masks = masks.astype(bool)
    if not masks.any(-1).all():
        raise ValueError(f"sampling_params['token_bitmasks'] rows {np.flatnonzero(~masks.any(-1)).tolist()} allow no token.")
    return masks


def resolve_sampling(
    include_sampler: bool, sampling_params: dict | None, include_guided_decoding: bool = False, sampling: SamplingParams | None = None
) -> SamplingParams | None:
    """The sampler parameters a call asks for, QEfficient's way (``include_sampler`` + ``sampling_params``)
    or this package's (``sampling``); never greedy when sampling was asked for."""
    bitmasks = sampling_params is not None and sampling_params.get("token_bitmasks") is not None
    if include_guided_decoding and not (include_sampler and bitmasks):
        raise ValueError(
            "include_guided_decoding=True needs include_sampler=True and sampling_params['token_bitmasks'] ([batch, vocab] bool)."
        )
    if bitmasks and not include_guided_decoding:
        raise ValueError("sampling_params['token_bitmasks'] apply with include_guided_decoding=True (as QEfficient's sampler takes them).")
    if include_sampler and sampling_params is None and (sampling is None or sampling == SamplingParams()):
        raise ValueError("include_sampler=True needs sampling_params (QEfficient's dict of [batch, 1] arrays).")
    if sampling_params is None:
        return sampling
    if sampling is not None and sampling != SamplingParams():
        raise ValueError("Pass either sampling_params or temperature/top_k/top_p/repetition_penalty/seed, not both.")
    return sampling_from_qaic_params(sampling_params)


# QEfficient's helpers of this module, for the scripts that call them


def get_compilation_dims(qpc_path: str | Path) -> tuple[int, int, int | None]:
    """(batch_size, ctx_len, full_batch_size or None) of a compiled artifact, from its specializations.json (in the
    artifact, or beside it as QEfficient's qpc folder has it)."""
    qpc_path = Path(qpc_path)
    found = [p for p in (qpc_path / "specializations.json", qpc_path.parent / "specializations.json") if p.is_file()]
    if not found:
        raise FileNotFoundError(f"expected specializations.json in or beside '{qpc_path}': compile the model first.")
    first = json.loads(found[0].read_text())["specializations"][0]
    symbols = first.get("symbols", first)  # this package writes the shapes under "symbols"
    full_batch_size = symbols.get("full_batch_size")
    return int(symbols["batch_size"]), int(symbols["ctx_len"]), int(full_batch_size) if full_batch_size else None


def read_prompts_txt_file(prompts_txt_file_path: str) -> list[str]:
    """One prompt per line, each stripped."""
    return [line.strip() for line in Path(prompts_txt_file_path).read_text().splitlines()]


def get_input_prompts(prompt: str | list[str] | None, prompts_txt_file_path: str | None) -> list[str]:
    """The prompts of a run: the file's where one is given (it wins over ``prompt``), else ``prompt`` as a list."""
    if prompt is None and prompts_txt_file_path is None:
        raise ValueError("Please pass at least one argument either using --prompt or --prompts_txt_file_path")
    if prompts_txt_file_path is not None:
        if prompt is not None:
            logging.getLogger("QEfficient").warning("Found inputs passed using txt file as well as CLI, taking inputs from given txt file")
        prompt = read_prompts_txt_file(prompts_txt_file_path)
    return [prompt] if isinstance(prompt, str) else list(prompt)


def fix_prompts(prompt: list[str], batch_size: int, full_batch_size: int | None = None) -> list[str]:
    """QEfficient's: fewer prompts than the batch (or full batch) are repeated to fill it; without continuous batching,
    a last batch that is not full is dropped."""
    rows = full_batch_size if full_batch_size is not None else batch_size
    if len(prompt) < rows:
        return (prompt * (rows // len(prompt) + 1))[:rows]
    if full_batch_size is None and len(prompt) % batch_size:
        return prompt[: batch_size * (len(prompt) // batch_size)]
    return prompt


def calculate_latency(
    total_decoded_tokens: int, loop_start: float, start: float, end: float, decode_pause_time: float = 0
) -> tuple[float, float, float, float]:
    """(prefill time, decode tokens/s, total tokens/s, total time) from the run's clock readings, as QEfficient's."""
    prefill_time = loop_start - start + decode_pause_time
    decode_perf = total_decoded_tokens / (end - loop_start - decode_pause_time)
    return prefill_time, decode_perf, total_decoded_tokens / (end - start), end - start


def print_latency_stats_kv(prompt: Any, exec_info: CloudAI100ExecInfo, automation: bool = False) -> None:
    if automation:
        print("input=", prompt)
        print("output=", exec_info.generated_texts)
        print(exec_info)
        return
    print_perf(exec_info)


def check_tlm(qpc_path: str | Path, is_tlm: bool) -> None:
    """QEfficient's ``is_tlm=True`` says the artifact is a speculative target's (it scores every position of a chunk);
    generation then runs on it as on any artifact, one token per step. Refused where the artifact is not one."""
    if not is_tlm:
        return
    if read_artifact(Path(qpc_path)).get("speculative_model_type") != "target":
        raise ValueError(
            f"is_tlm=True: '{qpc_path}' is not a speculative target's artifact; compile one from "
            "from_pretrained(..., qaic_config={'speculative_model_type': 'target'}) with compile(num_speculative_tokens=K), "
            "or leave is_tlm out."
        )


def _warn_not_honoured(**given: Any) -> None:
    for key, value in given.items():
        if value:
            warn_once(f"exec_kv:{key}", _NOT_HONOURED[key] + ".")


def cloud_ai_100_exec_kv(
    tokenizer,
    qpc_path: str | Path,
    prompt: list[str] | str | None = None,
    prompts_txt_file_path: str | None = None,
    device_id: list[int] | None = None,
    generation_len: int | None = None,
    comp_ctx_lengths_prefill: list[int] | None = None,
    comp_ctx_lengths_decode: list[int] | None = None,
    enable_debug_logs: bool = False,
    stream: bool = True,
    write_io_dir: str | None = None,
    automation: bool = False,
    iteration: int = 1,
    prompt_to_lora_id_mapping: list[int] | None = None,
    is_tlm: bool = False,
    include_sampler: bool = False,
    return_pdfs: bool = False,
    include_guided_decoding: bool = False,
    sampling_params: dict[str, Any] | None = None,
    **kwargs,
) -> CloudAI100ExecInfo:
    """Generate with an artifact built by ``compile()``, with QEfficient's arguments; prints the stats.

    ``iteration`` repeats the run (the last result is returned), ``automation`` prints ``input=`` /
    ``output=`` lines as QEfficient does. Other keywords (``num_cores``, ``session``,
    ``generation_config``, ``sampling``, ``lora_tables``) go to this package's exec_kv. A LoRA
    artifact runs prompt i with row ``prompt_to_lora_id_mapping[i]`` of ``lora_tables`` (the adapter
    tables of QEffAutoLoraModelForCausalLM.adapter_tables(); without them, every row is the base model).
    """
    check_tlm(qpc_path, is_tlm)
    _warn_not_honoured(
        write_io_dir=write_io_dir,
        comp_ctx_lengths_prefill=comp_ctx_lengths_prefill,
        comp_ctx_lengths_decode=comp_ctx_lengths_decode,
        return_pdfs=return_pdfs,
        device_id=device_id is not None and len(device_id) > 1,
    )
    if enable_debug_logs:
        logging.getLogger("QEfficient").setLevel(logging.DEBUG)
    unexpected = set(kwargs) - {"num_cores", "session", "generation_config", "sampling", "lora_tables"}
    if unexpected:
        hints = [f"{name}: {_KEYWORD_HINTS[name]}" for name in sorted(unexpected) if name in _KEYWORD_HINTS]
        raise TypeError(
            f"generate() (cloud_ai_100_exec_kv) got unexpected keyword arguments {sorted(unexpected)}"
            + (f" ({'; '.join(hints)})." if hints else ".")
        )
    kwargs["sampling"] = resolve_sampling(include_sampler, sampling_params, include_guided_decoding, kwargs.get("sampling"))
    prompts = load_prompts(prompt, prompts_txt_file_path)
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 1:
        raise ValueError(f"iteration must be a positive integer, got {iteration!r}.")
    info = None
    for _ in range(iteration):
        info = exec_kv.cloud_ai_100_exec_kv(
            tokenizer,
            qpc_path,
            prompt=prompts,
            generation_len=generation_len,
            stream=stream,
            prompt_to_lora_id_mapping=prompt_to_lora_id_mapping,
            **kwargs,
        )
        if automation:
            print("input=", prompts)
            print("output=", info.generated_texts)
    return info


class TextGeneration:
    """QEfficient's ``TextGeneration(tokenizer, qpc_path, ...)``: a session over one artifact, reused by
    every ``generate()`` call."""

    def __init__(
        self,
        tokenizer,
        qpc_path: str | Path,
        full_batch_size: int | None = None,
        ctx_len: int | None = None,
        comp_ctx_lengths_prefill: list[int] | None = None,
        comp_ctx_lengths_decode: list[int] | None = None,
        device_id: list[int] | None = None,
        enable_debug_logs: bool = False,
        write_io_dir: str | None = None,
        is_tlm: bool = False,
        include_sampler: bool = False,
        return_pdfs: bool = False,
        include_guided_decoding: bool = False,
        sampling_params: dict[str, Any] | None = None,
        num_cores: int | None = None,
    ) -> None:
        check_tlm(qpc_path, is_tlm)
        _warn_not_honoured(
            write_io_dir=write_io_dir,
            comp_ctx_lengths_prefill=comp_ctx_lengths_prefill,
            comp_ctx_lengths_decode=comp_ctx_lengths_decode,
            return_pdfs=return_pdfs,
        )
        self.qpc_path = Path(qpc_path)
        self.qconfig = read_artifact(self.qpc_path)
        self._tokenizer = right_padding(tokenizer)
        self._session = open_session(self.qpc_path, num_cores)
        self._full_batch_size = self.qconfig["kv_shape"][0] if self.qconfig.get("continuous_batching") else None
        if full_batch_size is not None and full_batch_size != self._full_batch_size:
            raise ValueError(f"full_batch_size={full_batch_size} but the artifact was compiled with {self._full_batch_size}.")
        if ctx_len is not None and ctx_len != self._session.ctx_len:
            raise ValueError(f"ctx_len={ctx_len} but the artifact was compiled with ctx_len={self._session.ctx_len}.")
        self._sampling = resolve_sampling(include_sampler, sampling_params, include_guided_decoding)
        self._perf_metrics: PerfMetrics | None = None

    @property
    def perf_metrics(self) -> PerfMetrics | None:
        return self._perf_metrics

    def _generator(self) -> _SessionGeneration:
        recorded = self.qconfig.get("eos_token_id")  # as recorded at compile time
        eos = eos_token_ids(self._tokenizer, SimpleNamespace(eos_token_id=recorded) if recorded is not None else None)
        prefill_seq_len = self.qconfig["compile_params"]["prefill_seq_len"]
        return _SessionGeneration(self._session, self._tokenizer, prefill_seq_len, eos, self._sampling)

    def generate(
        self,
        prompt: list[str],
        generation_len: int | None = None,
        stream: bool = True,
        automation: bool = False,
        prompt_to_lora_id_mapping: list[int] | None = None,
    ) -> CloudAI100ExecInfo:
        if prompt_to_lora_id_mapping is not None:
            raise NotImplementedError("LoRA adapters (prompt_to_lora_id_mapping) are not supported by the ONNX Runtime backend.")
        prompts = load_prompts(prompt)
        if self._full_batch_size is not None:
            generator = self._generator()
            info = exec_kv.generate_continuous(
                self._session,
                self._tokenizer,
                generator.prefill_seq_len,
                generator.eos_ids.tolist(),
                prompts,
                generation_len,
                stream,
                self._sampling or SamplingParams(),
            )
        else:
            info = self._generator().generate(prompts, generation_len=generation_len, stream=stream)
        if automation:
            print("input=", prompts)
            print("output=", info.generated_texts)
        self._perf_metrics = info.perf_metrics
        return info

    def generate_stream_tokens(
        self, prompt: list[str], generation_len: int | None = None, automation: bool = False, prompt_to_lora_id_mapping=None
    ) -> Iterator[list[str]]:
        """Yield, per step, a list with each batch row's new token as text (QEfficient's: one batch of the compiled
        batch size, a short prompt list filled by repeating its last prompt; a row that has ended yields "")."""
        if self._full_batch_size is not None:
            raise NotImplementedError("Streaming tokens is currently unavailable for continuous batch execution.")
        if prompt_to_lora_id_mapping is not None:
            raise NotImplementedError("Streaming with LoRA adapters is not supported here: use generate() or cloud_ai_100_exec_kv.")
        batch_size = self._session.batch_size
        prompts = load_prompts(prompt)
        if not 1 <= len(prompts) <= batch_size:
            raise ValueError(
                f"generate_stream_tokens streams one batch: pass 1 to {batch_size} prompts (the compiled batch_size), got {len(prompts)}."
            )
        prompts = prompts + [prompts[-1]] * (batch_size - len(prompts))
        tokens: queue.Queue = queue.Queue()
        done = object()
        tokenizer = self._tokenizer

        class _Streamer:
            def put_rows(self, ids, active) -> None:
                tokens.put([tokenizer.decode([int(t)], skip_special_tokens=True) if a else "" for t, a in zip(ids, active)])

            def end(self) -> None:
                tokens.put(done)

        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["out"] = self._generator().generate_batch(prompts, generation_len, _Streamer())
            except BaseException as err:  # re-raised in the caller's thread
                result["error"] = err
                tokens.put(done)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        while (item := tokens.get()) is not done:
            yield item
        worker.join()
        if "error" in result:
            raise result["error"]
        self._perf_metrics = average_metrics([result["out"][2]])
