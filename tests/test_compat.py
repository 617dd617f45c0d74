"""QEfficient users' scripts, run verbatim (only the model path changed): CLI spellings from QEfficient's
cli_examples.sh, the legacy ``QEfficient.export`` / ``QEfficient.compile`` functions, keyword-style
``infer.main`` / ``execute.main``, upstream import paths, warnings for options this backend cannot
honour, the on-device sampler's arguments, and the argument differences of issue 10 (items 1-4, 12)."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

import QEfficient
from QEfficient import QEFFAutoModel, QEFFAutoModelForCausalLM, QEFFAutoModelForSequenceClassification
from QEfficient.cloud import execute, infer
from QEfficient.compile import ort_cpu
from tests.helpers import hf_greedy

PROMPT_LEN, CTX_LEN = 8, 32


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QEFF_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def fresh_warnings(monkeypatch):
    """warn_once remembers keys per process: start each warning test with none seen."""
    monkeypatch.setattr(ort_cpu, "_warned", set())


@pytest.fixture(scope="module")
def llama(tiny_model_dir) -> Path:
    return tiny_model_dir("llama")


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> Path:
    from tests.vlm_fixtures import build_llava

    return build_llava(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="module")
def compiled(llama):
    """One compiled model for the tests that only need to generate."""
    model = QEFFAutoModelForCausalLM.from_pretrained(llama)
    model.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, num_cores=1)
    return model, AutoTokenizer.from_pretrained(llama)


@pytest.fixture(scope="module")
def legacy(llama):
    """QEfficient's legacy flow, as in cloud_ai_100_exec_kv's docstring."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        base_path, onnx_model_path = QEfficient.export(model_name=str(llama))
    qpc_path = QEfficient.compile(
        onnx_path=onnx_model_path,
        qpc_path=os.path.join(base_path, "qpc"),
        num_cores=1,
        device_group=[0],
        prompt_len=PROMPT_LEN,
        ctx_len=CTX_LEN,
    )
    return base_path, onnx_model_path, qpc_path


def greedy_reference(folder: Path, prompt: str, n: int) -> list[int]:
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    return hf_greedy(hf, AutoTokenizer.from_pretrained(folder), prompt, n)


# ---- item 2: entry points and import paths ---------------------------------------------------------


def test_upstream_import_paths():
    from QEfficient import QEFFCommonLoader, cloud_ai_100_exec_kv  # noqa: F401
    from QEfficient.base.common import QEFFCommonLoader as Loader
    from QEfficient.generation.text_generation_inference import TextGeneration  # noqa: F401
    from QEfficient.generation.text_generation_inference import cloud_ai_100_exec_kv as exec_kv
    from QEfficient.transformers.models.modeling_auto import (  # noqa: F401
        QEFFAutoModel,
        QEFFAutoModelForCausalLM,
        QEFFAutoModelForImageTextToText,
        QEFFAutoModelForSequenceClassification,
    )
    from QEfficient.utils import load_hf_tokenizer  # noqa: F401
    from QEfficient.utils.constants import QEFF_MODELS_DIR, Constants

    assert Loader is QEFFCommonLoader and exec_kv is cloud_ai_100_exec_kv
    assert Constants.INPUT_STR == ["My name is"] and QEFF_MODELS_DIR
    from QEfficient.base import QEFFAutoModelForCTC, QEFFAutoModelForSpeechSeq2Seq  # noqa: F401
    from QEfficient.peft.lora import QEffAutoLoraModelForCausalLM
    from QEfficient.peft.lora.auto import QEffAutoLoraModelForCausalLM as Lora
    from QEfficient.utils.logging_utils import logger

    assert Lora is QEffAutoLoraModelForCausalLM and logger.name == "QEfficient"
    from QEfficient.exporter.export_hf_to_cloud_ai_100 import qualcomm_efficient_converter

    assert QEfficient.qualcomm_efficient_converter is qualcomm_efficient_converter
    model = object()
    assert QEfficient.transform(model) is model  # the rewrites happen at export here
    with pytest.raises(ValueError, match="form_factor='cloud'"):
        QEfficient.transform(model, form_factor="edge")


def test_export_and_compile_are_functions_and_still_packages():
    import QEfficient.compile.ort_cpu as by_import
    import QEfficient.export.onnx_export

    assert callable(QEfficient.export) and callable(QEfficient.compile)
    assert QEfficient.compile.ort_cpu is by_import and QEfficient.export.onnx_export.OPSET == 17
    from QEfficient import compile, export  # noqa: A004

    assert export is QEfficient.export and compile is QEfficient.compile


def test_legacy_export_compile_and_exec_kv(legacy, llama, compiled, capsys):
    base_path, onnx_model_path, qpc_path = legacy
    assert Path(onnx_model_path).is_file() and Path(onnx_model_path).parent == Path(base_path)
    assert qpc_path == os.path.join(base_path, "qpc", "qpcs")
    tokenizer = AutoTokenizer.from_pretrained(llama)
    exec_info = QEfficient.cloud_ai_100_exec_kv(
        tokenizer=tokenizer, qpc_path=qpc_path, prompt="Hi there!!", device_id=[0], generation_len=6
    )
    assert "===== Performance Stats =====" in capsys.readouterr().out
    # QEfficient.compile defaults to mxfp6=True: the same tokens as the model's compile(mxfp6_matmul=True)
    model = QEFFAutoModelForCausalLM.from_pretrained(llama)
    model.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, num_cores=1, mxfp6_matmul=True)
    ref = model.generate(tokenizer, ["Hi there!!"], generation_len=6, stream=False)
    assert exec_info.generated_ids[0].tolist() == ref.generated_ids[0].tolist()


