"""CTranslate2 Whisper -> transformers converter: round trip on tiny random Whisper models written in
CTranslate2's model.bin format by a writer here that mirrors CTranslate2's own (WhisperLoader +
ModelSpec._serialize: fused q/k/v with a zero key bias, scalars, aliases of equal variables), and an
end-to-end transcription with the real Whisper base that scripts/fetch_whisper.sh converts."""

from __future__ import annotations

import json
import os
import struct
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from QEfficient.loading.ctranslate2_whisper import (
    CTranslate2FormatError,
    convert_ctranslate2_whisper,
    read_ctranslate2_model,
    whisper_state_dict,
)

DATA = Path(__file__).parent / "data"
_CT2_DTYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}


# ---- a CTranslate2 writer for the tests (CTranslate2 itself is not a dependency) ----


def _fused(*layers) -> tuple[torch.Tensor, torch.Tensor]:
    weights = [m.weight for m in layers]
    biases = [m.bias if m.bias is not None else torch.zeros(m.weight.shape[0]) for m in layers]
    return torch.cat(weights), torch.cat(biases)


def _ct2_variables(model: WhisperForConditionalGeneration) -> dict[str, torch.Tensor | np.ndarray]:
    """CTranslate2's WhisperLoader, restated: CT2 name -> value."""
    cfg, var = model.config, {}

    def linear(name, module):
        var[f"{name}/weight"], var[f"{name}/bias"] = module.weight, module.bias

    def norm(name, module):
        var[f"{name}/gamma"], var[f"{name}/beta"] = module.weight, module.bias

    for stack, hf in (("encoder", model.model.encoder), ("decoder", model.model.decoder)):
        var[f"{stack}/num_heads"] = np.int16(getattr(cfg, f"{stack}_attention_heads"))
        var[f"{stack}/position_encodings/encodings"] = hf.embed_positions.weight
        norm(f"{stack}/layer_norm", hf.layer_norm)
        for i, layer in enumerate(hf.layers):
            p, a = f"{stack}/layer_{i}", layer.self_attn
            var[f"{p}/self_attention/linear_0/weight"], var[f"{p}/self_attention/linear_0/bias"] = _fused(a.q_proj, a.k_proj, a.v_proj)
            linear(f"{p}/self_attention/linear_1", a.out_proj)
            norm(f"{p}/self_attention/layer_norm", layer.self_attn_layer_norm)
            if stack == "decoder":
                c = layer.encoder_attn
                linear(f"{p}/attention/linear_0", c.q_proj)
                var[f"{p}/attention/linear_1/weight"], var[f"{p}/attention/linear_1/bias"] = _fused(c.k_proj, c.v_proj)
                linear(f"{p}/attention/linear_2", c.out_proj)
                norm(f"{p}/attention/layer_norm", layer.encoder_attn_layer_norm)
            linear(f"{p}/ffn/linear_0", layer.fc1)
            linear(f"{p}/ffn/linear_1", layer.fc2)
            norm(f"{p}/ffn/layer_norm", layer.final_layer_norm)
    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", getattr(model.model.encoder, conv))
    var["decoder/embeddings/weight"] = model.model.decoder.embed_tokens.weight
    var["decoder/projection/weight"] = model.proj_out.weight
    var.update({f"decoder/{k}": np.int8(v) for k, v in dict(activation=3, alibi=0, pre_norm=1, scale_embeddings=0).items()})
    var.update({"decoder/start_from_zero_embedding": np.int8(0), "decoder/alignment_layer": np.int16(-1)})
    var["decoder/alignment_heads"] = np.int16(1)
    return var


def _encode(name: str, value, dtype: str) -> dict[str, np.ndarray]:
    """One variable as CTranslate2 stores it; int8 weights come with their per-row ``_scale`` (int8_float32)."""
    if isinstance(value, np.generic):  # scalars keep their own type
        return {name: np.asarray(value)}
    value = value.detach().float()
    if dtype == "bfloat16":
        return {name: value.to(torch.bfloat16).view(torch.int16).numpy()}
    if dtype == "int8":
        if not name.endswith("/weight"):
            return {name: value.numpy()}
        rows = value.numpy().reshape(value.shape[0], -1)
        amax = np.abs(rows).max(axis=1)
        amax[amax == 0] = 127.0  # as CTranslate2 does for all-zero rows (the padding embedding)
        scale = (127.0 / amax).astype(np.float32)
        quantized = np.rint(rows * scale[:, None]).astype(np.int8).reshape(value.shape)
        return {name: quantized, f"{name}_scale": scale}
    return {name: value.numpy().astype(dtype)}


