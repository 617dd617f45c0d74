"""Stage 4: build the runtime artifact for the ONNX Runtime backend.

An artifact is a directory ``<compile_dir>/qpc-<hash>/`` (QEfficient's name for a compiled
program) holding:

* ``model.onnx`` (+ external data): the graph the session runs, hard-linked from the export
  entry when the file system allows it (no disk cost), or its compressed form with
  ``mxfp6_matmul`` (see weight_compression.py);
* ``specializations.json``: the prefill and decode shapes, in QEfficient's format;
* ``qconfig.json``: the compile arguments, the cache geometry and the library versions.

The hash covers the graph's files' content (graph_files.py) and every argument that changes what runs;
``num_cores`` only sets threads when a session is created and is kept out of it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from QEfficient.compile.graph_files import graph_files
from QEfficient.utils.cache import MANIFEST, CacheEntryDamagedError, build_entry, hash_dict, is_complete, verify_entry
from QEfficient.utils.checks import check_flags
from QEfficient.utils.memory import folder_bytes, release_freed_memory

logger = logging.getLogger(__name__)

ARTIFACT_GRAPH = "model.onnx"
_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Tell the user, once per process and key, about an option this backend cannot honour. A Python
    warning, not a log record: scripts see it without configuring logging."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)


def warn_ignored_options(what: str, options: dict[str, Any], known: tuple[str, ...] = ()) -> None:
    """One warning for Cloud AI 100 options this backend does not act on; options that are off
    (None, False, 0, empty) change nothing anywhere and are not mentioned. An option close to one of ``known`` (the
    call's own parameters: ``ctx_length`` for ctx_len) is named as a likely misspelling instead."""
    import difflib

    for name in sorted(options):
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if near and not name.endswith("_" + near[0]):  # (aic_num_cores is a Cloud AI 100 option, not num_cores misspelt)
            options = {k: v for k, v in options.items() if k != name}
            warn_once(f"{what}{name}", f"{what} has no option {name!r}: did you mean {near[0]!r}? It is ignored.")

    def is_on(value: Any) -> bool:
        try:
            return bool(value)
        except ValueError:  # arrays
            return True

    names = sorted(k for k, v in options.items() if is_on(v))
    if names:
        warn_once(f"{what}{names}", f"{what} options {names} are for Cloud AI 100 and are ignored on ONNX Runtime.")


# QEfficient's qaic_config keys that only shape the Cloud AI 100 program (blocking, compute-context lengths, KV-head
# replication, MLA absorption...): accepted and ignored here
CLOUD_AI_100_QAIC_CONFIG = frozenset(
    {
        "ccl_enabled",
        "comp_ctx_lengths_prefill",
        "comp_ctx_lengths_decode",
        "replicate_kv_heads",
        "enable_blocking",
        "blocking_mode",
        "num_kv_blocks",
        "num_q_blocks",
        "head_block_size",
        "num_batch_blocks",
        "skip_kv",
        "mla_absorption",
        "export_embedding",
        "par_num_split",
        "msa_indexer_dp",
        "msa_attn_dp",
        "enable_layer_skipping",
        "enable_pruning",
        "pretrained_model_name_or_path",  # (QEfficient's from_pretrained writes it there)
    }
)


def warn_qaic_config(qaic_config: dict | None, honoured: set[str]) -> None:
    """One warning per key of ``qaic_config`` not in ``honoured``: a Cloud AI 100 key is ignored on ONNX Runtime; a key
    QEfficient does not know is named as such, with the nearest known key (a misspelled "include_sampler" would
    otherwise pass unnoticed)."""
    import difflib

    if qaic_config is not None and not isinstance(qaic_config, dict):
        raise ValueError(f"qaic_config must be a dict of QEfficient's options (or None), got {qaic_config!r:.60}.")
    known = sorted(honoured | CLOUD_AI_100_QAIC_CONFIG)
    for key in sorted(set(qaic_config or {}) - honoured, key=str):
        if key in CLOUD_AI_100_QAIC_CONFIG:
            warn_once(f"qaic_config:{key}", f"qaic_config['{key}'] targets Cloud AI 100 and is ignored on ONNX Runtime.")
            continue
        near = difflib.get_close_matches(str(key), known, n=1)
        hint = f" Did you mean '{near[0]}'?" if near else f" The keys it knows are {known}."
        warn_once(f"qaic_config:{key}", f"qaic_config[{key!r}] is not a key this backend knows, and is ignored.{hint}")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_artifact(
    onnx_path: Path,
    compile_dir: Path,
    manifest: dict[str, Any],
    hash_params: dict[str, Any],
    specs: dict[str, Any],
    rewrite: Callable[[Path, Path], Path] | None = None,
    extra_files: Callable[[Path], object] | None = None,
) -> Path:
    """Build (or reuse) the artifact directory; returns its path. A damaged artifact is rebuilt.

    ``rewrite(src, dst)``, when given, writes the graph the session will run (compressed,
    fused, ...) instead of linking the exported one. ``extra_files(dir)`` adds what the run-time
    process needs besides the graph (the tokenizer), covered by the artifact's manifest.
    """
    onnx_path = Path(onnx_path)
    check_flags(mxfp6_matmul=hash_params.get("mxfp6_matmul", False))  # every model kind's compile(): "no" is not False
    if hash_params.get("mxfp6_matmul"):
        from QEfficient.compile.weight_compression import WEIGHT_FORMAT  # imports onnx: not at run time

        hash_params = {**hash_params, "weight_format": WEIGHT_FORMAT}
    files = graph_files(onnx_path)  # the graph's content is in the key, not its path
    digest = hash_dict({"graph": files, **hash_params, "specializations": specs})
    entry = Path(compile_dir).expanduser().absolute() / f"qpc-{digest}"  # valid after a chdir
    if entry.parent.exists() and not entry.parent.is_dir():
        raise ValueError(f"compile_dir '{compile_dir}' is a file: name a folder (the artifact is written to '<compile_dir>/qpc-<hash>/').")

    def build(tmp: Path) -> None:
        if rewrite is not None:
            rewrite(onnx_path, tmp / ARTIFACT_GRAPH)
            release_freed_memory(folder_bytes(onnx_path.parent))
        else:
            _link_or_copy(onnx_path, tmp / ARTIFACT_GRAPH)
            for name in files:  # the external-data files the graph names, under their names
                if name != onnx_path.name:
                    _link_or_copy(onnx_path.parent / name, tmp / name)
        (tmp / "specializations.json").write_text(json.dumps(specs, indent=1))
        (tmp / "qconfig.json").write_text(json.dumps({**manifest, "compile_params": hash_params}, indent=1, sort_keys=True, default=str))
        if extra_files is not None:
            extra_files(tmp)

    if build_entry(entry, build):
        logger.info("Reusing the compiled artifact at %s", entry)
    else:
        logger.info("Compiled artifact written to %s", entry)
    return entry


def artifact_fingerprint(artifact_dir: Path) -> str | None:
    """A digest of what an artifact runs: its files as its manifest records them and its compile parameters, not the
    rest of its qconfig.json (the threads and name of the build that wrote it). The same for its copies (shipped, moved)
    and a rebuild of it, another for another build; None where it has no readable manifest."""
    try:
        files = json.loads((Path(artifact_dir) / MANIFEST).read_text())["files"]
        params = json.loads((Path(artifact_dir) / "qconfig.json").read_text())["compile_params"]
        digests = {name: record["sha256"] for name, record in files.items() if name != "qconfig.json"}
        return hash_dict({"files": digests, "compile_params": params})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve_companion(qpc_path: Path, recorded: str, fingerprint: str | None = None) -> Path:
    """The other graph's artifact a two-graph model's text artifact names: at the path recorded relative to it (absolute
    as older versions wrote it) where it holds that artifact (``fingerprint``), else a complete artifact beside it that
    does (the two copied side by side); the recorded path where none is found."""
    text = Path(qpc_path).resolve()
    path = (text / recorded).resolve()
    if fingerprint is None or (path.is_dir() and artifact_fingerprint(path) == fingerprint):
        return path
    siblings = (f for f in text.parent.iterdir() if f.is_dir() and f != text and not f.name.startswith(".") and is_complete(f))
    return next((f for f in siblings if artifact_fingerprint(f) == fingerprint), path)


def checked_companion(qpc_path: Path, qconfig: dict, other: str, given, expected_kind: str, what: str) -> Path:
    """The ``other`` graph's artifact a two-graph model's artifact (``qpc_path``, its ``qconfig``) names (``given``: a
    copy of it elsewhere), refused, saying what to do, where it is missing, of another kind or of another build."""
    named = f"{other}_artifact"
    fingerprint = qconfig.get(f"{named}_digest")
    path = Path(given) if given else resolve_companion(qpc_path, qconfig[named], fingerprint)
    try:
        kind = read_artifact(path).get("kind")  # there and intact
    except FileNotFoundError:
        raise FileNotFoundError(
            f"'{qpc_path}' names its {other} graph's artifact '{path}', which is not there: keep the two artifacts' folders "
            f"where compile() put them, or copy them side by side (or pass {other}_qpc_path=)."
        ) from None
    if kind != expected_kind:
        raise ValueError(f"'{path}' is not {what}'s {other} graph (its kind is {kind!r}): pass the artifact compile() built.")
    if fingerprint and artifact_fingerprint(path) != fingerprint:
        raise ValueError(
            f"'{path}' is another build's {other} graph than the one '{qpc_path}' was compiled with: pass the artifact "
            "compile() built with it."
        )
    return path


def language_companion(qpc_path: Path, qconfig: dict) -> Path | None:
    """The vision artifact a vision-language model's language artifact names (resolve_companion), or None."""
    recorded = qconfig.get("vision_artifact")
    return None if not recorded else resolve_companion(qpc_path, recorded, qconfig.get("vision_artifact_digest"))


def read_artifact(artifact_dir: Path) -> dict[str, Any]:
    """Read an artifact's qconfig.json once its files are verified against the manifest written with it.

    Raises FileNotFoundError for a path that is not an artifact, CacheEntryDamagedError (naming the
    file) for one that changed since it was built.
    """
    artifact_dir = Path(artifact_dir).expanduser()
    qconfig = artifact_dir / "qconfig.json"
    not_artifact = (
        f"'{artifact_dir}' is not a compiled QEfficient artifact (expected {ARTIFACT_GRAPH}, qconfig.json and "
        "specializations.json). Build one with model.compile(...) or `python -m QEfficient.cloud.infer`."
    )
    if not artifact_dir.is_dir() or not (is_complete(artifact_dir) or qconfig.is_file()):
        if (artifact_dir / "qpcs" / "qconfig.json").is_file():  # QEfficient.compile's qpc_path: the artifact is its qpcs link
            raise FileNotFoundError(f"{not_artifact} The artifact QEfficient.compile built there is '{artifact_dir / 'qpcs'}'.")
        raise FileNotFoundError(not_artifact)
    compiled = sorted(p.name for p in artifact_dir.glob("qpc-*") if p.is_dir())
    if not qconfig.is_file() and compiled:  # an export's folder: its artifacts are the qpc-* folders in it
        raise FileNotFoundError(f"{not_artifact} Its compiled artifacts: {', '.join(compiled)}.")
    problem = verify_entry(artifact_dir)
    if problem is not None:
        raise CacheEntryDamagedError(f"{problem.message()} (model.compile(...) or `python -m QEfficient.cloud.infer` rebuilds it.)")
    if not qconfig.is_file():  # another cache entry
        raise FileNotFoundError(not_artifact)
    return json.loads(qconfig.read_text())