def test_legacy_compile_mxint8_needs_a_float16_graph(legacy, llama, tmp_path, fresh_warnings):
    import json

    from QEfficient.cloud import export

    with pytest.warns(UserWarning, match="mxint8=True: the KV cache type is fixed when the graph is exported"):
        plain = QEfficient.compile(onnx_path=legacy[1], qpc_path=tmp_path / "a", num_cores=1, ctx_len=32, mxfp6=False, mxint8=True)
    assert json.loads((Path(plain) / "qconfig.json").read_text())["kv_dtype"] == "float32"
    half_graph = export.main(model_name=str(llama), mxint8_kv_cache=True)  # keyword style, as QEfficient's export.main
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        half = QEfficient.compile(onnx_path=half_graph, qpc_path=tmp_path / "b", num_cores=1, ctx_len=32, mxfp6=False, mxint8=True)
    assert json.loads((Path(half) / "qconfig.json").read_text())["kv_dtype"] == "float16"
    info = QEfficient.cloud_ai_100_exec_kv(AutoTokenizer.from_pretrained(llama), half, prompt="My name is", generation_len=4, stream=False)
    assert len(info.generated_ids[0][0]) == 4


def test_common_loader_picks_the_class_from_the_config(llama, llava, tmp_path):
    model = QEfficient.QEFFCommonLoader.from_pretrained(llama, full_batch_size=2)
    assert isinstance(model, QEFFAutoModelForCausalLM) and model.continuous_batching
    vlm = QEfficient.QEFFCommonLoader.from_pretrained(pretrained_model_name_or_path="unused", local_model_dir=llava)
    assert isinstance(vlm, QEfficient.QEFFAutoModelForImageTextToText)
    bert = AutoConfig.for_model("bert", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    AutoModel.from_config(bert).save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="not a causal language model.*QEFFAutoModel"):
        QEfficient.QEFFCommonLoader.from_pretrained(tmp_path / "bert")
    from QEfficient.cloud.infer import infer

    with pytest.raises(ValueError, match="not a causal language model.*QEFFAutoModel"):  # before a decoder's options
        infer(model_name=str(tmp_path / "bert"), prompt_len=64, ctx_len=32)
    with pytest.raises(OSError, match="from_pretrained"):
        QEfficient.QEFFCommonLoader()


def test_models_load_without_hub_kernels(llama, llava, tmp_path, monkeypatch):
    """transformers 5.25 swaps layers for kernels fetched from the hub unless from_pretrained is told not to:
    every model kind loads transformers' own forwards (what the export traces), even with hub kernels enabled."""
    monkeypatch.setenv("USE_HUB_KERNELS", "YES")
    bert = AutoConfig.for_model("bert", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    AutoModel.from_config(bert).save_pretrained(tmp_path / "bert")
    for model in (
        QEFFAutoModelForCausalLM.from_pretrained(llama),
        QEfficient.QEFFAutoModelForImageTextToText.from_pretrained(llava),
        QEFFAutoModel.from_pretrained(tmp_path / "bert"),
    ):
        assert model.hf_model.use_kernels is False, type(model).__name__


def test_infer_and_execute_main_with_keywords(llama, legacy, capsys):
    prompt = "My name is"
    info = infer.main(
        model_name=str(llama), num_cores=1, prompt=[prompt], prompt_len=PROMPT_LEN, ctx_len=CTX_LEN, generation_len=5, mxint8_kv_cache=False
    )
    assert info.generated_ids[0][0][:5].tolist() == greedy_reference(llama, prompt, 5)
    info = execute.main(model_name=str(llama), qpc_path=legacy[2], prompt=prompt, generation_len=5, device_group=[0])
    assert "Completion :" in capsys.readouterr().out and len(info.texts) == 1


def test_cli_examples_verbatim(llama, qeff_home, tmp_path, capsys, monkeypatch):
    """cli_examples.sh steps 1-4, the model path and sizes changed; in this process (tests/test_cli.py runs
    the same parsers as `python -m` commands)."""
    from QEfficient.cloud import compile as compile_cli
    from QEfficient.cloud import export

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # the CLIs set a one-line format
    monkeypatch.setattr(ort_cpu, "_warned", set())
    export.main(["--model_name", str(llama), "--cache_dir", str(tmp_path / "hf")])
    onnx_path = capsys.readouterr().out.strip().splitlines()[-1]
    with pytest.warns(UserWarning, match=r"QEfficient.compile\(\) options \['aic_enable_depth_first'\]"):
        compile_cli.main(
            [
                *("--onnx_path", onnx_path, "--qpc_path", str(tmp_path / "qpc_output"), "--batch_size", "1"),
                *("--prompt_len", str(PROMPT_LEN), "--ctx_len", str(CTX_LEN), "--num_cores", "1", "--device_group", "[0]"),
                *("--mxfp6", "--mos", "1", "--aic_enable_depth_first"),
            ]
        )
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path / "qpc_output" / "qpcs")
    execute.main(
        [
            *("--model_name", str(llama), "--qpc_path", str(tmp_path / "qpc_output" / "qpcs")),
            *("--prompt", "Write a short story about AI", "--device_group", "[0]", "--generation_len", "4"),
        ]
    )
    assert "Completion :" in capsys.readouterr().out
    with pytest.warns(UserWarning, match=r"compile\(\) options \['aic_enable_depth_first'\] are for Cloud AI 100"):
        infer.main(
            [
                *("--model_name", str(llama), "--batch_size", "1", "--prompt_len", str(PROMPT_LEN), "--ctx_len", str(CTX_LEN)),
                *("--num_cores", "1", "--device_group", "[0]", "--prompt", "Write a short story about AI", "--generation_len", "4"),
                *("--mxfp6", "--mxint8_kv_cache", "--mos", "1", "--aic_enable_depth_first"),
            ]
        )
    assert "Completion :" in capsys.readouterr().out


# ---- item 1: both spellings of every option -----------------------------------------------------------


@pytest.mark.parametrize("flag", ["--mxfp6", "--mxfp6_matmul", "--mxfp6-matmul"])
def test_infer_accepts_every_mxfp6_spelling(flag):
    args, extras = infer.parse_with_extras(infer.build_parser(), ["--model_name", "m", flag])
    assert args.mxfp6 and not extras