def write_ct2_whisper(model: WhisperForConditionalGeneration, path: Path, dtype: str = "float16") -> None:
    """CTranslate2's ModelSpec.optimize (alias equal variables, then quantize) + _serialize, for a WhisperSpec
    revision 3. ``dtype``: float32, float16, bfloat16 or int8 (int8 weights, float32 for the rest)."""
    variables = dict(sorted(_ct2_variables(model).items()))
    names, aliases = list(variables), {}
    for name in reversed(names):  # keep the alphabetically first of equal variables, alias the others
        for other in names:
            if other == name:
                break
            a, b = variables[name], variables[other]
            if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b):
                aliases[name] = other
                break
    encoded = {}
    for name, value in variables.items():
        if name not in aliases:
            encoded.update(_encode(name, value, dtype))

    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = [struct.pack("<I", 6), string("WhisperSpec"), struct.pack("<I", 3), struct.pack("<I", len(encoded))]
    for name, array in sorted(encoded.items()):
        type_id = _CT2_DTYPE_IDS["bfloat16" if dtype == "bfloat16" and array.dtype == np.int16 else array.dtype.name]
        out += [string(name), struct.pack("<B", array.ndim), struct.pack(f"<{array.ndim}I", *array.shape)]
        out += [struct.pack("<BI", type_id, array.nbytes), np.ascontiguousarray(array).tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    out += [string(a) + string(t) for a, t in sorted(aliases.items())]
    path.write_bytes(b"".join(out))


def _tokenizer_json(multilingual: bool) -> dict:
    """A byte-level BPE tokenizer.json with Whisper's special tokens at their real ids (no merges: the
    text part only needs bytes; unused vocabulary slots are placeholders)."""
    from tokenizers.pre_tokenizers import ByteLevel

    n_text = 50257 if multilingual else 50256
    alphabet = sorted(ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(alphabet + [f"<unused{i}>" for i in range(n_text - len(alphabet))])}
    langs = [f"<|{code}|>" for code in list(LANGUAGES)[:99]]
    specials = ["<|endoftext|>", "<|startoftranscript|>", *langs, "<|translate|>", "<|transcribe|>"]
    specials += ["<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    added = [
        dict(id=n_text + i, content=t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
        for i, t in enumerate(specials)
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": []},
    }  # fmt: skip


def _tiny_whisper(multilingual: bool) -> WhisperForConditionalGeneration:
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=51865 if multilingual else 51864, d_model=16, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=4, encoder_ffn_dim=24, decoder_ffn_dim=40,
        max_source_positions=1500, max_target_positions=64,
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # layer norms away from 1/0, so that only deliberately equal tensors alias
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _ct2_folder(tmp_path: Path, model, multilingual: bool, dtype: str = "float16") -> Path:
    src = tmp_path / "ct2"
    src.mkdir()
    write_ct2_whisper(model, src / "model.bin", dtype)
    tok = _tokenizer_json(multilingual)
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    eot = ids["<|endoftext|>"]
    lang_ids = [i for t, i in ids.items() if t[2:-2] in LANGUAGES]
    config = dict(alignment_heads=[[1, 0], [1, 3]], lang_ids=lang_ids, suppress_ids=[1, 2, eot + 1], suppress_ids_begin=[220, eot])
    (src / "config.json").write_text(json.dumps(config))
    (src / "tokenizer.json").write_text(json.dumps(tok))
    return src


def _rounded(model, dtype: str) -> dict[str, torch.Tensor]:
    """The model's weights as CTranslate2 stored them: rounded to ``dtype``; k_proj biases (zeros) absent."""
    torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype, torch.float32)
    return {k: v.to(torch_dtype).float() for k, v in model.state_dict().items()}


# ---- unit tests ----


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "int8"])
def test_reader_sees_every_variable_and_resolves_aliases(tmp_path, dtype):
    model = _tiny_whisper(multilingual=True)
    write_ct2_whisper(model, tmp_path / "model.bin", dtype)
    ct2 = read_ctranslate2_model(tmp_path / "model.bin")
    assert (ct2.spec, ct2.revision, ct2.binary_version) == ("WhisperSpec", 3, 6)
    assert {k for k in ct2.variables if not k.endswith("_scale")} == set(_ct2_variables(model))
    # the tied output projection is stored once, as an alias of the embeddings
    assert ct2.variables["decoder/projection/weight"] is ct2.variables["decoder/embeddings/weight"]
    state_dict, tied = whisper_state_dict(ct2)
    assert tied and "proj_out.weight" not in state_dict
    reference = _rounded(model, dtype)
    assert set(state_dict) == set(reference) - {"proj_out.weight"} - {k for k in reference if "k_proj.bias" in k}
    for name, value in state_dict.items():
        # int8: per-row weight scales, so each weight is within half a quantization step of the original
        atol = float(reference[name].abs().max()) / 254 if dtype == "int8" and name.endswith("weight") and value.ndim > 1 else 0
        torch.testing.assert_close(torch.from_numpy(value), reference[name], rtol=0, atol=atol, msg=name)


