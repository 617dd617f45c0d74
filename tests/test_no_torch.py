"""No torch at run time: generating from a compiled artifact, ``cloud.execute`` and ``serve --qpc_path``
import neither torch nor transformers' model code, and give what today's path gives.

Each run-time check is a real subprocess started with ``python -X importtime``, whose stderr lists
every module the process imported; the run-time tokenizer is checked against transformers' own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jinja2
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from QEfficient import QEFFAutoModelForCausalLM
from QEfficient.runtime.tokenizer import RuntimeTokenizer, load_tokenizer, save_artifact_tokenizer
from tests.helpers import free_port, hf_greedy
from tests.loopback import loopback_http

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["My name is", "The sun rises over the"]
# bos/eos variables, add_generation_prompt, raise_exception, loop variables and tojson, as real templates use them
TINY_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('Unknown role: ' + m['role']) }}{% endif %}"
    "{% if loop.first and m['role'] != 'system' %}<|system|>default{{ eos_token }}\n{% endif %}"
    "<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if tools %}tools: {{ tools | tojson }}\n{% endif %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi! Ça va? 🤖 <s> 2+2"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "  spaces  and\nnewlines "},
    ],
]
TEXTS = ["Hello world", " leading space", "émoji 🤖 and </s> in text", "it 's a test , isn't it ?", ""]


def imported(importtime_stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reported."""
    return {line.rsplit("|", 1)[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


def heavy_imports(importtime_stderr: str) -> list[str]:
    """torch and transformers' model packages among the modules ``python -X importtime`` reported."""
    names = imported(importtime_stderr)
    return sorted(n for n in names if n.split(".")[0] == "torch" or n.startswith(("transformers.models.", "transformers.modeling_utils")))


def run_python(*args: str, home: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "QEFF_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tmp_path_factory):
    """A tiny llama with a chat template, its transformers tokenizer and model."""
    folder = tmp_path_factory.mktemp("no-torch-llama")
    src = tiny_model_dir("llama")
    for f in src.iterdir():
        if f.is_file():
            (folder / f.name).write_bytes(f.read_bytes())
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = TINY_TEMPLATE
    tok.save_pretrained(folder)
    return folder, AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's real tokenizer (the GGUF conversion the other SmolLM2 tests share)."""
    from QEfficient.loading.hf_loader import ModelNotFoundError, _convert_gguf, default_model_path

    try:
        gguf = default_model_path()
    except ModelNotFoundError as err:
        pytest.skip(str(err))
    return AutoTokenizer.from_pretrained(_convert_gguf(gguf.parent, gguf.name))


def check_same_as_transformers(hf, tmp_path: Path) -> None:
    save_artifact_tokenizer(hf, tmp_path)  # what compile() writes into the artifact
    for ours in (load_tokenizer(tmp_path), RuntimeTokenizer.from_pretrained(hf.name_or_path)):
        for conv in CONVERSATIONS:
            for gen in (False, True):
                expected = hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
                assert ours.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen) == expected
                assert (
                    ours.apply_chat_template(conv, add_generation_prompt=gen)["input_ids"]
                    == hf.apply_chat_template(conv, add_generation_prompt=gen)["input_ids"]
                )
        assert ours.apply_chat_template(CONVERSATIONS, tokenize=False) == hf.apply_chat_template(CONVERSATIONS, tokenize=False)
        assert ours(TEXTS)["input_ids"] == hf(TEXTS)["input_ids"]
        assert ours(TEXTS[0])["input_ids"] == hf(TEXTS[0])["input_ids"]
        for side in ("right", "left"):
            ours.padding_side = hf.padding_side = side
            padded, expected = ours(TEXTS, padding=True, return_tensors="np"), hf(TEXTS, padding=True, return_tensors="np")
            assert (padded["input_ids"] == expected["input_ids"]).all() and (padded["attention_mask"] == expected["attention_mask"]).all()
        hf.padding_side = "right"
        ids = hf(" ".join(TEXTS))["input_ids"] + [hf.eos_token_id]
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)
        assert ours.convert_ids_to_tokens(ids) == hf.convert_ids_to_tokens(ids)
        assert (ours.eos_token_id, ours.pad_token_id, ours.bos_token_id) == (hf.eos_token_id, hf.pad_token_id, hf.bos_token_id)
        assert ours.special_tokens_map == hf.special_tokens_map
    # the artifact's folder is also a transformers tokenizer folder, with the same behaviour
    again = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert again.apply_chat_template(CONVERSATIONS[1], tokenize=False) == hf.apply_chat_template(CONVERSATIONS[1], tokenize=False)
    assert again(TEXTS)["input_ids"] == hf(TEXTS)["input_ids"]


def test_tiny_tokenizer_equals_transformers(tiny, tmp_path):
    folder, hf = tiny
    check_same_as_transformers(hf, tmp_path)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    ours = load_tokenizer(tmp_path)
    conv = CONVERSATIONS[0]
    assert ours.apply_chat_template(conv, tools=tools, tokenize=False) == hf.apply_chat_template(conv, tools=tools, tokenize=False)
    bad = [{"role": "robot", "content": "beep"}]
    with pytest.raises(jinja2.TemplateError, match="Unknown role: robot") as ours_err:
        ours.apply_chat_template(bad, tokenize=False)
    with pytest.raises(jinja2.TemplateError) as hf_err:
        hf.apply_chat_template(bad, tokenize=False)
    assert str(ours_err.value) == str(hf_err.value)


def test_saving_leaves_the_callers_tokenizer_as_it_was(tiny, tmp_path):
    """The artifact's tokenizer.json never pads or truncates; saving it never changes the tokenizer it came
    from (without padding or truncation set, it is saved straight from transformers' backend, uncopied)."""
    folder, _ = tiny
    hf = AutoTokenizer.from_pretrained(folder)
    plain = json.loads(hf.backend_tokenizer.to_str())

    def saved(name: str) -> dict:
        save_artifact_tokenizer(hf, tmp_path / name)
        return json.loads((tmp_path / name / "tokenizer" / "tokenizer.json").read_text())

    assert saved("plain") == plain == json.loads(hf.backend_tokenizer.to_str())
    hf.backend_tokenizer.enable_truncation(3)
    hf.backend_tokenizer.enable_padding(length=9)
    assert saved("set") == plain
    assert hf.backend_tokenizer.truncation["max_length"] == 3 and hf.backend_tokenizer.padding["length"] == 9


def test_smollm2_tokenizer_equals_transformers(smollm2_tokenizer, tmp_path):
    check_same_as_transformers(smollm2_tokenizer, tmp_path)


def test_generate_from_artifact_imports_no_torch(tiny, qeff_home):
    folder, hf = tiny
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    qpc = model.compile(prefill_seq_len=8, ctx_len=64, batch_size=2, num_cores=1)
    expected = model.generate(hf, PROMPTS, generation_len=10, stream=False)
    code = (
        "import json, sys\n"
        "from QEfficient.runtime.tokenizer import load_tokenizer\n"
        "from QEfficient.generation.text_generation_inference import TextGeneration, cloud_ai_100_exec_kv\n"
        f"qpc = {str(qpc)!r}\n"
        f"info = cloud_ai_100_exec_kv(load_tokenizer(qpc), qpc, prompt={PROMPTS!r}, generation_len=10, stream=False)\n"
        f"again = TextGeneration(load_tokenizer(qpc), qpc).generate({PROMPTS!r}, generation_len=10, stream=False)\n"
        "print('RESULT ' + json.dumps([info.generated_texts, again.generated_texts, [b.tolist() for b in info.generated_ids]]))\n"
    )
    res = run_python("-c", code, home=qeff_home)
    assert res.returncode == 0, res.stderr[-3000:]
    texts, texts_again, ids = json.loads(res.stdout.split("RESULT ", 1)[1])
    assert heavy_imports(res.stderr) == []
    assert texts == texts_again == expected.generated_texts
    assert ids == [b.tolist() for b in expected.generated_ids]


def test_execute_cli_imports_no_torch(tiny, qeff_home):
    folder, hf = tiny
    model = QEFFAutoModelForCausalLM.from_pretrained(folder)
    qpc = model.compile(prefill_seq_len=8, ctx_len=64, batch_size=1, num_cores=1)
    (expected,) = model.generate(hf, PROMPTS[:1], generation_len=10, stream=False).generated_texts[0]
    for extra in ([], ["--model_name", str(folder)]):  # the compiled model's own name also uses the artifact's tokenizer
        res = run_python(
            "-m",
            "QEfficient.cloud.execute",
            "--qpc_path",
            str(qpc),
            "--prompt",
            PROMPTS[0],
            "--generation_len",
            "10",
            *extra,
            home=qeff_home,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        assert heavy_imports(res.stderr) == []
        assert "numpy.random" not in imported(res.stderr)  # greedy needs no generator (~7 MB with the hashlib it imports)
        assert f"Completion :\n{expected}\n" in res.stdout, res.stdout


def test_serve_on_artifact_imports_no_torch(tiny, qeff_home, tmp_path):
    folder, hf = tiny
    model = QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True)
    qpc = model.compile(prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_cores=1)
    hf_model = AutoModelForCausalLM.from_pretrained(folder).eval()
    port = free_port()
    env = {**os.environ, "QEFF_HOME": str(qeff_home), "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "QEfficient.cloud.serve",
        "--qpc_path",
        str(qpc),
        "--port",
        str(port),
        "--num_cores",
        "1",
    ]
    log = tmp_path / "server.stderr"  # a file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks it
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if loopback_http.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.1)
        body = {"prompt": PROMPTS[0], "max_tokens": 10, "temperature": 0}
        out = loopback_http.post(f"{url}/v1/completions", json=body, timeout=60).json()
        assert out["choices"][0]["text"] == hf.decode(hf_greedy(hf_model, hf, PROMPTS[0], 10), skip_special_tokens=True)
        chat = {"messages": CONVERSATIONS[0], "max_tokens": 10, "temperature": 0}
        answer = loopback_http.post(f"{url}/v1/chat/completions", json=chat, timeout=60).json()["choices"][0]["message"]["content"]
        prompt = hf.apply_chat_template(CONVERSATIONS[0], tokenize=False, add_generation_prompt=True)
        assert answer == hf.decode(hf_greedy(hf_model, hf, prompt, 10), skip_special_tokens=True)
        assert loopback_http.get(f"{url}/v1/models").json()["data"][0]["id"] == model.model_name
        scored = {"prompt": PROMPTS[0], "max_tokens": 0, "echo": True, "logprobs": 1}  # the prompt scored, one token a step
        logprobs = loopback_http.post(f"{url}/v1/completions", json=scored, timeout=60).json()["choices"][0]["logprobs"]["token_logprobs"]
        assert logprobs[0] is None and len(logprobs) == len(hf(PROMPTS[0])["input_ids"]) and all(lp < 0 for lp in logprobs[1:])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert heavy_imports(log.read_text()) == []


