"""Batch inference on Ray Data: generation or embeddings over a dataset, by a pool of compiled models.

    from QEfficient.distributed.ray_data import BatchJob, run_batch
    run_batch(BatchJob(model_name="path/to/model", task="generate", generation_len=64), "prompts.jsonl", "out.jsonl")

The driver compiles the model once (cached under QEFF_HOME), or takes an artifact compiled before
(``qpc_path``: its task and sizes, neither torch nor the model's folder needed anywhere), then
``map_batches`` feeds rows to a pool of actors. A generation actor opens only the compiled artifact and the tokenizer (no PyTorch
model, no export check): from the shared QEFF_HOME, or received through Ray's object store
(``ship_artifact``) where the nodes share no disk. So does an embedding actor (the artifact holds the
tokenizer and the sentence-transformers modules), unless its artifact cannot be run alone (a model
without a fast tokenizer, or tokenizer arguments only transformers takes): then it loads the model
from its folder, which every node must see. Every output row is its input row with one more column:
the generated text (``generate()``'s, greedy unless sampling is asked for) or the embedding
(``QEFFAutoModel.encode``'s).

Output is JSONL (one row a line, appended as batches finish) or Parquet (a folder of part files,
each written whole). Row order is kept, so a job that stopped resumes where its output ends: the rows
already written are checked against the input and skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from QEfficient.distributed import require_ray
from QEfficient.distributed.shipping import SHIP_MODES, Shipment, receive, ship, should_ship
from QEfficient.utils.checks import check_generation_len, check_positive

logger = logging.getLogger(__name__)

TASKS = ("generate", "embed")
COMPILE_DEFAULTS = {"prefill_seq_len": 32, "ctx_len": 512, "batch_size": 4, "seq_len": 128}


@dataclass
class BatchJob:
    model_name: str | None = None  # the model to compile (or its name, with qpc_path)
    task: str | None = None  # "generate" (the default) or "embed"; with qpc_path, the artifact's
    input_column: str = "prompt"
    output_column: str | None = None  # default: "generated_text" or "embedding"
    generation_len: int | None = None
    # what is compiled (None: the defaults below; with qpc_path, the artifact's, which a given value must equal)
    prefill_seq_len: int | None = None
    ctx_len: int | None = None
    batch_size: int | None = None  # rows per call of a model (the compiled batch size)
    seq_len: int | None = None  # embeddings: the longest input, in tokens
    pooling: str | None = None  # embeddings: default as sentence-transformers' config says
    num_actors: int = 1
    cores_per_actor: int = 1
    temperature: float | None = None
    seed: int | None = None
    ship_artifact: str = "auto"  # through Ray's object store: on, off, auto (when the cluster has several nodes)
    qpc_path: str | None = None  # an artifact compile() built, run as it is (its task and sizes): no model load, no torch

    def __post_init__(self) -> None:
        if self.ship_artifact not in SHIP_MODES:
            raise ValueError(f"ship_artifact must be one of {', '.join(SHIP_MODES)}, got {self.ship_artifact!r}.")
        if self.qpc_path is not None:
            self.qpc_path = str(Path(self.qpc_path).resolve())  # actors may not share the driver's working directory
            self._take_artifact()
        elif not self.model_name:
            raise ValueError("A batch job needs model_name (a model to compile) or qpc_path (an artifact compiled before).")
        for name, default in COMPILE_DEFAULTS.items():
            setattr(self, name, default if getattr(self, name) is None else getattr(self, name))
        self.task = self.task or TASKS[0]
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}.")
        names = ("batch_size", "num_actors", "cores_per_actor", "prefill_seq_len", "ctx_len", "seq_len")
        check_positive(**{name: getattr(self, name) for name in names})
        self.generation_len = check_generation_len(self.generation_len)
        self.output_column = self.output_column or ("generated_text" if self.task == "generate" else "embedding")
        if self.output_column == self.input_column:  # (the input is what a resumed job matches its output against)
            raise ValueError(f"output_column and input_column are both '{self.input_column}': name another output column.")
        if self.temperature is not None and (
            isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) or self.temperature < 0
        ):
            raise ValueError(f"temperature must be a number >= 0 (0 or None: greedy), got {self.temperature!r}.")

    def _take_artifact(self) -> None:
        """The task and sizes of the artifact at ``qpc_path``; a task or size given must be its own, and an artifact an
        actor could not run alone is refused, saying why."""
        from QEfficient.compile.ort_cpu import read_artifact

        try:
            qconfig = read_artifact(Path(self.qpc_path))
            task, sizes = _artifact_task_and_sizes(self.qpc_path, qconfig)
        except (OSError, KeyError) as e:  # (a damaged artifact: FileNotFoundError and CacheEntryDamagedError are OSErrors)
            raise ValueError(f"'{self.qpc_path}' cannot be read as an artifact: {e}") from None
        if self.task not in (None, task):
            raise ValueError(f"'{self.qpc_path}' is compiled for task {task}, not {self.task}: leave task out.")
        given = {name: getattr(self, name) for name in (*sizes, "pooling") if getattr(self, name) is not None}
        differ = [name for name, value in given.items() if sizes.get(name) != value]
        if differ:
            raise ValueError(
                f"{', '.join(differ)}: '{self.qpc_path}' was compiled with its own ({sizes}; pooling as compiled): leave them out."
            )
        for name, value in sizes.items():
            setattr(self, name, value)
        self.task, self.model_name = task, self.model_name or qconfig.get("model_name") or Path(self.qpc_path).name

    def load(self):
        """(compiled model, tokenizer): compiles on first use, finds the cached artifact afterwards."""
        if self.qpc_path is not None:
            raise ValueError("This job runs the artifact at qpc_path as it is: there is no model to load.")
        from transformers import AutoTokenizer

        if self.task == "generate":
            from QEfficient import QEFFAutoModelForCausalLM

            model = QEFFAutoModelForCausalLM.from_pretrained(self.model_name)
            model.compile(
                prefill_seq_len=self.prefill_seq_len, ctx_len=self.ctx_len, batch_size=self.batch_size, num_cores=self.cores_per_actor
            )
        else:
            from QEfficient import QEFFAutoModel

            model = QEFFAutoModel.from_pretrained(self.model_name, pooling=self.pooling)
            from QEfficient.serving.encoder_batches import refuse_own_heads, serving_lengths

            refuse_own_heads(model, self.model_name)
            if not isinstance(model, QEFFAutoModel):  # an image or audio encoder: this job embeds text
                raise ValueError(f"'{self.model_name}' is not a text encoder ({type(model).__name__}): the embed task takes text.")
            # a few lengths up to seq_len, as the server compiles: a batch of short texts runs short
            model.compile(seq_len=serving_lengths(self.seq_len), batch_size=self.batch_size, num_cores=self.cores_per_actor)
        return model, AutoTokenizer.from_pretrained(model.local_model_dir)


class ModelActor:
    """One compiled model in a Ray actor: ``__call__`` adds the output column to a batch of rows.

    It runs the artifact the driver compiled (``artifact``: its qpc_path and tokenizer_dir, or ``shipment`` to receive
    them), without torch: generation through the code ``generate()`` runs, on one session opened once; embeddings as
    ``QEFFAutoModel.encode`` computes them (serving's CompiledEncoder). Given neither (an encoder's artifact that cannot
    be run alone), an embedding actor loads the model from its folder (``BatchJob.load``).
    """

    def __init__(self, job: dict, artifact: dict | None = None, shipment: Shipment | None = None) -> None:
        self.job = BatchJob(**job)
        self.encoder = self.model = None
        if shipment is not None:
            qpc_path, tokenizer_dir = receive(shipment)
        elif artifact is not None:
            qpc_path, tokenizer_dir = artifact["qpc_path"], artifact["tokenizer_dir"]
        elif self.job.task == "embed":
            self.model, self.tokenizer = self.job.load()
            return
        else:
            raise ValueError("A generation actor runs a compiled artifact: pass artifact= or shipment=.")
        if self.job.task == "embed":
            from QEfficient.serving.encoder_artifact import CompiledEncoder

            self.encoder = CompiledEncoder(qpc_path, self.job.cores_per_actor)  # no torch import
            return
        from QEfficient.generation.exec_kv import open_session, right_padding
        from QEfficient.runtime.tokenizer import artifact_tokenizer

        # (no torch import; padded on the right here, without a warning per batch)
        self.qpc_path, self.tokenizer = qpc_path, right_padding(artifact_tokenizer(qpc_path, tokenizer_dir), quiet=True)
        self.session = open_session(qpc_path, self.job.cores_per_actor)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = list(batch[self.job.input_column])
        bad = [t for t in texts if not isinstance(t, str)]  # (a Parquet input's nulls and numbers)
        if bad:
            bad = bad[0]
            raise ValueError(f"A row's '{self.job.input_column}' is {bad!r}, not a text: each row's '{self.job.input_column}' is one.")
        if self.job.task == "generate":
            from QEfficient.generation.exec_kv import cloud_ai_100_exec_kv
            from QEfficient.generation.sampling import SamplingParams

            job = self.job
            with contextlib.redirect_stdout(io.StringIO()):  # its per-call stats would flood the driver's console
                info = cloud_ai_100_exec_kv(
                    self.tokenizer,
                    self.qpc_path,
                    prompt=texts,
                    generation_len=job.generation_len,
                    stream=False,
                    session=self.session,
                    sampling=SamplingParams(temperature=job.temperature, seed=job.seed),
                )
            out = np.array(info.texts, dtype=object)
        elif self.encoder is not None:
            out = self.encoder.encode(texts, batch_size=self.job.batch_size).astype(np.float32)
        else:
            out = self.model.encode(texts, self.tokenizer, batch_size=self.job.batch_size).astype(np.float32)
        return {**batch, self.job.output_column: out}


def _artifact_task_and_sizes(qpc_path: str, qconfig: dict) -> tuple[str, dict[str, int]]:
    """("generate" or "embed", the sizes it was compiled with) of an artifact a batch job can run alone: a text decoder's
    with its tokenizer, or a text encoder's whose pooled embeddings the actors compute alone; others are refused."""
    from QEfficient.generation.lora_generation import is_lora_artifact
    from QEfficient.runtime.tokenizer import has_runtime_tokenizer

    params = qconfig["compile_params"]
    if "kv_shape" in qconfig and "prefill_seq_len" in params and not qconfig.get("kind") and "img_size" not in params:
        if is_lora_artifact(qconfig):
            raise ValueError(f"'{qpc_path}' is a LoRA model's artifact: its adapters are kept outside it; run the job with model_name.")
        if not has_runtime_tokenizer(qpc_path):
            raise ValueError(f"'{qpc_path}' holds no tokenizer (compiled by an older version): compile it again.")
        batch = int(params.get("full_batch_size") or params["batch_size"])  # continuous batching: its slots
        return "generate", {"batch_size": batch, "prefill_seq_len": int(params["prefill_seq_len"]), "ctx_len": int(params["ctx_len"])}
    if "output_name" not in qconfig or "kv_shape" in qconfig:
        raise ValueError(f"'{qpc_path}' is neither a text decoder's nor a text encoder's artifact: a batch job generates or embeds text.")
    from QEfficient.export.graph_names import LOGITS
    from QEfficient.serving.encoder_artifact import classifies_media, is_encoder_artifact

    try:
        text_encoder = is_encoder_artifact(qconfig)
    except ValueError as e:  # (worded for a server: the kind of artifact it is)
        raise ValueError(f"A batch job embeds text, and {e}") from None
    if classifies_media(qconfig):
        raise ValueError(f"'{qpc_path}' is an image or audio classifier's artifact (served for /classify): the job embeds text.")
    if not text_encoder or qconfig["output_name"] == LOGITS or qconfig.get("own_heads"):
        raise ValueError(f"'{qpc_path}' gives no pooled text embeddings (a classifier's, or its model's own heads): the job embeds.")
    if (reason := _why_not_from_artifact(qpc_path)) is not None:
        raise ValueError(f"'{qpc_path}' cannot run alone in a batch job: {reason}")
    return "embed", {"batch_size": int(params["batch_size"]), "seq_len": int(max(params["seq_len"]))}