@pytest.mark.parametrize("flag", ["--mxint8", "--mxint8_kv_cache", "--mxint8-kv-cache"])
def test_infer_accepts_every_mxint8_spelling(flag):
    args, extras = infer.parse_with_extras(infer.build_parser(), ["--model_name", "m", flag])
    assert args.mxint8 and not extras


def test_execute_export_and_compile_accept_qeffs_options():
    from QEfficient.cloud import compile as compile_cli
    from QEfficient.cloud import export

    common = ["--cache_dir", "c", "--hf_token", "t", "--full_batch_size", "4"]
    args = execute.build_parser().parse_args(["--qpc_path", "q", *common, "--mxint8_kv_cache", "--device-group", "[0,1]"])
    assert args.mxint8_kv_cache and args.device_group == [0, 1] and args.full_batch_size == 4
    assert export.build_parser().parse_args(["--model_name", "m", *common, "--mxint8_kv_cache"]).mxint8_kv_cache is True
    assert export.build_parser().parse_args(["--model_name", "m", "--mxint8-kv-cache", "false"]).mxint8_kv_cache is False
    args = compile_cli.build_parser().parse_args(["--onnx_path", "o", "--qpc-path", "q", "--mxint8_kv_cache", "--mxfp6_matmul"])
    assert args.mxint8 and args.mxfp6


def test_a_compiler_option_that_names_an_infer_option_is_a_clear_error(llama):
    with pytest.raises(TypeError, match="cannot be compiler options"):
        infer.main(model_name=str(llama), num_cores=1, prompt_len=8, ctx_len=32, batch_size=1, **{"num_devices": 2})


# ---- item 3: warnings for what is not honoured; the sampler samples ---------------------------------


def test_options_not_honoured_warn_once_each(compiled, llama, fresh_warnings):
    model, tokenizer = compiled
    with pytest.warns(UserWarning, match="write_io"):
        model.generate(tokenizer, ["Hi"], generation_len=2, stream=False, write_io=True)
    with pytest.warns(UserWarning, match=r"qaic_config\['ccl_enabled'\] targets Cloud AI 100 and is ignored"):
        other = QEFFAutoModelForCausalLM.from_pretrained(llama, qaic_config={"ccl_enabled": True})
    with pytest.warns(UserWarning, match=r"qaic_config\['include_sampeler'\] is not a key this backend knows.* mean 'include_sampler'"):
        QEFFAutoModelForCausalLM.from_pretrained(llama, qaic_config={"include_sampeler": True})  # a misspelling, named
    with pytest.warns(UserWarning, match=r"qaic_config\['xyz'\] is not a key this backend knows.* keys it knows are \['blocking_mode'"):
        QEFFAutoModelForCausalLM.from_pretrained(llama, qaic_config={"xyz": 1})
    with pytest.warns(UserWarning, match="use_onnx_subfunctions"):
        other.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, num_cores=1, use_onnx_subfunctions=True)
    with pytest.raises(ValueError, match="stream must be True or False, got 'False'"):
        model.generate(tokenizer, ["Hi"], generation_len=2, stream="False")
    with pytest.warns(UserWarning, match="compile\\(\\) has no option 'ctx_length': did you mean 'ctx_len'\\?"):
        other.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, num_cores=1, ctx_length=64)  # (named a Cloud AI 100 option)
    with pytest.warns(UserWarning, match=r"options \['aic_num_cores'\] are for Cloud AI 100"):  # not num_cores misspelt
        other.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, num_cores=1, aic_num_cores=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: silent
        model.generate(tokenizer, ["Hi"], generation_len=2, stream=False, write_io=True)
        other.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, num_cores=1, use_onnx_subfunctions=True)
        other.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, num_cores=1, use_onnx_subfunctions=False)  # off: nothing to say


def sampler_params(batch: int = 1, **overrides) -> dict:
    values = {"repetition_penalties": 1.9, "presence_penalties": 0.0, "temperatures": 2.0, "top_ks": 54, "top_ps": 0.89, "min_ps": 0.0}
    values.update(overrides)
    params = {k: np.array(v, dtype=np.int32 if k == "top_ks" else np.float32).repeat(batch).reshape(-1, 1) for k, v in values.items()}
    params["random_numbers"] = np.tile(np.random.default_rng(26).uniform(size=512), (batch, 1)).astype(np.float32)
    return params


def test_include_sampler_samples(llama, compiled):
    from QEfficient.generation.text_generation_inference import sampling_from_qaic_params

    greedy_model, tokenizer = compiled
    qaic_config = {"include_sampler": True, "return_pdfs": False, "max_top_k_ids": 512}
    model = QEFFAutoModelForCausalLM.from_pretrained(llama, qaic_config=qaic_config)
    model.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, num_cores=1)
    prompts = ["My name is"]
    run = lambda **kw: model.generate(tokenizer, prompts, generation_len=12, stream=False, **kw).generated_ids[0][0].tolist()  # noqa: E731
    sampled = run(include_sampler=True, sampling_params=sampler_params())
    assert sampled == run(sampling_params=sampler_params())  # the same random numbers: the same tokens
    assert sampled != greedy_model.generate(tokenizer, prompts, generation_len=12, stream=False).generated_ids[0][0].tolist()
    mapped = sampling_from_qaic_params(sampler_params())
    assert (mapped.temperature, mapped.top_k, mapped.repetition_penalty) == (2.0, 54, pytest.approx(1.9))
    assert sampled == run(temperature=2.0, top_k=54, top_p=mapped.top_p, repetition_penalty=mapped.repetition_penalty, seed=mapped.seed)
    with pytest.raises(ValueError, match="sampling_params"):
        run(include_sampler=True)
    penalised = sampling_from_qaic_params(sampler_params(presence_penalties=0.8, min_ps=0.1))
    assert (penalised.presence_penalty, penalised.min_p) == (pytest.approx(0.8), pytest.approx(0.1))
    assert len(run(sampling_params=sampler_params(presence_penalties=0.8, min_ps=0.1))) == 12
    rows = sampler_params(2)
    rows["temperatures"][1] = 0.5
    with pytest.raises(ValueError, match="arrays have 2 rows; this model runs 1 batch rows"):
        run(sampling_params=rows)


