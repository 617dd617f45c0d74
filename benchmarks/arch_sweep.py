"""The architecture sweep: which causal-LM model types run token-exact through the whole pipeline.

    PYTHONPATH=. .venv/bin/python benchmarks/arch_sweep.py              # every type in the mapping; rewrites
                                                                        # docs/architectures.md and the registry
    PYTHONPATH=. .venv/bin/python benchmarks/arch_sweep.py mixtral olmoe  # only these types; prints, writes nothing
    PYTHONPATH=. .venv/bin/python benchmarks/arch_sweep.py --update mamba  # only these types; updates their rows
                                                                        # of docs/architectures.md and the registry

For each model type in transformers' ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``: a tiny random-weight model
(tests/tiny_models.py ``sweep_config``), HF's own greedy ``generate`` as the reference (if HF cannot run
it: "hf-fails"), then the pipeline as a user runs it (QEFFAutoModelForCausalLM -> compile -> an ONNX
Runtime session): a prompt prefilled in chunks (the last one right-padded), then greedy decode steps.
"token-exact" means every greedy token equals HF's and every step's logits are within ``LOGITS_ATOL`` of
HF's, plus HF's own float32 error where a float64 run of the same weights shows one (``float64_logits``).

The registry written from a full run (QEfficient/transform/adapters/sweep_status.py) is what
``from_pretrained`` consults: proven types run, known failures raise with the recorded reason.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QEFF_HOME", tempfile.mkdtemp(prefix="qeff-sweep-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.models.auto import modeling_auto  # noqa: E402

from QEfficient.generation.exec_kv import open_session  # noqa: E402
from QEfficient.loading.hf_loader import causal_lm_class, unmapped_causal_lm_class, unmapped_causal_lm_names  # noqa: E402
from QEfficient.transform.adapters import ALLOW_ANY_ARCHITECTURE_ENV  # noqa: E402
from tests.tiny_models import VOCAB, sweep_config  # noqa: E402

STATUSES = ("token-exact", "differs", "export-fails", "runtime-fails", "hf-fails", "not-decoder")
LOGITS_ATOL = 1e-4
PROMPT_LEN = 21  # three prefill chunks of 8, the last one right-padded
CHUNK = 8
NEW_TOKENS = 8
CTX_LEN = 64
TIME_LIMIT_S = 240  # per type; a tiny model that takes longer is a failure in itself
MAX_PARAMS = 8_000_000  # a "tiny" config bigger than this did not shrink (nested sub-model defaults)
REGISTRY = ROOT / "QEfficient" / "transform" / "adapters" / "sweep_status.py"
DOC = ROOT / "docs" / "architectures.md"

# Types whose causal-LM class is the decoder half of an encoder-decoder, an encoder with a causal
# head, or an audio/speech model: they are not decoder-only language models.
NOT_DECODER_REASONS = {
    "bert-generation": "encoder used as a decoder (BertGenerationDecoder)",
    "trocr": "decoder half of an image-to-text encoder-decoder",
    "whisper": "decoder half of a speech encoder-decoder",
    "musicgen": "audio generation model (text encoder + audio codebooks)",
    "musicgen_melody": "audio generation model (text encoder + audio codebooks)",
    "moshi": "speech-text model with an audio depth decoder",
    # BLT: bytes grouped into patches of a length its entropy model decides, read by a local encoder, a global
    # transformer and a local decoder through cross-attention; nothing of it is one token stream over one cache
    "blt": (
        "byte-level model whose patches an entropy model sets as it reads (local encoder and decoder, cross-attention): not a token decoder"
    ),
    # HF's generate re-reads the whole text at every step with every token seeing every other (perm_mask):
    # no causal cache can give its logits
    "xlnet": "permutation language model: each step re-reads the whole text bidirectionally",
    # its context mask is all ones: a prompt given in one call is read bidirectionally, and generate re-reads it all
    "cpmant": "prefix language model: the prompt is attended bidirectionally",
    # forward() raises without a target model's hidden states and KV cache (shared_kv_states)
    "gemma4_assistant": "multi-token-prediction draft head: reads a Gemma 4 target's hidden states and KV cache",
    "gemma4_unified_assistant": "multi-token-prediction draft head: reads a Gemma 4 target's hidden states and KV cache",
}


@dataclass
class SweepResult:
    model_type: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    max_logit_diff: float | None = None


def causal_lm_types() -> list[str]:
    """transformers' causal-LM mapping, and the types of its causal-LM classes that the mapping leaves out but whose
    base model it maps (mistral4)."""
    import transformers

    unmapped = {getattr(transformers, name).config_class.model_type for name in unmapped_causal_lm_names()}
    return sorted(set(modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) | (unmapped & set(modeling_auto.MODEL_MAPPING_NAMES)))


def build_causal_lm(config, **kwargs):
    """``config``'s causal LM with fresh weights: through AutoModelForCausalLM, or the unmapped type's own class."""
    model_class = causal_lm_class(config)
    return model_class.from_config(config, **kwargs) if model_class is AutoModelForCausalLM else model_class._from_config(config, **kwargs)


def not_decoder_reason(model_type: str, config) -> str | None:
    """Why ``model_type`` is not a decoder-only language model, or None if it is one."""
    if model_type in NOT_DECODER_REASONS:
        return NOT_DECODER_REASONS[model_type]
    if model_type in modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES or getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder model (its causal-LM class is the decoder half)"
    if model_type in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder (masked LM) with a causal head"
    subs = set(getattr(config, "sub_configs", {}) or {})
    # (an image-text type whose class is a text-only causal LM the causal-LM mapping leaves out, mistral4, is a decoder;
    # Fuyu's causal-LM class reads images)
    image_text = model_type in modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and not unmapped_causal_lm_class(config)
    if image_text or subs & {"vision_config", "audio_config", "vq_config"}:
        return "multimodal model: use QEFFAutoModelForImageTextToText (or its *_text type)"
    return None


def short(err: BaseException) -> str:
    """The first informative line of an exception, for the table."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = next((ln for ln in lines if "aten::" in ln or "Unsupported" in ln), lines[0] if lines else "")
    text = re.sub(r"(/[^\s/]+)+/", ".../", text)  # temp-folder paths change every run
    return f"{type(err).__name__}: {text}"[:200].replace("|", "/")