@pytest.mark.parametrize("multilingual", [True, False], ids=["multilingual", "english_only"])
def test_converted_folder_matches_the_original_model(tmp_path, multilingual):
    model = _tiny_whisper(multilingual)
    out = convert_ctranslate2_whisper(_ct2_folder(tmp_path, model, multilingual), tmp_path / "hf")
    converted, info = WhisperForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched weights
    assert converted.dtype == torch.float32 and converted.config.tie_word_embeddings

    model.load_state_dict(_rounded(model, "float16"))  # the original as model.bin holds it
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(1))
    decoder_ids = torch.tensor([[5, 7, 9, 11]])
    with torch.no_grad():
        expected = model(input_features=features, decoder_input_ids=decoder_ids).logits
        got = converted(input_features=features, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)  # a key bias of zeros adds exactly nothing

    gen = converted.generation_config
    eot = 50257 if multilingual else 50256
    assert (gen.eos_token_id, gen.decoder_start_token_id, gen.no_timestamps_token_id) == (eot, eot + 1, eot + 106)
    assert gen.suppress_tokens == [1, 2, eot + 1] and gen.begin_suppress_tokens == [220, eot]
    assert gen.alignment_heads == [[1, 0], [1, 3]] and gen.is_multilingual is multilingual
    kwargs = dict(max_new_tokens=5, do_sample=False)
    if multilingual:
        assert gen.lang_to_id["<|en|>"] == 50259 and gen.task_to_id == {"transcribe": 50359, "translate": 50358}
        kwargs.update(language="en", task="transcribe")
    else:
        assert not hasattr(gen, "lang_to_id")
    with torch.no_grad():  # Whisper's generate builds its prompt from the converted generation config
        tokens = converted.generate(features, **kwargs)
        reference = model.generate(features, generation_config=gen, **kwargs)
    assert tokens.tolist() == reference.tolist()


def test_processor_has_whisper_special_and_timestamp_tokens(tmp_path):
    model = _tiny_whisper(multilingual=True)
    out = convert_ctranslate2_whisper(_ct2_folder(tmp_path, model, True), tmp_path / "hf")
    processor = WhisperProcessor.from_pretrained(out)
    tok = processor.tokenizer
    assert len(tok) == 51865 and tok.convert_tokens_to_ids("<|0.00|>") == 50364 and tok.convert_tokens_to_ids("<|30.00|>") == 51864
    ids = [50258, 50259, 50359, 50364, *tok.encode(" hi", add_special_tokens=False), 50400, 50257]
    assert tok.decode(ids, skip_special_tokens=True) == " hi"
    assert tok.decode(ids, decode_with_timestamps=True) == "<|startoftranscript|><|en|><|transcribe|><|0.00|> hi<|0.72|><|endoftext|>"
    audio = np.zeros(16000, dtype=np.float32)
    assert processor(audio, sampling_rate=16000, return_tensors="pt").input_features.shape == (1, 80, 3000)
    assert (out / "preprocessor_config.json").is_file()