def test_sampling_params_per_row(llama, compiled):
    """QEfficient's sampler inputs are [batch, 1] arrays: rows that differ sample each with their own parameters,
    batch row i (or continuous-batching slot i, where prompt i starts) with row i. Greedy rows with their own repetition
    penalty are transformers' greedy with that penalty, token for token; a sampled row beside a greedy one gives the
    tokens the same parameters and random numbers give on their own."""
    single, tokenizer = compiled
    hf = AutoModelForCausalLM.from_pretrained(llama).eval()
    prompts = ["My name is", "The sky is"]
    expected = []
    for prompt, penalty in zip(prompts, (1.0, 1.9)):
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = hf.generate(ids, max_new_tokens=8, do_sample=False, repetition_penalty=penalty)
        expected.append(out[0, ids.shape[1] :].tolist())
    penalties = {"temperatures": np.zeros((2, 1), np.float32), "repetition_penalties": np.array([[1.0], [1.9]], np.float32)}
    static = QEFFAutoModelForCausalLM.from_pretrained(llama, qaic_config={"include_sampler": True})
    static.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, batch_size=2, num_cores=1)
    info = static.generate(tokenizer, prompts, generation_len=8, stream=False, sampling_params=penalties)
    assert [row[:8].tolist() for row in info.generated_ids[0]] == expected
    batching = QEFFAutoModelForCausalLM.from_pretrained(llama, continuous_batching=True, qaic_config={"include_sampler": True})
    batching.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, full_batch_size=2, num_cores=1)
    info = batching.generate(tokenizer, prompts, generation_len=8, stream=False, sampling_params=penalties)
    assert [list(ids[:8]) for ids in info.generated_ids] == expected  # prompt i starts in slot i

    mixed = sampler_params(2)
    mixed["temperatures"][0], mixed["repetition_penalties"][0] = 0.0, 1.0
    mixed["random_numbers"] = np.random.default_rng(3).uniform(size=(2, 512)).astype(np.float32)
    rows = static.generate(tokenizer, prompts, generation_len=8, stream=False, sampling_params=mixed).generated_ids[0]
    assert rows[0][:8].tolist() == expected[0]
    alone = {key: value[1:] for key, value in mixed.items()}  # row 1's parameters and random numbers, batch 1
    sampled = single.generate(tokenizer, prompts[1:], generation_len=8, stream=False, sampling_params=alone).generated_ids[0][0]
    assert rows[1][:8].tolist() == sampled[:8].tolist()
    assert sampled[:8].tolist() != hf_greedy(hf, tokenizer, prompts[1], 8)

    with pytest.raises(ValueError, match="arrays have 3 rows; this model runs 2 continuous-batching slots"):
        batching.generate(tokenizer, prompts, sampling_params={"temperatures": np.array([[0.0], [0.5], [1.0]], np.float32)})
    with pytest.raises(ValueError, match="different numbers of rows \\(temperatures 2, top_ks 2, repetition_penalties 3\\)"):
        uneven = {**penalties, "top_ks": np.ones((2, 1), np.int32), "repetition_penalties": np.ones((3, 1))}
        static.generate(tokenizer, prompts, sampling_params=uneven)


def test_guided_decoding_token_bitmasks(llama, compiled):
    """QEfficient's guided decoding: ``include_guided_decoding=True`` with ``sampling_params["token_bitmasks"]`` (bool
    [rows, vocab], one row per batch row or continuous-batching slot): every token is the greedy (or sampled) choice
    among the tokens its row allows, transformers' greedy under the same mask token for token."""
    from transformers import AutoModelForCausalLM, LogitsProcessor, LogitsProcessorList

    _, tokenizer = compiled
    vocab = AutoConfig.from_pretrained(llama).vocab_size
    rng = np.random.default_rng(5)
    masks = rng.random((2, vocab)) < 0.3  # a different set of tokens for each row
    hf = AutoModelForCausalLM.from_pretrained(llama).eval()

    class Only(LogitsProcessor):
        def __init__(self, allowed):
            self.allowed = torch.as_tensor(allowed)

        def __call__(self, input_ids, scores):
            return scores.masked_fill(~self.allowed, -float("inf"))

    prompts = ["My name is", "The sky is"]
    expected = []
    for prompt, allowed in zip(prompts, masks):
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = hf.generate(ids, max_new_tokens=8, do_sample=False, logits_processor=LogitsProcessorList([Only(allowed)]))
        expected.append(out[0, ids.shape[1] :].tolist())
    greedy = {"temperatures": np.zeros((2, 1), np.float32), "token_bitmasks": masks}
    qaic_config = {"include_sampler": True, "include_guided_decoding": True}
    static = QEFFAutoModelForCausalLM.from_pretrained(llama, qaic_config=qaic_config)
    static.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, batch_size=2, num_cores=1)
    info = static.generate(tokenizer, prompts, generation_len=8, stream=False, include_guided_decoding=True, sampling_params=greedy)
    assert [row[:8].tolist() for row in info.generated_ids[0]] == expected
    batching = QEFFAutoModelForCausalLM.from_pretrained(llama, continuous_batching=True, qaic_config=qaic_config)
    batching.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, full_batch_size=2, num_cores=1)
    info = batching.generate(tokenizer, prompts, generation_len=8, stream=False, include_guided_decoding=True, sampling_params=greedy)
    assert [list(ids[:8]) for ids in info.generated_ids] == expected  # prompt i starts in slot i
    sampled = {**sampler_params(1, repetition_penalties=1.0), "token_bitmasks": masks[:1]}  # one row for every row
    info = static.generate(tokenizer, prompts, generation_len=8, stream=False, include_guided_decoding=True, sampling_params=sampled)
    assert masks[0][np.asarray(info.generated_ids[0])[:, :8]].all()

    run = lambda **kw: static.generate(tokenizer, prompts, generation_len=2, stream=False, include_sampler=True, **kw)  # noqa: E731
    with pytest.raises(ValueError, match="needs include_sampler=True and sampling_params\\['token_bitmasks'\\]"):
        run(include_guided_decoding=True, sampling_params=sampler_params(2))
    with pytest.raises(ValueError, match="apply with include_guided_decoding=True"):  # qaic_config's default, turned off
        run(include_guided_decoding=False, sampling_params=greedy)
    info = static.generate(tokenizer, prompts, generation_len=8, stream=False, sampling_params=greedy)  # on: qaic_config's
    assert [row[:8].tolist() for row in info.generated_ids[0]] == expected
    with pytest.raises(ValueError, match="rows \\[1\\] allow no token"):
        run(include_guided_decoding=True, sampling_params={"token_bitmasks": np.stack([masks[0], np.zeros(vocab, bool)])})
    with pytest.raises(ValueError, match="tokens wide; this model's logits are"):
        run(include_guided_decoding=True, sampling_params={"token_bitmasks": masks[:, :-1]})
    from QEfficient.generation.sampling import SamplingParams, TokenChooser

    with pytest.raises(ValueError, match="has 2 rows; this generation needs 3"):  # a third slot
        TokenChooser(SamplingParams(allowed_tokens=masks), 1, vocab, first_row=2)
    with pytest.raises(ValueError, match="its rows are the 2 slots'"):  # one mask per prompt, more prompts than slots
        batching.generate(tokenizer, prompts * 2, include_guided_decoding=True, sampling_params={"token_bitmasks": np.tile(masks, (2, 1))})
    with pytest.raises(ValueError, match="sampling_params and include_guided_decoding"):
        static.generate(tokenizer, prompts, prompt_lookup_num_tokens=2, include_guided_decoding=True, sampling_params=greedy)