def _artifact_for_actors(job: BatchJob) -> dict:
    """The actors' ``artifact`` and ``shipment``: the job's artifact (``qpc_path``), else the one the driver compiles here,
    once; none where an embedding actor must load the model from its folder."""
    if job.qpc_path is not None:  # compiled before: run as it is (its tokenizer is in it)
        artifact = {"qpc_path": job.qpc_path, "tokenizer_dir": None}
    else:
        model, _ = job.load()
        reason = None if job.task == "generate" else _why_not_from_artifact(model.qpc_path)
        if reason is not None and job.ship_artifact == "on":
            raise ValueError(
                f"ship_artifact=on: the embedding actors load '{job.model_name}' from its folder, which every node must then "
                f"see, as its artifact cannot be run alone: {reason}"
            )
        if reason is not None:
            logger.info("the embedding actors load the model from its folder: %s", reason)
            return {}
        tokenizer_dir = str(model.local_model_dir) if job.task == "generate" else None
        artifact = {"qpc_path": str(model.qpc_path), "tokenizer_dir": tokenizer_dir}
    return {"artifact": artifact, "shipment": ship(**artifact) if should_ship(job.ship_artifact) else None}


def _why_not_from_artifact(qpc_path: str | os.PathLike) -> str | None:
    """Why an embedding actor cannot run the artifact alone (what it reads besides the graph is not all in it, or not
    all taken by its run-time tokenizer); None where it can."""
    from QEfficient.serving.encoder_artifact import artifact_sentence_inputs, check_servable

    try:
        check_servable(qpc_path)
        artifact_sentence_inputs(qpc_path)
    except ValueError as e:
        return str(e)
    return None