def test_serve_on_artifact_errors_say_what_to_do(tiny, qeff_home):
    from QEfficient.serving.artifact import artifact_from_qpc

    folder, _ = tiny
    qpc = QEFFAutoModelForCausalLM.from_pretrained(folder).compile(prefill_seq_len=8, ctx_len=64, num_cores=1)
    with pytest.raises(ValueError, match="continuous batching"):
        artifact_from_qpc(str(qpc))
    with pytest.raises(FileNotFoundError, match="not a compiled QEfficient artifact"):
        artifact_from_qpc(str(folder))


def test_serve_on_artifact_refuses_other_shapes_and_lists_its_names(tiny, qeff_home):
    """Options compile() fixed, given with --qpc_path, are refused where they differ from the artifact's (not ignored);
    equal ones are accepted; --model_name names the model, as vLLM's --served-model-name (/v1/models lists it, answers
    carry it), its recorded name still accepted."""
    from fastapi.testclient import TestClient

    from QEfficient.cloud.serve import build_from_args
    from QEfficient.cloud.serve_args import parse_args

    folder, _ = tiny
    qpc = str(
        QEFFAutoModelForCausalLM.from_pretrained(folder, continuous_batching=True).compile(
            prefill_seq_len=8, ctx_len=64, full_batch_size=2, num_cores=1
        )
    )
    for flags, compiled in (
        (["--ctx_len", "128"], "ctx_len=64"),
        (["--prefill_seq_len", "16", "--full_batch_size", "2"], "prefill_seq_len=8"),
        (["--full_batch_size", "4"], "full_batch_size=2"),
        (["--mxfp6"], "mxfp6_matmul=False"),
        (["--mxint8_kv_cache"], "mxint8_kv_cache=False"),
    ):
        with pytest.raises(ValueError, match=rf"was compiled with {compiled}, which it keeps: leave --\w+ out"):
            build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", *flags]))
    from QEfficient.distributed.ray_serve import application_from_args

    with pytest.raises(ValueError, match=r"was compiled with ctx_len=64, which it keeps"):  # Ray's driver: before any replica
        application_from_args(parse_args(["--ray", "--qpc_path", qpc, "--ctx_len", "128", "--ship_artifact", "off"]))
    same = ["--ctx_len", "64", "--prefill_seq_len", "8", "--full_batch_size", "2", "--model_name", "tiny-chat"]
    app, runner = build_from_args(parse_args(["--qpc_path", qpc, "--num_cores", "1", *same]))
    try:
        client = TestClient(app)
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["tiny-chat"]
        for name in ("tiny-chat", Path(folder).name, None):  # (the folder's name, recorded in the artifact)
            body = {"model": name, "prompt": "Hello", "max_tokens": 2, "temperature": 0}
            assert client.post("/v1/completions", json=body).json()["model"] == "tiny-chat"
    finally:
        runner.stop()