def test_text_generation_class(legacy, llama):
    from QEfficient.generation.text_generation_inference import TextGeneration

    tokenizer = AutoTokenizer.from_pretrained(llama)
    generator = TextGeneration(tokenizer=tokenizer, qpc_path=legacy[2], ctx_len=CTX_LEN)
    info = generator.generate(prompt=["My name is"], generation_len=5, stream=False)
    assert generator.perf_metrics is info.perf_metrics
    streamed = list(generator.generate_stream_tokens(["My name is"], generation_len=5))
    assert 1 <= len(streamed) <= 5 and all(isinstance(step, list) and len(step) == 1 for step in streamed)
    assert generator.perf_metrics is not info.perf_metrics  # the streamed run's own timings


def test_stream_tokens_of_a_batch(llama):
    """TextGeneration.generate_stream_tokens on a batch_size=2 artifact: per step, each row's new token (HF's greedy
    tokens, one by one), "" for a row that has ended; one prompt fills both rows."""
    from QEfficient.generation.text_generation_inference import TextGeneration

    tokenizer = AutoTokenizer.from_pretrained(llama)
    model = QEFFAutoModelForCausalLM.from_pretrained(llama)
    qpc = model.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, batch_size=2, num_cores=1)
    hf = AutoModelForCausalLM.from_pretrained(llama).eval()
    prompts = ["My name is", "The sky is"]
    generator = TextGeneration(tokenizer=tokenizer, qpc_path=qpc, ctx_len=CTX_LEN)
    streamed = list(generator.generate_stream_tokens(prompts, generation_len=6))
    assert all(isinstance(step, list) and len(step) == 2 for step in streamed)
    for row, prompt in enumerate(prompts):
        expected = [tokenizer.decode([t], skip_special_tokens=True) for t in hf_greedy(hf, tokenizer, prompt, 6)]
        assert [step[row] for step in streamed][: len(expected)] == expected
    alone = list(generator.generate_stream_tokens(prompts[:1], generation_len=6))
    assert [step[0] for step in alone] == [step[1] for step in alone] == [step[0] for step in streamed]
    with pytest.raises(ValueError, match="pass 1 to 2 prompts"):
        next(generator.generate_stream_tokens(prompts * 2, generation_len=2))
    with pytest.raises(ValueError, match="No prompts given"):
        next(generator.generate_stream_tokens([], generation_len=2))


def test_is_tlm_runs_a_speculative_target_artifact(llama, compiled, legacy):
    """``is_tlm=True`` (QEfficient's flag for a speculative target's artifact): cloud_ai_100_exec_kv and TextGeneration
    generate on it the tokens the plain artifact gives; on an artifact that is not a target it is refused."""
    from QEfficient.generation.text_generation_inference import TextGeneration, cloud_ai_100_exec_kv

    model, tokenizer = compiled
    target = QEFFAutoModelForCausalLM.from_pretrained(llama, qaic_config={"speculative_model_type": "target"})
    tlm_qpc = target.compile(prefill_seq_len=PROMPT_LEN, ctx_len=CTX_LEN, num_cores=1, num_speculative_tokens=3)
    prompts = ["My name is", "The sun rises"]
    plain = cloud_ai_100_exec_kv(tokenizer, model.qpc_path, prompt=prompts, generation_len=8, stream=False)
    tlm = cloud_ai_100_exec_kv(tokenizer, tlm_qpc, prompt=prompts, generation_len=8, stream=False, is_tlm=True)
    assert np.array_equal(np.asarray(tlm.generated_ids), np.asarray(plain.generated_ids))
    info = TextGeneration(tokenizer, tlm_qpc, ctx_len=CTX_LEN, is_tlm=True).generate(prompts, generation_len=8, stream=False)
    assert info.generated_texts == plain.generated_texts
    with pytest.raises(ValueError, match="is not a speculative target's artifact"):
        cloud_ai_100_exec_kv(tokenizer, model.qpc_path, prompt=prompts, generation_len=8, stream=False, is_tlm=True)
    with pytest.raises(ValueError, match="is not a speculative target's artifact"):
        TextGeneration(tokenizer, legacy[2], is_tlm=True)