def _format(path: str | os.PathLike) -> str:
    name = str(path).lower().rstrip("/")
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    if name.endswith(".parquet") or Path(path).is_dir():
        return "parquet"
    raise ValueError(f"'{path}': name it *.jsonl or *.parquet (a Parquet file or folder).")


def read_dataset(path: str | os.PathLike, input_column: str | None = None):
    """A ray.data.Dataset over a JSONL file (each row's ``input_column`` checked to be a text) or a Parquet file/folder."""
    ray = require_ray()
    if not Path(path).exists():
        raise FileNotFoundError(f"The input '{path}' does not exist.")
    # reads take no CPU slot: the model actors hold them all, and a read waiting for one would never run
    io = {"ray_remote_args": {"num_cpus": 0}}
    if _format(path) == "jsonl":
        import pyarrow as pa
        import pyarrow.json as pajson

        # Arrow's reader (pandas' would turn "007" into 7 and date-like columns into dates), told that the columns
        # holding only strings are strings (it would read an ISO timestamp as one); the columns in the file's order
        kinds = _check_jsonl(Path(path), input_column)
        texts = pa.schema([(name, pa.string()) for name, kind in kinds.items() if kind == "string"])
        options = pajson.ParseOptions(explicit_schema=texts, unexpected_field_behavior="infer")
        return ray.data.read_json(str(path), parse_options=options, **io).select_columns(list(kinds))
    return ray.data.read_parquet(str(path), **io)