def test_bad_inputs_raise_clear_errors_and_leave_nothing(tmp_path):
    model = _tiny_whisper(multilingual=False)
    src = _ct2_folder(tmp_path, model, False)
    with pytest.raises(FileNotFoundError, match="is not a CTranslate2 Whisper folder"):
        convert_ctranslate2_whisper(tmp_path / "nothing", tmp_path / "a")
    data = (src / "model.bin").read_bytes()
    (src / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CTranslate2FormatError, match="truncated"):
        convert_ctranslate2_whisper(src, tmp_path / "b")
    header = len(struct.pack("<IH", 6, 0)) + len("WhisperSpec\0")  # binary version, spec name
    (src / "model.bin").write_bytes(struct.pack("<IH", 6, 13) + b"Wav2Vec2Spec\0" + data[header:])
    with pytest.raises(CTranslate2FormatError, match="holds a Wav2Vec2Spec, not a WhisperSpec"):
        convert_ctranslate2_whisper(src, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2"]


def test_an_existing_folder_is_never_emptied_nor_taken_for_another_conversion(tmp_path):
    """A folder that is not a conversion is refused (its files kept), unless overwrite; a conversion is kept when asked
    for again, and refused when asked for another dtype (or another source)."""
    src = _ct2_folder(tmp_path, _tiny_whisper(multilingual=False), False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="exists and is not a conversion"):
        convert_ctranslate2_whisper(src, mine)
    assert (mine / "notes.txt").read_text() == "precious"
    out = convert_ctranslate2_whisper(src, tmp_path / "out")
    written = (out / "model.safetensors").stat().st_mtime_ns
    assert convert_ctranslate2_whisper(src, out) == out and (out / "model.safetensors").stat().st_mtime_ns == written
    with pytest.raises(FileExistsError, match="holds another conversion"):
        convert_ctranslate2_whisper(src, out, dtype="float16")
    (tmp_path / "other").mkdir()
    other = _ct2_folder(tmp_path / "other", _tiny_whisper(multilingual=True), True)
    with pytest.raises(FileExistsError, match="holds another conversion"):
        convert_ctranslate2_whisper(other, out)
    (out / "qeff_conversion.json").unlink()  # an older version's conversion: its config's dtype is compared
    with pytest.raises(FileExistsError, match="holds another conversion"):
        convert_ctranslate2_whisper(src, out, dtype="float16")
    assert convert_ctranslate2_whisper(src, out, dtype="float16", overwrite=True) == out
    assert json.loads((out / "config.json").read_text())["dtype"] == "float16"


# ---- end to end on the real Whisper weights (scripts/fetch_whisper.sh) ----


def read_wav(path: Path) -> np.ndarray:
    """16-bit PCM mono WAV -> float32 samples in [-1, 1)."""
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, "16-bit mono expected"
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def _real_whisper(name: str) -> Path:
    root = Path(os.environ.get("QEFF_WHISPER_DIR", Path(sys.prefix) / "share" / "whisper"))
    folder = root / name
    if not (folder / ".complete").is_file():
        pytest.skip(f"{folder} is missing: run scripts/fetch_whisper.sh (or set QEFF_WHISPER_DIR) to fetch and convert Whisper")
    return folder


# Greedy token ids that CTranslate2 4.8.5 itself decodes (compute_type="float32") from the same log-mel
# features with the original model.bin, prompt <|startoftranscript|>(<|en|><|transcribe|>)<|notimestamps|>
# (and without <|notimestamps|> for the timestamps): the converted weights must give exactly these.
CT2_GREEDY = {
    "whisper-base": [440, 17078, 3937, 13, 440, 1702, 6292, 21026, 3012, 670, 264, 14847, 3000, 13, 639, 307, 257, 1500, 322,
                     6218, 11150, 13],
    "whisper-tiny.en": [383, 2159, 383, 370, 291, 10485, 3250, 520, 931, 7698, 1526, 15152, 72, 15196, 770, 318, 257, 1332, 286,
                        4046, 9465],
}  # fmt: skip
CT2_GREEDY_TIMESTAMPS_BASE = [50364, 440, 17078, 3937, 13, 50414, 50414, 440, 1702, 6292, 21026, 3012, 11, 370, 689, 264, 14847, 3000,
                              13, 50614, 50614, 639, 307, 257, 1500, 322, 6218, 11150, 13, 50732]  # fmt: skip


@pytest.mark.parametrize("name", ["whisper-base", "whisper-tiny.en"])
def test_real_whisper_transcribes_like_ctranslate2(name):
    folder = _real_whisper(name)
    processor = WhisperProcessor.from_pretrained(folder)
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    features = processor(read_wav(DATA / "speech16k.wav"), sampling_rate=16000, return_tensors="pt").input_features
    kwargs = dict(language="en", task="transcribe") if name == "whisper-base" else {}
    gen = model.generation_config

    def generated(**more) -> list[int]:  # without the prompt and end-of-text tokens, as CTranslate2 returns them
        with torch.no_grad():
            tokens = model.generate(features, **kwargs, **more)[0].tolist()
        return [t for t in tokens if not gen.eos_token_id <= t <= gen.no_timestamps_token_id]

    tokens = generated()
    assert tokens == CT2_GREEDY[name]
    if name == "whisper-base":  # what the data README says transformers' Whisper base reads
        text = processor.decode(tokens, skip_special_tokens=True)
        assert text == " The Low World. The quick brown fox jump over the lazy dog. This is a test on speech recognition."
        assert generated(return_timestamps=True) == CT2_GREEDY_TIMESTAMPS_BASE