# ---- item 4: argument differences ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert_dirs(tmp_path_factory, tokenizer_dir):
    config = AutoConfig.for_model("bert", vocab_size=320, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    folders = {}
    for head, auto in (("base", AutoModel), ("cls", AutoModelForSequenceClassification)):
        folders[head] = tmp_path_factory.mktemp(f"bert-{head}")
        torch.manual_seed(3)
        auto.from_config(config).save_pretrained(folders[head])
        AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folders[head])
    return folders


def test_encoder_arguments_as_upstream(bert_dirs, fresh_warnings):
    model = QEFFAutoModel.from_pretrained(bert_dirs["base"], "mean")  # pooling given positionally
    assert model.pooling == "mean"
    assert model.get_model_config["model_type"] == "bert"  # a property
    model.compile(seq_len=16, num_cores=1)
    enc = AutoTokenizer.from_pretrained(bert_dirs["base"])(["My name is"], return_tensors="pt")
    with pytest.warns(UserWarning, match="write_io"):
        out = model.generate(enc, write_io=True)["output"]
    assert isinstance(out, np.ndarray) and out.shape == (1, 32)
    classifier = QEFFAutoModelForSequenceClassification.from_pretrained(bert_dirs["cls"])
    classifier.compile(seq_len=16, num_cores=1)
    logits = classifier.generate(enc)["logits"]
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 2)


def test_text_generation_inference_helpers(compiled, tmp_path):
    """QEfficient's helpers of QEfficient.generation.text_generation_inference, as its scripts call them."""
    from QEfficient.generation.text_generation_inference import (
        calculate_latency,
        fix_prompts,
        get_compilation_dims,
        get_input_prompts,
        print_latency_stats_kv,  # noqa: F401
    )

    model, _ = compiled
    assert get_compilation_dims(model.qpc_path) == (1, CTX_LEN, None)
    assert fix_prompts(["a", "b", "c"], 2) == ["a", "b"]  # the last batch, not full, dropped
    assert fix_prompts(["a"], 3) == ["a", "a", "a"] and fix_prompts(["a", "b", "c"], 1, full_batch_size=2) == ["a", "b", "c"]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(" My name is \nThe sky is\n")
    assert get_input_prompts("x", None) == ["x"] and get_input_prompts("x", str(prompts)) == ["My name is", "The sky is"]
    with pytest.raises(ValueError, match="at least one"):
        get_input_prompts(None, None)
    assert calculate_latency(10, 1.0, 0.5, 3.0) == (0.5, 5.0, 4.0, 2.5)


def test_qaic_inference_session_drives_prefill_and_decode(compiled):
    """QEfficient's QAICInferenceSession as its low-level scripts use it: a prefill chunk padded with position -1, then
    decode steps that pass the prefill's cache once and skip it after (the session keeps it): the greedy tokens are the
    model's own generate()'s."""
    from QEfficient.generation.cloud_infer import QAICInferenceSession

    model, tokenizer = compiled
    expected = model.generate(tokenizer, ["My name is"], generation_len=6, stream=False).generated_ids[0][0][:6].tolist()
    prefill = QAICInferenceSession(model.qpc_path)
    ids = tokenizer("My name is")["input_ids"]
    pad = PROMPT_LEN - len(ids)
    out = prefill.run(
        {
            "input_ids": np.array([ids + [0] * pad], dtype=np.int64),
            "position_ids": np.array([list(range(len(ids))) + [-1] * pad], dtype=np.int64),
        }
    )
    tokens, position = [int(out["logits"].argmax())], len(ids)
    past = [name for name in prefill.input_names if name.startswith("past_")]
    decode = QAICInferenceSession(model.qpc_path)
    first = {"input_ids": np.array([[tokens[-1]]]), "position_ids": np.array([[position]])}
    out = decode.run({**first, **{name: out[f"{name}_RetainedState"] for name in past}})  # the prefill's cache, once
    decode.skip_buffers([name for name in decode.input_names + decode.output_names if name.startswith("past_")])
    while len(tokens) < 6:
        tokens.append(int(out["logits"].argmax()))
        position += 1
        out = decode.run({"input_ids": np.array([[tokens[-1]]]), "position_ids": np.array([[position]])})
        assert set(out) == {"logits"}  # skipped outputs are not returned
    assert tokens == expected
    decode.set_buffers({"past_key.0_RetainedState": np.zeros(1)})  # an output's placeholder: returned again
    assert "past_key.0_RetainedState" in decode.run({"input_ids": np.array([[tokens[-1]]]), "position_ids": np.array([[position + 1]])})
    with pytest.raises(ValueError, match="'position_ids' was never given"):
        QAICInferenceSession(model.qpc_path).run({"input_ids": np.array([[1]])})


def test_kv_offload_is_taken_and_a_model_prints_as_upstream_s(llama):
    """QEFFAutoModelForCausalLM.from_pretrained takes QEfficient's kv_offload (an image-text switch) and drops it, as
    QEfficient does; print(model) shows the class and the transformers model, as QEfficient's quick start prints it."""
    model = QEFFAutoModelForCausalLM.from_pretrained(llama, kv_offload=False)
    assert repr(model).startswith("QEFFAutoModelForCausalLM\nLlamaForCausalLM(")


def test_causal_lm_get_model_config_is_a_property(compiled):
    assert compiled[0].get_model_config["model_type"] == "llama"


def test_image_text_kv_offload_default_is_upstreams(llava):
    import inspect

    assert inspect.signature(QEfficient.QEFFAutoModelForImageTextToText.from_pretrained).parameters["kv_offload"].default is None
    assert QEfficient.QEFFAutoModelForImageTextToText.from_pretrained(llava).kv_offload is False