class _TimeLimit(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    def stop(*_):
        raise _TimeLimit(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def allow_any_architecture():
    """The sweep tries every type, the known failures too; the setting is restored after."""
    old = os.environ.get(ALLOW_ANY_ARCHITECTURE_ENV)
    os.environ[ALLOW_ANY_ARCHITECTURE_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ[ALLOW_ANY_ARCHITECTURE_ENV]
        else:
            os.environ[ALLOW_ANY_ARCHITECTURE_ENV] = old


def tiny_model(config):
    """Seeded random weights, widened (as tests/tiny_models.py does) so greedy tokens are far from ties."""
    torch.manual_seed(1234)
    model = build_causal_lm(config, dtype=torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1 and not p.any():
                # HF initialises some routers to zero (AFMoE): every expert would tie, and ties are
                # broken differently by PyTorch's and ONNX Runtime's TopK. Trained routers do not tie.
                p.normal_(0.0, 0.02)
            elif not p.any() and not name.endswith("bias"):
                # zero gates, scales and queries (Doge's A, Gemma 3n's AltUp scale, Inkling's depth queries) would
                # leave their paths out of the comparison
                p.normal_(0.0, 0.5)
            if p.dim() > 1:
                p.mul_(4.0)
    model.generation_config.eos_token_id = None  # compare a fixed number of tokens
    model.generation_config.pad_token_id = 0
    return model.eval()


def prompt_ids() -> torch.Tensor:
    return torch.randint(3, VOCAB, (1, PROMPT_LEN), generator=torch.Generator().manual_seed(0))


def hf_reference(model, ids: torch.Tensor) -> tuple[list[int], np.ndarray]:
    """HF's greedy tokens and the logits of each step [NEW_TOKENS, V]."""
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            output_logits=True,
            return_dict_in_generate=True,
        )
    tokens = out.sequences[0, ids.shape[1] :].tolist()
    logits = torch.stack([step[0] for step in out.logits]).float().numpy()
    return tokens, logits


def float64_logits(config, ids: torch.Tensor, tokens: list[int]) -> np.ndarray | None:
    """HF on the same tiny weights in float64, fed the prompt and HF's greedy ``tokens`` in one forward: each
    step's logits [NEW_TOKENS, V], a reference for HF's own float32 rounding; None when HF cannot run it."""
    try:
        model = tiny_model(config).double()
        sequence = torch.cat([ids, torch.tensor([tokens[:-1]], dtype=ids.dtype)], dim=1)
        with torch.no_grad():
            logits = model(sequence, attention_mask=torch.ones_like(sequence)).logits[0, ids.shape[1] - 1 :]
        return logits.double().numpy()
    except Exception:  # noqa: BLE001 - a type HF cannot run in float64: no allowance
        return None


def ort_greedy(qpc_path: Path, ids: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Chunked prefill (right-padded last chunk), then greedy decode, on ONNX Runtime."""
    session = open_session(qpc_path, 1)
    length = ids.shape[1]
    for start in range(0, length, CHUNK):
        piece = ids[0, start : start + CHUNK]
        inp = np.zeros((1, CHUNK), np.int64)
        pos = np.full((1, CHUNK), -1, np.int64)
        inp[0, : len(piece)] = piece
        pos[0, : len(piece)] = np.arange(start, start + len(piece))
        logits = session.run(inp, pos)
    steps = [logits[0].copy()]
    tokens = [int(steps[-1].argmax())]
    for i in range(NEW_TOKENS - 1):
        logits = session.run(np.array([[tokens[-1]]], np.int64), np.array([[length + i]], np.int64))
        steps.append(logits[0].copy())
        tokens.append(int(steps[-1].argmax()))
    return tokens, np.stack(steps)


def sweep_one(model_type: str) -> SweepResult:
    """Run one model type through HF and through the pipeline; never raises."""
    from QEfficient import QEFFAutoModelForCausalLM

    start = time.perf_counter()

    def result(status: str, reason: str = "", diff: float | None = None) -> SweepResult:
        return SweepResult(model_type, status, reason, round(time.perf_counter() - start, 1), diff)

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), allow_any_architecture():
        warnings.simplefilter("ignore")
        try:
            with time_limit(TIME_LIMIT_S):
                if model_type in NOT_DECODER_REASONS:  # some of these have no standalone tiny config at all
                    return result("not-decoder", NOT_DECODER_REASONS[model_type])
                config = sweep_config(model_type)
                reason = not_decoder_reason(model_type, config)
                if reason:
                    return result("not-decoder", reason)
                with torch.device("meta"):
                    n_params = sum(p.numel() for p in build_causal_lm(config).parameters())
                if n_params > MAX_PARAMS:
                    return result("hf-fails", f"tiny config has {n_params / 1e6:.0f}M parameters: needs a per-type override")
                model = tiny_model(config)
                ids = prompt_ids()
                ref_tokens, ref_logits = hf_reference(model, ids)
        except BaseException as err:  # noqa: BLE001 - any failure of HF itself is the finding
            if isinstance(err, KeyboardInterrupt):
                raise
            return result("hf-fails", short(err))
        try:
            with time_limit(TIME_LIMIT_S):
                qeff = QEFFAutoModelForCausalLM(model)
                # the fused graph: compile()'s default for the types proven here
                qpc = qeff.compile(prefill_seq_len=CHUNK, ctx_len=CTX_LEN, batch_size=1, num_cores=1, fuse=True)
        except BaseException as err:  # noqa: BLE001
            if isinstance(err, KeyboardInterrupt):
                raise
            return result("export-fails", short(err))
        try:
            with time_limit(TIME_LIMIT_S):
                tokens, logits = ort_greedy(qpc, ids.numpy())
        except BaseException as err:  # noqa: BLE001
            if isinstance(err, KeyboardInterrupt):
                raise
            return result("runtime-fails", short(err))
    diff = float(np.abs(logits - ref_logits).max())
    same = sum(a == b for a, b in zip(tokens, ref_tokens))
    if tokens == ref_tokens and diff <= LOGITS_ATOL:
        return result("token-exact", f"max |Δlogit| {diff:.1e}", diff)
    if tokens == ref_tokens:  # the reference's own float32 rounding counts too (recurrent scans, CPU-dependent)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), allow_any_architecture():
            warnings.simplefilter("ignore")
            exact = float64_logits(config, ids, ref_tokens)
        hf_error = float(np.abs(ref_logits - exact).max()) if exact is not None else 0.0
        if diff <= LOGITS_ATOL + hf_error:
            return result("token-exact", f"max |Δlogit| {diff:.1e} (HF float32 itself {hf_error:.1e} from float64)", diff)
    first = next((i for i, (a, b) in enumerate(zip(tokens, ref_tokens)) if a != b), None)
    where = f"first differing token {first}" if first is not None else "tokens equal"
    return result("differs", f"{same}/{NEW_TOKENS} tokens equal ({where}), max |Δlogit| {diff:.1e}", diff)


def _dict_lines(name: str, entries: dict[str, str]) -> list[str]:
    """``name: dict[str, str] = {...}`` as ruff formats it (an empty one on one line)."""
    if not entries:
        return [f"{name}: dict[str, str] = {{}}"]
    items = [f"    {json.dumps(t)}: {json.dumps(reason, ensure_ascii=False)}," for t, reason in sorted(entries.items())]
    return [f"{name}: dict[str, str] = {{", *items, "}"]


def write_registry(results: list[SweepResult], path: Path = REGISTRY) -> None:
    proven = sorted(r.model_type for r in results if r.status == "token-exact")
    failing = {r.model_type: f"{r.status}: {r.reason}" for r in results if r.status in ("differs", "export-fails", "runtime-fails")}
    not_decoder = {r.model_type: r.reason for r in results if r.status == "not-decoder"}
    lines = [
        '"""Which causal-LM model types the architecture sweep proved. Generated by benchmarks/arch_sweep.py: do not edit."""',
        "",
        "# ruff: noqa: E501",
        "",
        "# token-exact with HF (greedy tokens through chunked prefill and decode, logits within 1e-4 + HF's own float32 error)",
        "PROVEN: frozenset[str] = frozenset(",
        "    {",
        *[f"        {json.dumps(t)}," for t in proven],
        "    }",
        ")",
        "",
        "# runs but differs from HF, or fails to export or run: model_type -> what the sweep recorded",
        *_dict_lines("KNOWN_FAILURES", failing),
        "",
        "# in the causal-LM mapping but not decoder-only language models",
        *_dict_lines("NOT_DECODER", not_decoder),
        "",
    ]
    path.write_text("\n".join(lines))


def write_doc(results: list[SweepResult], seconds: float, path: Path = DOC) -> None:
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    unmapped = sum(r.model_type not in modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES for r in results)
    decoders = len(results) - counts["not-decoder"]
    hf_runs = decoders - counts["hf-fails"]
    lines = [
        "# Decoder architectures",
        "",
        "Generated by `PYTHONPATH=. python benchmarks/arch_sweep.py` (do not edit by hand). Every model type in",
        "transformers' `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES` (and mistral4, whose `Mistral4ForCausalLM` the mapping leaves",
        "out) gets a tiny random-weight model (2 layers, hidden 64, 4 experts where it has experts; `sweep_config` in",
        "tests/tiny_models.py). HF's greedy `generate` is the",
        f"reference; the pipeline prefills a {PROMPT_LEN}-token prompt in chunks of {CHUNK} on ONNX Runtime and decodes",
        f"{NEW_TOKENS} tokens. **token-exact**: every token equals HF's and every step's logits are within {LOGITS_ATOL:g}",
        "of HF's, plus HF's own float32 error where a float64 run of the same weights shows one (recurrent scans).",
        "The graph is the fused decoder graph (`compile(fuse=True)`), which compile() then uses by default for",
        "every token-exact type.",
        "",
        "`QEFFAutoModelForCausalLM.from_pretrained` runs the token-exact types, refuses the failing ones with the",
        "reason below, and runs any other type with a warning. Check one yourself with",
        "`PYTHONPATH=. python benchmarks/arch_sweep.py <model_type>`.",
        "",
        "Limits and notes of token-exact types:",
        "- the sparse-attention (DSA) types deepseek_v32, glm_moe_dsa, axk2, hy_v4 and dots3_note_text run their indexer",
        "  in the graph, at any context length: the tiny models' indexers choose 8 of up to 29 keys (index_topk 8, 2048 in",
        "  the released models); the indexer's keys share the cache's value slot with the rotary key",
        "  (QEfficient/transform/adapters/sparse_attention.py). qwen4_exp_text is exact up to `indexer_budget +",
        "  indexer_compress_ratio - 1` keys, where its QSA indexer selects every key block, and `compile` refuses a longer",
        "  `ctx_len`; its per-layer embeddings (`ple_layer_ids`) refuse to export.",
        "- deepseek_v4 runs its compressor and indexer in full (no limit); each cached token also keeps its compressor",
        "  projections, so its cache is 6x a plain shared key=value cache (adapters/deepseek_v4.py).",
        "- transformers 5.25's new decoder types, swept with 5.25 installed (CI installs 5.24, which lacks them; they are",
        "  `PROVEN_WITH_NEWER_TRANSFORMERS` in QEfficient/transform/adapters/__init__.py and their sweep cases skip under",
        "  5.24): ergo 2.4e-6 (its norms call `F.rms_norm` with shapes read from tensors, which the exporter refuses:",
        "  adapters/ergo.py), minicpm5_moe 1.7e-6, param2moe 1.3e-6 (max \\|Δlogit\\|), all token-exact. kolibri1_1 (a tiny",
        "  config that passes transformers' validation is in tests/tiny_models.py, and HF runs it) does not export yet: its",
        "  NVFP4 rounding casts scales to float8 e4m3, which the exporter at opset 17 has no type for, and its indexer selects",
        "  keys in Python loops over rows.",
        "",
        f"transformers {transformers.__version__}: {len(results)} types ({unmapped} of them outside the causal-LM mapping), "
        f"{decoders} decoder-only, "
        f"{hf_runs} of them run in HF with the tiny config, **{counts['token-exact']} token-exact**, "
        f"{counts['differs']} differ, {counts['export-fails']} fail to export, {counts['runtime-fails']} fail at run time, "
        f"{counts['hf-fails']} fail in HF, {counts['not-decoder']} are not decoder-only. Sweep time {seconds / 60:.1f} min "
        "(2 CPU cores).",
        "",
        "| model_type | status | reason |",
        "|---|---|---|",
        *[f"| {r.model_type} | {r.status} | {r.reason.replace('|', chr(92) + '|')} |" for r in results],
        "",
    ]
    path.write_text("\n".join(lines))


def load_results(path: Path) -> list[SweepResult]:
    return [SweepResult(**r) for r in json.loads(path.read_text())]


def load_doc(path: Path = DOC) -> tuple[list[SweepResult], float]:
    """The results and sweep time recorded in docs/architectures.md (the table is the full run's record)."""
    text = path.read_text()
    results = []
    for line in text.splitlines():
        cells = re.split(r"(?<!\\)\|", line)[1:-1]
        if len(cells) == 3 and cells[1].strip() in STATUSES:
            model_type, status, reason = (c.strip().replace("\\|", "|") for c in cells)
            results.append(SweepResult(model_type, status, reason))
    minutes = re.search(r"Sweep time ([0-9.]+) min", text)
    return results, float(minutes.group(1)) * 60 if minutes else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("types", nargs="*", help="model types to check (default: every type in the mapping)")
    parser.add_argument("--write", action="store_true", help="write the registry and docs even for a partial run")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--merge", type=Path, help="update the results of a full run (JSON) with these types, then write")
    parser.add_argument("--update", action="store_true", help="update only these types' rows of the docs table and the registry")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    types = args.types or causal_lm_types()
    start = time.perf_counter()
    results = []
    for model_type in types:
        r = sweep_one(model_type)
        results.append(r)
        print(f"{r.model_type:28s} {r.status:14s} {r.seconds:6.1f}s  {r.reason}", flush=True)
    seconds = time.perf_counter() - start
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    print(f"{len(results)} types in {seconds:.0f} s: {counts}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    if args.merge:  # a partial rerun updates a full run's results
        fresh = {r.model_type: r for r in results}
        results = [fresh.get(r.model_type, r) for r in load_results(args.merge)]
        args.merge.write_text(json.dumps([asdict(r) for r in results], indent=1))
        seconds = sum(r.seconds for r in results)
    if args.update:  # a partial rerun updates the rows of the full run recorded in the docs
        fresh = {r.model_type: r for r in results}
        recorded, seconds = load_doc()
        results = [fresh.pop(r.model_type, r) for r in recorded] + list(fresh.values())
    if args.write or args.merge or args.update or not args.types:
        write_registry(results)
        write_doc(results, seconds)


if __name__ == "__main__":
    main()