def _json_kind(value) -> str | None:
    """What Arrow's JSON reader reads a value as (int and float alike: a number), None for a null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    kinds = {str: "string", int: "number", float: "number", list: "array", dict: "object"}
    return kinds[type(value)]


def _check_jsonl(path: Path, input_column: str | None = None) -> dict[str, str | None]:
    """Every line of a JSONL input file one JSON object (blank lines aside) with a string in ``input_column`` and each
    column one kind of value, checked here: a bad line found by Ray's readers or the model fails the job with their
    tracebacks, naming neither the file nor the line. Returns each column's kind (None: only nulls), in the file's
    order."""
    if not path.is_file():
        return {}
    kinds: dict[str, str | None] = {}
    first_seen: dict[str, int] = {}
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                reason = err.msg if isinstance(err, json.JSONDecodeError) else "not UTF-8"
                raise ValueError(f"'{path}' line {number} is not JSON ({reason}): each line of a .jsonl input is one object.") from None
            if not isinstance(row, dict):
                kind = type(row).__name__
                raise ValueError(f"'{path}' line {number} is a JSON {kind}, not an object: each line is one row, as {{\"text\": ...}}.")
            if input_column is not None and not isinstance(row.get(input_column), str):
                kind = _json_kind(row.get(input_column))
                what = "has no" if kind is None else f"has {'an' if kind[0] in 'ao' else 'a'} {kind} in its"
                raise ValueError(f"'{path}' line {number} {what} '{input_column}': each row's '{input_column}' is a text.")
            for name, value in row.items():
                kind = _json_kind(value)
                if kinds.get(name) is None:
                    kinds[name] = kind
                    if kind is not None:
                        first_seen[name] = number
                elif kind is not None and kind != kinds[name]:  # (Arrow reads the file by columns)
                    raise ValueError(
                        f"'{path}' column '{name}' holds {kinds[name]}s (line {first_seen[name]}) and {kind}s (line {number}): "
                        "each column holds one kind of value (or null)."
                    )
    return kinds


def _plain(value):
    """A JSON-writable value from what Ray Data hands back (numpy scalars and arrays; a null of a numeric column, which
    numpy holds as NaN, as None: a JSON input holds no NaN)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.datetime64):  # (its item() would be nanoseconds, an int)
        return None if np.isnat(value) else np.datetime_as_string(value)
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def _json_value(value):
    """What json.dumps cannot write itself, as text: dates and times in ISO 8601 (a Parquet input's timestamps), bytes
    in base64."""
    import base64
    import datetime

    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return str(value)