def test_image_text_compile_defaults_fit_an_image(llava):
    """QEfficient's image-text compile() without lengths (its ctx_len=None picks one per model): the context holds the
    image's tokens and text, and an image prompt generates, also through qeff_model.model.prepare_inputs_for_generation
    (QEfficient's Qwen-VL scripts' step)."""
    from transformers import AutoConfig, AutoProcessor

    from QEfficient.compile.ort_cpu import read_artifact

    model = QEfficient.QEFFAutoModelForImageTextToText.from_pretrained(llava)
    model.compile(num_cores=1)
    ctx_len = read_artifact(model.qpc_paths)["compile_params"]["ctx_len"]
    assert ctx_len == min(1024, AutoConfig.from_pretrained(llava).text_config.max_position_embeddings)
    processor = AutoProcessor.from_pretrained(llava)
    picture = Image.fromarray((np.random.default_rng(1).random((40, 50, 3)) * 255).astype(np.uint8))
    inputs = processor(images=picture, text="<image> a photo of", return_tensors="pt")
    # QEfficient's Qwen-VL scripts prepare the inputs through qeff_model.model first; generate computes the positions
    inputs = model.model.prepare_inputs_for_generation(inputs=inputs, prefill_seq_len=128, batch_size=1)
    assert model.model.config is model.hf_model.config and callable(model.model)
    assert len(model.generate(inputs=inputs, generation_len=4, stream=False).generated_ids[0][0]) >= 1


def test_image_text_include_sampler_samples(llava):
    from transformers import AutoProcessor

    model = QEfficient.QEFFAutoModelForImageTextToText.from_pretrained(llava, kv_offload=True, qaic_config={"include_sampler": True})
    model.compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    processor = AutoProcessor.from_pretrained(llava)
    picture = Image.fromarray((np.random.default_rng(1).random((40, 50, 3)) * 255).astype(np.uint8))
    inputs = processor(images=picture, text="<image> a photo of", return_tensors="pt")
    run = lambda **kw: model.generate(inputs=inputs, generation_len=10, stream=False, **kw).generated_ids[0][0].tolist()  # noqa: E731
    sampled = run(sampling_params=sampler_params())
    assert sampled == run(sampling_params=sampler_params())
    assert sampled != run(include_sampler=False)
    with pytest.raises(ValueError, match="sampling_params"):
        run()