MISSING_MODEL_CLIS = [
    ["QEfficient.cloud.infer", "--model_name"],
    ["QEfficient.cloud.export", "--model-name"],
    ["QEfficient.cloud.serve", "--model_name"],
    ["QEfficient.cloud.batch", "--model_name"],  # before Ray, too
]


@pytest.mark.parametrize("cli", MISSING_MODEL_CLIS, ids=lambda cli: cli[0].rsplit(".", 1)[-1])
def test_a_missing_model_is_named_before_torch_loads(cli, qeff_home, tmp_path):
    """A mistyped model name fails in a second, not after the seconds torch and transformers' modeling take to import."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Hi"}\n')
    batch_io = ["--input", str(prompts), "--output", str(tmp_path / "out.jsonl")] if cli[0].endswith(".batch") else []
    res = run_python("-m", *cli, str(tmp_path / "missing"), *batch_io, home=qeff_home)
    assert res.returncode == 2 and re.search(r"error: Model .*missing' was not found", res.stderr), res.stderr[-2000:]
    assert heavy_imports(res.stderr) == [] and "ray" not in imported(res.stderr)


@pytest.mark.parametrize(
    "cli, option, message",
    [
        pytest.param("infer", ["--ctx_len", "0"], "ctx_len must be a positive integer, got 0", id="infer-ctx_len"),
        pytest.param("infer", ["--generation_len", "-3"], "generation_len must be a positive whole number", id="infer-generation_len"),
        pytest.param("infer", ["--full_batch_size", "0"], "full_batch_size must be a positive integer, got 0", id="infer-full_batch_size"),
        pytest.param(
            "serve", ["--prefill_seq_len", "0"], "--prefill_seq_len must be a positive integer, got 0", id="serve-prefill_seq_len"
        ),
        pytest.param("batch", ["--num_actors", "0"], "num_actors must be a positive integer, got 0", id="batch-num_actors"),
    ],
)
def test_a_bad_number_is_refused_before_torch_loads(tiny, qeff_home, cli, option, message):
    """Not after the model is loaded, exported and compiled (minutes for a real model on a cold cache)."""
    folder, _ = tiny
    if cli == "batch":
        prompts = folder.parent / "prompts.jsonl"
        prompts.write_text('{"prompt": "Hi"}\n')
        option = [*option, "--input", str(prompts), "--output", str(folder.parent / "out.jsonl")]
    res = run_python("-m", f"QEfficient.cloud.{cli}", "--model_name", str(folder), *option, home=qeff_home)
    assert res.returncode == 2 and f"error: {message}" in res.stderr, res.stderr[-2000:]
    assert heavy_imports(res.stderr) == [] and "ray" not in imported(res.stderr)