class _Output:
    """The output being written, and how many rows it already holds (the rows to skip on resume)."""

    def __init__(self, path: str | os.PathLike, input_column: str) -> None:
        self.path, self.kind, self.input_column = Path(path), _format(path), input_column
        self.parts = 0
        self.cut = None  # where resume() cuts a JSONL output: after its last whole row
        self.repair = b""  # what resume() writes there: a newline, where that row lacks one

    def written(self) -> list:
        """The input column of every complete row already written; a file that is not such an output is refused. Reads
        only: resume() drops a torn last line (a crash's) once the rows are found to be this input's."""
        if not self.path.exists():
            return []
        if self.kind == "jsonl":
            if not self.path.is_file():
                raise ValueError(f"'{self.path}' is a folder: a .jsonl output is a file; pick another --output.")
            data = self.path.read_bytes()
            keep = data[: data.rfind(b"\n") + 1]
            rows = [self._row(number, line) for number, line in enumerate(keep.splitlines(), 1) if line.strip()]
            tail = data[len(keep) :]
            if tail.strip():
                try:
                    json.loads(tail)
                except ValueError:  # a line cut by a crash: dropped and written again, if the rows before it are ours
                    if not rows and not tail.startswith(b'{"'):
                        raise ValueError(f"'{self.path}' is not the output of a batch job: remove it or pick another --output.") from None
                    self.cut = len(keep)
                else:  # a whole row without its newline
                    rows.append(self._row(len(rows) + 1, tail))
                    self.cut, self.repair = len(data), b"\n"
            return [row[self.input_column] for row in rows]
        if self.path.is_file():
            raise ValueError(f"'{self.path}' is a file: a Parquet output is a folder of parts; pick another --output.")
        import pyarrow.parquet as pq

        parts = sorted(self.path.glob("part-*.parquet"))
        self.parts = len(parts)
        return [v for p in parts for v in pq.read_table(p, columns=[self.input_column]).column(0).to_pylist()]

    def resume(self) -> None:
        """Make a JSONL output end with a whole line before rows are appended (after written() and its check)."""
        if self.cut is not None:
            with self.path.open("r+b") as f:
                f.truncate(self.cut)
                f.seek(self.cut)
                f.write(self.repair)
            self.cut, self.repair = None, b""

    def _row(self, number: int, line: bytes) -> dict:
        """Line ``number`` of a JSONL output, which must be one of its rows."""
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict) or self.input_column not in row:
            raise ValueError(
                f"'{self.path}' is not the output of a batch job over '{self.input_column}' (line {number}): remove it or "
                "pick another --output."
            )
        return row

    def write(self, batch: dict[str, np.ndarray]) -> None:
        if self.kind == "jsonl":
            columns = list(batch)
            rows = ({c: _plain(batch[c][i]) for c in columns} for i in range(len(batch[columns[0]])))
            lines = [json.dumps(row, default=_json_value) + "\n" for row in rows]
            with self.path.open("a") as f:
                f.write("".join(lines))
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path.mkdir(parents=True, exist_ok=True)
        table = pa.table({c: [_plain(v) for v in values] for c, values in batch.items()})
        final = self.path / f"part-{self.parts:06d}.parquet"
        tmp = final.with_suffix(".tmp")
        pq.write_table(table, tmp)
        tmp.rename(final)  # a part is there whole or not at all
        self.parts += 1


