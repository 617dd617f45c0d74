"""The command-line tools, run as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import infer_cli_in_process


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QEFF_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=600)


def test_infer_then_execute(tiny_model_dir, qeff_home):
    folder = tiny_model_dir("llama")
    res = run(
        "QEfficient.cloud.infer",
        "--model_name",
        str(folder),
        "--prompt",
        "My name is|The sun rises",
        "--prompt-len",
        "8",
        "--ctx_len",
        "32",
        "--generation_len",
        "5",
        "--num_cores",
        "1",
        "--batch_size",
        "2",
        "--aic_enable_depth_first",
        home=qeff_home,
    )
    assert res.returncode == 0, res.stderr
    assert "===== Performance Stats =====" in res.stdout and "Decode is=" in res.stdout
    assert "Prompt : The sun rises" in res.stdout
    assert "Exporting to ONNX" in res.stderr and "done in" in res.stderr

    qpc = next(
        p
        for p in qeff_home.rglob("qpc-*")
        if (p / "qconfig.json").is_file() and json.loads((p / "qconfig.json").read_text()).get("local_model_dir") == str(folder)
    )
    res = run("QEfficient.cloud.execute", "--qpc_path", str(qpc), "--prompt", "My name is", home=qeff_home)
    assert res.returncode == 0, res.stderr
    assert "Completion :" in res.stdout


def test_no_stream_prompt_files_and_paths_as_users_give_them(tiny_model_dir, home, tmp_path, capsys, monkeypatch):
    """--no_stream prints each completion once all are done; a prompts file with a byte-order mark (Notepad's) reads as
    without; '~' in --qpc_path and --prompts_txt_file_path is the home folder; bad prompts fail before any export."""
    from QEfficient import QEFFAutoModelForCausalLM
    from QEfficient.cloud import execute, infer
    from QEfficient.generation.text_generation import PromptTooLongError

    folder = tiny_model_dir("llama")
    with pytest.raises(PromptTooLongError, match="Prompt 1 has"):  # before the model is loaded and exported
        infer.main(model_name=str(folder), prompt=["hi", "word " * 40], prompt_len=8, ctx_len=16, num_cores=1)
    assert not list(home.rglob("*.onnx"))
    qpc = QEFFAutoModelForCausalLM.from_pretrained(folder).compile(prefill_seq_len=8, ctx_len=32, num_cores=1)
    execute.main(["--qpc_path", str(qpc), "--prompt", "My name is|The sun", "--generation_len", "3", "--no_stream"])
    out = capsys.readouterr().out
    assert "Prompt : My name is\nCompletion :" in out and "Prompt : The sun\nCompletion :" in out
    (tmp_path / "plain.txt").write_text("My name is\n")
    (tmp_path / "bom.txt").write_bytes("\ufeffMy name is\n".encode())
    monkeypatch.setenv("HOME", str(Path(qpc).parent))
    completions = []
    for name in ("plain.txt", "bom.txt"):
        args = ["--qpc_path", f"~/{Path(qpc).name}", "--prompts_txt_file_path", str(tmp_path / name), "--generation_len", "4"]
        execute.main([*args, "--no_stream"])
        completions.append(capsys.readouterr().out.split("Completion :")[-1])
    assert completions[0] == completions[1]


def test_export_cli_prints_the_onnx_path(tiny_model_dir, qeff_home):
    res = run("QEfficient.cloud.export", "--model-name", str(tiny_model_dir("gpt2")), home=qeff_home)
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip().splitlines()[-1]).is_file()


def test_cli_errors_are_one_clear_line(tmp_path, qeff_home):
    res = run("QEfficient.cloud.infer", "--model_name", str(tmp_path / "missing"), home=qeff_home)
    assert res.returncode == 2 and re.search(r"error: Model .* was not found", res.stderr)
    assert "Traceback" not in res.stderr
    res = run("QEfficient.cloud.execute", "--qpc_path", str(tmp_path), home=qeff_home)
    assert res.returncode == 2 and "not a compiled QEfficient artifact" in res.stderr


def test_a_cache_or_disk_that_cannot_be_written_says_what_to_do(tmp_path, monkeypatch, capsys):
    """A write refused for want of permission or space (QEFF_HOME read-only, a full disk): one line with the fix, the
    cache folder named where the path is in it."""
    import errno

    from QEfficient.cloud._cli import fail

    monkeypatch.setenv("QEFF_HOME", str(tmp_path / "home"))
    for err, words in (
        (PermissionError(errno.EPERM, "Operation not permitted", str(tmp_path / "home" / "LlamaForCausalLM")), "QEFF_HOME ("),
        (PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "mine" / "qpc")), "Check that you may read and write there"),
        (OSError(errno.EFBIG, "File too large", str(tmp_path / "home" / "x.onnx.data")), "point QEFF_HOME at another disk"),
        (OSError(errno.ENOSPC, "No space left on device"), "write to another disk"),
    ):
        with pytest.raises(SystemExit) as exited:
            fail(err)
        message = capsys.readouterr().err
        assert exited.value.code == 2 and message.startswith("error: ") and words in message and message.count("\n") == 1, message


def test_infer_with_full_batch_size_runs_continuous_batching(tiny_model_dir, capsys, monkeypatch):
    args = ["--model_name", str(tiny_model_dir("llama")), "--prompt", "My name is|The sun|Paris|A robot", "--prompt_len", "8"]
    out = infer_cli_in_process(
        [*args, "--ctx_len", "32", "--generation_len", "4", "--num_cores", "1", "--full_batch_size", "2"], capsys, monkeypatch
    )
    assert out.count("Completion :") == 4 and "Performance Stats" in out


def test_a_prompt_longer_than_the_context_is_refused_before_the_export(tiny_model_dir, tmp_path, monkeypatch):
    from QEfficient.cloud.infer import main

    monkeypatch.setenv("QEFF_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"prompt_len \(64\) must not exceed ctx_len \(32\): raise --ctx_len"):
        main(model_name=str(tiny_model_dir("llama")), prompt_len=64, ctx_len=32, num_cores=1)
    assert not list(tmp_path.rglob("*.onnx"))  # refused before anything was loaded or exported


def test_serve_and_execute_refuse_counts_and_ports_that_cannot_work(tiny_model_dir, tmp_path, capsys):
    from QEfficient.cloud import execute
    from QEfficient.cloud.serve_args import parse_args

    for argv, message in (
        (["--port", "70000"], "--port must be from 0 to 65535, got 70000"),
        (["--port", "-1"], "--port must be from 0 to 65535"),
        (["--max_queue", "0"], "max_queue must be a positive integer, got 0"),
        (["--num_cores", "-3"], "num_cores must be a positive integer, got -3"),
        (["--prompt_lookup_num_tokens", "-1"], "--prompt_lookup_num_tokens must be a positive integer, got -1"),
    ):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match="num_cores must be a positive integer, got 0"):
        execute.main(qpc_path=str(tmp_path), num_cores=0)
    from QEfficient.cloud import infer
    from QEfficient.cloud.serve import build_from_args
    from QEfficient.loading.model_path import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):  # before the target is compiled
        build_from_args(
            parse_args(
                ["--model_name", str(tiny_model_dir("llama")), "--draft_model", str(tmp_path / "no-draft"), "--num_speculative_tokens", "2"]
            )
        )
    from QEfficient.generation.exec_kv import load_prompts

    (tmp_path / "blank.txt").write_text("\n  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    for path, message in (
        (tmp_path / "blank.txt", "holds no prompts"),
        (tmp_path / "latin1.txt", "is not UTF-8"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            load_prompts(None, str(path))
    with pytest.raises(SystemExit):  # a misspelled option is not taken for a Cloud AI 100 compiler option
        infer.main(["--ctx-length", "256"])
    assert "unknown option '--ctx-length': did you mean --ctx_len?" in capsys.readouterr().err
    from QEfficient.cloud._cli import parse_with_extras

    extras = parse_with_extras(infer.build_parser(), ["--aic_num_cores", "4", "--mdts_mos", "2"])[1]  # Cloud AI 100's own
    assert extras == {"aic_num_cores": "4", "mdts_mos": "2"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        infer.main(["--model_name", str(tmp_path / "empty")])
    assert "is not a model folder: it has no config.json" in capsys.readouterr().err
    for flag in ("--model_name", "--local_model_dir"):  # not the default model, quietly
        with pytest.raises(SystemExit):
            infer.main([flag, ""])
        assert "named by an empty string" in capsys.readouterr().err