@pytest.fixture
def served_png(tmp_path):
    """A PNG on disk and served by http.server on loopback; yields (path, url)."""
    path = tmp_path / "cat.png"
    Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)).save(path)
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: quiet(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path, f"http://127.0.0.1:{server.server_address[1]}/cat.png"
    server.shutdown()
    server.server_close()


def test_image_urls(served_png, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    path, url = served_png
    expected = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(np.asarray(infer.load_image(image_url=url)), expected)
    assert np.array_equal(np.asarray(infer.load_image(image_url=path.as_uri())), expected)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ValueError, match="cannot fetch the image at 'http://127.0.0.1:.*--image_path"):
        infer.load_image(image_url=f"http://127.0.0.1:{closed}/cat.png")
    with pytest.raises(ValueError, match="cannot fetch the image.*HTTP 404"):
        infer.load_image(image_url=url.replace("cat.png", "dog.png"))
    with pytest.raises(ValueError, match="http"):
        infer.load_image(image_url="ftp://example.com/cat.png")


def test_infer_with_an_image_url_runs_the_vision_language_model(served_png, llava, monkeypatch, capsys):
    for var in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    info = infer.main(
        model_name=str(llava),
        num_cores=1,
        prompt=["What is in the image?"],
        prompt_len=8,
        ctx_len=64,
        generation_len=3,
        image_url=served_png[1],
    )
    assert len(info.texts) == 1 and "Completion :" in capsys.readouterr().out


# ---- item 12 (first part): no tokenizer fails before the export -------------------------------------


def test_a_model_folder_without_a_tokenizer_fails_before_the_export(llama, tmp_path, qeff_home, capsys, monkeypatch):
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # the CLI sets a one-line format
    folder = tmp_path / "no-tokenizer-llama"
    shutil.copytree(llama, folder, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens*"))
    from QEfficient.utils.tokenizer import TokenizerNotFoundError

    with pytest.raises(TokenizerNotFoundError, match="No tokenizer in .*no-tokenizer-llama.*tokenizer.json"):
        infer.main(model_name=str(folder), num_cores=1, prompt_len=8, ctx_len=32)
    assert not any(p.name.startswith(folder.name) for p in qeff_home.rglob("*")), "an export was written"
    with pytest.raises(TokenizerNotFoundError):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            QEfficient.export(model_name=str(folder))
    with pytest.raises(SystemExit) as exited:  # the command line: one clear line
        infer.main(["--model_name", str(folder), "--num_cores", "1"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "error: No tokenizer in" in err and "pip install" not in err


def test_utils_helpers_run_qeffs_compile_once_flow(llama, tmp_path):
    """QEfficient's examples/performance/cpp_execution flow: the artifact's path from the compile options, built
    only when qpc_exists says it is not there, then generation from it; and its other QEfficient.utils helpers."""
    from QEfficient.cloud.export import get_onnx_path_and_setup_customIO
    from QEfficient.utils import (
        check_and_assign_cache_dir,
        create_json,
        get_num_layers_from_config,
        get_padding_shape_from_config,
        get_qpc_dir_path,
        hf_download,
        load_hf_tokenizer,
        load_json,
        onnx_exists,
        padding_check_and_fix,
        qpc_exists,
    )
    from QEfficient.utils._utils import login_and_download_hf_lm

    assert check_and_assign_cache_dir(str(llama), "/elsewhere") is None and check_and_assign_cache_dir(None, "c") == "c"
    qpc_dir_path = get_qpc_dir_path("acme/tiny", 1, -1, 1, PROMPT_LEN, CTX_LEN, False, False, [0], None)
    assert qpc_dir_path.endswith(f"acme/tiny/qpc_1cores_1bs_{PROMPT_LEN}pl_{CTX_LEN}cl_-1mos_1devices_fp16/qpcs")
    assert not qpc_exists(qpc_dir_path)
    onnx_path = get_onnx_path_and_setup_customIO(str(llama))
    assert Path(onnx_path).is_file()
    built = QEfficient.compile(
        onnx_path=onnx_path, qpc_path=os.path.dirname(qpc_dir_path), num_cores=1, prompt_len=PROMPT_LEN, ctx_len=CTX_LEN, mxfp6=False
    )
    assert built == qpc_dir_path and qpc_exists(qpc_dir_path)
    tokenizer = load_hf_tokenizer(str(llama))
    info = QEfficient.cloud_ai_100_exec_kv(tokenizer, qpc_dir_path, prompt=["My name is"], generation_len=6, stream=False)
    hf = AutoModelForCausalLM.from_pretrained(llama).eval()
    assert list(info.generated_ids[0][0][:6]) == hf_greedy(hf, tokenizer, "My name is", 6)

    config = AutoConfig.from_pretrained(llama)
    assert get_num_layers_from_config(config) == config.num_hidden_layers
    assert get_num_layers_from_config(AutoConfig.for_model("mamba", num_hidden_layers=4)) == 4  # QEfficient's reading
    head_dim = config.hidden_size // config.num_attention_heads
    assert get_padding_shape_from_config(config, 2, 16) == [2, config.num_key_value_heads, 16, head_dim]
    exists, onnx_dir, found = onnx_exists("acme/tiny", None)
    assert not exists and found is None and onnx_dir.endswith("onnx_acme_tiny_without_fbs")
    QEFFAutoModelForCausalLM.from_pretrained(llama).export(onnx_dir)
    exists, _, found = onnx_exists("acme/tiny", None)
    assert exists and Path(found).is_file() and Path(found).parent.name.startswith("onnx_acme_tiny_without_fbs")
    assert hf_download(str(llama)) == login_and_download_hf_lm(str(llama)) == str(llama)
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        hf_download("acme/not-cached", cache_dir=str(tmp_path))
    tokenizer.padding_side, tokenizer.pad_token = "left", None
    padding_check_and_fix(tokenizer)
    assert tokenizer.padding_side == "right" and tokenizer.pad_token_id == tokenizer.eos_token_id
    create_json(tmp_path / "params.json", {"ctx_len": CTX_LEN, "ids": np.arange(2), "kinds": {"b", "a"}})
    assert load_json(tmp_path / "params.json") == {"ctx_len": CTX_LEN, "ids": [0, 1], "kinds": ["a", "b"]}
    with pytest.raises(ValueError):
        create_json(tmp_path / "nan.json", {"x": float("nan")})  # JSON has no NaN
    with pytest.raises(ValueError, match="Failed to load json"):
        load_json(tmp_path / "missing.json")


def test_image_text_skip_vision_and_skip_lang(llava, fresh_warnings):
    """QEfficient's compile(skip_vision=True / skip_lang=True) for kv_offload=True's two graphs: only the language graph
    (text prompts, as the full build answers them; an image is a clear error; from_artifact reads it) or only the vision
    graph (generate says what is missing); both is QEfficient's error; with one graph, a warning and the whole build."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(llava)
    text_only = processor(text="a photo of", return_tensors="pt")
    full = QEfficient.QEFFAutoModelForImageTextToText.from_pretrained(llava, kv_offload=True)
    full.compile(num_cores=1, ctx_len=256)
    expected = full.generate(inputs=text_only, generation_len=4, stream=False).generated_ids[0][0]

    model = QEfficient.QEFFAutoModelForImageTextToText.from_pretrained(llava, kv_offload=True)
    with pytest.raises(ValueError, match="at least one of 'skip_lang' or 'skip_vision'"):
        model.compile(num_cores=1, ctx_len=256, skip_vision=True, skip_lang=True)
    paths = model.compile(num_cores=1, ctx_len=256, skip_vision=True)
    assert set(paths) == {"lang_qpc_path"} and paths["lang_qpc_path"] != full.qpc_paths["lang_qpc_path"]
    np.testing.assert_array_equal(model.generate(inputs=text_only, generation_len=4, stream=False).generated_ids[0][0], expected)
    picture = Image.fromarray((np.random.default_rng(1).random((40, 50, 3)) * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="skip_vision=True"):
        model.generate(inputs=processor(images=picture, text="<image> a photo of", return_tensors="pt"), generation_len=4, stream=False)
    loaded = QEfficient.QEFFAutoModelForImageTextToText.from_artifact(paths["lang_qpc_path"])
    np.testing.assert_array_equal(loaded.generate(inputs=text_only, generation_len=4, stream=False).generated_ids[0][0], expected)

    paths = model.compile(num_cores=1, ctx_len=256, skip_lang=True)
    assert set(paths) == {"vision_qpc_path"} and paths["vision_qpc_path"] == full.qpc_paths["vision_qpc_path"]
    with pytest.raises(TypeError, match="skip_lang=True"):
        model.generate(inputs=text_only, generation_len=4, stream=False)

    one = QEfficient.QEFFAutoModelForImageTextToText.from_pretrained(llava)
    with pytest.warns(UserWarning, match="one graph"):
        assert Path(one.compile(num_cores=1, ctx_len=256, skip_vision=True)).is_dir()


def test_legacy_compile_and_artifact_paths_that_are_not_what_they_should_be(compiled, legacy, tmp_path):
    """compile() refuses a file that is not ONNX, and a qpc_path whose qpcs is a real folder before building anything;
    an export's folder given as an artifact names the artifacts in it."""
    from QEfficient.compile.ort_cpu import read_artifact

    junk = tmp_path / "junk.onnx"
    junk.write_text("not a graph")
    with pytest.raises(ValueError, match="is not an ONNX file"):
        QEfficient.compile(onnx_path=junk, qpc_path=tmp_path / "a", num_cores=1, ctx_len=CTX_LEN)
    (tmp_path / "b" / "qpcs").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="is not a link this function made"):
        QEfficient.compile(onnx_path=legacy[1], qpc_path=tmp_path / "b", num_cores=1, prompt_len=PROMPT_LEN, ctx_len=CTX_LEN)
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["qpcs"]  # nothing built, no link left behind
    export_dir = Path(compiled[0].qpc_path).parent
    with pytest.raises(FileNotFoundError, match=f"Its compiled artifacts: .*{Path(compiled[0].qpc_path).name}"):
        read_artifact(export_dir)