def run_batch(job: BatchJob, input_path: str | os.PathLike, output_path: str | os.PathLike, dataset=None) -> int:
    """Run ``job`` over the input (or ``dataset``), appending to ``output_path``; returns the rows written now.

    Rows already in the output (a previous run's) are checked against the input and skipped.
    """
    ray = require_ray()
    ds = dataset if dataset is not None else read_dataset(input_path, job.input_column)
    columns = ds.columns() or []  # None for an input without rows
    if not columns:
        raise ValueError(f"'{input_path}' holds no rows: nothing to run.")
    if job.input_column not in columns:
        raise ValueError(f"The input has no column '{job.input_column}' (it has {', '.join(columns)}); pass --input_column.")
    output = _Output(output_path, job.input_column)
    done = output.written()
    if done:
        head = [row[job.input_column] for row in ds.take(len(done))]
        if head != done:
            raise ValueError(f"'{output_path}' holds rows of another input (or another order): remove it or pick another --output.")
        total = ds.count()
        if len(done) >= total:
            logger.info("all %d rows are already in %s", total, output_path)
            return 0
        ds = ds.split_at_indices([len(done)])[1]
    output.resume()  # the rows are this input's: a torn last line goes before new rows come
    actor_args = {"job": asdict(job) | {"qpc_path": None}, **_artifact_for_actors(job)}  # (an actor opens what it is given)
    # output order = input order (resume); on the dataset's own context: a Dataset binds a copy when it is created
    ds.context.execution_options.preserve_order = True
    ds.context.raise_original_map_exception = True  # an actor's error as it raised it, not as Ray Data's UserCodeException
    results = ds.map_batches(
        ModelActor,
        fn_constructor_kwargs=actor_args,
        batch_size=job.batch_size,
        num_cpus=job.cores_per_actor,
        compute=ray.data.ActorPoolStrategy(size=job.num_actors),
        batch_format="numpy",
    )
    written = 0
    try:
        for batch in _batches(results, job.batch_size):
            output.write(batch)
            written += len(next(iter(batch.values())))
    except ray.exceptions.RayTaskError as err:  # an actor's error, as the actor raised it (not Ray's wrapping of it)
        cause = _user_error(err)
        if cause is None:
            raise
        message = str(cause).split("\nFailed to apply UDF")[0]  # (Ray Data's note on retries follows it)
        message = f"{message} ({written} rows were written before it; run again to resume)"
        try:
            error = type(cause)(message)
        except TypeError:  # (one that takes other arguments: UnicodeDecodeError's five)
            error = ValueError(message)
        raise error from None
    return written


def _user_error(err: BaseException) -> BaseException | None:
    """The ValueError or TypeError an actor raised, found in Ray's wrapping of it."""
    ray_task_error = require_ray().exceptions.RayTaskError
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (ValueError, TypeError)) and not isinstance(err, ray_task_error):
            return err
        err = getattr(err, "cause", None) or err.__cause__
    return None


def _batches(ds, size: int) -> Iterator[dict[str, np.ndarray]]:
    yield from ds.iter_batches(batch_size=size, batch_format="numpy")
